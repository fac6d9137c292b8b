-- ---------------------------------------------------------------------------------------------------
-- search(): the k rows nearest to a query text.
-- ---------------------------------------------------------------------------------------------------

-- The query is embedded once and passed as a parameter, so the planner uses the HNSW index.
-- hnsw.ef_search is raised to k when it is lower (an HNSW scan returns at most ef_search rows).
CREATE OR REPLACE FUNCTION public.search(query text, k integer, tbl regclass)
RETURNS TABLE (id text, content text, distance double precision, "row" jsonb)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    cfg    pgbert.embedded_tables;
    old_ef text := current_setting('hnsw.ef_search', true);
    cols   text;
BEGIN
    IF k IS NULL OR k < 1 THEN
        RAISE EXCEPTION 'pgbert: k must be at least 1, got %', coalesce(k::text, 'NULL')
              USING ERRCODE = 'invalid_parameter_value';
    END IF;
    cfg := pgbert._embedding_config(tbl);
    IF query IS NULL THEN
        RETURN;
    END IF;
    IF coalesce(old_ef, '40')::integer < least(k, 1000) THEN
        PERFORM set_config('hnsw.ef_search', least(k, 1000)::text, true);
    END IF;
    -- `row` holds every column but the vector, built from those columns: converting a 768-d vector to
    -- jsonb and removing it again cost more than the rest of the query.
    SELECT string_agg(format('t.%I', a.attname), ', ' ORDER BY a.attnum) INTO cols
      FROM pg_catalog.pg_attribute a
     WHERE a.attrelid = tbl AND a.attnum > 0 AND NOT a.attisdropped AND a.attname <> cfg.vector_column;
    -- The k nearest rows first (an index scan), then their other columns.
    RETURN QUERY EXECUTE format(
        'SELECT (t.%1$I)::text, (t.%2$I)::text, n.distance::float8, (SELECT to_jsonb(r) FROM (SELECT %6$s) AS r)
           FROM (SELECT ctid AS row_id, %3$I %4$s $1 AS distance
                   FROM %5$s WHERE %3$I IS NOT NULL
                  ORDER BY %3$I %4$s $1 LIMIT $2) AS n
           JOIN %5$s AS t ON t.ctid = n.row_id
          ORDER BY n.distance',
        coalesce(cfg.key_column, cfg.source_column), cfg.source_column, cfg.vector_column,
        pgbert._distance_operator(cfg.metric), tbl, cols)
        USING public.embed(query), k;
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
SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT s.id::bigint, s.content, s.distance FROM public.search(query, k, 'public.text_embeddings'::text::regclass) AS s
$fn$;
COMMENT ON FUNCTION public.search(text, integer) IS
    'The k rows of text_embeddings nearest to the query: id, text, distance (smaller is nearer).';
