-- ---------------------------------------------------------------------------------------------------
-- Named models. pgbert.models holds every registered bundle under a name bound to its content for good
-- (the sha256 of its files: re-pointing a name at other weights is refused), one of them the default
-- (active: what embed(text) and newly enabled tables use). Each embedding-enabled table records its own
-- model; the model host keeps several loaded (max_loaded_models, least recently used unloaded first).
--
-- embed(text, model => 'name') is IMMUTABLE, like to_tsvector(regconfig, text) beside to_tsvector(text):
-- a name always gives the same vectors, so the planner folds a constant call once per plan
-- (ORDER BY v <-> embed('q', model => 'minilm') makes one model call whatever the plan), and generated
-- columns and expression indexes may use it. PARALLEL UNSAFE (the default), not SAFE: PL/Python runs every
-- query in a subtransaction, which PostgreSQL refuses anywhere in parallel mode, the leader of a Gather
-- included (tests/db/test_models.py forces a parallel plan: SAFE and RESTRICTED both fail there).
-- ---------------------------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION public.embed(text text, model name, kind text DEFAULT 'document') RETURNS @vector_schema@.vector
LANGUAGE plpgsql IMMUTABLE STRICT COST 1000000
SET search_path = pg_catalog, pg_temp
AS $fn$ BEGIN PERFORM pgbert._require_user(); RETURN pgbert.embed(text, kind, model::pg_catalog.text); END $fn$;
COMMENT ON FUNCTION public.embed(text, name, text) IS
    'Embeds one text with the model of that name (pgbert.models), as a ''document'' (default) or a ''query''. IMMUTABLE: a name is bound to its weights, so a constant call is folded at plan time and generated columns may use it.';

CREATE OR REPLACE FUNCTION public.embed_batch(texts text[], model name, kind text DEFAULT 'document')
RETURNS @vector_schema@.vector[]
LANGUAGE plpgsql IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $fn$ BEGIN PERFORM pgbert._require_user(); RETURN pgbert.embed_batch(texts, kind, model::pg_catalog.text); END $fn$;
COMMENT ON FUNCTION public.embed_batch(text[], name, text) IS
    'Embeds many texts with the model of that name, in length-sorted batched model calls; same order, NULL for NULL.';

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
