-- ---------------------------------------------------------------------------------------------------
-- Runtime: loading the Python package, embed(), embed_batch(), model registration, status.
-- Every PL/Python body is a few lines over pgbert_runtime.sql_api (plpython/), unit-tested without a
-- database. search_path is pinned to pg_catalog, pg_temp everywhere; every other name is qualified.
-- ---------------------------------------------------------------------------------------------------

-- Puts the admin-configured runtime environment on sys.path and imports pgbert_runtime once per
-- backend. Only pgbert.settings (python_path: writable by the installing superuser alone) decides what
-- is imported. It loads no model: trigger bodies, which run as whichever role inserts, call it.
CREATE OR REPLACE FUNCTION pgbert._boot() RETURNS void
LANGUAGE plpython3u VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
import sys
if "pgbert_api" in GD:
    return
row = plpy.execute("SELECT value FROM pgbert.settings WHERE name = 'python_path'")
for entry in reversed((row[0]["value"] or "").split(":") if row else []):
    if entry and entry not in sys.path:
        sys.path.insert(0, entry)
try:
    import pgbert_runtime.sql_api as api
    import pgbert_runtime.triggers as triggers
except ImportError as exc:
    plpy.error(f"pgbert: cannot import the pgbert runtime ({exc})",
               hint="An administrator sets the runtime environment's site-packages with "
                    "UPDATE pgbert.settings SET value = '/path/site-packages' WHERE name = 'python_path'; "
                    "`pgbert db migrate` sets it for the local cluster.")
GD["pgbert_triggers"] = triggers
GD["pgbert_api"] = api
$$;
COMMENT ON FUNCTION pgbert._boot() IS
    'Internal: imports the pgbert runtime from the admin-set python_path, once per backend. Loads no model.';

-- The model, in schema pgbert (where nobody else can create a look-alike overload): pgbert's own code calls
-- these, with exact argument types; the public embed() and embed_batch() below are thin wrappers for users.
-- PARALLEL UNSAFE (the default) on purpose: PL/Python runs every plpy.execute in a subtransaction,
-- which PostgreSQL forbids in parallel mode; a query that calls embed() must not go parallel.
-- COST: a model call costs as much as reading thousands of rows, so the planner avoids plans that call
-- embed() once per row (ORDER BY embedding <=> embed('...') under a sequential scan); the vector cache
-- (embed_cache_mb) makes such calls after the first cheap anyway.
CREATE OR REPLACE FUNCTION pgbert.embed(text text, kind text) RETURNS @vector_schema@.vector
LANGUAGE plpython3u STABLE STRICT COST 1000000
SET search_path = pg_catalog, pg_temp
AS $$
if "pgbert_api" not in GD:
    plpy.execute("SELECT pgbert._boot()")
return GD["pgbert_api"].embed(plpy, text, kind)
$$;
COMMENT ON FUNCTION pgbert.embed(text, text) IS
    'Embeds one text as a ''query'' or a ''document'' with the active model (what public.embed() calls).';

CREATE OR REPLACE FUNCTION pgbert.embed(text text, kind text, model text) RETURNS @vector_schema@.vector
LANGUAGE plpython3u STABLE COST 1000000
SET search_path = pg_catalog, pg_temp
AS $$
if "pgbert_api" not in GD:
    plpy.execute("SELECT pgbert._boot()")
return GD["pgbert_api"].embed(plpy, text, kind, model=model)
$$;
COMMENT ON FUNCTION pgbert.embed(text, text, text) IS
    'Embeds one text as a ''query'' or a ''document'' with the model of that name (NULL: the default model): what search() and the triggers of a table call with the table''s model.';

-- VOLATILE, unlike embed(): the planner evaluates a STABLE argument of unnest() once more to estimate its
-- rows, which ran the model twice for unnest(embed_batch(...)). (embed() stays STABLE so that
-- ORDER BY embedding <=> embed('...') can use the index; its cache makes a second call free.)
CREATE OR REPLACE FUNCTION pgbert.embed_batch(texts text[], kind text) RETURNS @vector_schema@.vector[]
LANGUAGE plpython3u VOLATILE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
if "pgbert_api" not in GD:
    plpy.execute("SELECT pgbert._boot()")
return GD["pgbert_api"].embed_batch(plpy, texts, kind)
$$;
CREATE OR REPLACE FUNCTION pgbert.embed_batch(texts text[], kind text, model text) RETURNS @vector_schema@.vector[]
LANGUAGE plpython3u VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
if "pgbert_api" not in GD:
    plpy.execute("SELECT pgbert._boot()")
return GD["pgbert_api"].embed_batch(plpy, texts, kind, model=model)
$$;
COMMENT ON FUNCTION pgbert.embed_batch(text[], text, text) IS
    'Embeds many texts of a kind with the model of that name (NULL: the default model): what a table''s triggers, backfill and queue call with the table''s model.';
COMMENT ON FUNCTION pgbert.embed_batch(text[], text) IS
    'Embeds many texts of a kind (''query'' or ''document'') in length-sorted batched model calls (what public.embed_batch() calls).';

CREATE OR REPLACE FUNCTION pgbert.embed_batch(texts text[]) RETURNS @vector_schema@.vector[]
LANGUAGE sql VOLATILE STRICT
SET search_path = pg_catalog, pg_temp
AS $$ SELECT pgbert.embed_batch(texts, 'document'::pg_catalog.text) $$;
COMMENT ON FUNCTION pgbert.embed_batch(text[]) IS
    'Embeds many documents (what the triggers, backfill and public.embed_batch(texts) call).';

-- The public functions a user calls (embed, embed_batch, search, search_rows) may be called by anyone, so that
-- a role without pgbert_user gets an error that says what to do instead of "permission denied for function";
-- this check comes first, and what runs the model stays executable by pgbert_user alone.
CREATE OR REPLACE FUNCTION pgbert._require_user() RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF NOT pg_has_role(current_user, 'pgbert_user', 'USAGE') THEN
        RAISE EXCEPTION 'pgbert: role % may not embed or search', current_user
              USING ERRCODE = 'insufficient_privilege', HINT = format('GRANT pgbert_user TO %I;', current_user);
    END IF;
END
$fn$;
COMMENT ON FUNCTION pgbert._require_user() IS
    'Internal: raises (42501, with the GRANT to run) unless the current role is a member of pgbert_user.';

-- Embeds one text with the active model; embed(text) is embed(text, 'document'), which is what the triggers
-- store. A model that expects prompts (E5: 'query: ' / 'passage: ') gets the one its manifest records for
-- each kind.
CREATE OR REPLACE FUNCTION public.embed(text text) RETURNS @vector_schema@.vector
LANGUAGE plpgsql STABLE STRICT COST 1000000
SET search_path = pg_catalog, pg_temp
AS $fn$ BEGIN PERFORM pgbert._require_user(); RETURN pgbert.embed(text, 'document'::pg_catalog.text); END $fn$;
COMMENT ON FUNCTION public.embed(text) IS
    'Embeds one text with the active model (pgbert.models); NULL gives NULL. Text past the model''s window is ignored; more than the max_input_chars setting is refused (SQLSTATE 54000). The same text twice costs one model call (a per-backend cache for the current role: embed_cache_mb).';

CREATE OR REPLACE FUNCTION public.embed(text text, kind text) RETURNS @vector_schema@.vector
LANGUAGE plpgsql STABLE STRICT COST 1000000
SET search_path = pg_catalog, pg_temp
AS $fn$ BEGIN PERFORM pgbert._require_user(); RETURN pgbert.embed(text, kind); END $fn$;
COMMENT ON FUNCTION public.embed(text, text) IS
    'Embeds one text as a ''query'' or a ''document'' (models with prompts get the matching one; without, both are the same).';

CREATE OR REPLACE FUNCTION public.embed_batch(texts text[]) RETURNS @vector_schema@.vector[]
LANGUAGE plpgsql VOLATILE STRICT
SET search_path = pg_catalog, pg_temp
AS $fn$ BEGIN PERFORM pgbert._require_user(); RETURN pgbert.embed_batch(texts, 'document'::pg_catalog.text); END $fn$;
COMMENT ON FUNCTION public.embed_batch(text[]) IS
    'Embeds many texts in length-sorted batched model calls; the result has the same order, NULL for NULL. Cancel and statement_timeout stop it between model calls.';

CREATE OR REPLACE FUNCTION public.embed_batch(texts text[], kind text) RETURNS @vector_schema@.vector[]
LANGUAGE plpgsql VOLATILE STRICT
SET search_path = pg_catalog, pg_temp
AS $fn$ BEGIN PERFORM pgbert._require_user(); RETURN pgbert.embed_batch(texts, kind); END $fn$;
COMMENT ON FUNCTION public.embed_batch(text[], text) IS
    'embed_batch(texts) for a kind of text: ''query'' or ''document'' (see embed(text, kind)).';

-- The lexical side of hybrid search: what a document's tsvector holds and what a query looks for, under
-- a lexical config ('japanese' and 'auto' are pgbert's; any other name is a PostgreSQL configuration).
CREATE OR REPLACE FUNCTION pgbert.lexemes(text text, config text) RETURNS tsvector
LANGUAGE plpython3u STABLE
SET search_path = pg_catalog, pg_temp
AS $$
if "pgbert_api" not in GD:
    plpy.execute("SELECT pgbert._boot()")
return GD["pgbert_api"].document_lexemes(plpy, text, config)
$$;
COMMENT ON FUNCTION pgbert.lexemes(text, text) IS
    'The tsvector of a document under a lexical config: ''japanese'' (Sudachi, normalised forms), ''auto'' (Japanese or English by script) or a PostgreSQL text search configuration.';

CREATE OR REPLACE FUNCTION pgbert.query_lexemes(query text, config text) RETURNS text[]
LANGUAGE plpython3u STABLE
SET search_path = pg_catalog, pg_temp
AS $$
if "pgbert_api" not in GD:
    plpy.execute("SELECT pgbert._boot()")
return GD["pgbert_api"].query_lexemes(plpy, query, config)
$$;
COMMENT ON FUNCTION pgbert.query_lexemes(text, text) IS
    'The distinct lexemes a search query looks for under a lexical config (empty when it has none); a query over 10,000 characters is refused (SQLSTATE 54000).';

CREATE OR REPLACE FUNCTION pgbert.text_language(text text) RETURNS text
LANGUAGE plpython3u IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
if "pgbert_api" not in GD:
    plpy.execute("SELECT pgbert._boot()")
return GD["pgbert_api"].text_language(text)
$$;
COMMENT ON FUNCTION pgbert.text_language(text) IS
    '''japanese'' or ''other'', by script: how lexical => ''auto'' analyses a text, and which hybrid weight a query gets.';

CREATE OR REPLACE FUNCTION pgbert.use_model(bundle_path text, name text DEFAULT NULL) RETURNS text
LANGUAGE plpython3u VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
if "pgbert_api" not in GD:
    plpy.execute("SELECT pgbert._boot()")
return GD["pgbert_api"].use_model(plpy, bundle_path, name)
$$;
COMMENT ON FUNCTION pgbert.use_model(text, text) IS
    'Admin only: registers the model bundle at this server-side path, checks it loads, and makes it the active model.';

CREATE OR REPLACE FUNCTION pgbert.status() RETURNS TABLE (setting text, value text)
LANGUAGE plpython3u VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
if "pgbert_api" not in GD:
    plpy.execute("SELECT pgbert._boot()")
return GD["pgbert_api"].status(plpy)
$$;
COMMENT ON FUNCTION pgbert.status() IS
    'The active model, its bundle, where it runs (the model host, or this backend); to pgbert_admin members also the counters (model host pid, memory, requests; this backend''s calls and vector cache); a broken model shows as ok=false with the problem.';

-- The model in use, for humans.
CREATE OR REPLACE VIEW pgbert.active_model AS
    SELECT name, model_id, dimension, pooling, normalize, max_tokens, bundle_path, registered_at
      FROM pgbert.models WHERE active;
COMMENT ON VIEW pgbert.active_model IS 'The model embed() uses now (one row, or none before pgbert.use_model()).';
COMMENT ON TABLE pgbert.models IS 'Registered model bundles (server-side paths); exactly one is active. Written by pgbert.use_model().';
COMMENT ON TABLE pgbert.settings IS 'Runtime settings: python_path (installing superuser only), threads, batch_size, batch_tokens, engine, max_input_chars (pgbert_admin).';
