-- ---------------------------------------------------------------------------------------------------
-- Running and watching the queue: process_queue (what `pgbert worker` and pg_cron call), queue_status,
-- embedding_errors, retry_failed, and set_strategy (a table moves between batch, row, queue and auto).
-- ---------------------------------------------------------------------------------------------------

-- This session's claims, computed and stored here. A batch that fails is computed again row by row, so a
-- row the model cannot embed fails alone (fail_claimed) and the rows beside it are stored.
CREATE OR REPLACE FUNCTION pgbert._work_claimed(OUT embedded bigint, OUT settled bigint)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET check_function_bodies = on
AS $fn$
DECLARE
    ids        bigint[] := ARRAY(SELECT q.id FROM pgbert.embedding_queue q WHERE q.claimed_pid = pg_backend_pid() ORDER BY q.id);
    id         bigint;
    done       bigint[];
    versions   xid[];
    embeddings @vector_schema@.vector[];
    chunks     jsonb[];
    one        record;
BEGIN
    settled := 0;
    BEGIN
        SELECT array_agg(c.id), array_agg(c.version), array_agg(c.embedding), array_agg(c.chunks)
          INTO done, versions, embeddings, chunks FROM pgbert.compute_claimed(ids) c;
    EXCEPTION WHEN OTHERS THEN  -- one by one: the failing rows fail alone
        done := '{}';
        FOREACH id IN ARRAY ids LOOP
            BEGIN
                FOR one IN SELECT * FROM pgbert.compute_claimed(ARRAY[id]) LOOP
                    done := done || one.id;
                    versions := versions || one.version;
                    embeddings := embeddings || one.embedding;
                    chunks := chunks || one.chunks;
                END LOOP;
            EXCEPTION WHEN OTHERS THEN
                settled := settled + pgbert.fail_claimed(ARRAY[id], SQLERRM);
            END;
        END LOOP;
    END;
    embedded := CASE WHEN cardinality(done) > 0 THEN pgbert.store_claimed(done, versions, embeddings, chunks) ELSE 0 END;
    -- progress: failures counted, and the rows that left the queue (rows a writer holds stay, released)
    settled := settled + cardinality(ids) - (SELECT count(*) FROM pgbert.embedding_queue q WHERE q.id = ANY (ids));
END
$fn$;
COMMENT ON FUNCTION pgbert._work_claimed() IS
    'Internal (process_queue): computes and stores this session''s claims; a failing row fails alone.';

-- Seconds until the next queued row is due (0: now), NULL when nothing waits: how long an idle worker sleeps.
CREATE OR REPLACE FUNCTION pgbert.queue_wait_seconds() RETURNS double precision
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET check_function_bodies = on
AS $$
    SELECT CASE WHEN count(*) > 0 THEN greatest(0, extract(epoch FROM min(coalesce(q.not_before, now())) - now()))::float8 END
      FROM pgbert.embedding_queue q
     WHERE q.failed_at IS NULL AND (q.claimed_pid IS NULL OR NOT pgbert._claim_alive(q.claimed_pid, q.claimed_backend_start))
$$;
COMMENT ON FUNCTION pgbert.queue_wait_seconds() IS
    'Worker: seconds until the next queued row is due (0: now; NULL: nothing queued).';

-- Commits after every claim and every batch when CALLed on its own (inside a transaction block it runs as
-- one). A procedure without a SET clause (only those may commit): it pins search_path itself.
CREATE OR REPLACE PROCEDURE pgbert.process_queue(max_rows integer DEFAULT NULL,
                                                 max_seconds double precision DEFAULT NULL,
                                                 batch_rows integer DEFAULT 256, INOUT embedded bigint DEFAULT NULL)
LANGUAGE plpgsql
AS $proc$
DECLARE
    caller_path text := pg_catalog.current_setting('search_path');
    may_commit  boolean := pg_catalog.transaction_timestamp() OPERATOR(pg_catalog.=) pg_catalog.statement_timestamp();
    started     timestamptz := pg_catalog.clock_timestamp();
    batch       record;
    work        record;
BEGIN
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    IF batch_rows IS NULL OR batch_rows < 1 OR max_rows < 1 OR max_seconds <= 0 THEN
        RAISE EXCEPTION 'pgbert: batch_rows and max_rows must be positive and max_seconds above 0'
              USING ERRCODE = 'invalid_parameter_value';
    END IF;
    embedded := 0;
    LOOP
        EXIT WHEN embedded >= max_rows OR extract(epoch FROM clock_timestamp() - started) >= max_seconds;
        SELECT * INTO batch FROM pgbert.claim_batch(least(batch_rows, max_rows - embedded)::integer);
        EXIT WHEN cardinality(batch.ids) = 0;
        IF may_commit THEN
            COMMIT;  -- the claim is seen: other workers take other rows
            PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
        END IF;
        SELECT * INTO work FROM pgbert._work_claimed();
        embedded := embedded + work.embedded;
        RAISE NOTICE 'pgbert: %: % rows embedded (% in this call, % rows/s); % rows queued', batch.relid,
              work.embedded, embedded, round(embedded / greatest(extract(epoch FROM clock_timestamp() - started), 0.001)),
              (SELECT coalesce(sum(s.pending), 0) FROM pgbert._queue_counts() s);
        IF may_commit THEN
            COMMIT;
            PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
        END IF;
        EXIT WHEN work.settled = 0;
    END LOOP;
    PERFORM pg_catalog.set_config('search_path', caller_path, true);
END
$proc$;
COMMENT ON PROCEDURE pgbert.process_queue(integer, double precision, integer, bigint) IS
    'Worker (pgbert_worker): embeds queued rows in batches of batch_rows (claim, embed, write as the table''s owner, commit), until the queue has no due row, max_rows are embedded or max_seconds have passed; embedded returns how many.';

-- Per table: rows waiting (in progress included), the oldest one's wait, rows being embedded now, failed rows;
-- for the tables the session's role owns or may read (a worker: all). SECURITY DEFINER to see which
-- backends still hold claims (pg_stat_activity hides other roles' backend_start).
CREATE OR REPLACE FUNCTION pgbert._queue_counts()
RETURNS TABLE (relid oid, pending bigint, oldest_pending interval, in_progress bigint, failed bigint)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET check_function_bodies = on
AS $$
    SELECT q.relid, count(*) FILTER (WHERE q.failed_at IS NULL), now() - min(q.queued_at) FILTER (WHERE q.failed_at IS NULL),
           count(*) FILTER (WHERE q.failed_at IS NULL AND q.claimed_pid IS NOT NULL
                                  AND pgbert._claim_alive(q.claimed_pid, q.claimed_backend_start)),
           count(*) FILTER (WHERE q.failed_at IS NOT NULL)
      FROM pgbert.embedding_queue q JOIN pg_catalog.pg_class c ON c.oid = q.relid
     WHERE pg_catalog.pg_has_role(pgbert._caller(), c.relowner, 'USAGE')
        OR pg_catalog.has_any_column_privilege(pgbert._caller(), c.oid, 'SELECT')
        OR pg_catalog.pg_has_role(pgbert._caller(), 'pgbert_worker', 'USAGE')
     GROUP BY q.relid
$$;
COMMENT ON FUNCTION pgbert._queue_counts() IS 'Internal: the queue''s counts per table (queue_status filters them).';

CREATE OR REPLACE VIEW pgbert.queue_status WITH (security_barrier) AS
    SELECT e.relid, coalesce(c.pending, 0) AS pending, c.oldest_pending, coalesce(c.in_progress, 0) AS in_progress,
           coalesce(c.failed, 0) AS failed, b.last_success, coalesce(b.recent_rows, 0) / 60.0 AS rows_per_second
      FROM pgbert.enabled_tables e
      LEFT JOIN pgbert._queue_counts() c ON c.relid = e.relid::oid
      LEFT JOIN LATERAL (SELECT max(qb.finished_at) AS last_success,
                                sum(qb.rows) FILTER (WHERE qb.finished_at > now() - interval '1 minute') AS recent_rows
                           FROM pgbert.queue_batches qb WHERE qb.relid = e.relid::oid) b ON true
     WHERE e.strategy IN ('queue', 'auto') OR c.relid IS NOT NULL;
COMMENT ON VIEW pgbert.queue_status IS
    'The embedding queue per table you own or may read: rows pending (with those in progress), the oldest one''s wait, in progress, failed (pgbert.embedding_errors), last batch stored, rows/s over the last minute.';

-- Failed rows of the tables the viewer may read; a table with row-level security shows its owners only.
CREATE OR REPLACE VIEW pgbert.embedding_errors WITH (security_barrier) AS
    SELECT q.relid::regclass AS relid, q.row_key, q.attempts, q.last_error AS error, q.failed_at, q.queued_at
      FROM pgbert.embedding_queue q JOIN pgbert.enabled_tables e ON e.relid::oid = q.relid
      JOIN pg_catalog.pg_class c ON c.oid = q.relid
     WHERE q.failed_at IS NOT NULL
       AND (pg_catalog.pg_has_role(c.relowner, 'USAGE')
            OR (NOT c.relrowsecurity AND pg_catalog.has_column_privilege(c.oid, e.key_attnum, 'SELECT')
                AND pg_catalog.has_column_privilege(c.oid, e.source_attnum, 'SELECT')));
COMMENT ON VIEW pgbert.embedding_errors IS
    'Queued rows whose embedding failed queue_max_attempts times: key, attempts, the last error and when. CALL pgbert.retry_failed(table) puts them back.';
