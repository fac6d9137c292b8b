-- ---------------------------------------------------------------------------------------------------
-- The original tutorial's table, text_embeddings (id, text, embedding vector(N)), with auto-embedding.
-- ---------------------------------------------------------------------------------------------------

-- Created at install when missing (with the active model's dimension), adopted when it already exists.
-- Rows that already have a vector keep it. Its index serves <-> (L2): the operator the tutorial, pgvector's
-- README and the ORMs' l2_distance write (for a normalised model it orders rows as cosine distance does).
-- Run by every `alembic upgrade head`, as the superuser doing the upgrade: hence the pinned search_path and
-- qualified names.
CREATE OR REPLACE PROCEDURE pgbert.install_text_embeddings()
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $proc$
DECLARE
    dim    integer := (SELECT m.dimension FROM pgbert.models m WHERE m.active);
    tbl    regclass := to_regclass('public.text_embeddings');
    metric text := (SELECT e.metric FROM pgbert.embedded_tables e WHERE e.relid = tbl);
BEGIN
    IF dim IS NULL OR metric = 'l2' THEN
        RETURN;
    ELSIF metric IS NOT NULL THEN  -- installed before 0010 with the cosine index: <-> scanned the whole table
        UPDATE pgbert.embedded_tables e SET metric = 'l2' WHERE e.relid = tbl;
        IF pgbert._index_on(tbl, 'embedding', 'hnsw') IS NOT NULL THEN
            EXECUTE format('DROP INDEX public.%I', pgbert._index_on(tbl, 'embedding', 'hnsw'));
            PERFORM pgbert._build_index(tbl);
        END IF;
        RETURN;
    END IF;
    IF tbl IS NULL THEN
        EXECUTE format('CREATE TABLE public.text_embeddings (id bigserial PRIMARY KEY, text text, '
                       'embedding @vector_schema@.vector(%s))', dim);
        COMMENT ON TABLE public.text_embeddings IS
            'The tutorial''s table: rows embed their text into embedding on INSERT; SELECT * FROM search(''query'', 5) searches it.';
    END IF;
    CALL pgbert.enable_embedding('public.text_embeddings', 'text', 'embedding', backfill => false, distance => 'l2');
END
$proc$;
COMMENT ON PROCEDURE pgbert.install_text_embeddings() IS
    'Internal (run at install): creates or adopts the tutorial''s text_embeddings table, with auto-embedding and an L2 (<->) index.';
