-- ---------------------------------------------------------------------------------------------------
-- search() on chunked tables (35_chunks.sql): rows ranked by their best chunk, with its passage. search()
-- itself (60_search.sql) sends chunked tables here.
-- ---------------------------------------------------------------------------------------------------

-- The k best rows of a chunked table (each by its best chunk) from the n best chunks of each side, as jsonb:
-- {"hits": [{row_key, chunk, score, rank_key}, ...], "seen": chunks the larger side ranked}.
CREATE OR REPLACE FUNCTION pgbert._best_chunks(chunks pgbert.embedded_tables, key_eq text, q @vector_schema@.vector,
                                               n integer, mode text, query text, wv float8, wl float8, c float8,
                                               k integer, filter jsonb)
RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    picked jsonb;
BEGIN
    EXECUTE format(
            'WITH va AS MATERIALIZED (SELECT c.row_key, c.chunk, r.rank FROM pgbert._vector_ranking($1, $2, $3, $10) r
                                        JOIN %1$s c ON c.tableoid = r.rel AND c.ctid = r.row_id),
                  la AS MATERIALIZED (SELECT c.row_key, c.chunk, r.rank, r.score
                                        FROM pgbert._lexical_ranking($1, CASE WHEN $4 <> ''vector''
                                                                              THEN pgbert.query_lexemes($5, ($1).lexical_config)
                                                                              ELSE ''{}'' END, $3, $10) r
                                        JOIN %1$s c ON c.tableoid = r.rel AND c.ctid = r.row_id),
                  vr AS (SELECT v.*, row_number() OVER (ORDER BY v.rank) AS place
                           FROM (SELECT DISTINCT ON (row_key) * FROM va ORDER BY row_key, rank) v),
                  lr AS (SELECT l.*, row_number() OVER (ORDER BY l.rank) AS place
                           FROM (SELECT DISTINCT ON (row_key) * FROM la ORDER BY row_key, rank) l),
                  f AS (SELECT coalesce(vr.row_key, lr.row_key) AS row_key, coalesce(vr.chunk, lr.chunk) AS chunk,
                               CASE WHEN $4 = ''vector'' THEN NULL WHEN $4 = ''lexical'' THEN lr.score
                                    ELSE coalesce($6 / ($8 + vr.place), 0) + coalesce($7 / ($8 + lr.place), 0) END AS score,
                               CASE WHEN $4 = ''vector'' THEN -vr.place
                                    WHEN $4 = ''lexical'' THEN -lr.place
                                    ELSE coalesce($6 / ($8 + vr.place), 0) + coalesce($7 / ($8 + lr.place), 0) END AS rank_key
                          FROM vr FULL JOIN lr ON vr.row_key %2$s lr.row_key
                         ORDER BY rank_key DESC LIMIT $9)
             SELECT jsonb_build_object(''hits'', coalesce(jsonb_agg(to_jsonb(f)), ''[]''),
                                       ''seen'', greatest((SELECT count(*) FROM va), (SELECT count(*) FROM la)))
               FROM f', pgbert._qualified(chunks.relid), key_eq)
    INTO picked
    USING chunks, q, n, mode, query, wv, wl, c, k, filter;
    RETURN picked;
END
$fn$;
DROP FUNCTION IF EXISTS pgbert._best_chunks(pgbert.embedded_tables, text, @vector_schema@.vector, integer, text, text, float8,
                                            float8, float8, integer);
COMMENT ON FUNCTION pgbert._best_chunks(pgbert.embedded_tables, text, @vector_schema@.vector, integer, text, text, float8, float8, float8, integer, jsonb) IS
    'Internal: the k best rows of a chunked table by their best chunk (chunks: the registry row pointed at the chunk table).';

-- search() on a chunked table: each side ranks chunks (the same _vector_ranking and _lexical_ranking,
-- on the chunk table), a row takes the rank of its best chunk, rows are fused (hybrid) or kept in that
-- order, and each of the k rows comes with its best passage: from the vector side when it has one. Each
-- side ranks n = max(hybrid_candidates, 10 k) chunks; when they hold fewer than k distinct rows and
-- there are more chunks, n grows fourfold (past 1,000, pgvector's iterative index scan goes on).
CREATE OR REPLACE FUNCTION pgbert._chunk_search(cfg pgbert.embedded_tables, query text, k integer, mode text,
                                                filter jsonb)
RETURNS TABLE (id text, content text, distance double precision, "row" jsonb, score double precision,
               passage text, passage_start integer, passage_end integer)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    s      record;
    n      integer;
    picked jsonb;
    chunks pgbert.embedded_tables := cfg;
    q      @vector_schema@.vector := CASE WHEN mode <> 'lexical' THEN pgbert.embed(query, 'query', cfg.model_name) END;
    key_eq text := pgbert._key_equality(cfg.relid, cfg.key_column);
BEGIN
    chunks.relid := cfg.chunk_relid;  -- the rankings read the chunk table's embedding and lexemes columns
    SELECT max(value) FILTER (WHERE name = 'hybrid_rrf_k')::float8 AS c,
           max(value) FILTER (WHERE name = 'hybrid_vector_weight')::float8 AS wv,
           CASE WHEN pgbert.text_language(query) = 'japanese'
                THEN max(value) FILTER (WHERE name = 'hybrid_lexical_weight_japanese')
                ELSE max(value) FILTER (WHERE name = 'hybrid_lexical_weight') END::float8 AS wl,
           greatest(10 * k, max(value) FILTER (WHERE name = 'hybrid_candidates')::integer) AS n
      INTO s FROM pgbert.settings WHERE name LIKE 'hybrid\_%';
    n := s.n;
    LOOP  -- the k best rows (key, best chunk, score), as jsonb
        PERFORM set_config('hnsw.ef_search', least(n, 1000)::text, true);  -- search() restores it
        IF n > 1000 THEN
            PERFORM set_config('hnsw.iterative_scan', 'relaxed_order', true);  -- an HNSW scan past ef_search
        END IF;
        picked := pgbert._best_chunks(chunks, key_eq, q, n, mode, query, coalesce(s.wv, 1), coalesce(s.wl, 1),
                                      coalesce(s.c, 60), k, filter);
        -- enough rows, or the rankings held every chunk there is (fewer than asked for)
        EXIT WHEN jsonb_array_length(picked->'hits') >= k OR (picked->>'seen')::integer < n;
        n := n * 4;
    END LOOP;
    RETURN QUERY EXECUTE format(
        'SELECT (t.%1$I)::text, (t.%2$I)::text, (p.embedding %3$s $2)::float8, (SELECT to_jsonb(r) FROM (SELECT %4$s) AS r),
                f.score, substr(t.%2$I, p.start_char + 1, p.end_char - p.start_char), p.start_char, p.end_char
           FROM jsonb_to_recordset($1) AS f(row_key %5$s, chunk integer, score float8, rank_key float8)
           JOIN %6$s AS t ON t.%1$I %7$s f.row_key
           JOIN %8$s AS p ON p.row_key %7$s f.row_key AND p.chunk = f.chunk
          ORDER BY f.rank_key DESC',
        cfg.key_column, cfg.source_column, pgbert._distance_operator(cfg.metric), pgbert._row_columns(cfg),
        format_type(pgbert._key_base_type(cfg.relid, cfg.key_column), NULL),  -- never a domain: its CHECK
        cfg.relid, key_eq, pgbert._qualified(cfg.chunk_relid))
        USING picked->'hits', q;
END
$fn$;
DROP FUNCTION IF EXISTS pgbert._chunk_search(pgbert.embedded_tables, text, integer, text);
COMMENT ON FUNCTION pgbert._chunk_search(pgbert.embedded_tables, text, integer, text, jsonb) IS
    'Internal: search() on a chunked table: k distinct rows ranked by their best chunk, with its passage.';
