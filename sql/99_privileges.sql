-- ---------------------------------------------------------------------------------------------------
-- Every privilege pgbert grants, in one place (SECURITY.md says why each is safe; tests/golden/privileges.txt
-- holds the result, tests/db/test_privileges.py compares). The least that works:
--   PUBLIC        reads the model registry and settings (an INSERT-only role's rows are embedded by triggers
--                 that read them as that role), and may import the runtime (_boot: the triggers call it as
--                 that role; it loads no model). Nothing that runs the model: the public embed(), search()
--                 ... refuse a role without pgbert_user before anything else, saying which GRANT to run.
--   pgbert_user   embeds, searches, turns embedding on and off for tables it owns. It writes no pgbert
--                 table: the entry points that record a table (setup_embedding, disable_embedding, and the
--                 event triggers) are SECURITY DEFINER and check the caller; it reads the registry through
--                 the view pgbert.enabled_tables (its own tables and those it may read).
--   pgbert_admin  also switches models and tunes runtime settings (never python_path: row-level security).
--   pgbert_worker runs the embedding queue (process_queue, `pgbert worker`): see the queue's grants below.
-- Functions that run with their caller's rights (search and its steps, backfill, the write-back
-- implementations) are granted to pgbert_user: they can do nothing the caller could not do in plain SQL.
-- Helpers of the SECURITY DEFINER entry points are executable by nobody but their owner.
-- Trigger functions need EXECUTE only to be attached (CREATE TRIGGER), never to fire.
-- ---------------------------------------------------------------------------------------------------
GRANT USAGE ON SCHEMA pgbert TO PUBLIC;

REVOKE ALL ON ALL TABLES IN SCHEMA pgbert FROM PUBLIC, pgbert_user, pgbert_admin;
GRANT SELECT ON pgbert.settings, pgbert.models, pgbert.active_model TO PUBLIC;
GRANT SELECT ON pgbert.enabled_tables TO pgbert_user;              -- its own tables and those it may read
GRANT SELECT ON pgbert.embedded_tables TO pgbert_admin;           -- use_model checks every table's dimension
GRANT UPDATE (value) ON pgbert.settings TO pgbert_admin;          -- python_path excluded by row-level security
GRANT INSERT, UPDATE, DELETE ON pgbert.models TO pgbert_admin;

-- Functions and procedures: nothing for PUBLIC but _boot, then each signature granted once.
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA pgbert FROM PUBLIC, pgbert_user, pgbert_admin;
REVOKE ALL ON ALL PROCEDURES IN SCHEMA pgbert FROM PUBLIC, pgbert_user, pgbert_admin;
REVOKE ALL ON FUNCTION public.embed(text), public.embed(text, text), public.embed_batch(text[]),
                       public.embed_batch(text[], text), public.embed(text, name, text),
                       public.embed_batch(text[], name, text), public.search(text, integer),
                       public.search(text, integer, regclass, text, jsonb),
                       public.search_rows(text, integer, anyelement, text, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pgbert._boot() TO PUBLIC;
-- The public functions a user calls: their first step (pgbert._require_user) refuses a role without
-- pgbert_user with the GRANT that fixes it; what they call next is executable by pgbert_user alone.
GRANT EXECUTE ON FUNCTION pgbert._require_user(), public.embed(text), public.embed(text, text),
    public.embed_batch(text[]), public.embed_batch(text[], text), public.embed(text, name, text),
    public.embed_batch(text[], name, text), public.search(text, integer),
    public.search(text, integer, regclass, text, jsonb), public.search_rows(text, integer, anyelement, text, jsonb)
TO PUBLIC;

GRANT EXECUTE ON FUNCTION
    pgbert.embed(text, text), pgbert.embed_batch(text[]), pgbert.embed_batch(text[], text),
    pgbert.status(),
    pgbert.pending_rows(regclass), pgbert.lexemes(text, text), pgbert.query_lexemes(text, text),
    pgbert.text_language(text), pgbert.embed_chunks(text[], integer, integer, text),
    pgbert.embed(text, text, text), pgbert.embed_batch(text[], text, text),
    pgbert._embed_named(text[], text, text),  -- SECURITY DEFINER: the registry's row for a name, to _embed_with
    -- SECURITY DEFINER entry points: check that the caller (proven by _prove_caller) owns the table
    pgbert.setup_embedding(regclass, name, name, text, text, integer, integer, text, text),
    pgbert.teardown_embedding(regclass, boolean), pgbert._prove_caller(regclass, boolean),
    -- attached by setup_embedding (as pgbert's owner), fired as whoever writes
    pgbert.embed_row(), pgbert.batch_start(), pgbert.batch_end(),
    -- caller's rights: the steps of enable_embedding, backfill and search, and the write-back
    -- implementations (which a table's write-back function runs as the table's owner)
    pgbert._embedding_config(regclass), pgbert._distance_operator(text), pgbert._operator_class(text),
    pgbert._index_on(regclass, name, name), pgbert._build_index(regclass), pgbert._key_equality(regclass, name),
    pgbert._key_base_type(regclass, name),
    pgbert._qualified(oid), pgbert.row_visible(oid, smallint, smallint, anyelement),
    pgbert._backfill_batch(regclass, integer), pgbert._backfill_chunks_batch(regclass, integer),
    pgbert._backfill_lexemes_batch(regclass, integer),
    pgbert._row_columns(pgbert.embedded_tables),
    pgbert._vector_ranking(pgbert.embedded_tables, @vector_schema@.vector, integer, jsonb),
    pgbert._lexical_ranking(pgbert.embedded_tables, text[], integer, jsonb),
    pgbert._fused_search(pgbert.embedded_tables, text, integer, text, jsonb),
    pgbert._chunk_search(pgbert.embedded_tables, text, integer, text, jsonb), pgbert._filter_clause(pgbert.embedded_tables, jsonb, text),
    pgbert._best_chunks(pgbert.embedded_tables, text, @vector_schema@.vector, integer, text, text, float8, float8, float8,
                        integer, jsonb),
    pgbert._writer_config(oid), pgbert._write_inserted(oid, jsonb), pgbert._write_updated(oid, jsonb, jsonb),
    pgbert._write_deleted(oid, jsonb), pgbert._write_truncated(oid),
    pgbert._insert_chunks(pgbert.embedded_tables, jsonb, jsonb)
TO pgbert_user;
GRANT EXECUTE ON PROCEDURE
    pgbert.enable_embedding(regclass, name, name, text, boolean, boolean, integer, text, integer, integer, text, text),
    pgbert.disable_embedding(regclass, boolean), pgbert.backfill(regclass, integer)
TO pgbert_user;

GRANT EXECUTE ON FUNCTION pgbert.use_model(text, text), pgbert.add_model(text, text), pgbert.drop_model(text)
TO pgbert_admin;
-- Model call statistics (15_model_stats.sql) tell one role about every role's activity: admins only.
GRANT SELECT ON pgbert.model_stats TO pgbert_admin;
GRANT EXECUTE ON FUNCTION pgbert._model_stats(), pgbert.reset_model_stats() TO pgbert_admin;

-- The queue (45-48_queue*.sql). A table's owner switches its strategy and retries its failed rows (definer
-- steps that check the proven caller owns the table), and reads the queue's counts and errors of the tables
-- it may read. pgbert_worker runs the queue: claims, computes (texts stay inside: it sees ids and vectors),
-- stores through each table's store function (as the table's owner, only where the row did not change).
GRANT SELECT ON pgbert.queue_status, pgbert.embedding_errors TO pgbert_user, pgbert_worker;
GRANT EXECUTE ON FUNCTION
    pgbert.change_strategy(regclass, text), pgbert.requeue_failed(regclass), pgbert._queue_counts(),
    pgbert._store_queued(oid, text[], xid[], @vector_schema@.vector[], jsonb[], boolean)
TO pgbert_user;
GRANT EXECUTE ON PROCEDURE pgbert.set_strategy(regclass, text), pgbert.retry_failed(regclass) TO pgbert_user;

-- Model changes (55_model_change.sql): the definer step checks that the proven caller owns the table; the
-- rest runs as the table's owner.
GRANT EXECUTE ON FUNCTION
    pgbert.model_change_step(regclass, text, text), pgbert._write_next(oid, jsonb, jsonb),
    pgbert._fill_vectors(regclass, name, name, text, integer), pgbert._count_next_pending(regclass),
    pgbert._next_backlog(regclass, timestamptz), pgbert._attname(regclass, smallint)
TO pgbert_user;
GRANT EXECUTE ON PROCEDURE pgbert.change_model(regclass, text, integer), pgbert.abort_model_change(regclass),
    pgbert.drop_old_vectors(regclass), pgbert._await_next_backlog(regclass, text)
TO pgbert_user;
GRANT EXECUTE ON FUNCTION
    pgbert.claim_batch(integer), pgbert.compute_claimed(bigint[]),
    pgbert.store_claimed(bigint[], xid[], @vector_schema@.vector[], jsonb[]), pgbert.fail_claimed(bigint[], text),
    pgbert.release_claims(), pgbert.queue_wait_seconds(), pgbert._work_claimed(), pgbert._queue_counts()
TO pgbert_worker;
GRANT EXECUTE ON PROCEDURE pgbert.process_queue(integer, double precision, integer, bigint) TO pgbert_worker;

-- Model changes of chunked tables (56_model_change_chunks.sql): the write-back keeps the next chunk table too,
-- and change_model fills, indexes and switches it, all as the table's owner (the switch: model_change_step).
GRANT EXECUTE ON FUNCTION
    pgbert._next_chunks(pgbert.embedded_tables), pgbert._chunk_targets(pgbert.embedded_tables),
    pgbert._missing_chunks(pgbert.embedded_tables, bigint), pgbert._fill_chunks(pgbert.embedded_tables, integer),
    pgbert._index_vectors(pgbert.embedded_tables)
TO pgbert_user;
GRANT EXECUTE ON PROCEDURE pgbert._change_chunks(regclass, text, integer) TO pgbert_user;

-- Partitioned tables (72_partitions.sql): a table's write-back and store functions, as its owner, check that
-- no partition's owner is a role that cannot act as it, and empty a truncated partition's chunk twin.
GRANT EXECUTE ON FUNCTION
    pgbert._check_partition_owners(oid, oid), pgbert._write_truncation(oid, oid),
    pgbert._chunk_twin(oid, oid, oid), pgbert._twin(oid, oid)
TO pgbert_user;
