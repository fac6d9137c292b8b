-- ---------------------------------------------------------------------------------------------------
-- Moving a CHUNKED table to another model (CALL pgbert.change_model(table, model), 55_model_change.sql). A
-- chunk's bounds depend on the model's tokenizer and window, so the new model's chunks go into a new chunk
-- table, <table>_chunks_<model> (the registry's next_chunk_relid), made like <table>_chunks (owner, policy,
-- partitions, lexemes):
--
--   1. begin    the next chunk table is created (and partitioned as the table is); from now on the write-back
--               keeps both chunk tables (_chunk_targets: INSERT, UPDATE of the text, DELETE, TRUNCATE), even
--               for a queued table, whose workers fill only the current one. Lock: SHARE ROW EXCLUSIVE on the
--               table for that moment (writes that began earlier finish first; search goes on).
--   2. backfill rows without a chunk in the next table, chunked and embedded with the new model in committed
--               batches (_fill_chunks, 50_backfill.sql) as the caller (the owner).
--   3. index    HNSW (and GIN on lexemes) on the next chunk table: SHARE lock on it, so writes wait.
--   4. switch   one transaction, no lock on the table: refused while a row lacks the new chunks; then the
--               registry's chunk table, model and dimension move (search() reads them from there), and the
--               previous chunk table is kept as old_chunk_relid.
-- abort_model_change drops the next chunk table, drop_old_vectors the old one. disable_embedding and DROP TABLE
-- drop both (40_enable.sql, 70_events.sql); a dropped next chunk table aborts the change.
-- ---------------------------------------------------------------------------------------------------

-- A chunked table's config pointed at the next chunk table and the new model (strategy 'batch': the write-back
-- fills it whatever the table's strategy).
CREATE OR REPLACE FUNCTION pgbert._next_chunks(cfg pgbert.embedded_tables) RETURNS pgbert.embedded_tables
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    moved pgbert.embedded_tables := cfg;
BEGIN
    moved.chunk_relid := cfg.next_chunk_relid;
    moved.model_name := cfg.next_model_name;
    moved.dimension := (SELECT m.dimension FROM pgbert.models m WHERE m.name = cfg.next_model_name);
    moved.strategy := 'batch';
    moved.next_model_name := NULL;
    moved.next_chunk_relid := NULL;
    RETURN moved;
END
$fn$;
COMMENT ON FUNCTION pgbert._next_chunks(pgbert.embedded_tables) IS
    'Internal: a chunked table''s registry row pointed at the chunk table and model it is moving to.';

-- The chunk tables a chunked table's write-back keeps: its own (cfg) and, during a model change, the next one.
-- None for a table that is not chunked.
CREATE OR REPLACE FUNCTION pgbert._chunk_targets(cfg pgbert.embedded_tables) RETURNS SETOF pgbert.embedded_tables
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF cfg.chunk_relid IS NOT NULL THEN
        RETURN NEXT cfg;
        IF cfg.next_chunk_relid IS NOT NULL THEN
            RETURN NEXT pgbert._next_chunks(cfg);
        END IF;
    END IF;
END
$fn$;
COMMENT ON FUNCTION pgbert._chunk_targets(pgbert.embedded_tables) IS
    'Internal (write-back): the chunk tables to keep: the table''s own, and during a model change the next one.';

-- Rows of cfg's table with text and no chunk in cfg's chunk table, counted up to lim (NULL: all).
CREATE OR REPLACE FUNCTION pgbert._missing_chunks(cfg pgbert.embedded_tables, lim bigint) RETURNS bigint
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    n bigint;
BEGIN
    EXECUTE format('SELECT count(*) FROM (SELECT 1 FROM %s t WHERE t.%I IS NOT NULL AND NOT EXISTS '
                   '(SELECT 1 FROM %s c WHERE c.row_key %s t.%I) LIMIT $1) s', cfg.relid, cfg.source_column,
                   pgbert._qualified(cfg.chunk_relid), pgbert._key_equality(cfg.relid, cfg.key_column), cfg.key_column)
       INTO n USING lim;
    RETURN n;
END
$fn$;
COMMENT ON FUNCTION pgbert._missing_chunks(pgbert.embedded_tables, bigint) IS
    'Internal: how many rows have text but no chunk in cfg''s chunk table (counted up to lim; NULL: all).';

-- Drops the chunk tables of these oids that still exist (views on them: no veto, as for <table>_chunks).
-- Definer steps only, with oids from the registry.
CREATE OR REPLACE FUNCTION pgbert._drop_chunk_tables(rels oid[]) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    rel oid;
BEGIN
    FOR rel IN SELECT c.oid FROM pg_catalog.pg_class c WHERE c.oid = ANY (rels) LOOP
        EXECUTE format('DROP TABLE %s CASCADE', rel::regclass);
    END LOOP;
END
$fn$;
COMMENT ON FUNCTION pgbert._drop_chunk_tables(oid[]) IS 'Internal: drops the chunk tables of these oids that exist.';

-- 'begin' of a chunked table (model_change_step, as pgbert's owner, for the proven owner): checks the new model
-- reads chunk_tokens tokens, creates <table>_chunks_<model> (refused when the name is taken) and records it.
CREATE OR REPLACE FUNCTION pgbert._begin_chunk_change(cfg pgbert.embedded_tables, model pgbert.models)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    chunks oid;
BEGIN
    PERFORM pgbert._check_model_change(cfg, model);  -- 55_model_change.sql
    BEGIN
        PERFORM count(*) FROM pgbert.embed_chunks(ARRAY['pgbert'], cfg.chunk_tokens, cfg.overlap_tokens, model.name);
    EXCEPTION WHEN invalid_parameter_value THEN
        RAISE EXCEPTION 'pgbert: % is chunked in % tokens, more than model % reads at once', cfg.relid,
              cfg.chunk_tokens, model.name USING ERRCODE = 'invalid_parameter_value', DETAIL = SQLERRM,
              HINT = 'disable_embedding, then enable_embedding(..., model => ..., chunk_tokens => fewer) re-chunks it.';
    END;
    -- writes that began before see no next chunk table: they finish first, later ones fill it too
    EXECUTE format('LOCK TABLE %s IN SHARE ROW EXCLUSIVE MODE', cfg.relid);
    chunks := pgbert._create_chunk_table(cfg.relid,  -- 35_chunks.sql; named after the model, like a shadow column
                  pgbert._suffixed((SELECT c.relname FROM pg_catalog.pg_class c WHERE c.oid = cfg.relid),
                                   '_chunks_' || left(regexp_replace(lower(model.name), '[^a-z0-9]+', '_', 'g'), 40)),
                  cfg.key_column, cfg.source_column, model.dimension, cfg.lexical_config IS NOT NULL);
    PERFORM pgbert._mirror_partitions(cfg.relid, chunks);  -- partitioned as the table is (36_chunk_triggers.sql)
    UPDATE pgbert.embedded_tables e SET next_model_name = model.name, next_chunk_relid = chunks, change_started_at = now()
     WHERE e.relid = cfg.relid;
END
$fn$;
COMMENT ON FUNCTION pgbert._begin_chunk_change(pgbert.embedded_tables, pgbert.models) IS
    'Internal (model_change_step): begins a chunked table''s model change: creates and records its next chunk table.';

-- The steps of a chunked table's model change (model_change_step sends them here, as pgbert's owner, for the
-- proven owner): 'begin', 'switch', 'abort', 'drop_old'. Definer code reads the table, never writes it.
CREATE OR REPLACE FUNCTION pgbert._chunk_change_step(cfg pgbert.embedded_tables, step text, model pgbert.models)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    missing bigint;
BEGIN
    IF step = 'begin' THEN
        PERFORM pgbert._begin_chunk_change(cfg, model);
    ELSIF step = 'abort' AND cfg.next_chunk_relid IS NOT NULL THEN
        UPDATE pgbert.embedded_tables e SET next_model_name = NULL, next_chunk_relid = NULL, change_started_at = NULL
         WHERE e.relid = cfg.relid;
        PERFORM pgbert._drop_chunk_tables(ARRAY[cfg.next_chunk_relid]);
    ELSIF step = 'switch' AND cfg.next_chunk_relid IS NOT NULL THEN
        missing := pgbert._missing_chunks(pgbert._next_chunks(cfg), 1);
        IF missing > 0 THEN  -- (a write whose snapshot predates 'begin', a partition attached after the backfill)
            RAISE EXCEPTION 'pgbert: rows of % have no chunks of model % yet', cfg.relid, cfg.next_model_name
                  USING ERRCODE = 'object_not_in_prerequisite_state',
                        HINT = format('CALL pgbert.change_model(%L, %L); chunks them, then switches.', cfg.relid::text,
                                      cfg.next_model_name);
        END IF;
        UPDATE pgbert.embedded_tables e
           SET model_name = e.next_model_name, dimension = (SELECT m.dimension FROM pgbert.models m WHERE m.name = e.next_model_name),
               chunk_relid = e.next_chunk_relid, old_chunk_relid = e.chunk_relid,
               next_model_name = NULL, next_chunk_relid = NULL, change_started_at = NULL
         WHERE e.relid = cfg.relid;
    ELSIF step = 'drop_old' AND cfg.old_chunk_relid IS NOT NULL THEN
        UPDATE pgbert.embedded_tables e SET old_chunk_relid = NULL WHERE e.relid = cfg.relid;
        PERFORM pgbert._drop_chunk_tables(ARRAY[cfg.old_chunk_relid]);
    ELSE
        RAISE EXCEPTION 'pgbert: nothing to %: %', step,
              CASE WHEN step = 'drop_old' THEN 'no old chunks are kept' ELSE 'no model change is in progress' END
              USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
END
$fn$;
COMMENT ON FUNCTION pgbert._chunk_change_step(pgbert.embedded_tables, text, pgbert.models) IS
    'Internal (model_change_step): begins, switches or aborts a chunked table''s model change, or drops its old chunks.';

-- change_model's backfill, index and switch for a chunked table (it CALLs this once 'begin' has committed).
-- Runs as its caller, who must own the table; commits between batches, so it pins search_path itself.
CREATE OR REPLACE PROCEDURE pgbert._change_chunks(tbl regclass, model text, batch_size integer)
LANGUAGE plpgsql
AS $proc$
DECLARE
    done  bigint := 0;
    n     bigint;
    total bigint;
BEGIN
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    IF batch_size IS NULL OR batch_size < 1 THEN
        RAISE EXCEPTION 'pgbert: batch_size must be positive, got %', coalesce(batch_size::text, 'NULL')
              USING ERRCODE = 'invalid_parameter_value';
    ELSIF (pgbert._embedding_config(tbl)).next_chunk_relid IS NULL THEN
        RAISE EXCEPTION 'pgbert: % is not moving to another model', tbl USING ERRCODE = 'object_not_in_prerequisite_state',
              HINT = 'CALL pgbert.change_model(table, model);';
    END IF;
    total := pgbert._missing_chunks(pgbert._next_chunks(pgbert._embedding_config(tbl)), NULL);
    LOOP
        n := pgbert._fill_chunks(pgbert._next_chunks(pgbert._embedding_config(tbl)), batch_size);  -- 50_backfill.sql
        EXIT WHEN n = 0;
        done := done + n;
        RAISE NOTICE 'pgbert: %: % / % rows chunked and embedded with %', tbl, done, total, model;
        COMMIT;
        PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    END LOOP;
    COMMIT;  -- nothing of the backfill held while the index waits for writers (a writer waiting on it: deadlock)
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    PERFORM pgbert._index_vectors(pgbert._next_chunks(pgbert._embedding_config(tbl)));  -- 40_enable.sql
    COMMIT;  -- the index, then the switch alone
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    PERFORM pgbert._prove_caller(tbl, true);
    PERFORM pgbert.model_change_step(tbl, 'switch', model);
    PERFORM pgbert._prove_caller(tbl, false);
    RAISE NOTICE 'pgbert: % now uses model % and %; its previous chunks stay in % until CALL pgbert.drop_old_vectors(%)',
          tbl, model, (pgbert._embedding_config(tbl)).chunk_relid::regclass,
          (pgbert._embedding_config(tbl)).old_chunk_relid::regclass, quote_literal(tbl::text);
END
$proc$;
COMMENT ON PROCEDURE pgbert._change_chunks(regclass, text, integer) IS
    'Internal (change_model on a chunked table): fills the next chunk table in committed batches, indexes it, then switches.';

-- After a DROP (forget_dropped, 70_events.sql): a next chunk table dropped by hand aborts its table's model
-- change; an old one dropped by hand is forgotten. The registry is read as jsonb (a downgraded database).
CREATE OR REPLACE FUNCTION pgbert._forget_change_chunks(dropped oid[]) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    tbl regclass;
BEGIN
    FOR tbl IN SELECT e.relid FROM pgbert.embedded_tables e WHERE (to_jsonb(e) ->> 'next_chunk_relid')::oid = ANY (dropped) LOOP
        UPDATE pgbert.embedded_tables e SET next_model_name = NULL, next_chunk_relid = NULL, change_started_at = NULL
         WHERE e.relid = tbl;
        RAISE NOTICE 'pgbert: the chunk table that % was filling for its new model was dropped: the change is aborted', tbl;
    END LOOP;
    IF EXISTS (SELECT 1 FROM pgbert.embedded_tables e WHERE (to_jsonb(e) ->> 'old_chunk_relid')::oid = ANY (dropped)) THEN
        UPDATE pgbert.embedded_tables e SET old_chunk_relid = NULL WHERE e.old_chunk_relid = ANY (dropped);
    END IF;
END
$fn$;
COMMENT ON FUNCTION pgbert._forget_change_chunks(oid[]) IS
    'Internal (forget_dropped): a dropped next chunk table aborts its model change; a dropped old one is forgotten.';
