-- ---------------------------------------------------------------------------------------------------
-- Write-back: what a table's write-back function (30_triggers.sql: fixed body, SECURITY DEFINER, owned by
-- the table's owner) runs after a statement, with the statement's transition rows as a jsonb array (read
-- back as the table's row type). One static implementation per kind of table; every relation, column and operator
-- comes from pgbert's registry and the catalogs at run time (format %I), nothing is generated.
--
-- They run with the rights of whoever calls them: through the write-back function, the table's owner.
-- Called directly, they can do nothing the caller could not do with plain SQL.
-- ---------------------------------------------------------------------------------------------------

-- The registry row of the table being written back; raises once the table has another owner than the
-- role running this (its write-back function was not re-owned: even a superuser's must not run on).
CREATE OR REPLACE FUNCTION pgbert._writer_config(tbl oid) RETURNS pgbert.embedded_tables
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF (SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = tbl)
       IS DISTINCT FROM (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname = current_user) THEN
        RAISE EXCEPTION 'pgbert: the owner of % changed; its write-back function was not re-owned', tbl::regclass
              USING ERRCODE = 'insufficient_privilege',
                    HINT = 'CALL pgbert.disable_embedding(table), then pgbert.enable_embedding(...) again.';
    END IF;
    RETURN pgbert._embedding_config(tbl);
END
$fn$;
COMMENT ON FUNCTION pgbert._writer_config(oid) IS
    'Internal: the registry row of a table being written back, or an error when the caller does not own it.';

-- After INSERT: a batch table's rows that have text and no vector yet get one, embedded in calls of at most
-- 1,024 texts and about 8 MB (under the max_input_chars cap); a chunked table's rows get their chunks (during
-- a model change, in the next chunk table too: _chunk_targets, 56_model_change_chunks.sql).
CREATE OR REPLACE FUNCTION pgbert._write_inserted(tbl oid, new_rows jsonb) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    cfg    pgbert.embedded_tables := pgbert._writer_config(tbl);
    target pgbert.embedded_tables;
BEGIN
    IF cfg.chunk_relid IS NOT NULL THEN
        FOR target IN SELECT * FROM pgbert._chunk_targets(cfg) LOOP
            IF target.strategy <> 'queue' THEN  -- queued: the workers chunk the rows (45_queue.sql)
                PERFORM pgbert._insert_chunks(target, new_rows, NULL);
            END IF;
        END LOOP;
        RETURN;
    END IF;
    EXECUTE format($q$
        UPDATE %1$s AS t SET %2$I = e.v
          FROM (SELECT u.k, u.v
                  FROM (SELECT array_agg(r.k) AS ks, array_agg(r.s) AS ts
                          FROM (SELECT n.%3$I AS k, n.%4$I::pg_catalog.text AS s, (row_number() OVER w - 1) / 1024 AS chunk,
                                       sum(octet_length(n.%4$I)) OVER w / 8388608 AS part
                                  FROM jsonb_populate_recordset(NULL::%1$s, $1) n
                                 WHERE n.%4$I IS NOT NULL AND n.%2$I IS NULL
                                WINDOW w AS (ROWS UNBOUNDED PRECEDING)) r
                         GROUP BY r.chunk, r.part) a,
                       unnest(a.ks, pgbert.embed_batch(a.ts, 'document', $2)) AS u(k, v)) e
         WHERE t.%3$I %5$s e.k$q$,
        tbl::regclass, cfg.vector_column, cfg.key_column, cfg.source_column, pgbert._key_equality(tbl, cfg.key_column))
        USING new_rows, cfg.model_name;
END
$fn$;
COMMENT ON FUNCTION pgbert._write_inserted(oid, jsonb) IS
    'Internal (write-back, as the table''s owner): embeds an INSERT''s rows that have text but no vector, or chunks them.';

-- After UPDATE of a chunked table: rows whose text or key changed are chunked anew (in each chunk table a
-- model change keeps); other updates touch no chunk. (Batch tables re-embed updated texts inline, in their
-- row trigger.)
CREATE OR REPLACE FUNCTION pgbert._write_updated(tbl oid, old_rows jsonb, new_rows jsonb) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    cfg    pgbert.embedded_tables := pgbert._writer_config(tbl);
    target pgbert.embedded_tables;
BEGIN
    FOR target IN SELECT * FROM pgbert._chunk_targets(cfg) LOOP  -- none unless chunked (56_model_change_chunks.sql)
        -- the keys of old rows without a new twin (same key, same text), and of new rows without an old one
        EXECUTE format(
            'DELETE FROM %1$s c USING (
                 SELECT o.%2$I AS k FROM jsonb_populate_recordset(NULL::%5$s, $1) o WHERE NOT EXISTS (
                        SELECT 1 FROM jsonb_populate_recordset(NULL::%5$s, $2) n WHERE n.%2$I %3$s o.%2$I AND n.%4$I IS NOT DISTINCT FROM o.%4$I)
                 UNION ALL
                 SELECT n.%2$I FROM jsonb_populate_recordset(NULL::%5$s, $2) n WHERE NOT EXISTS (
                        SELECT 1 FROM jsonb_populate_recordset(NULL::%5$s, $1) o WHERE o.%2$I %3$s n.%2$I AND o.%4$I IS NOT DISTINCT FROM n.%4$I)) r
              WHERE c.row_key %3$s r.k',
            target.chunk_relid::regclass, cfg.key_column, pgbert._key_equality(tbl, cfg.key_column), cfg.source_column,
            tbl::regclass)
            USING old_rows, new_rows;
        IF target.strategy <> 'queue' THEN  -- queued: the rows left without chunks are the workers' (45_queue.sql)
            PERFORM pgbert._insert_chunks(target, new_rows, old_rows);
        END IF;
    END LOOP;
END
$fn$;
COMMENT ON FUNCTION pgbert._write_updated(oid, jsonb, jsonb) IS
    'Internal (write-back, as the table''s owner): re-chunks the rows of an UPDATE whose text or key changed.';

CREATE OR REPLACE FUNCTION pgbert._write_deleted(tbl oid, old_rows jsonb) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    cfg    pgbert.embedded_tables := pgbert._writer_config(tbl);
    target pgbert.embedded_tables;
BEGIN
    FOR target IN SELECT * FROM pgbert._chunk_targets(cfg) LOOP  -- none unless chunked (56_model_change_chunks.sql)
        EXECUTE format('DELETE FROM %s c USING jsonb_populate_recordset(NULL::%s, $1) o WHERE c.row_key %s o.%I',
                       target.chunk_relid::regclass, tbl::regclass, pgbert._key_equality(tbl, cfg.key_column),
                       cfg.key_column)
            USING old_rows;
    END LOOP;
END
$fn$;
COMMENT ON FUNCTION pgbert._write_deleted(oid, jsonb) IS
    'Internal (write-back, as the table''s owner): deletes the chunks of a DELETE''s rows (a model change''s next chunks too).';

CREATE OR REPLACE FUNCTION pgbert._write_truncated(tbl oid) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    cfg    pgbert.embedded_tables := pgbert._writer_config(tbl);
    target pgbert.embedded_tables;
BEGIN
    FOR target IN SELECT * FROM pgbert._chunk_targets(cfg) LOOP  -- none unless chunked (56_model_change_chunks.sql)
        EXECUTE format('TRUNCATE %s', target.chunk_relid::regclass);
    END LOOP;
END
$fn$;
COMMENT ON FUNCTION pgbert._write_truncated(oid) IS
    'Internal (write-back, as the table''s owner): empties a truncated table''s chunk table (a model change''s next one too).';
