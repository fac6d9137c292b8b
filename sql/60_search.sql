-- ---------------------------------------------------------------------------------------------------
-- search(): the k rows nearest to a query text, by vector, by lexical match (BM25), or both fused by
-- reciprocal rank fusion (hybrid: the default on tables with a lexical side).
-- ---------------------------------------------------------------------------------------------------

-- Every column of a row but pgbert's own (vector, lexemes), for the `row` jsonb of search(): converting
-- a 768-d vector to jsonb and removing it again cost more than the rest of the query.
CREATE OR REPLACE FUNCTION pgbert._row_columns(cfg pgbert.embedded_tables) RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT string_agg(format('t.%I', a.attname), ', ' ORDER BY a.attnum)
      FROM pg_catalog.pg_attribute a
     WHERE a.attrelid = cfg.relid AND a.attnum > 0 AND NOT a.attisdropped
       AND pg_catalog.has_column_privilege(cfg.relid, a.attnum, 'SELECT')  -- a column-level reader's columns
       AND (cfg.chunk_relid IS NOT NULL  -- a chunked table's vectors and lexemes are in its chunk table
            OR a.attname NOT IN (cfg.vector_column, coalesce(cfg.lexical_column, '')))
       AND a.attnum NOT IN (coalesce(cfg.next_vector_attnum, 0), coalesce(cfg.old_vector_attnum, 0))  -- a model change's columns
$$;
COMMENT ON FUNCTION pgbert._row_columns(pgbert.embedded_tables) IS
    'Internal: t.col, t.col, ... of every column of the table but its vector and lexemes that the caller may read.';

-- The n rows nearest to a query vector, ranked 1..n (an HNSW index scan). A row is its ctid and tableoid (rel):
-- the partitions of a partitioned table repeat each other's ctids.
DROP FUNCTION IF EXISTS pgbert._vector_ranking(pgbert.embedded_tables, @vector_schema@.vector, integer, jsonb);  -- its result gained rel: re-created
CREATE OR REPLACE FUNCTION pgbert._vector_ranking(cfg pgbert.embedded_tables, q @vector_schema@.vector, n integer,
                                                  filter jsonb)
RETURNS TABLE (row_id tid, rank bigint, rel oid)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF q IS NULL THEN
        RETURN;  -- lexical mode: no vector side
    END IF;
    RETURN QUERY EXECUTE format(
        'SELECT s.ctid, row_number() OVER (ORDER BY s.d), s.tableoid
           FROM (SELECT v.tableoid, v.ctid, v.%1$I %2$s $1 AS d FROM %3$s v WHERE v.%1$I IS NOT NULL AND %4$s
                  ORDER BY v.%1$I %2$s $1 LIMIT $2) s',
        cfg.vector_column, pgbert._distance_operator(cfg.metric), cfg.relid, pgbert._filter_clause(cfg, filter, 'v'))
        USING q, n;
END
$fn$;
COMMENT ON FUNCTION pgbert._vector_ranking(pgbert.embedded_tables, @vector_schema@.vector, integer, jsonb) IS
    'Internal: the n rows nearest to a query vector that pass the filter, ranked 1..n.';
DROP FUNCTION IF EXISTS pgbert._vector_ranking(pgbert.embedded_tables, @vector_schema@.vector, integer);

-- The n rows that best match a query's lexemes by BM25 (k1 1.2, b 0.75), ranked 1..n. The GIN index
-- finds every row holding any lexeme; a lexeme's document frequency is counted among them (every row
-- that holds it is one of them); N is the planner's row count; a row's length is its number of distinct
-- lexemes, averaged over the matching rows (the whole table's average would cost a full scan per query).
-- Term frequencies come from the query's lexemes only: setweight() marks them, ts_filter() keeps them
-- (pgbert's tsvectors carry no weights): 4x faster than unnesting every lexeme of every match. Rows are
-- named by ctid and tableoid (rel), and N counts a partitioned table's partitions, as in _vector_ranking.
DROP FUNCTION IF EXISTS pgbert._lexical_ranking(pgbert.embedded_tables, text[], integer, jsonb);  -- its result gained rel: re-created
CREATE OR REPLACE FUNCTION pgbert._lexical_ranking(cfg pgbert.embedded_tables, lexemes text[], n integer, filter jsonb)
RETURNS TABLE (row_id tid, rank bigint, score double precision, rel oid)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF cardinality(lexemes) = 0 THEN
        RETURN;  -- nothing to look for (an empty query, punctuation only): no lexical matches
    END IF;
    RETURN QUERY EXECUTE format($q$
        WITH matches AS MATERIALIZED (
                 SELECT m.tableoid AS rel, m.ctid AS row_id, m.%1$I AS tsv, length(m.%1$I) AS dl FROM %2$s m
                  WHERE %4$s AND m.%1$I @@ array_to_string(ARRAY(SELECT '''' || replace(replace(l, '\', '\\'), '''', '''''')
                                                        || '''' FROM unnest($1) l), ' | ')::tsquery),
             terms AS (SELECT m.rel, m.row_id, m.dl, u.lexeme, coalesce(cardinality(u.positions), 1) AS tf
                         FROM matches m, unnest(ts_filter(setweight(m.tsv, 'A', $1), '{a}')) u),
             df AS (SELECT lexeme, count(*) AS df FROM terms GROUP BY lexeme),
             stats AS (SELECT greatest((SELECT sum(greatest(c.reltuples, 0)) FROM pg_catalog.pg_class c WHERE c.oid = %3$s
                                           OR c.oid IN (SELECT p.relid FROM pg_catalog.pg_partition_tree(%3$s) p WHERE p.isleaf)),
                                       (SELECT count(*) FROM matches)) AS n,
                              greatest((SELECT avg(dl) FROM matches), 1) AS avgdl),
             scored AS (SELECT t.rel, t.row_id, sum(ln(1 + (s.n - df.df + 0.5) / (df.df + 0.5)) * t.tf * 2.2
                                                    / (t.tf + 1.2 * (0.25 + 0.75 * t.dl / s.avgdl))) AS score
                          FROM terms t JOIN df USING (lexeme), stats s
                         GROUP BY t.rel, t.row_id)
        SELECT row_id, row_number() OVER (ORDER BY score DESC, rel, row_id), score::float8, rel
          FROM scored ORDER BY score DESC, rel, row_id LIMIT $2$q$,
        cfg.lexical_column, cfg.relid, cfg.relid::oid, pgbert._filter_clause(cfg, filter, 'm'))
        USING lexemes, n;
END
$fn$;
COMMENT ON FUNCTION pgbert._lexical_ranking(pgbert.embedded_tables, text[], integer, jsonb) IS
    'Internal: the n rows that pass the filter and best match a query''s lexemes by BM25, ranked 1..n.';
DROP FUNCTION IF EXISTS pgbert._lexical_ranking(pgbert.embedded_tables, text[], integer);

-- The hybrid and lexical modes: both rankings (each from its index), fused by reciprocal rank fusion.
CREATE OR REPLACE FUNCTION pgbert._fused_search(cfg pgbert.embedded_tables, query text, k integer, mode text,
                                                filter jsonb)
RETURNS TABLE (id text, content text, distance double precision, "row" jsonb, score double precision)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    s record;
    q @vector_schema@.vector := CASE WHEN mode = 'hybrid' THEN pgbert.embed(query, 'query', cfg.model_name) END;
BEGIN
    SELECT max(value) FILTER (WHERE name = 'hybrid_rrf_k')::float8 AS c,
           max(value) FILTER (WHERE name = 'hybrid_vector_weight')::float8 AS wv,
           CASE WHEN pgbert.text_language(query) = 'japanese'
                THEN max(value) FILTER (WHERE name = 'hybrid_lexical_weight_japanese')
                ELSE max(value) FILTER (WHERE name = 'hybrid_lexical_weight') END::float8 AS wl,
           greatest(k, max(value) FILTER (WHERE name = 'hybrid_candidates')::integer) AS n
      INTO s FROM pgbert.settings WHERE name LIKE 'hybrid\_%';
    IF coalesce(current_setting('hnsw.ef_search', true), '40')::integer < least(s.n, 1000) THEN
        PERFORM set_config('hnsw.ef_search', least(s.n, 1000)::text, true);  -- search() restores it
    END IF;
    RETURN QUERY EXECUTE format(
        'WITH v AS (SELECT * FROM pgbert._vector_ranking($1, $2, $3, $9)),
              l AS (SELECT * FROM pgbert._lexical_ranking($1, pgbert.query_lexemes($4, ($1).lexical_config), $3, $9)),
              f AS (SELECT coalesce(v.rel, l.rel) AS rel, coalesce(v.row_id, l.row_id) AS row_id,
                           CASE WHEN $2 IS NULL THEN l.score
                                ELSE coalesce($5 / ($7 + v.rank), 0) + coalesce($6 / ($7 + l.rank), 0) END AS score
                      FROM v FULL JOIN l ON v.rel = l.rel AND v.row_id = l.row_id ORDER BY 3 DESC LIMIT $8)
         SELECT (t.%1$I)::text, (t.%2$I)::text, (t.%3$I %4$s $2)::float8,
                (SELECT to_jsonb(r) FROM (SELECT %5$s) AS r), f.score
           FROM f JOIN %6$s AS t ON t.tableoid = f.rel AND t.ctid = f.row_id ORDER BY f.score DESC',
        coalesce(cfg.key_column, cfg.source_column), cfg.source_column, cfg.vector_column,
        pgbert._distance_operator(cfg.metric), pgbert._row_columns(cfg), cfg.relid)
        USING cfg, q, s.n, query, coalesce(s.wv, 1), coalesce(s.wl, 1), coalesce(s.c, 60), k, filter;
END
$fn$;
COMMENT ON FUNCTION pgbert._fused_search(pgbert.embedded_tables, text, integer, text, jsonb) IS
    'Internal: search() in the hybrid and lexical modes.';
DROP FUNCTION IF EXISTS pgbert._fused_search(pgbert.embedded_tables, text, integer, text);

-- mode: 'vector', 'lexical' or 'hybrid'; NULL picks hybrid where the table has a lexical side. The query
-- is embedded once (as a 'query': models with prompts get theirs) and analysed once; hnsw.ef_search is
-- raised to k when it is lower (an HNSW scan returns at most ef_search rows).
CREATE OR REPLACE FUNCTION public.search(query text, k integer, tbl regclass, mode text DEFAULT NULL,
                                         filter jsonb DEFAULT NULL)
RETURNS TABLE (id text, content text, distance double precision, "row" jsonb, score double precision,
               passage text, passage_start integer, passage_end integer)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    cfg    pgbert.embedded_tables;
    old_ef   text := current_setting('hnsw.ef_search', true);
    old_scan text := current_setting('hnsw.iterative_scan', true);
BEGIN
    PERFORM pgbert._require_user();
    IF k IS NULL OR k < 1 THEN
        RAISE EXCEPTION 'pgbert: k must be at least 1, got %', coalesce(k::text, 'NULL')
              USING ERRCODE = 'invalid_parameter_value';
    END IF;
    cfg := pgbert._embedding_config(tbl);
    mode := coalesce(lower(mode), CASE WHEN cfg.lexical_column IS NULL THEN 'vector' ELSE 'hybrid' END);
    IF mode NOT IN ('vector', 'lexical', 'hybrid') THEN
        RAISE EXCEPTION 'pgbert: mode must be ''vector'', ''lexical'' or ''hybrid'', not %', quote_literal(mode)
              USING ERRCODE = 'invalid_parameter_value';
    ELSIF mode <> 'vector' AND cfg.lexical_column IS NULL THEN
        RAISE EXCEPTION 'pgbert: % has no lexical side for % search', tbl, mode
              USING ERRCODE = 'object_not_in_prerequisite_state',
                    HINT = 'Enable embedding with lexical => ''japanese'' (or ''english'', ''auto'', ...).';
    END IF;
    IF query IS NULL THEN
        RETURN;
    END IF;
    IF coalesce(old_ef, '40')::integer < least(k, 1000) THEN
        PERFORM set_config('hnsw.ef_search', least(k, 1000)::text, true);
    END IF;
    IF filter IS NOT NULL THEN  -- the index scan goes on until enough rows pass the filter
        PERFORM set_config('hnsw.iterative_scan', 'relaxed_order', true);
    END IF;
    IF cfg.chunk_relid IS NOT NULL THEN
        RETURN QUERY SELECT * FROM pgbert._chunk_search(cfg, query, k, mode, filter);
    ELSIF mode <> 'vector' THEN
        RETURN QUERY SELECT *, NULL::text, NULL::integer, NULL::integer
                       FROM pgbert._fused_search(cfg, query, k, mode, filter);
    ELSE  -- the k nearest rows first (an index scan), then their other columns
        RETURN QUERY EXECUTE format(
            'SELECT (t.%1$I)::text, (t.%2$I)::text, n.distance::float8, (SELECT to_jsonb(r) FROM (SELECT %6$s) AS r),
                    NULL::float8, NULL::text, NULL::integer, NULL::integer
               FROM (SELECT v.tableoid AS rel, v.ctid AS row_id, v.%3$I %4$s $1 AS distance FROM %5$s v
                      WHERE v.%3$I IS NOT NULL AND %7$s ORDER BY v.%3$I %4$s $1 LIMIT $2) AS n
               JOIN %5$s AS t ON t.tableoid = n.rel AND t.ctid = n.row_id
              ORDER BY n.distance',
            coalesce(cfg.key_column, cfg.source_column), cfg.source_column, cfg.vector_column,
            pgbert._distance_operator(cfg.metric), tbl, pgbert._row_columns(cfg), pgbert._filter_clause(cfg, filter, 'v'))
            USING pgbert.embed(query, 'query', cfg.model_name), k;
    END IF;
    -- Restored for the rest of the caller's transaction (NULL: pgvector was not loaded yet: its defaults).
    PERFORM set_config('hnsw.ef_search', coalesce(old_ef, '40'), true);
    IF old_scan IS NOT NULL OR cfg.chunk_relid IS NOT NULL OR filter IS NOT NULL THEN
        PERFORM set_config('hnsw.iterative_scan', coalesce(old_scan, 'off'), true);
    END IF;
END
$fn$;
COMMENT ON FUNCTION public.search(text, integer, regclass, text, jsonb) IS
    'The k best rows of an embedding-enabled table for a query: id (its key, as text), content (the source text), distance (to the query vector; smaller is nearer), row (the row as jsonb, without vector and lexemes), score (hybrid: fused rank score; lexical: BM25; vector: NULL), and on a chunked table the best passage with its character offsets (passage = substr(content, passage_start + 1, passage_end - passage_start)). mode: vector | lexical | hybrid (default where the table has a lexical side). filter: a jsonb object the row''s columns must contain (e.g. ''{"section": "graphics"}''), applied inside the index scans: k rows when k rows match.';

-- The tutorial's form: search the text_embeddings table.
CREATE OR REPLACE FUNCTION public.search(query text, k integer DEFAULT 10)
RETURNS TABLE (id bigint, text text, distance double precision)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT s.id::bigint, s.content, s.distance
      FROM public.search(query, k, 'public.text_embeddings'::text::regclass, NULL::text, NULL::jsonb) AS s
$fn$;
COMMENT ON FUNCTION public.search(text, integer) IS
    'The k rows of text_embeddings nearest to the query: id, text, distance (smaller is nearer).';
