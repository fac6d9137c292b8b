-- ---------------------------------------------------------------------------------------------------
-- The triggers of a chunked table (35_chunks.sql) and its write-back function, which keeps the chunks
-- exact in the row's own transaction: INSERT and COPY (chunked and embedded in batched model calls),
-- UPDATE of the text (other columns touch nothing), DELETE and TRUNCATE.
-- ---------------------------------------------------------------------------------------------------

-- The write-back function of a chunked table, from a template with named markers, like the batch
-- writer (30_triggers.sql): it runs as the table's owner, for that table only, and refuses to run once
-- its owner is not the table's. Rows are chunked and embedded in calls of at most 1,024 texts and
-- about 8 MB.
CREATE OR REPLACE FUNCTION pgbert._chunk_writer_template() RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $fn$ SELECT $template$
CREATE OR REPLACE FUNCTION pgbert.@writer@() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $body$
DECLARE
    changed @key_type@[];
BEGIN
    IF TG_RELID <> @relid@ OR TG_LEVEL <> 'STATEMENT' THEN
        RAISE EXCEPTION 'pgbert: % keeps the chunks of the table of oid @relid@ only', TG_NAME
              USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF (SELECT relowner FROM pg_catalog.pg_class WHERE oid = TG_RELID)
       <> (SELECT proowner FROM pg_catalog.pg_proc WHERE oid = 'pgbert.@writer@()'::pg_catalog.regprocedure) THEN
        RAISE EXCEPTION 'pgbert: the owner of % changed; its write-back function was not re-owned', TG_RELID::regclass
              USING ERRCODE = 'insufficient_privilege',
                    HINT = 'CALL pgbert.disable_embedding(table), then pgbert.enable_embedding(...) again.';
    END IF;
    IF TG_OP = 'TRUNCATE' THEN
        TRUNCATE @chunks@;
        RETURN NULL;
    ELSIF TG_OP = 'DELETE' THEN
        DELETE FROM @chunks@ c USING pgbert_old_rows o WHERE c.row_key @key_eq@ o.@key@;
        RETURN NULL;
    ELSIF TG_OP = 'UPDATE' THEN  -- rows whose text or key changed; other updates touch no chunk
        changed := ARRAY(SELECT n.@key@ FROM pgbert_new_rows n WHERE NOT EXISTS (
                             SELECT 1 FROM pgbert_old_rows o
                              WHERE o.@key@ @key_eq@ n.@key@ AND o.@source@ IS NOT DISTINCT FROM n.@source@));
        DELETE FROM @chunks@ c USING pgbert_old_rows o
         WHERE c.row_key @key_eq@ o.@key@ AND NOT EXISTS (
               SELECT 1 FROM pgbert_new_rows n WHERE n.@key@ @key_eq@ o.@key@ AND n.@source@ IS NOT DISTINCT FROM o.@source@);
        DELETE FROM @chunks@ c WHERE c.row_key @key_eq@ ANY (changed);
        IF cardinality(changed) = 0 THEN
            RETURN NULL;
        END IF;
    END IF;
    INSERT INTO @chunks@ (row_key, chunk, start_char, end_char, embedding@lexemes_column@)
    SELECT a.ks[c.ord], c.chunk, c.start_char, c.end_char, c.embedding@lexemes_value@
      FROM (SELECT array_agg(r.k) AS ks, array_agg(r.s) AS ts
              FROM (SELECT n.@key@ AS k, n.@source@ AS s, (row_number() OVER w - 1) / 1024 AS calls,
                           sum(octet_length(n.@source@)) OVER w / 8388608 AS part
                      FROM pgbert_new_rows n
                     WHERE n.@source@ IS NOT NULL AND (TG_OP = 'INSERT' OR n.@key@ @key_eq@ ANY (changed))
                    WINDOW w AS (ROWS UNBOUNDED PRECEDING)) r
             GROUP BY r.calls, r.part) a,
           pgbert.embed_chunks(a.ts, @chunk_tokens@, @overlap_tokens@) c;
    RETURN NULL;
END
$body$
$template$ $fn$;
COMMENT ON FUNCTION pgbert._chunk_writer_template() IS
    'Internal: the write-back function of a chunked table, with @markers@ that _chunk_writer_ddl fills in.';

CREATE OR REPLACE FUNCTION pgbert._chunk_writer_ddl(cfg pgbert.embedded_tables) RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    lexical boolean := cfg.lexical_config IS NOT NULL;
BEGIN
    RETURN replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(pgbert._chunk_writer_template(),
        '@writer@', pgbert._chunk_writer_name(cfg.relid)),
        '@relid@', cfg.relid::oid::text),
        '@chunks@', pgbert._qualified(cfg.chunk_relid)),
        '@key_type@', (SELECT format_type(a.atttypid, a.atttypmod) FROM pg_catalog.pg_attribute a
                        WHERE a.attrelid = cfg.relid AND a.attname = cfg.key_column)),
        '@key@', quote_ident(cfg.key_column)),
        '@source@', quote_ident(cfg.source_column)),
        '@key_eq@', pgbert._key_equality(cfg.relid, cfg.key_column)),
        '@chunk_tokens@', cfg.chunk_tokens::text),
        '@overlap_tokens@', cfg.overlap_tokens::text),
        '@lexemes_column@', CASE WHEN lexical THEN ', lexemes' ELSE '' END),
        '@lexemes_value@', CASE WHEN lexical THEN format(', pgbert.lexemes(c.passage, %L)', cfg.lexical_config)
                                ELSE '' END);
END
$fn$;
COMMENT ON FUNCTION pgbert._chunk_writer_ddl(pgbert.embedded_tables) IS
    'Internal: the CREATE FUNCTION statement of a chunked table''s write-back function.';

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
