-- ---------------------------------------------------------------------------------------------------
-- Storing queued vectors (45_queue.sql computes them). A table's store function pgbert.store_queued_<oid>
-- is like its write-back function (30_triggers.sql): fixed body and the table's oid, SECURITY DEFINER,
-- owned by the table's owner, so vectors are written (and the table's own triggers fire) as that owner,
-- never as pgbert's. Nobody but pgbert's owner may execute it.
--
-- A vector is written only where the row is still the version that was embedded (its xmin) and still
-- needs one: a text updated while its batch was being embedded keeps its place in the queue. Rows a
-- writer holds are skipped (retried soon): a worker never waits on an application's locks.
-- ---------------------------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION pgbert._store_name(tbl oid) RETURNS name
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT ('store_queued_' || tbl)::name $$;
COMMENT ON FUNCTION pgbert._store_name(oid) IS 'Internal: the name (in schema pgbert) of a table''s store function.';

CREATE OR REPLACE FUNCTION pgbert._store_body(tbl oid) RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $fn$ SELECT format('SELECT s.settled, s.stored FROM pgbert._store_queued(%s, keys, versions, embeddings, chunks, '
                      'next_model) s', tbl::bigint) $fn$;
COMMENT ON FUNCTION pgbert._store_body(oid) IS 'Internal: the body of a table''s store function: fixed text and the oid.';

-- Creates (or keeps) a registered table's store function, owned by the table's owner (and drops the
-- store function of pgbert before 0013, which had no next_model argument).
CREATE OR REPLACE FUNCTION pgbert._install_store(tbl regclass) RETURNS name
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET check_function_bodies = on
AS $fn$
DECLARE
    fn       name := pgbert._store_name(tbl);
    args     text := '(text[], xid[], @vector_schema@.vector[], jsonb[], boolean)';
    existing pg_catalog.pg_proc := (SELECT p FROM pg_catalog.pg_proc p WHERE p.oid = to_regprocedure(format('pgbert.%I', fn) || args));
BEGIN
    IF to_regprocedure(format('pgbert.%I(text[], xid[], @vector_schema@.vector[], jsonb[])', fn)) IS NOT NULL THEN
        EXECUTE format('DROP FUNCTION pgbert.%I(text[], xid[], @vector_schema@.vector[], jsonb[])', fn);
    END IF;
    IF existing.oid IS NULL OR existing.prosrc IS DISTINCT FROM pgbert._store_body(tbl) THEN
        EXECUTE format('CREATE OR REPLACE FUNCTION pgbert.%I(keys text[], versions xid[], embeddings @vector_schema@.vector[], '
                       'chunks jsonb[], next_model boolean, OUT settled text[], OUT stored integer) LANGUAGE sql '
                       'SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET extra_float_digits = 1 '
                       'SET IntervalStyle = postgres SET DateStyle = ''ISO, MDY'' AS %L', fn, pgbert._store_body(tbl));
        EXECUTE format('REVOKE ALL ON FUNCTION pgbert.%I%s FROM PUBLIC', fn, args);
        EXECUTE format('COMMENT ON FUNCTION pgbert.%I%s IS %L', fn, args,
                       format('Queue (pgbert.store_claimed): writes computed vectors into %s, as its owner.', tbl));
    END IF;
    EXECUTE format('ALTER FUNCTION pgbert.%I%s OWNER TO %I', fn, args,
                   (SELECT pg_get_userbyid(c.relowner) FROM pg_catalog.pg_class c WHERE c.oid = tbl));
    RETURN fn;
END
$fn$;
COMMENT ON FUNCTION pgbert._install_store(regclass) IS
    'Internal: creates a queued table''s store function (fixed body, the table''s oid) owned by the table''s owner.';

-- The store itself, as the table's owner: keys (text form), the row versions that were embedded, and their
-- vectors (or chunks); next_model: vectors of the model the table is moving to, for its shadow column
-- (55_model_change.sql). settled: the keys whose queue rows are done (written, or needing nothing any
-- more); stored: how many rows got their vector or chunks.
DROP FUNCTION IF EXISTS pgbert._store_queued(oid, text[], xid[], @vector_schema@.vector[], jsonb[]);  -- before 0013
CREATE OR REPLACE FUNCTION pgbert._store_queued(tbl oid, keys text[], versions xid[],
                                                embeddings @vector_schema@.vector[], chunks jsonb[],
                                                next_model boolean, OUT settled text[], OUT stored integer)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    cfg      pgbert.embedded_tables := pgbert._writer_config(tbl);
    eq       text := pgbert._key_equality(tbl, cfg.key_column);
    key_type regtype := pgbert._key_base_type(tbl, cfg.key_column);
    target   name := CASE WHEN next_model THEN pgbert._attname(tbl, cfg.next_vector_attnum) ELSE cfg.vector_column END;
    needs    text := CASE WHEN cfg.chunk_relid IS NULL THEN format('t.%I IS NULL', target)
                          ELSE format('NOT EXISTS (SELECT 1 FROM %s c WHERE c.row_key %s t.%I)',
                                      cfg.chunk_relid::regclass, eq, cfg.key_column) END;
    present  text[];
    ready    text[];  -- locked by this statement, with text and no vector, and the version embedded
    done     text[];  -- locked, needing nothing any more
BEGIN
    PERFORM pgbert._check_partition_owners(tbl, tbl);  -- a partition whose owner cannot act as tbl's: refused
    IF next_model AND (target IS NULL OR cfg.chunk_relid IS NOT NULL) THEN  -- the change ended (switch, abort)
        settled := keys;
        stored := 0;
        RETURN;
    END IF;
    EXECUTE format('SELECT coalesce(array_agg(t.%1$I::pg_catalog.text), ''{}'') FROM %2$s t WHERE t.%1$I %3$s ANY ($1::%4$s[])',
                   cfg.key_column, tbl::regclass, eq, key_type) INTO present USING keys;
    EXECUTE format($q$
        SELECT coalesce(array_agg(l.k) FILTER (WHERE l.needs AND l.version = u.version), '{}'),
               coalesce(array_agg(l.k) FILTER (WHERE NOT l.needs), '{}')
          FROM (SELECT t.%1$I::pg_catalog.text AS k, t.xmin AS version, t.%5$I IS NOT NULL AND %6$s AS needs
                  FROM %2$s t WHERE t.%1$I %3$s ANY ($1::%4$s[]) FOR NO KEY UPDATE OF t SKIP LOCKED) l
          JOIN unnest($1, $2) u(k, version) ON u.k = l.k$q$,
        cfg.key_column, tbl::regclass, eq, key_type, cfg.source_column, needs) INTO ready, done USING keys, versions;
    IF cfg.chunk_relid IS NULL THEN
        EXECUTE format('UPDATE %s t SET %I = u.v FROM unnest($1, $2) u(k, v) WHERE t.%I %s u.k::%s AND u.k = ANY ($3)',
                       tbl::regclass, target, cfg.key_column, eq, key_type) USING keys, embeddings, ready;
    ELSE
        EXECUTE format($q$
            INSERT INTO %1$s (row_key, chunk, start_char, end_char, embedding%2$s)
            SELECT u.k::%3$s, (c ->> 'chunk')::integer, (c ->> 'start_char')::integer, (c ->> 'end_char')::integer,
                   (c ->> 'embedding')::@vector_schema@.vector%4$s
              FROM unnest($1, $2) u(k, ch), jsonb_array_elements(u.ch) c WHERE u.k = ANY ($3)$q$,
            cfg.chunk_relid::regclass, CASE WHEN cfg.lexical_config IS NOT NULL THEN ', lexemes' ELSE '' END,
            key_type, CASE WHEN cfg.lexical_config IS NOT NULL THEN ', (c ->> ''lexemes'')::tsvector' ELSE '' END)
            USING keys, chunks, ready;
    END IF;
    stored := cardinality(ready);
    settled := ready || done || ARRAY(SELECT k FROM unnest(keys) k WHERE k <> ALL (present));
END
$fn$;
COMMENT ON FUNCTION pgbert._store_queued(oid, text[], xid[], @vector_schema@.vector[], jsonb[], boolean) IS
    'Internal (a table''s store function, as its owner): writes computed vectors where the row is still the version embedded; returns the keys settled.';

-- Worker: stores what compute_claimed returned for this session's claims (arrays aligned with its rows),
-- settles them: done rows leave the queue, the others are released and retried when due.
CREATE OR REPLACE FUNCTION pgbert.store_claimed(ids bigint[], versions xid[], embeddings @vector_schema@.vector[],
                                                chunks jsonb[])
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET check_function_bodies = on
AS $fn$
DECLARE
    job    record;
    tbl    oid;
    mine   record;
    result record;
    total  bigint := 0;
BEGIN
    FOR job IN SELECT DISTINCT q.relid, q.next_model FROM pgbert.embedding_queue q
                WHERE q.id = ANY (ids) AND q.claimed_pid = pg_backend_pid() LOOP
        tbl := job.relid;
        SELECT array_agg(q.id) AS ids, array_agg(q.row_key) AS keys, array_agg(r.version) AS versions,
               array_agg(r.embedding) AS embeddings, array_agg(r.chunks) AS chunks INTO mine
          FROM pgbert.embedding_queue q JOIN unnest(ids, versions, embeddings, chunks) r(id, version, embedding, chunks)
               ON r.id = q.id
         WHERE q.relid = tbl AND q.next_model = job.next_model AND q.claimed_pid = pg_backend_pid();
        IF NOT EXISTS (SELECT 1 FROM pgbert.embedded_tables e WHERE e.relid = tbl) THEN
            SELECT mine.keys AS settled, 0 AS stored INTO result;  -- embedding was turned off: nothing to write
        ELSE
            SELECT * INTO result FROM pgbert._store_rows(tbl, mine.ids, mine.keys, mine.versions, mine.embeddings,
                                                         mine.chunks, job.next_model);
        END IF;
        DELETE FROM pgbert.embedding_queue q WHERE q.id = ANY (mine.ids) AND q.row_key = ANY (result.settled);
        PERFORM pgbert._release(mine.ids);
        IF result.stored > 0 THEN
            INSERT INTO pgbert.queue_batches (relid, rows) VALUES (tbl, result.stored);
            DELETE FROM pgbert.queue_batches b WHERE b.relid = tbl AND b.finished_at < now() - interval '1 hour';
        END IF;
        total := total + result.stored;
    END LOOP;
    RETURN total;
END
$fn$;
COMMENT ON FUNCTION pgbert.store_claimed(bigint[], xid[], @vector_schema@.vector[], jsonb[]) IS
    'Worker: writes the vectors compute_claimed returned (as each table''s owner) and settles this session''s claims; returns the rows embedded.';

-- One table's rows through its store function; when that fails (a trigger of the table's own raising for a
-- row, say), row by row, so that the failing row fails alone (fail_claimed) and the others are stored.
DROP FUNCTION IF EXISTS pgbert._store_rows(oid, bigint[], text[], xid[], @vector_schema@.vector[], jsonb[]);  -- before 0013
CREATE OR REPLACE FUNCTION pgbert._store_rows(tbl oid, ids bigint[], keys text[], versions xid[],
                                              embeddings @vector_schema@.vector[], chunks jsonb[], next_model boolean,
                                              OUT settled text[], OUT stored integer)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    store text := format('SELECT s.settled, s.stored FROM pgbert.%I($1, $2, $3, $4, $5) s', pgbert._store_name(tbl));
    one   record;
BEGIN
    BEGIN
        EXECUTE store INTO settled, stored USING keys, versions, embeddings, chunks, next_model;
        RETURN;
    EXCEPTION WHEN OTHERS THEN
        settled := '{}';
        stored := 0;
    END;
    FOR i IN 1 .. cardinality(ids) LOOP
        BEGIN
            EXECUTE store INTO one USING keys[i:i], versions[i:i], embeddings[i:i], chunks[i:i], next_model;
            settled := settled || one.settled;
            stored := stored + one.stored;
        EXCEPTION WHEN OTHERS THEN
            PERFORM pgbert.fail_claimed(ids[i:i], SQLERRM);
        END;
    END LOOP;
END
$fn$;
COMMENT ON FUNCTION pgbert._store_rows(oid, bigint[], text[], xid[], @vector_schema@.vector[], jsonb[], boolean) IS
    'Internal (store_claimed): stores one table''s computed rows, row by row when the batch fails; a failing row fails alone.';

CREATE OR REPLACE FUNCTION pgbert._release(ids bigint[]) RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
    UPDATE pgbert.embedding_queue q SET claimed_pid = NULL, claimed_backend_start = NULL
     WHERE q.id = ANY (ids) AND q.claimed_pid = pg_backend_pid()
$$;
COMMENT ON FUNCTION pgbert._release(bigint[]) IS 'Internal: gives back this session''s claims of these queue rows.';

-- Worker: these claimed rows failed (the message says why): retried after a backoff, and after
-- queue_max_attempts kept in pgbert.embedding_errors until CALL pgbert.retry_failed(table).
CREATE OR REPLACE FUNCTION pgbert.fail_claimed(ids bigint[], message text) RETURNS bigint
LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET check_function_bodies = on
AS $$
    WITH s AS (SELECT coalesce((SELECT value::integer FROM pgbert.settings WHERE name = 'queue_max_attempts'), 5) AS max_attempts,
                      coalesce((SELECT value::float8 FROM pgbert.settings WHERE name = 'queue_retry_seconds'), 10) AS retry),
         failed AS (
        UPDATE pgbert.embedding_queue q
           SET attempts = q.attempts + 1, last_error = left(coalesce(message, 'unknown error'), 2000),
               not_before = now() + make_interval(secs => least(3600, s.retry * 2 ^ q.attempts)),
               failed_at = CASE WHEN q.attempts + 1 >= s.max_attempts THEN now() END,
               claimed_pid = NULL, claimed_backend_start = NULL
          FROM s WHERE q.id = ANY (ids) AND q.claimed_pid = pg_backend_pid() RETURNING 1)
    SELECT count(*) FROM failed
$$;
COMMENT ON FUNCTION pgbert.fail_claimed(bigint[], text) IS
    'Worker: records a failure of claimed queue rows (retried with backoff; after queue_max_attempts they land in pgbert.embedding_errors); returns how many.';
