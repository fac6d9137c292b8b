-- ---------------------------------------------------------------------------------------------------
-- Turning auto-embedding on and off: argument checks, the vector column, the registry row, the HNSW
-- index. The triggers themselves are in 30_triggers.sql, the backfill in 50_backfill.sql.
-- ---------------------------------------------------------------------------------------------------

-- Adds vector(dimension) when the column is missing; otherwise checks that it fits the model.
CREATE OR REPLACE FUNCTION pgbert._ensure_vector_column(tbl regclass, vector_column name, model pgbert.models)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    col record;
BEGIN
    SELECT a.atttypid, a.atttypmod INTO col FROM pg_catalog.pg_attribute a
     WHERE a.attrelid = tbl AND a.attname = vector_column AND a.attnum > 0 AND NOT a.attisdropped;
    IF NOT FOUND THEN
        EXECUTE format('ALTER TABLE %s ADD COLUMN %I @vector_schema@.vector(%s)', tbl, vector_column, model.dimension);
    ELSIF col.atttypid <> '@vector_schema@.vector'::regtype OR col.atttypmod NOT IN (-1, model.dimension) THEN
        RAISE EXCEPTION 'pgbert: column %.% is %, but the active model % needs vector(%)', tbl,
              quote_ident(vector_column), format_type(col.atttypid, col.atttypmod), model.name, model.dimension
              USING ERRCODE = 'datatype_mismatch';
    END IF;
END
$fn$;
COMMENT ON FUNCTION pgbert._ensure_vector_column(regclass, name, pgbert.models) IS
    'Internal: adds the vector column with the model''s dimension, or checks the existing one fits.';

-- The first step of enable_embedding, run as pgbert's owner (the registry and schema pgbert are
-- pgbert's alone) for the table's owner only: checks everything, adds the vector (and tsvector) column
-- if missing, or the chunk table of a chunked table, writes the registry row and installs the triggers.
-- Every column is checked against the catalogs; no user code runs here.
CREATE OR REPLACE FUNCTION pgbert.setup_embedding(tbl regclass, source_column name, vector_column name,
                                                  strategy text, lexical text, chunk_tokens integer,
                                                  overlap_tokens integer, distance text, model_name text)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET check_function_bodies = on
AS $fn$
DECLARE
    model       pgbert.models;
    key_col     name := pgbert._batch_key(tbl);
    lexical_col name;
    chunks      oid;
BEGIN
    PERFORM pgbert._check_source(tbl, source_column);
    PERFORM pgbert._require_owner(tbl, 'enable');
    model := pgbert._check_new_registration(tbl, strategy, distance, model_name);
    IF EXISTS (SELECT 1 FROM pgbert.embedded_tables e WHERE e.relid = tbl) THEN
        PERFORM pgbert._same_registration(tbl, source_column, vector_column, strategy, lexical, chunk_tokens,
                                          overlap_tokens, distance);
        RETURN;  -- the same arguments: nothing to do (else _same_registration raised)
    END IF;
    IF chunk_tokens IS NOT NULL THEN
        -- chunks are written after the statement, in batched model calls, or by the queue's workers
        strategy := CASE WHEN strategy IN ('queue', 'auto') THEN strategy ELSE 'batch' END;
        PERFORM pgbert._check_strategy(tbl, strategy, key_col, true);
        chunks := pgbert._register_chunks(tbl, model, key_col, source_column, vector_column, lexical,
                                          chunk_tokens, overlap_tokens);
    ELSE
        PERFORM pgbert._check_strategy(tbl, strategy, key_col, false);
        vector_column := coalesce(vector_column, pgbert._suffixed(source_column, '_embedding'));
        PERFORM pgbert._ensure_vector_column(tbl, vector_column, model);
        IF strategy = 'batch' AND key_col IS NULL THEN
            RAISE NOTICE 'pgbert: % has no single-column primary key: embedding row by row', tbl;
            strategy := 'row';
        END IF;
    END IF;
    vector_column := coalesce(vector_column, 'embedding');
    lexical_col := CASE WHEN lexical IS NULL THEN NULL WHEN chunks IS NOT NULL THEN 'lexemes'
                        ELSE pgbert._ensure_lexical_column(tbl, source_column, lexical) END;
    INSERT INTO pgbert.embedded_tables (relid, source_column, vector_column, key_column, strategy, metric,
                                        dimension, model_name, enabled_by, lexical_config, lexical_column,
                                        chunk_tokens, overlap_tokens, chunk_relid, source_attnum, vector_attnum,
                                        key_attnum, lexical_attnum)
    VALUES (tbl, source_column, vector_column, key_col, strategy,
            coalesce(distance, CASE WHEN model.normalize THEN 'cosine' ELSE 'l2' END),
            model.dimension, model.name, pg_get_userbyid(pgbert._caller()), lexical, lexical_col, chunk_tokens,
            CASE WHEN chunks IS NOT NULL THEN overlap_tokens END, chunks, pgbert._attnum(tbl, source_column),
            CASE WHEN chunks IS NULL THEN pgbert._attnum(tbl, vector_column) END, pgbert._attnum(tbl, key_col),
            CASE WHEN chunks IS NULL THEN pgbert._attnum(tbl, lexical_col) END);
    PERFORM pgbert._reinstall(tbl);  -- its triggers, and its partitions' (70_events.sql)
    IF chunks IS NULL THEN  -- (_register_chunks says what it did)
        RAISE NOTICE 'pgbert: % embeds %.% into % (model %, % strategy)', tbl, tbl, quote_ident(source_column),
              quote_ident(vector_column), model.name, strategy;
    END IF;
    IF strategy IN ('queue', 'auto') THEN
        PERFORM pgbert._enqueue_existing(tbl);  -- the workers backfill a queued table
    END IF;
END
$fn$;
COMMENT ON FUNCTION pgbert.setup_embedding(regclass, name, name, text, text, integer, integer, text, text) IS
    'Table owner: the first step of enable_embedding (which also backfills and builds the index): checks the arguments, adds the vector column (or the chunk table), records the table and installs its triggers.';
DROP FUNCTION IF EXISTS pgbert._register(regclass, name, name, text, text, integer, integer);  -- before 0010
DROP FUNCTION IF EXISTS pgbert.setup_embedding(regclass, name, name, text, text, integer, integer);
DROP FUNCTION IF EXISTS pgbert.setup_embedding(regclass, name, name, text, text, integer, integer, text);  -- before 0012
DROP PROCEDURE IF EXISTS pgbert.enable_embedding(regclass, name, name, text, boolean, boolean, integer, text, integer,
                                                 integer, text);
DROP PROCEDURE IF EXISTS pgbert.enable_embedding(regclass, name, name, text, boolean, boolean, integer, text, integer,
                                                 integer);

-- The HNSW index with the metric's operator class, and the GIN index of the lexical side. Their names are
-- chosen by PostgreSQL (never one taken in advance); an index already on the column is kept.
CREATE OR REPLACE FUNCTION pgbert._build_index(tbl regclass) RETURNS name
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    RETURN pgbert._index_vectors(pgbert._embedding_config(tbl));
END
$fn$;
COMMENT ON FUNCTION pgbert._build_index(regclass) IS
    'Internal: builds the HNSW index of an embedding-enabled table (or keeps the one there) and records its name; and the GIN index of its lexical side.';

-- The indexes of cfg's vectors: its table's, or its chunk table's (a model change's next one: 56_model_change_chunks.sql).
CREATE OR REPLACE FUNCTION pgbert._index_vectors(cfg pgbert.embedded_tables) RETURNS name
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    vectors regclass := coalesce(cfg.chunk_relid, cfg.relid);  -- where the vectors are: the chunks of a chunked table
    idx     name := pgbert._index_on(vectors, cfg.vector_column, 'hnsw');
BEGIN
    IF idx IS NOT NULL THEN
        RAISE NOTICE 'pgbert: % already has an HNSW index on %: %', vectors, quote_ident(cfg.vector_column), idx;
    ELSE
        RAISE NOTICE 'pgbert: building an HNSW index on %.%', vectors, quote_ident(cfg.vector_column);
        EXECUTE format('CREATE INDEX ON %s USING hnsw (%I %s)', vectors, cfg.vector_column,
                       pgbert._operator_class(cfg.metric));
        idx := pgbert._index_on(vectors, cfg.vector_column, 'hnsw');
    END IF;
    IF cfg.lexical_column IS NOT NULL AND pgbert._index_on(vectors, cfg.lexical_column, 'gin') IS NULL THEN
        RAISE NOTICE 'pgbert: building a GIN index on %.%', vectors, quote_ident(cfg.lexical_column);
        EXECUTE format('CREATE INDEX ON %s USING gin (%I)', vectors, cfg.lexical_column);
    END IF;
    RETURN idx;
END
$fn$;
COMMENT ON FUNCTION pgbert._index_vectors(pgbert.embedded_tables) IS
    'Internal: builds the HNSW index (and the GIN index of the lexical side) where cfg''s vectors are, or keeps those there.';

-- A procedure without a SET clause, because only those may commit (between backfill batches); it pins
-- search_path itself.
CREATE OR REPLACE PROCEDURE pgbert.enable_embedding(
    tbl           regclass,
    source_column name,
    vector_column name DEFAULT NULL,
    strategy      text DEFAULT 'batch',
    build_index   boolean DEFAULT true,
    backfill      boolean DEFAULT true,
    batch_size    integer DEFAULT 500,
    lexical       text DEFAULT NULL,
    chunk_tokens  integer DEFAULT NULL,
    overlap_tokens integer DEFAULT NULL,
    distance      text DEFAULT NULL,
    model         text DEFAULT NULL)
LANGUAGE plpgsql
AS $proc$
DECLARE
    caller_path text := pg_catalog.current_setting('search_path');
BEGIN
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    PERFORM pgbert._prove_caller(tbl, true);  -- who calls: the definer step checks this role owns the table
    PERFORM pgbert.setup_embedding(tbl, source_column, vector_column, strategy, lexical, chunk_tokens,
                                   coalesce(overlap_tokens, least(32, chunk_tokens / 8)), lower(distance), model);
    PERFORM pgbert._prove_caller(tbl, false);
    IF backfill AND (SELECT e.strategy FROM pgbert.enabled_tables e WHERE e.relid = tbl) IN ('queue', 'auto') THEN
        -- existing rows were queued (the workers embed them); the lexical side is filled now
        WHILE pgbert._backfill_lexemes_batch(tbl, batch_size) > 0 LOOP
        END LOOP;
    ELSIF backfill THEN
        CALL pgbert.backfill(tbl, batch_size);
    END IF;
    IF build_index THEN
        PERFORM pgbert._build_index(tbl);
    END IF;
    PERFORM pg_catalog.set_config('search_path', caller_path, true);
END
$proc$;
COMMENT ON PROCEDURE pgbert.enable_embedding(regclass, name, name, text, boolean, boolean, integer, text, integer, integer, text, text) IS
    'Table owner: rows embed themselves from now on (vector column <source>_embedding added if missing), existing rows are backfilled in committed batches, then an HNSW index is built. lexical => ''japanese'' | ''auto'' | a text search configuration adds a lexical side (<source>_lexemes, GIN) for hybrid search. chunk_tokens => n (overlap_tokens => m, default n/8 up to 32) embeds long texts in chunks of n tokens, kept in <table>_chunks; search() then returns each row''s best passage. distance => ''cosine'' | ''l2'' | ''inner_product'' picks the index''s operator (<=>, <->, <#>; default: cosine for normalised models): write that operator in your queries. strategy => ''queue'' commits writes without calling the model (workers embed them: pgbert.process_queue), ''auto'' embeds a statement''s rows inline while they fit auto_inline_tokens and queues the rest. model => a name from pgbert.models (default: the default model): the table keeps it until pgbert.change_model.';

-- Run as its caller, who proves who it is (_prove_caller), then as pgbert's owner for the table's owner only:
-- drops exactly what pgbert made for this table (its triggers, its write-back function, the chunk table it
-- recorded) and, asked to, the columns it added.
CREATE OR REPLACE PROCEDURE pgbert.disable_embedding(tbl regclass, drop_column boolean DEFAULT false)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $proc$
BEGIN
    PERFORM pgbert._prove_caller(tbl, true);
    PERFORM pgbert.teardown_embedding(tbl, drop_column);
    PERFORM pgbert._prove_caller(tbl, false);
END
$proc$;
COMMENT ON PROCEDURE pgbert.disable_embedding(regclass, boolean) IS
    'Table owner: rows stop embedding themselves (triggers removed); the vectors stay unless drop_column => true. A chunked table''s chunk table is dropped.';

CREATE OR REPLACE FUNCTION pgbert.teardown_embedding(tbl regclass, drop_column boolean) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET check_function_bodies = on
AS $fn$
DECLARE
    cfg pgbert.embedded_tables;
BEGIN
    PERFORM pgbert._require_owner(tbl, 'disable');
    cfg := pgbert._embedding_config(tbl);
    PERFORM pgbert._drop_triggers(tbl);
    DELETE FROM pgbert.embedded_tables e WHERE e.relid = tbl;
    PERFORM pgbert._drop_writers(tbl);
    IF to_regclass('pgbert.embedding_queue') IS NOT NULL THEN  -- (0011) rows a worker holds: it finds them unregistered
        DELETE FROM pgbert.embedding_queue q WHERE q.relid = tbl;
        DELETE FROM pgbert.queue_batches b WHERE b.relid = tbl;
    END IF;
    IF cfg.chunk_relid IS NOT NULL THEN  -- chunks are pgbert's storage, not the user's columns (a model change's too)
        PERFORM pgbert._drop_chunk_tables(ARRAY[cfg.chunk_relid, cfg.next_chunk_relid, cfg.old_chunk_relid]);
    ELSIF drop_column THEN
        EXECUTE format('ALTER TABLE %s DROP COLUMN IF EXISTS %I', tbl, cfg.vector_column);
        IF cfg.lexical_column IS NOT NULL THEN
            EXECUTE format('ALTER TABLE %s DROP COLUMN IF EXISTS %I', tbl, cfg.lexical_column);
        END IF;
    END IF;
END
$fn$;
COMMENT ON FUNCTION pgbert.teardown_embedding(regclass, boolean) IS
    'Table owner (through disable_embedding): drops the triggers, write-back function and chunk table pgbert made for the table, and with drop_column its vector and lexemes columns.';
