-- ---------------------------------------------------------------------------------------------------
-- Named models. pgbert.models holds every registered bundle under a name bound to its content for good
-- (the sha256 of its files: re-pointing a name at other weights is refused), one of them the default
-- (active: what embed(text) and newly enabled tables use). Each embedding-enabled table records its own
-- model; the model host keeps several loaded (max_loaded_models, least recently used unloaded first).
--
-- embed(text, model => 'name') is IMMUTABLE, like to_tsvector(regconfig, text) beside to_tsvector(text):
-- a name always gives the same vectors, so the planner folds a constant call once per plan
-- (ORDER BY v <-> embed('q', model => 'minilm') makes one model call whatever the plan), and generated
-- columns and expression indexes may use it. PARALLEL SAFE: a parallel worker may run it. PostgreSQL refuses
-- there the subtransaction in which PL/Python runs each query, so _embed_named reads the registry row and
-- the settings in PL/pgSQL (which needs none) and hands them to _embed_with, which runs no query.
-- ---------------------------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION public.embed(text text, model name, kind text DEFAULT 'document') RETURNS @vector_schema@.vector
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE STRICT COST 1000000
SET search_path = pg_catalog, pg_temp
AS $fn$ BEGIN PERFORM pgbert._require_user(); RETURN (pgbert._embed_named(ARRAY[text], kind, model))[1]; END $fn$;
COMMENT ON FUNCTION public.embed(text, name, text) IS
    'Embeds one text with the model of that name (pgbert.models), as a ''document'' (default) or a ''query''. IMMUTABLE: a name is bound to its weights, so a constant call is folded at plan time and generated columns may use it.';

CREATE OR REPLACE FUNCTION public.embed_batch(texts text[], model name, kind text DEFAULT 'document')
RETURNS @vector_schema@.vector[]
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE STRICT
SET search_path = pg_catalog, pg_temp
AS $fn$ BEGIN PERFORM pgbert._require_user(); RETURN pgbert._embed_named(texts, kind, model); END $fn$;
COMMENT ON FUNCTION public.embed_batch(text[], name, text) IS
    'Embeds many texts with the model of that name, in length-sorted batched model calls; same order, NULL for NULL.';

-- SECURITY DEFINER because _embed_with loads whatever bundle and imports whatever path it is handed: its
-- owner alone runs it, from here, with the registry's row for the name and the admin-owned settings. Texts
-- go in slices of 64, between which PostgreSQL acts on a cancel or statement_timeout (_embed_with cannot:
-- it runs no query); the whole call's size goes along, for the max_input_chars check.
CREATE OR REPLACE FUNCTION pgbert._embed_named(texts text[], kind text, model text) RETURNS @vector_schema@.vector[]
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET check_function_bodies = on
AS $fn$
DECLARE
    registered jsonb := (SELECT (SELECT jsonb_object_agg(s.name, s.value) FROM pgbert.settings s)
                                || jsonb_build_object('name', m.name, 'bundle_path', m.bundle_path,
                                                      'dimension', m.dimension, 'max_tokens', m.max_tokens,
                                                      'files', (m.manifest->'files')::text,
                                                      'call_chars', (SELECT sum(length(t)) FROM unnest(texts) t))
                           FROM pgbert.models m WHERE m.name = _embed_named.model);
    slice constant integer := 64;
    vectors @vector_schema@.vector[] := '{}';
BEGIN
    IF registered IS NULL THEN
        RAISE EXCEPTION 'pgbert: no model named %', quote_literal(model) USING ERRCODE = 'undefined_object',
              HINT = 'SELECT name FROM pgbert.models; lists them. An administrator adds one with '
                     'SELECT pgbert.add_model(''name'', ''/path/to/bundle'');';
    END IF;
    FOR i IN coalesce(array_lower(texts, 1), 1) .. coalesce(array_upper(texts, 1), 0) BY slice LOOP
        vectors := vectors || pgbert._embed_with(texts[i : i + slice - 1], kind, registered);
    END LOOP;
    RETURN vectors;
END
$fn$;
COMMENT ON FUNCTION pgbert._embed_named(text[], text, text) IS
    'Internal: embed(text, model) and embed_batch(texts, model): the model of that name, without a PL/Python query (parallel safe).';

CREATE OR REPLACE FUNCTION pgbert._embed_with(texts text[], kind text, registered jsonb)
RETURNS @vector_schema@.vector[]
LANGUAGE plpython3u IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pgbert_api" not in GD:  # _boot's import, with the path read by _embed_named (_boot's query may not run here)
    import json, sys
    for entry in reversed((json.loads(registered).get("python_path") or "").split(":")):
        if entry and entry not in sys.path:
            sys.path.insert(0, entry)
    import pgbert_runtime.sql_api as api
    import pgbert_runtime.triggers as triggers
    GD["pgbert_triggers"], GD["pgbert_api"] = triggers, api
return GD["pgbert_api"].embed_registered(plpy, texts, kind, registered)
$$;
COMMENT ON FUNCTION pgbert._embed_with(text[], text, jsonb) IS
    'Internal (its owner only): embeds texts with the model of a registry row that _embed_named read; runs no query.';

CREATE OR REPLACE FUNCTION pgbert.add_model(name text, bundle_path text) RETURNS text
LANGUAGE plpython3u VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
if "pgbert_api" not in GD:
    plpy.execute("SELECT pgbert._boot()")
return GD["pgbert_api"].add_model(plpy, name, bundle_path)
$$;
COMMENT ON FUNCTION pgbert.add_model(text, text) IS
    'Admin only: registers the model bundle at this server-side path under a name (checks it loads), beside the default model: embed(text, model => name), enable_embedding(..., model => name), pgbert.change_model(table, name).';

-- Refuses while the model is the default or a table uses (or is moving to) it.
CREATE OR REPLACE FUNCTION pgbert.drop_model(name text) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    users text := (SELECT string_agg(e.relid::regclass::text, ', ') FROM pgbert.embedded_tables e
                    WHERE drop_model.name IN (e.model_name, e.next_model_name));
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pgbert.models m WHERE m.name = drop_model.name) THEN
        RAISE EXCEPTION 'pgbert: no model named %', quote_literal(name) USING ERRCODE = 'undefined_object';
    ELSIF (SELECT m.active FROM pgbert.models m WHERE m.name = drop_model.name) THEN
        RAISE EXCEPTION 'pgbert: % is the default model', quote_literal(name) USING ERRCODE = 'object_in_use',
              HINT = 'Make another one the default first: SELECT pgbert.use_model(''/path/to/bundle'');';
    ELSIF users IS NOT NULL THEN
        RAISE EXCEPTION 'pgbert: model % is used by %', quote_literal(name), users USING ERRCODE = 'object_in_use',
              HINT = 'Move those tables to another model first: CALL pgbert.change_model(table, model);';
    END IF;
    DELETE FROM pgbert.models m WHERE m.name = drop_model.name;
END
$fn$;
COMMENT ON FUNCTION pgbert.drop_model(text) IS
    'Admin only: forgets a registered model; refused while it is the default or a table uses it.';
