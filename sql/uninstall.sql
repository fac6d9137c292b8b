-- Removes everything pgbert installed. Used by the base revision's downgrade.
-- Tables that pgbert created but that hold user rows are kept (with a NOTICE): a downgrade never
-- deletes data silently.
DO $$
BEGIN
    -- Objects outside the pgbert schema.
    DROP FUNCTION IF EXISTS public.embed(text);
    DROP FUNCTION IF EXISTS public.embed_batch(text[]);
    DROP FUNCTION IF EXISTS public.search(text, integer);
    DROP FUNCTION IF EXISTS public.search(text, integer, regclass);
    -- The tutorial table goes only when empty: a downgrade never deletes rows.
    IF to_regclass('public.text_embeddings') IS NOT NULL THEN
        IF EXISTS (SELECT 1 FROM public.text_embeddings) THEN
            RAISE NOTICE 'pgbert: keeping table text_embeddings: it holds rows';
        ELSE
            DROP TABLE public.text_embeddings;
        END IF;
    END IF;
    DROP EVENT TRIGGER IF EXISTS pgbert_forget_dropped_tables;
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
