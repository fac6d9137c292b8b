-- Removes everything pgbert installed. Used by the base revision's downgrade.
-- Tables that pgbert created but that hold user rows are kept (with a NOTICE): a downgrade never
-- deletes data silently. Objects of the user's that depend on pgbert's functions (a view calling
-- embed(), say) stop the downgrade with a message naming them: they are never dropped silently either.
DO $$
DECLARE
    fn     text;
    detail text;
    users  text;
BEGIN
    -- Objects of the user's (outside schema pgbert) that use anything in it, e.g. a generated column or a view
    -- calling pgbert.text_language(): DROP SCHEMA pgbert CASCADE below would drop them silently.
    SELECT string_agg(DISTINCT pg_catalog.pg_describe_object(d.classid, d.objid, d.objsubid), ', ') INTO users
      FROM pg_catalog.pg_depend d
     WHERE d.deptype = 'n' AND d.classid <> 'pg_catalog.pg_trigger'::regclass  -- pgbert's triggers go with it
       AND d.refobjid IN (SELECT p.oid FROM pg_catalog.pg_proc p WHERE p.pronamespace = 'pgbert'::regnamespace
                          UNION ALL SELECT c.oid FROM pg_catalog.pg_class c WHERE c.relnamespace = 'pgbert'::regnamespace
                          UNION ALL SELECT t.oid FROM pg_catalog.pg_type t WHERE t.typnamespace = 'pgbert'::regnamespace)
       AND coalesce((SELECT c.relnamespace FROM pg_catalog.pg_rewrite r JOIN pg_catalog.pg_class c ON c.oid = r.ev_class
                      WHERE d.classid = 'pg_catalog.pg_rewrite'::regclass AND r.oid = d.objid),
                    (SELECT c.relnamespace FROM pg_catalog.pg_attrdef a JOIN pg_catalog.pg_class c ON c.oid = a.adrelid
                      WHERE d.classid = 'pg_catalog.pg_attrdef'::regclass AND a.oid = d.objid),
                    (SELECT c.relnamespace FROM pg_catalog.pg_class c
                      WHERE d.classid = 'pg_catalog.pg_class'::regclass AND c.oid = d.objid),
                    (SELECT p.pronamespace FROM pg_catalog.pg_proc p
                      WHERE d.classid = 'pg_catalog.pg_proc'::regclass AND p.oid = d.objid),
                    (SELECT t.typnamespace FROM pg_catalog.pg_type t
                      WHERE d.classid = 'pg_catalog.pg_type'::regclass AND t.oid = d.objid),
                    (SELECT k.connamespace FROM pg_catalog.pg_constraint k
                      WHERE d.classid = 'pg_catalog.pg_constraint'::regclass AND k.oid = d.objid),
                    (SELECT c.relnamespace FROM pg_catalog.pg_policy y JOIN pg_catalog.pg_class c ON c.oid = y.polrelid
                      WHERE d.classid = 'pg_catalog.pg_policy'::regclass AND y.oid = d.objid),
                    0) <> 'pgbert'::regnamespace;
    IF users IS NOT NULL THEN
        RAISE EXCEPTION 'pgbert: cannot remove schema pgbert: objects of yours use it: %', users
              USING ERRCODE = 'dependent_objects_still_exist',
                    HINT = 'Drop or change those objects first, then downgrade again.';
    END IF;
    -- Objects outside the pgbert schema.
    FOREACH fn IN ARRAY ARRAY['public.embed(text)', 'public.embed(text, text)', 'public.embed_batch(text[])',
                              'public.embed(text, name, text)', 'public.embed_batch(text[], name, text)',
                              'public.embed_batch(text[], text)', 'public.search(text, integer)',
                              'public.search(text, integer, regclass)', 'public.search(text, integer, regclass, text)',
                              'public.search(text, integer, regclass, text, jsonb)',
                              'public.search_rows(text, integer, anyelement, text, jsonb)'] LOOP
        BEGIN
            EXECUTE 'DROP FUNCTION IF EXISTS ' || fn;
        EXCEPTION WHEN dependent_objects_still_exist THEN
            GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL;
            RAISE EXCEPTION 'pgbert: cannot remove %: objects of yours use it', fn
                  USING ERRCODE = 'dependent_objects_still_exist', DETAIL = detail,
                        HINT = 'Drop or change those objects first (they are listed above), then downgrade again.';
        END;
    END LOOP;
    -- The tutorial table goes only when empty: a downgrade never deletes rows.
    IF to_regclass('public.text_embeddings') IS NOT NULL THEN
        IF EXISTS (SELECT 1 FROM public.text_embeddings) THEN
            RAISE NOTICE 'pgbert: keeping table text_embeddings: it holds rows';
        ELSE
            DROP TABLE public.text_embeddings;
        END IF;
    END IF;
    DROP EVENT TRIGGER IF EXISTS pgbert_forget_dropped_tables;
    DROP EVENT TRIGGER IF EXISTS pgbert_forget_dropped;
    DROP EVENT TRIGGER IF EXISTS pgbert_follow_altered_tables;
    DROP SCHEMA IF EXISTS pgbert CASCADE;  -- also drops the triggers that call pgbert's functions
    -- Extensions go only when nothing else uses them.
    BEGIN
        DROP EXTENSION IF EXISTS plpython3u;
    EXCEPTION WHEN dependent_objects_still_exist THEN
        RAISE NOTICE 'pgbert: keeping plpython3u: other objects use it';
    END;
    BEGIN
        DROP EXTENSION IF EXISTS vector;
    EXCEPTION WHEN dependent_objects_still_exist THEN
        RAISE NOTICE 'pgbert: keeping the vector extension: other objects use it';
    END;
END
$$;
