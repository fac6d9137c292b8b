-- ---------------------------------------------------------------------------------------------------
-- search(..., filter => '{"section": "graphics"}'): rows whose columns contain the filter (jsonb @>), applied
-- inside each ranking (the HNSW scan goes on, iteratively, until it has k rows that pass).
-- ---------------------------------------------------------------------------------------------------

-- The condition a ranking adds for a filter, on the relation it scans (alias): on a table, its own columns;
-- on a chunk table (cfg.relid is the chunk table: 65_chunk_search.sql), its row's columns in the table.
-- Every key must be a column the caller may read; names come from the catalogs, the filter is a literal.
CREATE OR REPLACE FUNCTION pgbert._filter_clause(cfg pgbert.embedded_tables, filter jsonb, alias text) RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    chunked boolean := coalesce(cfg.relid::oid = cfg.chunk_relid, false);
    tbl     regclass := cfg.relid;  -- the table whose columns are filtered (a chunk table's table: below)
    key_col name := cfg.key_column;
    key     text;
    col     smallint;
    pairs   text[] := '{}';
BEGIN
    IF filter IS NULL THEN
        RETURN 'true';
    ELSIF chunked THEN
        SELECT e.relid, e.key_column INTO tbl, key_col FROM pgbert.enabled_tables e WHERE e.chunk_relid = cfg.chunk_relid;
    END IF;
    IF jsonb_typeof(filter) <> 'object' THEN
        RAISE EXCEPTION 'pgbert: filter must be a jsonb object of column values, not %', filter
              USING ERRCODE = 'invalid_parameter_value', HINT = 'For example: filter => ''{"section": "graphics"}''';
    END IF;
    FOR key IN SELECT jsonb_object_keys(filter) LOOP
        col := (SELECT a.attnum FROM pg_catalog.pg_attribute a
                 WHERE a.attrelid = tbl AND a.attname = key AND a.attnum > 0 AND NOT a.attisdropped);
        IF col IS NULL THEN
            RAISE EXCEPTION 'pgbert: filter names %, which is not a column of %', quote_ident(key), tbl
                  USING ERRCODE = 'undefined_column';
        ELSIF NOT has_column_privilege(tbl, col, 'SELECT') THEN
            RAISE EXCEPTION 'pgbert: permission denied for column % of %: it cannot be filtered on',
                  quote_ident(key), tbl USING ERRCODE = 'insufficient_privilege';
        END IF;
        pairs := pairs || format('%L, %I.%I', key, CASE WHEN chunked THEN 'f' ELSE alias END, key);
    END LOOP;
    IF NOT chunked THEN
        RETURN format('jsonb_build_object(%s) @> %L::jsonb', array_to_string(pairs, ', '), filter);
    END IF;
    RETURN format('EXISTS (SELECT 1 FROM %s f WHERE f.%I %s %I.row_key AND jsonb_build_object(%s) @> %L::jsonb)',
                  tbl, key_col, pgbert._key_equality(tbl, key_col),
                  alias, array_to_string(pairs, ', '), filter);
END
$fn$;
COMMENT ON FUNCTION pgbert._filter_clause(pgbert.embedded_tables, jsonb, text) IS
    'Internal: the SQL condition of search()''s filter on a ranking''s relation; raises for a key that is not a column the caller may read.';

-- search() with typed results: the table's own rows (search_rows('q', 10, NULL::articles)), in search()'s
-- order, with their distance, score and passage. The table's key joins them back: a table with a key.
CREATE OR REPLACE FUNCTION public.search_rows(query text, k integer, rowtype anyelement, mode text DEFAULT NULL,
                                              filter jsonb DEFAULT NULL)
RETURNS TABLE (r anyelement, distance double precision, score double precision, passage text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    tbl regclass := (SELECT t.typrelid FROM pg_catalog.pg_type t WHERE t.oid = pg_typeof(rowtype) AND t.typrelid <> 0);
    cfg pgbert.embedded_tables;
BEGIN
    PERFORM pgbert._require_user();
    IF tbl IS NULL THEN
        RAISE EXCEPTION 'pgbert: search_rows needs a table''s row type, not %', pg_typeof(rowtype)
              USING ERRCODE = 'datatype_mismatch', HINT = 'For example: search_rows(''query'', 10, NULL::articles)';
    END IF;
    cfg := pgbert._embedding_config(tbl);
    IF cfg.key_column IS NULL THEN
        RAISE EXCEPTION 'pgbert: search_rows needs a table with a single-column key; % has none', tbl
              USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'Use search(query, k, table): its row column.';
    END IF;
    RETURN QUERY EXECUTE format(
        'SELECT t, s.distance, s.score, s.passage
           FROM public.search($1, $2, $3, $4, $5) WITH ORDINALITY AS s
           JOIN %s AS t ON t.%I %s s.id::%s
          ORDER BY s.ordinality',
        tbl, cfg.key_column, pgbert._key_equality(tbl, cfg.key_column),
        format_type(pgbert._key_base_type(tbl, cfg.key_column), NULL))  -- never the domain: its CHECK
        USING query, k, tbl, mode, filter;
END
$fn$;
COMMENT ON FUNCTION public.search_rows(text, integer, anyelement, text, jsonb) IS
    'search() with typed results: SELECT (s.r).*, s.distance FROM search_rows(''query'', 10, NULL::articles) s returns the table''s own rows (any column, its own types), in search()''s order, with distance, score and a chunked table''s best passage.';
