-- ---------------------------------------------------------------------------------------------------
-- Moving a table to another model without downtime (CALL pgbert.change_model(table, model)):
--
--   1. begin   a shadow column <vector>_<model> (the new model's dimension) is added; new and updated rows get
--              both vectors (statement triggers pgbert_next_insert / pgbert_next_update, through the table's
--              write-back function); search() keeps answering from the current column.  Lock: ACCESS
--              EXCLUSIVE for the ALTER TABLE ... ADD COLUMN (no rewrite: milliseconds).
--   2. backfill the rows without a new vector, in committed batches with progress.  Row locks only.
--   3. index   the shadow column's HNSW index.  SHARE lock: writes wait while it builds, reads go on.
--   4. switch  one short transaction: the registry, the triggers and search() move to the new model and its
--              column together (no column is renamed: a search that began before ends on the old column).
--              ACCESS EXCLUSIVE while the triggers are swapped (DROP TRIGGER): milliseconds, after the
--              statements running on the table; searches and writes wait that long, none fails.
-- CALL pgbert.abort_model_change(table) before the switch drops the shadow; the old column stays after it
-- until CALL pgbert.drop_old_vectors(table). The definer step (model_change_step) acts only for the owner
-- that the procedures prove called them (_prove_caller), like enable_embedding. A chunked table moves into a
-- new chunk table instead (56_model_change_chunks.sql).
-- ---------------------------------------------------------------------------------------------------

-- The new model's vectors of new rows, and of rows whose text changed, in the shadow column (as the table's
-- owner, from its write-back function). Rows whose shadow a nested write already filled are skipped.
CREATE OR REPLACE FUNCTION pgbert._write_next(tbl oid, new_rows jsonb, old_rows jsonb) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    cfg    pgbert.embedded_tables := pgbert._writer_config(tbl);
    shadow name := pgbert._attname(tbl::regclass, cfg.next_vector_attnum);
    eq     text := pgbert._key_equality(tbl::regclass, cfg.key_column);
BEGIN
    IF shadow IS NULL OR new_rows IS NULL THEN  -- no rows: this statement's own UPDATE of the shadow, say
        RETURN;
    ELSIF cfg.strategy IN ('queue', 'auto') THEN  -- queued: a changed text's new vector is stale; the queue
        EXECUTE format($q$                       -- trigger (it runs next) queues the row for the new model
            UPDATE %1$s AS t SET %2$I = NULL FROM jsonb_populate_recordset(NULL::%1$s, $1) n
             WHERE t.%3$I %5$s n.%3$I AND t.%2$I IS NOT NULL AND NOT EXISTS (
                   SELECT 1 FROM jsonb_populate_recordset(NULL::%1$s, coalesce($2, '[]')) o
                    WHERE o.%3$I %5$s n.%3$I AND o.%4$I IS NOT DISTINCT FROM n.%4$I)$q$,
            tbl::regclass, shadow, cfg.key_column, cfg.source_column, eq) USING new_rows, old_rows;
        RETURN;
    END IF;
    EXECUTE format($q$
        UPDATE %1$s AS t SET %2$I = e.v
          FROM (SELECT u.k, u.v
                  FROM (SELECT array_agg(r.k) AS ks, array_agg(r.s) AS ts
                          FROM (SELECT n.%3$I AS k, n.%4$I::pg_catalog.text AS s, (row_number() OVER w - 1) / 1024 AS chunk,
                                       sum(octet_length(n.%4$I)) OVER w / 8388608 AS part
                                  FROM jsonb_populate_recordset(NULL::%1$s, $1) n JOIN %1$s l ON l.%3$I %5$s n.%3$I
                                 WHERE n.%4$I IS NOT NULL AND l.%4$I IS NOT DISTINCT FROM n.%4$I
                                   AND (l.%2$I IS NULL OR NOT EXISTS (
                                        SELECT 1 FROM jsonb_populate_recordset(NULL::%1$s, coalesce($2, '[]')) o
                                         WHERE o.%3$I %5$s n.%3$I AND o.%4$I IS NOT DISTINCT FROM n.%4$I))
                                WINDOW w AS (ROWS UNBOUNDED PRECEDING)) r
                         GROUP BY r.chunk, r.part) a,
                       unnest(a.ks, pgbert.embed_batch(a.ts, 'document', $3)) AS u(k, v)) e
         WHERE t.%3$I %5$s e.k$q$,
        tbl::regclass, shadow, cfg.key_column, cfg.source_column, eq)
        USING new_rows, old_rows, cfg.next_model_name;
END
$fn$;
COMMENT ON FUNCTION pgbert._write_next(oid, jsonb, jsonb) IS
    'Internal (write-back, during a model change): the new model''s vectors of new rows and changed texts, in the shadow column.';

-- The statement triggers of a model change: new and updated rows get the new model's vector too.
CREATE OR REPLACE FUNCTION pgbert._install_next_triggers(tbl regclass) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    fn name := pgbert._install_writer(tbl);
BEGIN
    IF (SELECT e.strategy NOT IN ('queue', 'auto') FROM pgbert.embedded_tables e WHERE e.relid = tbl) THEN
        -- (a queued table's new rows are queued for both models by its queue trigger)
        EXECUTE format('CREATE TRIGGER pgbert_next_insert AFTER INSERT ON %s REFERENCING NEW TABLE AS pgbert_new_rows '
                       'FOR EACH STATEMENT EXECUTE FUNCTION pgbert.%I()', tbl, fn);
    END IF;
    EXECUTE format('CREATE TRIGGER pgbert_next_update AFTER UPDATE ON %s REFERENCING OLD TABLE AS pgbert_old_rows '
                   'NEW TABLE AS pgbert_new_rows FOR EACH STATEMENT EXECUTE FUNCTION pgbert.%I()', tbl, fn);
END
$fn$;
COMMENT ON FUNCTION pgbert._install_next_triggers(regclass) IS
    'Internal: the statement triggers through which new and updated rows get the new model''s vector during a model change.';

DROP FUNCTION IF EXISTS pgbert._backfill_next_batch(regclass, integer);  -- (now pgbert._fill_vectors)

-- The definer step of change_model, abort_model_change and drop_old_vectors, for the proven owner only:
-- 'begin' (shadow column, registry, triggers), 'switch', 'abort', 'drop_old'.
CREATE OR REPLACE FUNCTION pgbert.model_change_step(tbl regclass, step text, model_name text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET check_function_bodies = on
AS $fn$
DECLARE
    cfg    pgbert.embedded_tables := (SELECT e FROM pgbert.embedded_tables e WHERE e.relid = tbl);
    model  pgbert.models := (SELECT m FROM pgbert.models m WHERE m.name = model_name);
    shadow name := pgbert._attname(tbl, cfg.next_vector_attnum);
BEGIN
    PERFORM pgbert._require_owner(tbl, 'change');
    IF cfg.relid IS NULL THEN
        RAISE EXCEPTION 'pgbert: embedding is not enabled on %', tbl USING ERRCODE = 'object_not_in_prerequisite_state';
    ELSIF cfg.chunk_relid IS NOT NULL THEN  -- a chunked table: a new chunk table, no trigger changes (56_model_change_chunks.sql)
        PERFORM pgbert._chunk_change_step(cfg, step, model);
        RETURN;
    ELSIF step = 'begin' THEN
        PERFORM pgbert._check_model_change(cfg, model);
        -- named after the model: after the switch it is the table's vector column (search() never renames
        -- a column under a running query)
        shadow := pgbert._suffixed(cfg.vector_column, '_' || regexp_replace(lower(model.name), '[^a-z0-9]+', '_', 'g'));
        EXECUTE format('ALTER TABLE %s ADD COLUMN %I @vector_schema@.vector(%s)', tbl, shadow, model.dimension);
        UPDATE pgbert.embedded_tables e SET next_model_name = model.name, next_vector_attnum = pgbert._attnum(tbl, shadow),
               change_started_at = now() WHERE e.relid = tbl;
    ELSIF step = 'abort' AND shadow IS NOT NULL THEN
        UPDATE pgbert.embedded_tables e SET next_model_name = NULL, next_vector_attnum = NULL, change_started_at = NULL
         WHERE e.relid = tbl;
        EXECUTE format('ALTER TABLE %s DROP COLUMN %I', tbl, shadow);
    ELSIF step = 'switch' AND shadow IS NOT NULL THEN  -- a search that began before goes on with the old column
        UPDATE pgbert.embedded_tables e
           SET model_name = e.next_model_name, dimension = (SELECT m.dimension FROM pgbert.models m WHERE m.name = e.next_model_name),
               vector_column = shadow, vector_attnum = e.next_vector_attnum, old_vector_attnum = e.vector_attnum,
               next_model_name = NULL, next_vector_attnum = NULL, change_started_at = NULL
         WHERE e.relid = tbl;
    ELSIF step = 'drop_old' AND cfg.old_vector_attnum IS NOT NULL THEN
        UPDATE pgbert.embedded_tables e SET old_vector_attnum = NULL WHERE e.relid = tbl;
        EXECUTE format('ALTER TABLE %s DROP COLUMN %I', tbl, pgbert._attname(tbl, cfg.old_vector_attnum));
    ELSE
        RAISE EXCEPTION 'pgbert: nothing to %: %', step,
              CASE WHEN step = 'drop_old' THEN 'no old vectors are kept' ELSE 'no model change is in progress' END
              USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    PERFORM pgbert._reinstall(tbl);
    IF cfg.strategy IN ('queue', 'auto') AND cfg.chunk_relid IS NULL THEN  -- the queue's workers backfill it
        IF step = 'begin' THEN
            PERFORM pgbert._enqueue_existing(tbl);
        ELSIF step IN ('switch', 'abort') THEN
            PERFORM pgbert._queue_change_ended(tbl, step = 'switch');
        END IF;
    END IF;
END
$fn$;
COMMENT ON FUNCTION pgbert.model_change_step(regclass, text, text) IS
    'Table owner (through change_model, abort_model_change, drop_old_vectors): begins, switches or aborts a model change, or drops the old vectors.';

CREATE OR REPLACE FUNCTION pgbert._check_model_change(cfg pgbert.embedded_tables, model pgbert.models) RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF model.name IS NULL THEN
        RAISE EXCEPTION 'pgbert: no such model' USING ERRCODE = 'undefined_object',
              HINT = 'SELECT name FROM pgbert.models; lists them; an administrator adds one with pgbert.add_model(name, path).';
    ELSIF cfg.next_model_name IS NOT NULL THEN
        RAISE EXCEPTION 'pgbert: % is already moving to model %', cfg.relid, cfg.next_model_name
              USING ERRCODE = 'object_in_use', HINT = 'CALL pgbert.change_model(table, that model) resumes it; '
                                                     'CALL pgbert.abort_model_change(table) drops it.';
    ELSIF cfg.old_vector_attnum IS NOT NULL OR cfg.old_chunk_relid IS NOT NULL THEN  -- (old_chunk_relid: chunks, 56)
        RAISE EXCEPTION 'pgbert: % still keeps the vectors of its previous model', cfg.relid
              USING ERRCODE = 'object_in_use', HINT = 'CALL pgbert.drop_old_vectors(table); first.';
    ELSIF cfg.key_column IS NULL THEN
        RAISE EXCEPTION 'pgbert: changing the model of % needs a table with a single-column key', cfg.relid
              USING ERRCODE = 'feature_not_supported',
                    HINT = 'disable_embedding, then enable_embedding(..., model => ...) re-embeds it (search stops meanwhile).';
    END IF;
END
$fn$;
COMMENT ON FUNCTION pgbert._check_model_change(pgbert.embedded_tables, pgbert.models) IS
    'Internal: raises unless a model change may begin on this table with this model.';

-- Commits between its steps and batches (a procedure without a SET clause: it pins search_path itself).
CREATE OR REPLACE PROCEDURE pgbert.change_model(tbl regclass, model text, batch_size integer DEFAULT 500)
LANGUAGE plpgsql
AS $proc$
DECLARE
    caller_path text := pg_catalog.current_setting('search_path');
    shadow      pgbert.embedded_tables;
    done        bigint := 0;
    n           bigint;
    total       bigint;
BEGIN
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    IF (SELECT e.next_model_name FROM pgbert.enabled_tables e WHERE e.relid = tbl) IS DISTINCT FROM model THEN
        PERFORM pgbert._prove_caller(tbl, true);
        PERFORM pgbert.model_change_step(tbl, 'begin', model);
        PERFORM pgbert._prove_caller(tbl, false);
        RAISE NOTICE 'pgbert: % is moving to model %: new and updated rows get both vectors; search() answers from the current one', tbl, model;
    END IF;
    COMMIT;  -- always: a step's locks must not outlive it (CALL it on its own, never inside BEGIN)
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    IF (SELECT e.next_chunk_relid FROM pgbert.enabled_tables e WHERE e.relid = tbl) IS NOT NULL THEN
        CALL pgbert._change_chunks(tbl, model, batch_size);  -- a chunked table: 56_model_change_chunks.sql
        PERFORM pg_catalog.set_config('search_path', caller_path, true);
        RETURN;
    END IF;
    total := pgbert._count_next_pending(tbl);
    IF (SELECT e.strategy IN ('queue', 'auto') AND e.chunk_relid IS NULL FROM pgbert.enabled_tables e WHERE e.relid = tbl) THEN
        CALL pgbert._await_next_backlog(tbl, model);  -- the queue's workers embed (48_queue_admin.sql)
    END IF;
    LOOP  -- what the queue's workers left (none when they ran), and the rows of any other table
        SELECT pgbert._fill_vectors(tbl, e.source_column, pgbert._attname(tbl, e.next_vector_attnum), e.next_model_name,
                                    batch_size) INTO n FROM pgbert.enabled_tables e WHERE e.relid = tbl;
        EXIT WHEN n = 0;
        done := done + n;
        RAISE NOTICE 'pgbert: %: % / % rows embedded with %', tbl, done, total, model;
        COMMIT;
        PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    END LOOP;
    COMMIT;  -- nothing of the backfill held while the index waits for writers (a writer waiting on it: deadlock)
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    shadow := pgbert._embedding_config(tbl);  -- the table as it will be: its vectors in the shadow column
    shadow.vector_column := pgbert._attname(tbl, shadow.next_vector_attnum);
    PERFORM pgbert._index_vectors(shadow);  -- 40_enable.sql (kept when a resumed change built it already)
    COMMIT;  -- the index, then the switch alone
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    PERFORM pgbert._prove_caller(tbl, true);
    PERFORM pgbert.model_change_step(tbl, 'switch', model);
    PERFORM pgbert._prove_caller(tbl, false);
    RAISE NOTICE 'pgbert: % now uses model %; its previous vectors stay until CALL pgbert.drop_old_vectors(%)', tbl, model, quote_literal(tbl::text);
    PERFORM pg_catalog.set_config('search_path', caller_path, true);
END
$proc$;
COMMENT ON PROCEDURE pgbert.change_model(regclass, text, integer) IS
    'Table owner: moves the table to another registered model without stopping search(): a shadow column is backfilled in committed batches (new and updated rows get both vectors), indexed, then switched in one short transaction. The old column stays until pgbert.drop_old_vectors(table).';

CREATE OR REPLACE PROCEDURE pgbert.abort_model_change(tbl regclass)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $proc$
BEGIN
    PERFORM pgbert._prove_caller(tbl, true);
    PERFORM pgbert.model_change_step(tbl, 'abort', NULL);
    PERFORM pgbert._prove_caller(tbl, false);
END
$proc$;
COMMENT ON PROCEDURE pgbert.abort_model_change(regclass) IS
    'Table owner: before the switch, drops the shadow column of a model change; the table stays as it was.';

CREATE OR REPLACE PROCEDURE pgbert.drop_old_vectors(tbl regclass)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $proc$
BEGIN
    PERFORM pgbert._prove_caller(tbl, true);
    PERFORM pgbert.model_change_step(tbl, 'drop_old', NULL);
    PERFORM pgbert._prove_caller(tbl, false);
END
$proc$;
COMMENT ON PROCEDURE pgbert.drop_old_vectors(regclass) IS
    'Table owner: after a model change, drops the previous model''s vector column (and its index).';
