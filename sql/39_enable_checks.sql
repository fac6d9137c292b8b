-- ---------------------------------------------------------------------------------------------------
-- enable_embedding's argument checks and who may enable or disable (40_enable.sql calls them, as pgbert's
-- owner, in setup_embedding and teardown_embedding).
-- ---------------------------------------------------------------------------------------------------

-- The table is a table and its source column holds text.
CREATE OR REPLACE FUNCTION pgbert._check_source(tbl regclass, source_column name) RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    src_type text := (SELECT format_type(a.atttypid, NULL) FROM pg_catalog.pg_attribute a
                       WHERE a.attrelid = tbl AND a.attname = source_column AND a.attnum > 0 AND NOT a.attisdropped);
BEGIN
    IF (SELECT c.relkind FROM pg_catalog.pg_class c WHERE c.oid = tbl) NOT IN ('r', 'p') THEN
        RAISE EXCEPTION 'pgbert: % is not a table', tbl USING ERRCODE = 'wrong_object_type';
    ELSIF (SELECT c.relpersistence FROM pg_catalog.pg_class c WHERE c.oid = tbl) = 't' THEN
        -- a temporary table goes at the end of its session without an event trigger: pgbert would not know
        RAISE EXCEPTION 'pgbert: % is a temporary table; embedding needs a permanent one', tbl
              USING ERRCODE = 'wrong_object_type', HINT = 'Use an UNLOGGED table for scratch data.';
    ELSIF src_type IS NULL THEN
        RAISE EXCEPTION 'pgbert: table % has no column %', tbl, quote_ident(source_column)
              USING ERRCODE = 'undefined_column';
    ELSIF src_type NOT IN ('text', 'character varying', 'character') THEN
        RAISE EXCEPTION 'pgbert: column %.% is %, not text', tbl, quote_ident(source_column), src_type
              USING ERRCODE = 'datatype_mismatch';
    END IF;
END
$fn$;
COMMENT ON FUNCTION pgbert._check_source(regclass, name) IS
    'Internal: raises unless the relation is a table and the column holds text.';

-- enable_embedding on a table already enabled: with the same arguments, a NOTICE and true (nothing to do: a
-- migration may run twice); with others, an error that says what differs and how to change it.
CREATE OR REPLACE FUNCTION pgbert._same_registration(tbl regclass, source_column name, vector_column name,
                                                     strategy text, lexical text, chunk_tokens integer,
                                                     overlap_tokens integer, distance text)
RETURNS boolean
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    e       pgbert.embedded_tables := (SELECT e FROM pgbert.embedded_tables e WHERE e.relid = tbl);
    differs text;
BEGIN
    SELECT string_agg(format('%s is %s (asked: %s)', d.what, d.now, d.asked), '; ') INTO differs
      FROM (VALUES ('source_column', e.source_column::text, source_column::text),
                   ('vector_column', e.vector_column::text, coalesce(vector_column::text, CASE WHEN chunk_tokens IS NULL
                        THEN pgbert._suffixed(source_column, '_embedding')::text ELSE e.vector_column::text END)),
                   ('strategy', e.strategy, CASE WHEN chunk_tokens IS NOT NULL OR e.key_column IS NULL
                                                 THEN e.strategy ELSE strategy END),
                   ('lexical', e.lexical_config, lexical), ('chunk_tokens', e.chunk_tokens::text, chunk_tokens::text),
                   ('overlap_tokens', e.overlap_tokens::text, CASE WHEN chunk_tokens IS NOT NULL THEN overlap_tokens::text END),
                   ('distance', e.metric, coalesce(distance, e.metric))
           ) AS d(what, now, asked)
     WHERE d.now IS DISTINCT FROM d.asked;
    IF differs IS NOT NULL THEN
        RAISE EXCEPTION 'pgbert: embedding is already enabled on % with other settings: %', tbl, differs
              USING ERRCODE = 'duplicate_object',
                    HINT = 'To change them: CALL pgbert.disable_embedding(table); then enable it again (vectors are kept unless drop_column => true).';
    END IF;
    RAISE NOTICE 'pgbert: embedding is already enabled on % with these settings', tbl;
    RETURN true;
END
$fn$;
DROP FUNCTION IF EXISTS pgbert._same_registration(regclass, name, name, text, text, integer, integer);
COMMENT ON FUNCTION pgbert._same_registration(regclass, name, name, text, text, integer, integer, text) IS
    'Internal: true (and a NOTICE) when a table is enabled with these enable_embedding arguments; an error naming the differences otherwise.';

-- enable_embedding's checks that need nothing but the table: a known strategy and distance, an active model
-- (returned).
CREATE OR REPLACE FUNCTION pgbert._check_new_registration(tbl regclass, strategy text, distance text,
                                                           model_name text)
RETURNS pgbert.models
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    model pgbert.models;
BEGIN
    IF strategy IS NULL OR strategy NOT IN ('batch', 'row', 'queue', 'auto') THEN
        RAISE EXCEPTION 'pgbert: strategy must be ''batch'', ''row'', ''queue'' or ''auto'', not %', quote_nullable(strategy)
              USING ERRCODE = 'invalid_parameter_value';
    ELSIF distance IS NOT NULL AND distance NOT IN ('cosine', 'l2', 'inner_product') THEN
        RAISE EXCEPTION 'pgbert: distance must be ''cosine'', ''l2'' or ''inner_product'', not %', quote_literal(distance)
              USING ERRCODE = 'invalid_parameter_value',
                    HINT = 'For a normalised model the three order rows alike: pick the operator your queries use.';
    END IF;
    SELECT * INTO model FROM pgbert.models m WHERE CASE WHEN model_name IS NULL THEN m.active ELSE m.name = model_name END;
    IF NOT FOUND AND model_name IS NOT NULL THEN
        RAISE EXCEPTION 'pgbert: no model named %', quote_literal(model_name) USING ERRCODE = 'undefined_object',
              HINT = 'SELECT name FROM pgbert.models; lists them; an administrator adds one with pgbert.add_model(name, path).';
    ELSIF NOT FOUND THEN
        RAISE EXCEPTION 'pgbert: no active model' USING ERRCODE = 'object_not_in_prerequisite_state',
              HINT = 'An administrator registers one with SELECT pgbert.use_model(''/path/to/bundle'');';
    END IF;
    RETURN model;
END
$fn$;
COMMENT ON FUNCTION pgbert._check_new_registration(regclass, text, text, text) IS
    'Internal: raises unless the strategy and distance are known and the model (NULL: the default) exists; returns the model.';
DROP FUNCTION IF EXISTS pgbert._check_new_registration(regclass, text);
DROP FUNCTION IF EXISTS pgbert._check_new_registration(regclass, text, text);  -- before 0012

-- Who called enable_embedding or disable_embedding. SECURITY DEFINER code sees no caller of its own, and the
-- session's role is not the answer inside another role's SECURITY DEFINER function (a confused deputy): so
-- those procedures, which run as their caller, first create the temporary table pg_temp.pgbert_caller_<oid>,
-- which is therefore owned by their caller, and the definer code asks who owns it in this session.
CREATE OR REPLACE FUNCTION pgbert._prove_caller(tbl regclass, present boolean) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF present THEN
        EXECUTE format('CREATE TEMPORARY TABLE %I () ON COMMIT DROP', 'pgbert_caller_' || tbl::oid);
    ELSE
        EXECUTE format('DROP TABLE pg_temp.%I', 'pgbert_caller_' || tbl::oid);
    END IF;
END
$fn$;
COMMENT ON FUNCTION pgbert._prove_caller(regclass, boolean) IS
    'Internal: creates (or drops) pg_temp.pgbert_caller_<oid>, owned by whoever calls this: the proof enable_embedding and disable_embedding give their definer steps of who called them.';

-- Only a table's owner (or a member of the owner role, e.g. a superuser) turns embedding on or off: the
-- caller proven by _prove_caller ('reinstall', run by the superuser's upgrade: the session's role).
CREATE OR REPLACE FUNCTION pgbert._require_owner(tbl regclass, action text) RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    owner  oid := (SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = tbl);
    caller oid := CASE WHEN action = 'reinstall' THEN pgbert._caller()
                       ELSE (SELECT c.relowner FROM pg_catalog.pg_class c
                              WHERE c.relnamespace = pg_my_temp_schema() AND c.relname = 'pgbert_caller_' || tbl::oid)
                  END;
BEGIN
    IF owner IS NULL THEN  -- never "allowed" by a NULL comparison: the table is gone
        RAISE EXCEPTION 'pgbert: table % does not exist', tbl USING ERRCODE = 'undefined_table';
    END IF;
    IF caller IS NULL OR NOT pg_has_role(caller, owner, 'USAGE') THEN
        RAISE EXCEPTION 'pgbert: must be the owner of table % to % embedding on it', tbl, action
              USING ERRCODE = 'insufficient_privilege',
                    HINT = format('CALL pgbert.%s_embedding(...) as the table''s owner.', action);
    END IF;
END
$fn$;
COMMENT ON FUNCTION pgbert._require_owner(regclass, text) IS
    'Internal: raises unless the role that called enable_embedding or disable_embedding (proven by _prove_caller) owns the table or is a member of its owner role.';
