-- ---------------------------------------------------------------------------------------------------
-- A table's owner and the queue: set_strategy (batch, row, queue, auto) and retry_failed. Both are
-- invoker procedures that prove their caller (_prove_caller, 39_enable_checks.sql), then call a SECURITY
-- DEFINER step that requires that caller to own the table: the registry and the queue are pgbert's alone.
-- ---------------------------------------------------------------------------------------------------

-- Records the rows of a table (or of one partition of it) that have text and no vector (no chunks) in the
-- queue: a table enabled or switched to 'queue' or 'auto', or a partition attached to it, hands its existing
-- backlog to the workers; during a model change (55_model_change.sql), so do the rows without a vector of
-- the new model (its shadow column). Run by the definer steps and the event triggers only.
DROP FUNCTION IF EXISTS pgbert._enqueue_existing(regclass);  -- before issue 22: the whole table only
CREATE OR REPLACE FUNCTION pgbert._enqueue_existing(tbl regclass, part regclass DEFAULT NULL) RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET extra_float_digits = 1 SET IntervalStyle = postgres SET DateStyle = 'ISO, MDY'
AS $fn$
DECLARE
    cfg     pgbert.embedded_tables := (SELECT e FROM pgbert.embedded_tables e WHERE e.relid = tbl);
    shadow  name := CASE WHEN cfg.chunk_relid IS NULL THEN pgbert._attname(tbl, cfg.next_vector_attnum) END;
    n       bigint;
    n_next  bigint := 0;
BEGIN
    EXECUTE format('INSERT INTO pgbert.embedding_queue (relid, row_key)
                    SELECT $1, t.%1$I::pg_catalog.text FROM %2$s t WHERE t.%3$I IS NOT NULL AND %4$s
                    ON CONFLICT (relid, row_key, next_model) DO NOTHING',
                   cfg.key_column, coalesce(part, tbl), cfg.source_column,
                   CASE WHEN cfg.chunk_relid IS NULL THEN format('t.%I IS NULL', cfg.vector_column)
                        ELSE format('NOT EXISTS (SELECT 1 FROM %s c WHERE c.row_key %s t.%I)', cfg.chunk_relid::regclass,
                                    pgbert._key_equality(tbl, cfg.key_column), cfg.key_column) END)
        USING tbl::oid;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF shadow IS NOT NULL THEN
        EXECUTE format('INSERT INTO pgbert.embedding_queue (relid, row_key, next_model)
                        SELECT $1, t.%1$I::pg_catalog.text, true FROM %2$s t WHERE t.%3$I IS NOT NULL AND t.%4$I IS NULL
                        ON CONFLICT (relid, row_key, next_model) DO NOTHING',
                       cfg.key_column, coalesce(part, tbl), cfg.source_column, shadow) USING tbl::oid;
        GET DIAGNOSTICS n_next = ROW_COUNT;
    END IF;
    IF n + n_next > 0 THEN
        RAISE NOTICE 'pgbert: % rows of % queued for embedding%: a worker embeds them (pgbert worker, or CALL pgbert.process_queue();)',
              n + n_next, coalesce(part, tbl), CASE WHEN n_next > 0 THEN format(' (%s with model %s)', n_next, cfg.next_model_name) ELSE '' END;
        PERFORM pg_notify('pgbert_queue', tbl::oid::text);
    END IF;
    RETURN n + n_next;
END
$fn$;
COMMENT ON FUNCTION pgbert._enqueue_existing(regclass, regclass) IS
    'Internal: queues the rows of a table (or of one of its partitions) that have text and no vector (or no chunks) yet, and during a model change those without the new model''s vector.';

-- A model change of a queued table (55_model_change.sql), for its proven owner: the rows of the new model
-- queued before `since` that still wait, and those that failed (pgbert.embedding_errors).
CREATE OR REPLACE FUNCTION pgbert._next_backlog(tbl regclass, since timestamptz, OUT waiting bigint, OUT failed bigint)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET check_function_bodies = on
AS $$
    SELECT count(*) FILTER (WHERE q.failed_at IS NULL), count(*) FILTER (WHERE q.failed_at IS NOT NULL)
      FROM pgbert.embedding_queue q
     WHERE q.relid = tbl::oid AND q.next_model AND q.queued_at <= since
       AND pg_catalog.pg_has_role(pgbert._caller(), (SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = tbl), 'USAGE')
$$;
COMMENT ON FUNCTION pgbert._next_backlog(regclass, timestamptz) IS
    'Internal (change_model of a queued table, its owner only): rows of the new model queued before since, waiting and failed.';

-- change_model of a queued table: waits, with progress, until the queue's workers have embedded the rows
-- queued for the new model so far. A row that fails stops the wait (its error says why); CALL
-- change_model again once it is fixed (pgbert.retry_failed) and it goes on where it stopped.
CREATE OR REPLACE PROCEDURE pgbert._await_next_backlog(tbl regclass, model text)
LANGUAGE plpgsql
AS $proc$
DECLARE
    since   timestamptz := pg_catalog.clock_timestamp();
    backlog record := pgbert._next_backlog(tbl, since);
    total   bigint := backlog.waiting;
    shown   timestamptz := since;
    before  bigint := total;
BEGIN
    RAISE NOTICE 'pgbert: %: the queue''s workers embed % rows with % (pgbert worker, or CALL pgbert.process_queue();)',
          tbl, total, model;
    WHILE backlog.waiting > 0 OR backlog.failed > 0 LOOP
        IF backlog.failed > 0 THEN
            RAISE EXCEPTION 'pgbert: % rows of % could not be embedded with %', backlog.failed, tbl, model
                  USING ERRCODE = 'object_not_in_prerequisite_state',
                        HINT = format('SELECT * FROM pgbert.embedding_errors WHERE relid = %1$L::regclass; says why. Then '
                                      'CALL pgbert.retry_failed(%1$L); and CALL pgbert.change_model(%1$L, %2$L); again (it '
                                      'goes on where it stopped), or CALL pgbert.abort_model_change(%1$L);', tbl::text, model);
        END IF;
        COMMIT;  -- (the procedure holds no snapshot or lock while the workers run)
        PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
        PERFORM pg_catalog.pg_sleep(0.2);
        backlog := pgbert._next_backlog(tbl, since);
        IF pg_catalog.clock_timestamp() - shown >= interval '10 seconds' THEN
            RAISE NOTICE 'pgbert: %: % / % rows embedded with % by the queue''s workers%', tbl, total - backlog.waiting,
                  total, model, CASE WHEN backlog.waiting = before THEN ' (none in the last 10 s: is a worker running?)' ELSE '' END;
            shown := pg_catalog.clock_timestamp();
            before := backlog.waiting;
        END IF;
    END LOOP;
END
$proc$;
COMMENT ON PROCEDURE pgbert._await_next_backlog(regclass, text) IS
    'Internal (change_model of a queued table): waits, with progress, for the queue''s workers to embed the rows queued for the new model.';

-- When a queued table's model change ends: claims of its rows are given back (a vector computed with the
-- model before the switch is never stored after it), and at the switch rows waiting for the new model
-- become ordinary queue rows (its column is now the table's); at an abort they are forgotten.
CREATE OR REPLACE FUNCTION pgbert._queue_change_ended(tbl regclass, switched boolean) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    UPDATE pgbert.embedding_queue q SET claimed_pid = NULL, claimed_backend_start = NULL
     WHERE q.relid = tbl::oid AND q.claimed_pid IS NOT NULL;
    DELETE FROM pgbert.embedding_queue q WHERE q.relid = tbl::oid AND q.next_model
       AND (NOT switched OR EXISTS (SELECT 1 FROM pgbert.embedding_queue c
                                     WHERE c.relid = q.relid AND c.row_key = q.row_key AND NOT c.next_model));
    UPDATE pgbert.embedding_queue q SET next_model = false WHERE q.relid = tbl::oid AND q.next_model;
END
$fn$;
COMMENT ON FUNCTION pgbert._queue_change_ended(regclass, boolean) IS
    'Internal (model_change_step): a queued table''s model change was switched or aborted: its queue follows.';

-- The strategies a table may use: 'queue' and 'auto' need the table's key (a queue row points at its row);
-- a chunked table is 'batch' or 'queue'; 'batch' needs an owner who may embed. A partitioned table's tree
-- must be embeddable as one (72_partitions.sql).
CREATE OR REPLACE FUNCTION pgbert._check_strategy(tbl regclass, strategy text, key_column name, chunked boolean)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    owner oid := (SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = tbl);
BEGIN
    PERFORM pgbert._check_partition_tree(tbl, true);
    IF strategy IS NULL OR strategy NOT IN ('batch', 'row', 'queue', 'auto') THEN
        RAISE EXCEPTION 'pgbert: strategy must be ''batch'', ''row'', ''queue'' or ''auto'', not %', quote_nullable(strategy)
              USING ERRCODE = 'invalid_parameter_value';
    ELSIF strategy IN ('queue', 'auto') AND key_column IS NULL THEN
        RAISE EXCEPTION 'pgbert: strategy ''%'' needs a single-column primary key on % (a queued row is found by it)',
              strategy, tbl USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'ALTER TABLE ... ADD PRIMARY KEY (...);';
    ELSIF strategy IN ('queue', 'auto') AND NOT EXISTS (
              SELECT 1 FROM pg_catalog.pg_type y WHERE y.oid = pgbert._key_base_type(tbl, key_column)
                 AND (y.typtype = 'e' OR (y.typtype = 'b' AND y.typcategory <> 'A'))) THEN
        -- pgbert's owner reads queued rows by key: the key's input must run no user code (a composite, range or
        -- array key could hold a domain, whose CHECK would run as pgbert's owner)
        RAISE EXCEPTION 'pgbert: strategy ''%'' needs a key of a plain type (integer, bigint, text, uuid, an enum ...), '
              'not %', strategy, format_type(pgbert._key_base_type(tbl, key_column), NULL)
              USING ERRCODE = 'feature_not_supported', HINT = 'Use strategy => ''batch''.';
    ELSIF chunked AND strategy NOT IN ('batch', 'queue') THEN
        RAISE EXCEPTION 'pgbert: a chunked table embeds with strategy ''batch'' or ''queue'', not ''%''', strategy
              USING ERRCODE = 'invalid_parameter_value';
    ELSIF strategy = 'batch' AND (key_column IS NOT NULL OR chunked)
          AND NOT has_function_privilege(owner, 'pgbert.embed_batch(text[])', 'EXECUTE') THEN
        -- the write-back runs as the table's owner, who must therefore be allowed to embed
        RAISE EXCEPTION 'pgbert: the owner of % (%) may not embed', tbl, owner::regrole
              USING ERRCODE = 'insufficient_privilege', HINT = format('GRANT pgbert_user TO %I;', pg_get_userbyid(owner));
    END IF;
END
$fn$;
COMMENT ON FUNCTION pgbert._check_strategy(regclass, text, name, boolean) IS
    'Internal: raises unless a table (with this key, chunked or not) may use the strategy.';

CREATE OR REPLACE FUNCTION pgbert.change_strategy(tbl regclass, strategy text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET check_function_bodies = on
AS $fn$
DECLARE
    cfg pgbert.embedded_tables;
BEGIN
    PERFORM pgbert._require_owner(tbl, 'change');
    SELECT * INTO cfg FROM pgbert.embedded_tables e WHERE e.relid = tbl;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'pgbert: embedding is not enabled on %', tbl USING ERRCODE = 'object_not_in_prerequisite_state',
              HINT = 'CALL pgbert.enable_embedding(table, source_column, strategy => ...) instead.';
    END IF;
    strategy := lower(strategy);
    PERFORM pgbert._check_strategy(tbl, strategy, cfg.key_column, cfg.chunk_relid IS NOT NULL);
    IF strategy = 'batch' AND cfg.key_column IS NULL THEN
        strategy := 'row';
    END IF;
    UPDATE pgbert.embedded_tables e SET strategy = change_strategy.strategy WHERE e.relid = tbl;
    PERFORM pgbert._reinstall(tbl);
    IF strategy IN ('queue', 'auto') THEN
        PERFORM pgbert._enqueue_existing(tbl);
    ELSIF EXISTS (SELECT 1 FROM pgbert.embedding_queue q WHERE q.relid = tbl AND q.failed_at IS NULL) THEN
        RAISE NOTICE 'pgbert: % rows of % are still queued: a worker embeds them (or CALL pgbert.backfill(%L);)',
              (SELECT count(*) FROM pgbert.embedding_queue q WHERE q.relid = tbl AND q.failed_at IS NULL), tbl, tbl;
    END IF;
    RAISE NOTICE 'pgbert: % now embeds with strategy %', tbl, strategy;
END
$fn$;
COMMENT ON FUNCTION pgbert.change_strategy(regclass, text) IS
    'Table owner (through set_strategy): records the table''s new strategy and installs its triggers; queue and auto queue its rows that lack a vector.';

CREATE OR REPLACE PROCEDURE pgbert.set_strategy(tbl regclass, strategy text)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $proc$
BEGIN
    PERFORM pgbert._prove_caller(tbl, true);
    PERFORM pgbert.change_strategy(tbl, strategy);
    PERFORM pgbert._prove_caller(tbl, false);
END
$proc$;
COMMENT ON PROCEDURE pgbert.set_strategy(regclass, text) IS
    'Table owner: switches an embedding-enabled table to strategy ''batch'', ''row'', ''queue'' (writes commit at once; workers embed soon) or ''auto'' (a statement''s rows inline while they fit auto_inline_tokens, the rest queued).';

CREATE OR REPLACE FUNCTION pgbert.requeue_failed(tbl regclass) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET check_function_bodies = on
AS $fn$
DECLARE
    n bigint;
BEGIN
    PERFORM pgbert._require_owner(tbl, 'retry');
    UPDATE pgbert.embedding_queue q SET failed_at = NULL, attempts = 0, not_before = NULL, last_error = NULL
     WHERE q.relid = tbl AND q.failed_at IS NOT NULL;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n > 0 THEN
        PERFORM pg_notify('pgbert_queue', tbl::oid::text);
    END IF;
    RAISE NOTICE 'pgbert: % failed rows of % are queued again', n, tbl;
    RETURN n;
END
$fn$;
COMMENT ON FUNCTION pgbert.requeue_failed(regclass) IS
    'Table owner (through retry_failed): puts the table''s failed queue rows back, attempts reset.';

CREATE OR REPLACE PROCEDURE pgbert.retry_failed(tbl regclass)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $proc$
BEGIN
    PERFORM pgbert._prove_caller(tbl, true);
    PERFORM pgbert.requeue_failed(tbl);
    PERFORM pgbert._prove_caller(tbl, false);
END
$proc$;
COMMENT ON PROCEDURE pgbert.retry_failed(regclass) IS
    'Table owner: the table''s rows in pgbert.embedding_errors go back to the queue (attempts reset).';
