-- ---------------------------------------------------------------------------------------------------
-- The embedding queue (strategies 'queue' and 'auto'): a row with text and no vector commits at once and
-- is recorded in pgbert.embedding_queue; workers embed it soon (46_queue_run.sql runs them).
--
--   queue_trigger()   AFTER INSERT / UPDATE / DELETE / TRUNCATE statement triggers of a queued table
--                     (pgbert_queue_*): records new rows that have text and no vector, forgets deleted ones
--   claim_batch()     a worker claims due rows of one table (committed, so others skip them)
--   compute_claimed() reads the claimed rows' texts and embeds them (on the primary, or on a standby)
--   store_claimed()   writes the vectors through the table's store function, as its owner, only where
--                     the row is still the version that was embedded; settles the claims
--
-- The queue is pgbert's alone: these functions are SECURITY DEFINER and take every relation, column and
-- operator from the registry and the catalogs. A queue row names its table by the oid PostgreSQL gave the
-- trigger (TG_RELID), or, on a partition, the registered table it is a partition of (from the catalogs): no
-- caller can make a worker write into another table. Texts never leave the
-- database; a worker role sees queue ids and vectors only. Keys travel as text under pinned settings
-- (extra_float_digits, DateStyle, IntervalStyle), so a key's text is the same wherever it is made.
-- ---------------------------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION pgbert.queue_trigger() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET check_function_bodies = on
SET extra_float_digits = 1 SET IntervalStyle = postgres SET DateStyle = 'ISO, MDY'
AS $fn$
DECLARE
    -- the registered table: TG_RELID, or the one it is a partition of (a statement straight into a partition)
    cfg    pgbert.embedded_tables := (SELECT e FROM pgbert.embedded_tables e
                                       WHERE e.relid = pgbert._registered_ancestor(TG_RELID));
    queued bigint;
    n_next bigint;
BEGIN
    IF cfg.relid IS NULL OR TG_LEVEL <> 'STATEMENT' OR TG_WHEN <> 'AFTER' THEN
        RAISE EXCEPTION 'pgbert: % queues the rows of embedding-enabled tables only', TG_NAME
              USING ERRCODE = 'insufficient_privilege';
    ELSIF TG_OP = 'TRUNCATE' AND TG_RELID = cfg.relid::oid THEN
        DELETE FROM pgbert.embedding_queue q WHERE q.id IN (
            SELECT q2.id FROM pgbert.embedding_queue q2 WHERE q2.relid = TG_RELID FOR UPDATE SKIP LOCKED);
    ELSIF TG_OP = 'TRUNCATE' THEN  -- a partition's: the rows that are gone (key cast to its plain base type)
        EXECUTE format('DELETE FROM pgbert.embedding_queue q WHERE q.id IN (
                            SELECT q2.id FROM pgbert.embedding_queue q2 WHERE q2.relid = $1 AND NOT EXISTS (
                                   SELECT 1 FROM %s t WHERE t.%I %s q2.row_key::%s) FOR UPDATE OF q2 SKIP LOCKED)',
                       cfg.relid, cfg.key_column, pgbert._key_equality(cfg.relid, cfg.key_column),
                       pgbert._key_base_type(cfg.relid, cfg.key_column)::regtype) USING cfg.relid::oid;
    ELSIF TG_OP = 'DELETE' THEN  -- rows a worker holds are dropped by it when it finds them gone
        EXECUTE format('DELETE FROM pgbert.embedding_queue q WHERE q.id IN (
                            SELECT q2.id FROM pgbert.embedding_queue q2 JOIN pgbert_old_rows o
                                   ON q2.relid = $1 AND q2.row_key = o.%I::pg_catalog.text FOR UPDATE OF q2 SKIP LOCKED)',
                       cfg.key_column) USING cfg.relid::oid;
    ELSE  -- INSERT, UPDATE: the rows that have text and no vector (a chunked table's: no chunks) yet
        EXECUTE format('INSERT INTO pgbert.embedding_queue (relid, row_key)
                        SELECT $1, n.%1$I::pg_catalog.text FROM pgbert_new_rows n WHERE n.%2$I IS NOT NULL AND %3$s
                        ON CONFLICT (relid, row_key, next_model) DO NOTHING',
                       cfg.key_column, cfg.source_column,
                       CASE WHEN cfg.chunk_relid IS NULL THEN format('n.%I IS NULL', cfg.vector_column)
                            ELSE format('NOT EXISTS (SELECT 1 FROM %s c WHERE c.row_key %s n.%I)', cfg.chunk_relid::regclass,
                                        pgbert._key_equality(cfg.relid, cfg.key_column), cfg.key_column) END)
            USING cfg.relid::oid;
        GET DIAGNOSTICS queued = ROW_COUNT;
        IF cfg.next_vector_attnum IS NOT NULL AND cfg.chunk_relid IS NULL THEN  -- a model change: its shadow too
            EXECUTE format('INSERT INTO pgbert.embedding_queue (relid, row_key, next_model)
                            SELECT $1, t.%1$I::pg_catalog.text, true FROM pgbert_new_rows n JOIN %2$s t ON t.%1$I %3$s n.%1$I
                             WHERE t.%4$I IS NOT NULL AND t.%5$I IS NULL ON CONFLICT (relid, row_key, next_model) DO NOTHING',
                           cfg.key_column, cfg.relid, pgbert._key_equality(cfg.relid, cfg.key_column), cfg.source_column,
                           pgbert._attname(cfg.relid, cfg.next_vector_attnum)) USING cfg.relid::oid;
            GET DIAGNOSTICS n_next = ROW_COUNT;
            queued := queued + n_next;
        END IF;
        IF queued > 0 THEN
            PERFORM pg_notify('pgbert_queue', cfg.relid::oid::text);  -- delivered at commit: idle workers wake
        END IF;
    END IF;
    RETURN NULL;
END
$fn$;
COMMENT ON FUNCTION pgbert.queue_trigger() IS
    'Trigger (pgbert_queue_* on tables with strategy queue or auto): records rows that have text and no vector in pgbert.embedding_queue (NOTIFY pgbert_queue), forgets deleted ones.';

-- Whether the backend that claimed a queue row still runs (a worker killed mid-batch: its rows are free).
CREATE OR REPLACE FUNCTION pgbert._claim_alive(pid integer, backend_start timestamptz) RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pid IS NOT NULL AND EXISTS (SELECT 1 FROM pg_catalog.pg_stat_activity a
                                        WHERE a.pid = _claim_alive.pid AND a.backend_start = _claim_alive.backend_start)
$$;
COMMENT ON FUNCTION pgbert._claim_alive(integer, timestamptz) IS 'Internal: whether a claiming backend still runs.';

-- Gives back every claim of this backend (a new batch, a stop, an error).
CREATE OR REPLACE FUNCTION pgbert.release_claims() RETURNS bigint
LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET check_function_bodies = on
AS $$
    WITH released AS (
        UPDATE pgbert.embedding_queue q SET claimed_pid = NULL, claimed_backend_start = NULL
         WHERE q.claimed_pid = pg_backend_pid() RETURNING 1)
    SELECT count(*) FROM released
$$;
COMMENT ON FUNCTION pgbert.release_claims() IS 'Worker: gives back every queue row this session claimed; returns how many.';

-- Claims up to batch_rows due rows of the table whose oldest row waits longest; commits nothing itself.
CREATE OR REPLACE FUNCTION pgbert.claim_batch(batch_rows integer) RETURNS TABLE (relid regclass, ids bigint[])
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET check_function_bodies = on
AS $fn$
DECLARE
    me  timestamptz := (SELECT a.backend_start FROM pg_catalog.pg_stat_activity a WHERE a.pid = pg_backend_pid());
    tbl oid;
BEGIN
    IF batch_rows IS NULL OR batch_rows < 1 THEN
        RAISE EXCEPTION 'pgbert: batch_rows must be positive, got %', coalesce(batch_rows::text, 'NULL')
              USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM pgbert.release_claims();  -- one batch at a time per session
    SELECT q.relid INTO tbl FROM pgbert.embedding_queue q
     WHERE q.failed_at IS NULL AND (q.not_before IS NULL OR q.not_before <= now())
       AND (q.claimed_pid IS NULL OR NOT pgbert._claim_alive(q.claimed_pid, q.claimed_backend_start))
     ORDER BY q.queued_at LIMIT 1 FOR UPDATE SKIP LOCKED;
    relid := tbl;
    WITH free AS (
        SELECT q.id FROM pgbert.embedding_queue q
         WHERE q.relid = tbl AND q.failed_at IS NULL AND (q.not_before IS NULL OR q.not_before <= now())
           AND (q.claimed_pid IS NULL OR NOT pgbert._claim_alive(q.claimed_pid, q.claimed_backend_start))
         ORDER BY q.queued_at LIMIT batch_rows FOR UPDATE SKIP LOCKED),
    claimed AS (
        UPDATE pgbert.embedding_queue q SET claimed_pid = pg_backend_pid(), claimed_backend_start = me
          FROM free WHERE q.id = free.id RETURNING q.id)
    SELECT coalesce(array_agg(claimed.id ORDER BY claimed.id), '{}') INTO ids FROM claimed;
    RETURN NEXT;
END
$fn$;
COMMENT ON FUNCTION pgbert.claim_batch(integer) IS
    'Worker: claims up to batch_rows due queue rows of one table for this session (commit to make the claim seen); returns the table and the queue ids.';

-- The texts of claimed queue rows, embedded: one row per id, version NULL when the row needs nothing (gone,
-- no text, a vector already). Read-only: runs on a hot standby too. Keys are cast to the key's base type
-- (no domain CHECK runs) and compared with its default btree equality; no user code runs here. A queue row
-- for the model a table is moving to (next_model) is embedded with that model, for its shadow column.
CREATE OR REPLACE FUNCTION pgbert.compute_claimed(ids bigint[])
RETURNS TABLE (id bigint, version xid, embedding @vector_schema@.vector, chunks jsonb)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET check_function_bodies = on
SET extra_float_digits = 1 SET IntervalStyle = postgres SET DateStyle = 'ISO, MDY'
AS $fn$
DECLARE
    job record;
BEGIN
    FOR job IN SELECT e AS cfg, n.next_model FROM pgbert.embedded_tables e
                 JOIN (SELECT DISTINCT q.relid, q.next_model FROM pgbert.embedding_queue q WHERE q.id = ANY (ids)) n
                   ON n.relid = e.relid::oid
    LOOP
        RETURN QUERY EXECUTE pgbert._compute_query(job.cfg, job.next_model)
            USING ids, (job.cfg).relid::oid, CASE WHEN job.next_model THEN (job.cfg).next_model_name ELSE (job.cfg).model_name END,
                  job.next_model;
    END LOOP;
END
$fn$;
COMMENT ON FUNCTION pgbert.compute_claimed(bigint[]) IS
    'Worker: embeds the texts of claimed queue rows (on the primary or a hot standby): per id the row version embedded (NULL: nothing to do), its vector or its chunks.';

-- compute_claimed's query for one table's queue rows of one model ($4 next_model: the model the table is
-- moving to, whose column is the shadow; once the change has ended, those rows need nothing).
CREATE OR REPLACE FUNCTION pgbert._compute_query(cfg pgbert.embedded_tables, next_model boolean) RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT format($q$
            WITH todo AS (
                SELECT q.id, t.xmin AS version, t.%1$I::pg_catalog.text AS s
                  FROM pgbert.embedding_queue q JOIN %2$s t ON t.%3$I %4$s q.row_key::%5$s
                 WHERE q.id = ANY ($1) AND q.relid = $2 AND q.next_model = $4 AND q.claimed_pid IS NOT NULL
                   AND t.%1$I IS NOT NULL AND %6$s),
            parts AS (SELECT array_agg(p.id) AS ids, array_agg(p.version) AS versions, array_agg(p.s) AS ts
                        FROM (SELECT todo.*, sum(octet_length(todo.s)) OVER (ORDER BY todo.id) / 8388608 AS part
                                FROM todo) p GROUP BY p.part),
            done AS (%7$s)
            SELECT * FROM done
            UNION ALL
            SELECT i.id, NULL::xid, NULL::@vector_schema@.vector, NULL::jsonb FROM unnest($1) i(id)
             WHERE i.id IN (SELECT q.id FROM pgbert.embedding_queue q WHERE q.relid = $2 AND q.next_model = $4)
               AND i.id NOT IN (SELECT todo.id FROM todo)$q$,
        cfg.source_column, cfg.relid, cfg.key_column, pgbert._key_equality(cfg.relid, cfg.key_column),
        pgbert._key_base_type(cfg.relid, cfg.key_column)::regtype,
        CASE WHEN next_model AND (cfg.next_vector_attnum IS NULL OR cfg.chunk_relid IS NOT NULL) THEN 'false'
             WHEN next_model THEN format('t.%I IS NULL', pgbert._attname(cfg.relid, cfg.next_vector_attnum))
             WHEN cfg.chunk_relid IS NULL THEN format('t.%I IS NULL', cfg.vector_column)
             ELSE format('NOT EXISTS (SELECT 1 FROM %s c WHERE c.row_key %s t.%I)', cfg.chunk_relid::regclass,
                         pgbert._key_equality(cfg.relid, cfg.key_column), cfg.key_column) END,
        CASE WHEN cfg.chunk_relid IS NULL OR next_model THEN
            'SELECT u.id, u.version, u.v, NULL::jsonb FROM parts, unnest(parts.ids, parts.versions, pgbert.embed_batch(parts.ts, ''document'', $3)) u(id, version, v)'
        ELSE format('SELECT todo.id, todo.version, NULL::@vector_schema@.vector, coalesce(ch.chunks, ''[]'')
                       FROM todo LEFT JOIN (
                            SELECT parts.ids[c.ord] AS id, jsonb_agg(jsonb_build_object(''chunk'', c.chunk,
                                   ''start_char'', c.start_char, ''end_char'', c.end_char, ''embedding'', c.embedding::text,
                                   ''lexemes'', %s) ORDER BY c.chunk) AS chunks
                              FROM parts, pgbert.embed_chunks(parts.ts, %s, %s, $3) c GROUP BY 1) ch ON ch.id = todo.id',
                    CASE WHEN cfg.lexical_config IS NULL THEN 'NULL'
                         ELSE format('pgbert.lexemes(c.passage, %L)::text', cfg.lexical_config) END,
                    cfg.chunk_tokens, cfg.overlap_tokens) END)
$fn$;
COMMENT ON FUNCTION pgbert._compute_query(pgbert.embedded_tables, boolean) IS
    'Internal (compute_claimed): the query that embeds one table''s claimed queue rows of one model.';

-- The statement triggers of a queued table (one per event: transition tables allow no other), and its
-- store function. They run after the table's other statement triggers of the same event (names sort so):
-- a chunked table's UPDATE has dropped the chunks of changed texts when pgbert_queue_update looks.
CREATE OR REPLACE FUNCTION pgbert._install_queue_triggers(tbl regclass) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    PERFORM pgbert._install_store(tbl);
    EXECUTE format('CREATE TRIGGER pgbert_queue_insert AFTER INSERT ON %s REFERENCING NEW TABLE AS pgbert_new_rows '
                   'FOR EACH STATEMENT EXECUTE FUNCTION pgbert.queue_trigger()', tbl);
    EXECUTE format('CREATE TRIGGER pgbert_queue_update AFTER UPDATE ON %s REFERENCING NEW TABLE AS pgbert_new_rows '
                   'FOR EACH STATEMENT EXECUTE FUNCTION pgbert.queue_trigger()', tbl);
    EXECUTE format('CREATE TRIGGER pgbert_queue_delete AFTER DELETE ON %s REFERENCING OLD TABLE AS pgbert_old_rows '
                   'FOR EACH STATEMENT EXECUTE FUNCTION pgbert.queue_trigger()', tbl);
    EXECUTE format('CREATE TRIGGER pgbert_queue_truncate AFTER TRUNCATE ON %s FOR EACH STATEMENT '
                   'EXECUTE FUNCTION pgbert.queue_trigger()', tbl);
END
$fn$;
COMMENT ON FUNCTION pgbert._install_queue_triggers(regclass) IS
    'Internal: creates the queue''s statement triggers of a table (strategy queue or auto) and its store function.';

COMMENT ON TABLE pgbert.embedding_queue IS
    'Rows waiting for their vector (strategies queue and auto), by table oid and key; claimed by a worker backend while it embeds them; failed_at set after queue_max_attempts failures. pgbert''s alone: read pgbert.queue_status and pgbert.embedding_errors.';
COMMENT ON TABLE pgbert.queue_batches IS
    'One row per stored queue batch (table, when, rows) of the last hour: queue_status''s last success and rate.';
