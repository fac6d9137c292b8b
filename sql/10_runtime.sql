-- ---------------------------------------------------------------------------------------------------
-- Runtime: loading the Python package, embed(), embed_batch(), model registration, status.
-- ---------------------------------------------------------------------------------------------------

-- Puts the admin-configured runtime environment on sys.path and imports pgbert_runtime once per
-- backend. Only pgbert.settings (writable by its owner alone) decides what is imported.
CREATE OR REPLACE FUNCTION pgbert._boot() RETURNS void
LANGUAGE plpython3u VOLATILE
SET search_path = pg_catalog, pgbert, pg_temp
AS $$
import sys
if "pgbert" in GD:
    return
row = plpy.execute("SELECT value FROM pgbert.settings WHERE name = 'python_path'")
for entry in reversed((row[0]["value"] or "").split(":") if row else []):
    if entry and entry not in sys.path:
        sys.path.insert(0, entry)
try:
    import pgbert_runtime.sql_api as api
except ImportError as exc:
    plpy.error(f"pgbert: cannot import the pgbert runtime ({exc})",
               hint="An administrator sets the runtime environment's site-packages with "
                    "UPDATE pgbert.settings SET value = '/path/site-packages' WHERE name = 'python_path'; "
                    "`pgbert db migrate` sets it for the local cluster.")
GD["pgbert"] = api
$$;

-- PARALLEL UNSAFE (the default) on purpose: PL/Python runs every plpy.execute in a subtransaction,
-- which PostgreSQL forbids in parallel mode; a query that calls embed() must not go parallel.
CREATE OR REPLACE FUNCTION public.embed(text text) RETURNS @vector_schema@.vector
LANGUAGE plpython3u STABLE STRICT
SET search_path = pg_catalog, pgbert, pg_temp
AS $$
if "pgbert" not in GD:
    plpy.execute("SELECT pgbert._boot()")
return GD["pgbert"].embed(plpy, text)
$$;
COMMENT ON FUNCTION public.embed(text) IS
    'Embeds one text with the active model (pgbert.models); NULL gives NULL. Long texts are truncated to the model''s window.';

CREATE OR REPLACE FUNCTION public.embed_batch(texts text[]) RETURNS @vector_schema@.vector[]
LANGUAGE plpython3u STABLE STRICT
SET search_path = pg_catalog, pgbert, pg_temp
AS $$
if "pgbert" not in GD:
    plpy.execute("SELECT pgbert._boot()")
return GD["pgbert"].embed_batch(plpy, texts)
$$;
COMMENT ON FUNCTION public.embed_batch(text[]) IS
    'Embeds many texts in length-sorted batched model calls; the result has the same order, NULL for NULL.';

CREATE OR REPLACE FUNCTION pgbert.use_model(bundle_path text, name text DEFAULT NULL) RETURNS text
LANGUAGE plpython3u VOLATILE
SET search_path = pg_catalog, pgbert, pg_temp
AS $$
if "pgbert" not in GD:
    plpy.execute("SELECT pgbert._boot()")
return GD["pgbert"].use_model(plpy, bundle_path, name)
$$;
COMMENT ON FUNCTION pgbert.use_model(text, text) IS
    'Admin only: registers the model bundle at this server-side path, checks it loads, and makes it the active model.';

CREATE OR REPLACE FUNCTION pgbert.status() RETURNS TABLE (setting text, value text)
LANGUAGE plpython3u VOLATILE
SET search_path = pg_catalog, pgbert, pg_temp
AS $$
if "pgbert" not in GD:
    plpy.execute("SELECT pgbert._boot()")
return GD["pgbert"].status(plpy)
$$;
COMMENT ON FUNCTION pgbert.status() IS
    'The active model, its bundle, the runtime and this backend''s counters; a broken model shows as ok=false with the problem.';

-- The model in use, for humans.
CREATE OR REPLACE VIEW pgbert.active_model AS
    SELECT name, model_id, dimension, pooling, normalize, max_tokens, bundle_path, registered_at
      FROM pgbert.models WHERE active;

-- ---------------------------------------------------------------------------------------------------
-- Privileges. pgbert_user embeds and searches; pgbert_admin also switches models and tunes the runtime;
-- only the owner (the installing superuser) sets python_path, i.e. what backends import.
-- Every role may read the model registry: the row trigger of an auto-embedding table reads it as the
-- inserting role, who needs no pgbert privilege to get rows embedded.
-- ---------------------------------------------------------------------------------------------------
GRANT USAGE ON SCHEMA pgbert TO PUBLIC;
REVOKE ALL ON pgbert.settings, pgbert.models FROM PUBLIC;
GRANT SELECT ON pgbert.settings, pgbert.models, pgbert.active_model TO PUBLIC;
GRANT UPDATE (value) ON pgbert.settings TO pgbert_admin;        -- python_path excluded by row-level security
GRANT INSERT, UPDATE, DELETE ON pgbert.models TO pgbert_admin;
REVOKE ALL ON FUNCTION public.embed(text), public.embed_batch(text[]), pgbert.status(),
                       pgbert.use_model(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.embed(text), public.embed_batch(text[]), pgbert.status() TO pgbert_user;
GRANT EXECUTE ON FUNCTION pgbert.use_model(text, text) TO pgbert_admin;
GRANT EXECUTE ON FUNCTION pgbert._boot() TO PUBLIC;
