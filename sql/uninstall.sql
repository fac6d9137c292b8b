-- Removes everything pgbert installed. Used by the base revision's downgrade.
-- Tables that pgbert created but that hold user rows are kept (with a NOTICE): a downgrade never
-- deletes data silently. Objects of the user's that depend on pgbert's functions (a view calling
-- embed(), say) stop the downgrade with a message naming them: they are never dropped silently either.
DO $$
DECLARE
    fn     text;
    detail text;
BEGIN
    -- Objects outside the pgbert schema.
    FOREACH fn IN ARRAY ARRAY['public.embed(text)', 'public.embed(text, text)', 'public.embed_batch(text[])',
                              'public.embed_batch(text[], text)', 'public.search(text, integer)',
                              'public.search(text, integer, regclass)', 'public.search(text, integer, regclass, text)'] LOOP
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
