-- ---------------------------------------------------------------------------------------------------
-- The triggers of a chunked table (35_chunks.sql) and its write-back function, which keeps the chunks
-- exact in the row's own transaction: INSERT and COPY (chunked and embedded in batched model calls),
-- UPDATE of the text (other columns touch nothing), DELETE and TRUNCATE. A partitioned table's chunk table is
-- partitioned as the table is: each partition's chunks live in its twin (same bound, same level), made and
-- dropped here as partitions come and go (72_partitions.sql, 70_events.sql).
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
               pgbert.embed_chunks(a.ts, $3, $4, $6) c$q$,
        cfg.chunk_relid::regclass, CASE WHEN lexical THEN ', lexemes' ELSE '' END,
        CASE WHEN lexical THEN ', pgbert.lexemes(c.passage, $5)' ELSE '' END,
        cfg.key_column, cfg.source_column, pgbert._key_equality(cfg.relid, cfg.key_column), cfg.relid)
        USING new_rows, old_rows, cfg.chunk_tokens, cfg.overlap_tokens, cfg.lexical_config, cfg.model_name;
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
-- A table partition's chunk twin: the partition of chunk_parent with part's bound (NULL: none); and, from
-- the chunk table down, the twin of a partition at any level.
CREATE OR REPLACE FUNCTION pgbert._twin(chunk_parent oid, part oid) RETURNS oid
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT i.inhrelid FROM pg_catalog.pg_inherits i JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
      JOIN pg_catalog.pg_class p ON p.oid = part
     WHERE i.inhparent = chunk_parent
       AND pg_catalog.pg_get_expr(c.relpartbound, c.oid) = pg_catalog.pg_get_expr(p.relpartbound, p.oid)
$$;
COMMENT ON FUNCTION pgbert._twin(oid, oid) IS 'Internal: the partition of a chunk table with a table partition''s bound.';

CREATE OR REPLACE FUNCTION pgbert._chunk_twin(tbl oid, chunks oid, part oid) RETURNS oid
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    parent oid := (SELECT i.inhparent FROM pg_catalog.pg_inherits i WHERE i.inhrelid = part);
BEGIN
    IF part = tbl THEN
        RETURN chunks;
    ELSIF parent IS NULL THEN
        RETURN NULL;  -- not in tbl's tree
    END IF;
    RETURN pgbert._twin(pgbert._chunk_twin(tbl, chunks, parent), part);
END
$fn$;
COMMENT ON FUNCTION pgbert._chunk_twin(oid, oid, oid) IS
    'Internal: the partition of a chunk table that holds the chunks of a table''s partition (any level), or NULL.';

-- ' PARTITION BY <strategy> (col ...)' with rel's strategy, collation and operator class when rel is
-- partitioned ('' otherwise): a chunk table and its twins are partitioned by row_key as rel by its key.
CREATE OR REPLACE FUNCTION pgbert._partition_clause(rel oid, col name) RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce((
        SELECT format(' PARTITION BY %s (%I%s %I.%I)', CASE p.partstrat WHEN 'r' THEN 'RANGE' WHEN 'l' THEN 'LIST' ELSE 'HASH' END,
                      col, (SELECT format(' COLLATE %I.%I', n.nspname, k.collname) FROM pg_catalog.pg_collation k
                              JOIN pg_catalog.pg_namespace n ON n.oid = k.collnamespace WHERE k.oid = p.partcollation[0]),
                      n.nspname, o.opcname)
          FROM pg_catalog.pg_partitioned_table p JOIN pg_catalog.pg_opclass o ON o.oid = p.partclass[0]
          JOIN pg_catalog.pg_namespace n ON n.oid = o.opcnamespace
         WHERE p.partrelid = rel), '')
$$;
COMMENT ON FUNCTION pgbert._partition_clause(oid, name) IS
    'Internal: the PARTITION BY clause that partitions by col as a partitioned table is partitioned, or ''''.';

-- Makes a chunk table's partitions match its table's, level by level: a twin for each partition (created
-- empty, owned by the chunk table's owner and readable by it alone: readers go through the chunk table and
-- its policy), none for a partition that left (DETACH, DROP: its chunks go too). A twin's bound is
-- PostgreSQL's own text of the partition's bound (pg_get_expr: its constants quoted).
CREATE OR REPLACE FUNCTION pgbert._mirror_partitions(tbl oid, chunks oid) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    owner  oid := (SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = chunks);
    schema name := (SELECT n.nspname FROM pg_catalog.pg_class c
                      JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = chunks);
    p      record;
    twin   text;
BEGIN
    FOR p IN WITH twins AS (SELECT k.oid, pg_catalog.pg_get_expr(k.relpartbound, k.oid) AS bound
                              FROM pg_catalog.pg_inherits i JOIN pg_catalog.pg_class k ON k.oid = i.inhrelid
                             WHERE i.inhparent = chunks)
             SELECT c.oid, c.relname, b.bound, twins.oid AS twin
               FROM pg_catalog.pg_inherits i JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
                    CROSS JOIN LATERAL (SELECT pg_catalog.pg_get_expr(c.relpartbound, c.oid) AS bound) b
                    LEFT JOIN twins ON twins.bound = b.bound
              WHERE i.inhparent = tbl AND c.relkind IN ('r', 'p') LOOP
        twin := p.twin::regclass::text;
        IF p.twin IS NULL THEN
            twin := format('%I.%I', schema, pgbert._suffixed(p.relname, '_chunks'));
            IF to_regclass(twin) IS NOT NULL THEN  -- the name is taken: the partition's oid makes another
                twin := format('%I.%I', schema, pgbert._suffixed(p.relname, '_chunks_' || p.oid));
            END IF;
            EXECUTE format('CREATE TABLE %s PARTITION OF %s %s%s', twin, chunks::regclass, p.bound,
                           pgbert._partition_clause(p.oid, 'row_key'));
            EXECUTE format('COMMENT ON TABLE %s IS %L', twin, format('pgbert: the chunks of partition %s (read them '
                           'through %s).', p.oid::regclass, chunks::regclass));
        END IF;
        IF (SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = twin::regclass) <> owner THEN
            EXECUTE format('ALTER TABLE %s OWNER TO %I', twin, pg_catalog.pg_get_userbyid(owner));
        END IF;
        PERFORM pgbert._mirror_partitions(p.oid, twin::regclass);
    END LOOP;
    FOR p IN SELECT k.oid AS twin FROM pg_catalog.pg_inherits i JOIN pg_catalog.pg_class k ON k.oid = i.inhrelid
              WHERE i.inhparent = chunks AND pg_catalog.pg_get_expr(k.relpartbound, k.oid) NOT IN (
                    SELECT pg_catalog.pg_get_expr(c.relpartbound, c.oid) FROM pg_catalog.pg_inherits j
                      JOIN pg_catalog.pg_class c ON c.oid = j.inhrelid WHERE j.inhparent = tbl AND c.relkind IN ('r', 'p')) LOOP
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid = p.twin) THEN  -- (a nested event may have)
            EXECUTE format('DROP TABLE %s CASCADE', p.twin::regclass);  -- views on it: no veto, as for the chunk table
        END IF;
    END LOOP;
END
$fn$;
COMMENT ON FUNCTION pgbert._mirror_partitions(oid, oid) IS
    'Internal: creates, re-owns and drops partitions of a chunk table so that they mirror its table''s partitions.';

-- After a DROP: the chunk tables of every partitioned table (a model change's next and old ones too) lose
-- the twins of dropped partitions (and get back an empty twin the owner dropped). The registry row is read as
-- jsonb (a downgraded database).
CREATE OR REPLACE FUNCTION pgbert._mirror_all_partitions() RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    e record;
BEGIN
    FOR e IN SELECT r.relid, c.oid AS chunks FROM pgbert.embedded_tables r
               JOIN pg_catalog.pg_class c ON c.oid IN ((to_jsonb(r) ->> 'chunk_relid')::oid,
                        (to_jsonb(r) ->> 'next_chunk_relid')::oid, (to_jsonb(r) ->> 'old_chunk_relid')::oid)
              WHERE c.relkind = 'p' LOOP
        PERFORM pgbert._mirror_partitions(e.relid, e.chunks);
    END LOOP;
END
$fn$;
COMMENT ON FUNCTION pgbert._mirror_all_partitions() IS
    'Internal: mirrors the partitions of every partitioned chunk table (after a DROP).';

-- After TRUNCATE (the write-back, as the table's owner): of the table itself, the whole chunk table is emptied
-- (_write_truncated); of a partition (its copy of the trigger), its chunk twin (and its twin in a model
-- change's next chunk table).
CREATE OR REPLACE FUNCTION pgbert._write_truncation(tbl oid, rel oid) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    cfg    pgbert.embedded_tables := pgbert._writer_config(tbl);
    twin   oid;
    filled boolean;
BEGIN
    IF rel = tbl THEN
        PERFORM pgbert._write_truncated(tbl);  -- 32_write_back.sql
        RETURN;
    END IF;
    FOR twin IN SELECT pgbert._chunk_twin(tbl, t.chunk_relid, rel) FROM pgbert._chunk_targets(cfg) t LOOP
        CONTINUE WHEN twin IS NULL;
        EXECUTE format('SELECT EXISTS (SELECT 1 FROM %s)', twin::regclass) INTO filled;
        IF filled THEN  -- (TRUNCATE of the table fires each partition's trigger too: one TRUNCATE each is enough)
            EXECUTE format('TRUNCATE %s', twin::regclass);
        END IF;
    END LOOP;
END
$fn$;
COMMENT ON FUNCTION pgbert._write_truncation(oid, oid) IS
    'Internal (write-back, as the table''s owner): empties the chunks of a truncated table, or of a truncated partition.';
