-- ---------------------------------------------------------------------------------------------------
-- The triggers of a chunked table (35_chunks.sql) and its write-back function, which keeps the chunks
-- exact in the row's own transaction: INSERT and COPY (chunked and embedded in batched model calls),
-- UPDATE of the text (other columns touch nothing), DELETE and TRUNCATE.
-- ---------------------------------------------------------------------------------------------------

-- The chunks of a chunked table's new rows (those without a twin of the same key and text among old_rows:
-- an UPDATE's unchanged rows keep theirs), in calls of at most 1,024 texts and about 8 MB. Run by the
-- write-back (32_write_back.sql), as the table's owner.
CREATE OR REPLACE FUNCTION pgbert._insert_chunks(cfg pgbert.embedded_tables, new_rows jsonb, old_rows jsonb)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    lexical boolean := cfg.lexical_config IS NOT NULL;
BEGIN
    EXECUTE format($q$
        INSERT INTO %1$s (row_key, chunk, start_char, end_char, embedding%2$s)
        SELECT a.ks[c.ord], c.chunk, c.start_char, c.end_char, c.embedding%3$s
          FROM (SELECT array_agg(r.k) AS ks, array_agg(r.s) AS ts
                  FROM (SELECT n.%4$I AS k, n.%5$I::pg_catalog.text AS s, (row_number() OVER w - 1) / 1024 AS calls,
                               sum(octet_length(n.%5$I)) OVER w / 8388608 AS part
                          FROM jsonb_populate_recordset(NULL::%7$s, $1) n
                         WHERE n.%5$I IS NOT NULL AND NOT EXISTS (
                               SELECT 1 FROM jsonb_populate_recordset(NULL::%7$s, coalesce($2, '[]')) o WHERE o.%4$I %6$s n.%4$I AND o.%5$I IS NOT DISTINCT FROM n.%5$I)
                        WINDOW w AS (ROWS UNBOUNDED PRECEDING)) r
                 GROUP BY r.calls, r.part) a,
               pgbert.embed_chunks(a.ts, $3, $4) c$q$,
        cfg.chunk_relid::regclass, CASE WHEN lexical THEN ', lexemes' ELSE '' END,
        CASE WHEN lexical THEN ', pgbert.lexemes(c.passage, $5)' ELSE '' END,
        cfg.key_column, cfg.source_column, pgbert._key_equality(cfg.relid, cfg.key_column), cfg.relid)
        USING new_rows, old_rows, cfg.chunk_tokens, cfg.overlap_tokens, cfg.lexical_config;
END
$fn$;
COMMENT ON FUNCTION pgbert._insert_chunks(pgbert.embedded_tables, jsonb, jsonb) IS
    'Internal (write-back): chunks and embeds new rows of a chunked table that have no unchanged twin among old rows.';
DROP FUNCTION IF EXISTS pgbert._chunk_writer_ddl(pgbert.embedded_tables), pgbert._chunk_writer_template();  -- before 0010

-- The statement triggers of a chunked table (one per event: PostgreSQL allows transition tables only on
-- single-event triggers). The UPDATE trigger has no column list for the same reason; its function
-- compares old and new text and touches nothing when only other columns changed.
CREATE OR REPLACE FUNCTION pgbert._install_chunk_triggers(tbl regclass) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    fn name := pgbert._install_writer(tbl);
BEGIN
    EXECUTE format('CREATE TRIGGER pgbert_chunks_insert AFTER INSERT ON %s REFERENCING NEW TABLE AS pgbert_new_rows '
                   'FOR EACH STATEMENT EXECUTE FUNCTION pgbert.%I()', tbl, fn);
    EXECUTE format('CREATE TRIGGER pgbert_chunks_update AFTER UPDATE ON %s REFERENCING OLD TABLE AS pgbert_old_rows '
                   'NEW TABLE AS pgbert_new_rows FOR EACH STATEMENT EXECUTE FUNCTION pgbert.%I()', tbl, fn);
    EXECUTE format('CREATE TRIGGER pgbert_chunks_delete AFTER DELETE ON %s REFERENCING OLD TABLE AS pgbert_old_rows '
                   'FOR EACH STATEMENT EXECUTE FUNCTION pgbert.%I()', tbl, fn);
    EXECUTE format('CREATE TRIGGER pgbert_chunks_truncate AFTER TRUNCATE ON %s FOR EACH STATEMENT '
                   'EXECUTE FUNCTION pgbert.%I()', tbl, fn);
END
$fn$;
COMMENT ON FUNCTION pgbert._install_chunk_triggers(regclass) IS
    'Internal: creates the INSERT, UPDATE, DELETE and TRUNCATE statement triggers of a chunked table.';
