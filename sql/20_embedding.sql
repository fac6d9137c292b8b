-- ---------------------------------------------------------------------------------------------------
-- Auto-embedding tables and search().
-- ---------------------------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION pgbert.embed_statement_start() RETURNS trigger
LANGUAGE plpython3u
SET search_path = pg_catalog, pgbert, pg_temp
AS $$
if "pgbert" not in GD:
    plpy.execute("SELECT pgbert._boot()")
GD["pgbert"].statement_start(GD, TD)
$$;

CREATE OR REPLACE FUNCTION pgbert.embed_row() RETURNS trigger
LANGUAGE plpython3u
SET search_path = pg_catalog, pgbert, pg_temp
AS $$
if "pgbert" not in GD:
    plpy.execute("SELECT pgbert._boot()")
return GD["pgbert"].row_trigger(plpy, GD, TD)
$$;

-- The registry row of an embedding-enabled table, or a clear error.
CREATE OR REPLACE FUNCTION pgbert._embedding_config(tbl regclass) RETURNS pgbert.embedded_tables
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pgbert, pg_temp
AS $fn$
DECLARE
    cfg pgbert.embedded_tables;
BEGIN
    SELECT * INTO cfg FROM pgbert.embedded_tables WHERE relid = tbl;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'pgbert: embedding is not enabled on %', tbl
              USING ERRCODE = 'object_not_in_prerequisite_state',
                    HINT = 'CALL pgbert.enable_embedding(table, source_column) first.';
    END IF;
    RETURN cfg;
END
$fn$;

-- Only a table's owner (or a member of the owner role, e.g. a superuser) turns embedding on or off.
CREATE OR REPLACE FUNCTION pgbert._require_owner(tbl regclass, action text) RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pgbert, pg_temp
AS $fn$
BEGIN
    IF NOT pg_has_role(current_user, (SELECT relowner FROM pg_class WHERE oid = tbl), 'USAGE') THEN
        RAISE EXCEPTION 'pgbert: must be the owner of table % to % embedding on it', tbl, action
              USING ERRCODE = 'insufficient_privilege';
    END IF;
END
$fn$;

-- Name of the per-table AFTER STATEMENT function (in the table's schema, owned by the table's owner).
CREATE OR REPLACE FUNCTION pgbert._batch_function_name(tbl regclass) RETURNS name
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT ('pgbert_embed_' || tbl::oid)::name $$;

-- The set-up half of enable_embedding(): checks, vector column, triggers, registry row.
CREATE OR REPLACE FUNCTION pgbert._enable_embedding(
    tbl           regclass,
    source_column name,
    vector_column name,
    strategy      text,
    build_index   boolean)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pgbert, @vector_schema@, pg_temp
AS $proc$
DECLARE
    rel         record;
    model       record;
    src_type    text;
    vec_type    text;
    vec_typmod  integer;
    key_col     name;
    metric      text;
    index_name  name;
    fn          name;
BEGIN
    SELECT c.oid, c.relname, c.relkind, n.nspname, c.relowner INTO rel
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = tbl;
    IF rel.relkind NOT IN ('r', 'p') THEN
        RAISE EXCEPTION 'pgbert: % is not a table', tbl USING ERRCODE = 'wrong_object_type';
    END IF;
    PERFORM pgbert._require_owner(tbl, 'enable');
    IF strategy NOT IN ('batch', 'row') THEN
        RAISE EXCEPTION 'pgbert: strategy must be ''batch'' or ''row'', not %', quote_literal(strategy)
              USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT * INTO model FROM pgbert.models WHERE active;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'pgbert: no active model'
              USING ERRCODE = 'object_not_in_prerequisite_state',
                    HINT = 'An administrator registers one with SELECT pgbert.use_model(''/path/to/bundle'');';
    END IF;
    IF EXISTS (SELECT 1 FROM pgbert.embedded_tables e WHERE e.relid = tbl) THEN
        RAISE EXCEPTION 'pgbert: embedding is already enabled on %', tbl
              USING ERRCODE = 'duplicate_object', HINT = 'CALL pgbert.disable_embedding(...) first to change it.';
    END IF;

    SELECT format_type(a.atttypid, NULL) INTO src_type
      FROM pg_attribute a WHERE a.attrelid = tbl AND a.attname = source_column AND a.attnum > 0 AND NOT a.attisdropped;
    IF src_type IS NULL THEN
        RAISE EXCEPTION 'pgbert: table % has no column %', tbl, quote_ident(source_column)
              USING ERRCODE = 'undefined_column';
    ELSIF src_type NOT IN ('text', 'character varying', 'character') THEN
        RAISE EXCEPTION 'pgbert: column %.% is %, not text', tbl, quote_ident(source_column), src_type
              USING ERRCODE = 'datatype_mismatch';
    END IF;

    SELECT format_type(a.atttypid, NULL), a.atttypmod INTO vec_type, vec_typmod
      FROM pg_attribute a WHERE a.attrelid = tbl AND a.attname = vector_column AND a.attnum > 0 AND NOT a.attisdropped;
    IF vec_type IS NULL THEN
        EXECUTE format('ALTER TABLE %s ADD COLUMN %I vector(%s)', tbl, vector_column, model.dimension);
    ELSIF vec_type NOT LIKE '%vector' OR vec_typmod NOT IN (-1, model.dimension) THEN
        RAISE EXCEPTION 'pgbert: column %.% is %, but the active model % needs vector(%)', tbl,
              quote_ident(vector_column), format_type((SELECT atttypid FROM pg_attribute WHERE attrelid = tbl
              AND attname = vector_column), vec_typmod), model.name, model.dimension
              USING ERRCODE = 'datatype_mismatch';
    END IF;

    -- Batching needs a single-column key to write the vectors back to the new rows.
    SELECT a.attname INTO key_col
      FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
     WHERE i.indrelid = tbl AND i.indnkeyatts = 1 AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL
       AND a.attnotnull
     ORDER BY i.indisprimary DESC LIMIT 1;
    IF strategy = 'batch' AND key_col IS NULL THEN
        RAISE NOTICE 'pgbert: % has no single-column primary key: embedding row by row', tbl;
        strategy := 'row';
    END IF;

    IF strategy = 'batch' AND NOT has_function_privilege(rel.relowner, 'public.embed_batch(text[])', 'EXECUTE') THEN
        RAISE EXCEPTION 'pgbert: the owner of % (%) may not embed', tbl, rel.relowner::regrole
              USING ERRCODE = 'insufficient_privilege',
                    HINT = format('GRANT pgbert_user TO %I;', pg_get_userbyid(rel.relowner));
    END IF;

    IF strategy = 'batch' THEN
        -- Runs as the table's owner (SECURITY DEFINER, owned by the caller, who owns the table): a role
        -- that may INSERT gets its rows embedded without UPDATE privilege. It touches only the rows of
        -- the statement that fired it, found through the transition table.
        fn := pgbert._batch_function_name(tbl);
        EXECUTE format($f$
            CREATE OR REPLACE FUNCTION %1$I.%2$I() RETURNS trigger
            LANGUAGE plpgsql SECURITY DEFINER
            SET search_path = pg_catalog, pgbert, @vector_schema@, pg_temp
            AS $body$
            BEGIN
                UPDATE %3$s AS t SET %4$I = e.v
                  FROM (SELECT u.k, u.v
                          FROM (SELECT array_agg(r.k) AS ks, array_agg(r.s) AS ts
                                  FROM (SELECT n.%5$I AS k, n.%6$I AS s,
                                               (row_number() OVER () - 1) / 1024 AS chunk
                                          FROM pgbert_new_rows n
                                         WHERE n.%6$I IS NOT NULL AND n.%4$I IS NULL) r
                                 GROUP BY r.chunk) a,
                               unnest(a.ks, public.embed_batch(a.ts)) AS u(k, v)) e
                 WHERE t.%5$I = e.k;
                RETURN NULL;
            END
            $body$ $f$, rel.nspname, fn, format('%I.%I', rel.nspname, rel.relname), vector_column, key_col,
            source_column);
        EXECUTE format('REVOKE ALL ON FUNCTION %I.%I() FROM PUBLIC', rel.nspname, fn);
        -- Owned by the table's owner even when an administrator enables it: it must never run as a superuser.
        EXECUTE format('ALTER FUNCTION %I.%I() OWNER TO %I', rel.nspname, fn, pg_get_userbyid(rel.relowner));
        EXECUTE format('CREATE TRIGGER pgbert_embed_start BEFORE INSERT ON %s FOR EACH STATEMENT '
                       'EXECUTE FUNCTION pgbert.embed_statement_start()', tbl);
        EXECUTE format('CREATE TRIGGER pgbert_embed_batch AFTER INSERT ON %s REFERENCING NEW TABLE AS pgbert_new_rows '
                       'FOR EACH STATEMENT EXECUTE FUNCTION %I.%I()', tbl, rel.nspname, fn);
    END IF;
    EXECUTE format('CREATE TRIGGER pgbert_embed_insert BEFORE INSERT ON %s FOR EACH ROW '
                   'EXECUTE FUNCTION pgbert.embed_row(%L, %L, %L)', tbl, source_column, vector_column, strategy);
    EXECUTE format('CREATE TRIGGER pgbert_embed_update BEFORE UPDATE OF %I ON %s FOR EACH ROW '
                   'WHEN (OLD.%I IS DISTINCT FROM NEW.%I) EXECUTE FUNCTION pgbert.embed_row(%L, %L, ''row'')',
                   source_column, tbl, source_column, source_column, source_column, vector_column);

    metric := CASE WHEN model.normalize THEN 'cosine' ELSE 'l2' END;
    IF build_index THEN
        index_name := left(rel.relname || '_' || vector_column, 50) || '_hnsw';
    END IF;
    INSERT INTO pgbert.embedded_tables (relid, source_column, vector_column, key_column, strategy, metric,
                                        dimension, model_name, index_name)
    VALUES (tbl, source_column, vector_column, key_col, strategy, metric, model.dimension, model.name, index_name);

    RAISE NOTICE 'pgbert: % embeds %.% into % (model %, % strategy, % distance)', tbl,
        tbl, quote_ident(source_column), quote_ident(vector_column), model.name, strategy, metric;
END
$proc$;

-- HNSW index with the operator class of the table's metric (cosine for normalised models).
CREATE OR REPLACE FUNCTION pgbert._build_index(tbl regclass) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pgbert, @vector_schema@, pg_temp
AS $fn$
DECLARE
    cfg record;
BEGIN
    SELECT * INTO cfg FROM pgbert.embedded_tables WHERE relid = tbl;
    IF cfg.index_name IS NULL THEN
        RETURN;
    END IF;
    RAISE NOTICE 'pgbert: building HNSW index % on %', cfg.index_name, tbl;
    EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON %s USING hnsw (%I %s)', cfg.index_name, tbl, cfg.vector_column,
                   CASE cfg.metric WHEN 'cosine' THEN 'vector_cosine_ops' ELSE 'vector_l2_ops' END);
END
$fn$;

-- Turns on auto-embedding for a table: adds the vector column if missing (the active model's
-- dimension), installs the triggers, embeds the rows already there batch by batch (committing
-- between batches when called on its own), then builds the HNSW index.
-- A procedure without a SET clause, because only those may commit; it pins search_path itself.
CREATE OR REPLACE PROCEDURE pgbert.enable_embedding(
    tbl           regclass,
    source_column name,
    vector_column name DEFAULT NULL,
    strategy      text DEFAULT 'batch',
    build_index   boolean DEFAULT true,
    backfill      boolean DEFAULT true,
    batch_size    integer DEFAULT 500)
LANGUAGE plpgsql
AS $proc$
DECLARE
    caller_path text := pg_catalog.current_setting('search_path');
BEGIN
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pgbert, pg_temp', true);
    PERFORM pgbert._enable_embedding(tbl, source_column,
                                     coalesce(vector_column, (source_column || '_embedding')::name),
                                     strategy, build_index);
    IF backfill THEN
        CALL pgbert.backfill(tbl, batch_size);
    END IF;
    IF build_index THEN
        PERFORM pgbert._build_index(tbl);
    END IF;
    PERFORM pg_catalog.set_config('search_path', caller_path, true);
END
$proc$;

-- One backfill batch: embeds up to batch_size rows that have text but no vector; returns how many.
-- ctid addresses the rows without needing a key; a row updated meanwhile is simply picked up again.
CREATE OR REPLACE FUNCTION pgbert._backfill_batch(tbl regclass, batch_size integer) RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pgbert, @vector_schema@, pg_temp
AS $fn$
DECLARE
    cfg record;
    n   bigint;
BEGIN
    cfg := pgbert._embedding_config(tbl);
    IF batch_size IS NULL OR batch_size < 1 THEN
        RAISE EXCEPTION 'pgbert: batch_size must be positive' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    EXECUTE format($q$
        WITH todo AS (SELECT ctid AS c, %2$I AS s FROM %1$s WHERE %3$I IS NULL AND %2$I IS NOT NULL LIMIT %4$s),
             batch AS (SELECT array_agg(c) AS cs, array_agg(s) AS ts FROM todo),
             vecs AS (SELECT u.c, u.v FROM batch, unnest(batch.cs, public.embed_batch(batch.ts)) AS u(c, v))
        UPDATE %1$s AS t SET %3$I = vecs.v FROM vecs WHERE t.ctid = vecs.c$q$,
        tbl, cfg.source_column, cfg.vector_column, batch_size);
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$fn$;

CREATE OR REPLACE FUNCTION pgbert.pending_rows(tbl regclass) RETURNS bigint
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pgbert, pg_temp
AS $fn$
DECLARE
    cfg record;
    n   bigint;
BEGIN
    SELECT * INTO cfg FROM pgbert.embedded_tables WHERE relid = tbl;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    EXECUTE format('SELECT count(*) FROM %s WHERE %I IS NULL AND %I IS NOT NULL', tbl, cfg.vector_column,
                   cfg.source_column) INTO n;
    RETURN n;
END
$fn$;
COMMENT ON FUNCTION pgbert.pending_rows(regclass) IS 'Rows of an embedding-enabled table that have text but no vector yet.';

-- Embeds every row that has text but no vector, batch_size rows per transaction, reporting progress.
-- Commits between batches when CALLed on its own; inside a transaction block it runs as one.
CREATE OR REPLACE PROCEDURE pgbert.backfill(tbl regclass, batch_size integer DEFAULT 500)
LANGUAGE plpgsql
AS $proc$
DECLARE
    caller_path text := pg_catalog.current_setting('search_path');
    -- A CALL that began its own transaction may commit; one inside BEGIN ... COMMIT may not.
    may_commit  boolean := pg_catalog.transaction_timestamp() OPERATOR(pg_catalog.=) pg_catalog.statement_timestamp();
    total       bigint;
    done        bigint := 0;
    n           bigint;
    started     timestamptz := pg_catalog.clock_timestamp();
BEGIN
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pgbert, pg_temp', true);
    total := pgbert.pending_rows(tbl);
    IF total IS NULL THEN
        RAISE EXCEPTION 'pgbert: embedding is not enabled on %', tbl
              USING ERRCODE = 'object_not_in_prerequisite_state',
                    HINT = 'CALL pgbert.enable_embedding(table, source_column) first.';
    END IF;
    IF total > 0 THEN
        RAISE NOTICE 'pgbert: embedding % existing rows of % in batches of %', total, tbl, batch_size;
    END IF;
    LOOP
        n := pgbert._backfill_batch(tbl, batch_size);
        EXIT WHEN n = 0;
        done := done + n;
        RAISE NOTICE 'pgbert: %: % / % rows embedded (% rows/s)', tbl, done, total,
            round(done / greatest(extract(epoch FROM clock_timestamp() - started), 0.001));
        IF may_commit THEN
            COMMIT;
            PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pgbert, pg_temp', true);
        END IF;
    END LOOP;
    PERFORM pg_catalog.set_config('search_path', caller_path, true);
END
$proc$;

CREATE OR REPLACE PROCEDURE pgbert.disable_embedding(tbl regclass, drop_column boolean DEFAULT false)
LANGUAGE plpgsql
SET search_path = pg_catalog, pgbert, @vector_schema@, pg_temp
AS $proc$
DECLARE
    cfg record;
    nsp name;
BEGIN
    cfg := pgbert._embedding_config(tbl);
    PERFORM pgbert._require_owner(tbl, 'disable');
    SELECT n.nspname INTO nsp FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = tbl;
    EXECUTE format('DROP TRIGGER IF EXISTS pgbert_embed_start ON %s', tbl);
    EXECUTE format('DROP TRIGGER IF EXISTS pgbert_embed_batch ON %s', tbl);
    EXECUTE format('DROP TRIGGER IF EXISTS pgbert_embed_insert ON %s', tbl);
    EXECUTE format('DROP TRIGGER IF EXISTS pgbert_embed_update ON %s', tbl);
    EXECUTE format('DROP FUNCTION IF EXISTS %I.%I()', nsp, pgbert._batch_function_name(tbl));
    IF drop_column THEN
        EXECUTE format('ALTER TABLE %s DROP COLUMN IF EXISTS %I', tbl, cfg.vector_column);
    END IF;
    DELETE FROM pgbert.embedded_tables WHERE relid = tbl;
END
$proc$;

-- The k rows of an embedding-enabled table nearest to a query text. The query is embedded once and
-- passed as a parameter, so the planner uses the HNSW index. `distance`: smaller is nearer (cosine
-- distance for normalised models, L2 otherwise). hnsw.ef_search is raised to k when it is lower.
CREATE OR REPLACE FUNCTION public.search(query text, k integer, tbl regclass)
RETURNS TABLE (id text, content text, distance double precision, "row" jsonb)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pgbert, @vector_schema@, pg_temp
AS $fn$
DECLARE
    cfg record;
    q   vector;
    op  text;
    old_ef text := current_setting('hnsw.ef_search', true);
BEGIN
    IF k IS NULL OR k < 1 THEN
        RAISE EXCEPTION 'pgbert: k must be at least 1, got %', coalesce(k::text, 'NULL')
              USING ERRCODE = 'invalid_parameter_value';
    END IF;
    cfg := pgbert._embedding_config(tbl);
    IF query IS NULL THEN
        RETURN;
    END IF;
    q := public.embed(query);
    op := CASE cfg.metric WHEN 'cosine' THEN '<=>' ELSE '<->' END;
    IF coalesce(old_ef, '40')::integer < least(k, 1000) THEN
        PERFORM set_config('hnsw.ef_search', least(k, 1000)::text, true);
    END IF;
    -- The k nearest rows first (an index scan), then their other columns: building the jsonb only for
    -- those k rows keeps a small table's sequential scan from converting every row's vector to text.
    RETURN QUERY EXECUTE format(
        'SELECT (t.%1$I)::text, (t.%2$I)::text, n.distance::float8, to_jsonb(t) - %3$L
           FROM (SELECT ctid AS row_id, %3$I OPERATOR(%5$s.%4$s) $1 AS distance
                   FROM %6$s WHERE %3$I IS NOT NULL
                  ORDER BY %3$I OPERATOR(%5$s.%4$s) $1 LIMIT $2) AS n
           JOIN %6$s AS t ON t.ctid = n.row_id
          ORDER BY n.distance',
        coalesce(cfg.key_column, cfg.source_column), cfg.source_column, cfg.vector_column, op,
        '@vector_schema@', tbl)
        USING q, k;
    IF old_ef IS NOT NULL THEN
        PERFORM set_config('hnsw.ef_search', old_ef, true);
    END IF;
END
$fn$;
COMMENT ON FUNCTION public.search(text, integer, regclass) IS
    'The k nearest rows of an embedding-enabled table: id (its key, as text), content (the source text), distance (smaller is nearer), row (the whole row as jsonb, without the vector).';

-- The tutorial's form: search the text_embeddings table.
CREATE OR REPLACE FUNCTION public.search(query text, k integer DEFAULT 10)
RETURNS TABLE (id bigint, text text, distance double precision)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pgbert, @vector_schema@, pg_temp
AS $fn$
    SELECT s.id::bigint, s.content, s.distance FROM public.search(query, k, 'public.text_embeddings'::text::regclass) AS s
$fn$;
COMMENT ON FUNCTION public.search(text, integer) IS
    'The k rows of text_embeddings nearest to the query: id, text, distance (smaller is nearer).';

-- Forget tables that are dropped, with their batch write-back functions.
CREATE OR REPLACE FUNCTION pgbert.forget_dropped_tables() RETURNS event_trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pgbert, pg_temp
AS $fn$
DECLARE
    gone record;
BEGIN
    IF to_regclass('pgbert.embedded_tables') IS NULL THEN
        RETURN;  -- pgbert itself is being removed
    END IF;
    FOR gone IN
        DELETE FROM pgbert.embedded_tables e
         USING pg_event_trigger_dropped_objects() d
         WHERE d.classid = 'pg_class'::regclass AND d.objid = e.relid::oid AND d.objsubid = 0
        RETURNING d.schema_name, pgbert._batch_function_name(d.objid::regclass) AS fn
    LOOP
        EXECUTE format('DROP FUNCTION IF EXISTS %I.%I()', gone.schema_name, gone.fn);
    END LOOP;
END
$fn$;
DROP EVENT TRIGGER IF EXISTS pgbert_forget_dropped_tables;
CREATE EVENT TRIGGER pgbert_forget_dropped_tables ON sql_drop
    EXECUTE FUNCTION pgbert.forget_dropped_tables();

GRANT SELECT ON pgbert.embedded_tables TO PUBLIC;
GRANT INSERT, UPDATE, DELETE ON pgbert.embedded_tables TO pgbert_user;  -- rows limited to own tables by RLS
REVOKE ALL ON FUNCTION public.search(text, integer, regclass), public.search(text, integer),
                       pgbert.pending_rows(regclass) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.search(text, integer, regclass), public.search(text, integer),
                          pgbert.pending_rows(regclass) TO pgbert_user;
REVOKE ALL ON PROCEDURE pgbert.enable_embedding(regclass, name, name, text, boolean, boolean, integer),
                        pgbert.disable_embedding(regclass, boolean), pgbert.backfill(regclass, integer) FROM PUBLIC;
GRANT EXECUTE ON PROCEDURE pgbert.enable_embedding(regclass, name, name, text, boolean, boolean, integer),
                           pgbert.disable_embedding(regclass, boolean), pgbert.backfill(regclass, integer) TO pgbert_user;

-- The original tutorial's table, with auto-embedding: created at install when missing (with the active
-- model's dimension), adopted when it already exists. Rows that already have a vector keep it.
CREATE OR REPLACE PROCEDURE pgbert.install_text_embeddings()
LANGUAGE plpgsql
AS $proc$
DECLARE
    dim integer;
BEGIN
    SELECT dimension INTO dim FROM pgbert.models WHERE active;
    IF dim IS NULL OR EXISTS (SELECT 1 FROM pgbert.embedded_tables WHERE relid = pg_catalog.to_regclass('public.text_embeddings')) THEN
        RETURN;
    END IF;
    IF pg_catalog.to_regclass('public.text_embeddings') IS NULL THEN
        EXECUTE pg_catalog.format('CREATE TABLE public.text_embeddings (id bigserial PRIMARY KEY, text text, '
                                  'embedding @vector_schema@.vector(%s))', dim);
    END IF;
    CALL pgbert.enable_embedding('public.text_embeddings', 'text', 'embedding', backfill => false);
END
$proc$;
REVOKE ALL ON PROCEDURE pgbert.install_text_embeddings() FROM PUBLIC;
