-- ---------------------------------------------------------------------------------------------------
-- Chunked tables (enable_embedding(..., chunk_tokens => n)): a text longer than the model's window is
-- split by the model's own tokenizer into overlapping chunks (plpython/pgbert_runtime/chunker.py), each an
-- exact substring, each embedded. Chunks live in <table>_chunks, beside the table and owned by its owner:
--
--   row_key (the table's key), chunk (0, 1, ...), start_char, end_char (the passage is
--   substr(text, start_char + 1, end_char - start_char)), embedding, and lexemes when the table has a
--   lexical side.
--
-- Statement triggers keep them exact in the row's own transaction (INSERT and COPY in batched model calls,
-- UPDATE of the text, DELETE, TRUNCATE), through the table's write-back function pgbert.chunk_write_<oid>,
-- which runs as the table's owner: a role that may only INSERT still gets its rows chunked. Chunks are
-- table data: a role reads them (directly or through search()) only where it may read the text column
-- and the row itself (row-level security on the chunk table).
-- ---------------------------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION pgbert.embed_chunks(texts text[], chunk_tokens integer, overlap_tokens integer,
                                               model text DEFAULT NULL)
RETURNS TABLE (ord integer, chunk integer, start_char integer, end_char integer, passage text,
               embedding @vector_schema@.vector)
LANGUAGE plpython3u VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
if "pgbert_api" not in GD:
    plpy.execute("SELECT pgbert._boot()")
return GD["pgbert_api"].embed_chunks(plpy, texts, chunk_tokens, overlap_tokens, model=model)
$$;
COMMENT ON FUNCTION pgbert.embed_chunks(text[], integer, integer, text) IS
    'The chunks of each text (ord: its position from 1) with their passages and vectors, embedded as documents in batched model calls with the model of that name (NULL: the default). chunk_tokens: 1 .. the model''s window less its special tokens and prompt.';
DROP FUNCTION IF EXISTS pgbert.embed_chunks(text[], integer, integer);  -- before 0012

-- Whether the caller may read a row of a table (by its key) and its text column: the chunk tables' policy,
-- for tables with row-level security of their own. It runs as the caller (SECURITY INVOKER), so the
-- table's own policies decide; without SELECT on the text it is false, never an error.
CREATE OR REPLACE FUNCTION pgbert.row_visible(tbl oid, source_attnum smallint, key_attnum smallint, key anyelement)
RETURNS boolean
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    visible boolean;
BEGIN
    IF NOT pg_catalog.has_column_privilege(tbl, source_attnum, 'SELECT')
       OR NOT pg_catalog.has_column_privilege(tbl, key_attnum, 'SELECT') THEN
        RETURN false;
    END IF;
    EXECUTE format('SELECT EXISTS (SELECT 1 FROM %s t WHERE t.%I = $1)', pgbert._qualified(tbl),
                   (SELECT a.attname FROM pg_catalog.pg_attribute a WHERE a.attrelid = tbl AND a.attnum = key_attnum))
       INTO visible USING key;
    RETURN visible;
END
$fn$;
COMMENT ON FUNCTION pgbert.row_visible(oid, smallint, smallint, anyelement) IS
    'Whether the caller can read the row of a table with this key and its text column (the policy of chunk tables whose table has row-level security).';

-- The chunk table's name: <table>_chunks, cut to fit PostgreSQL's 63-byte names.
CREATE OR REPLACE FUNCTION pgbert._chunk_table_name(tbl regclass) RETURNS name
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT pgbert._suffixed(c.relname, '_chunks') FROM pg_catalog.pg_class c WHERE c.oid = tbl $$;
COMMENT ON FUNCTION pgbert._chunk_table_name(regclass) IS 'Internal: <table>_chunks, cut to a valid name.';

-- Creates a chunk table named chunks_name beside a table being registered (or moving to another model:
-- 56_model_change_chunks.sql; its caller owns the table), owned by the table's owner, readable by those who
-- may read the text column and the row.
DROP FUNCTION IF EXISTS pgbert._create_chunk_table(regclass, name, name, integer, boolean);  -- before 0013
CREATE OR REPLACE FUNCTION pgbert._create_chunk_table(tbl regclass, chunks_name name, key_column name,
                                                      source_column name, dimension integer, lexical boolean)
RETURNS oid
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    schema_name name := (SELECT n.nspname FROM pg_catalog.pg_class c
                           JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = tbl);
    chunks      text := format('%I.%I', schema_name, chunks_name);
    key_type    text := (SELECT format_type(a.atttypid, a.atttypmod) FROM pg_catalog.pg_attribute a
                          WHERE a.attrelid = tbl AND a.attname = key_column);
    source_num  smallint := (SELECT a.attnum FROM pg_catalog.pg_attribute a
                              WHERE a.attrelid = tbl AND a.attname = source_column);
    key_num     smallint := (SELECT a.attnum FROM pg_catalog.pg_attribute a
                              WHERE a.attrelid = tbl AND a.attname = key_column);
    owner       name := (SELECT pg_get_userbyid(c.relowner) FROM pg_catalog.pg_class c WHERE c.oid = tbl);
BEGIN
    IF to_regclass(chunks) IS NOT NULL THEN
        RAISE EXCEPTION 'pgbert: % already exists; the chunks of % are kept in a table of that name', chunks, tbl
              USING ERRCODE = 'duplicate_table', HINT = 'Rename or drop it first.';
    END IF;
    -- a partitioned table's chunks are partitioned alike (its key is its partition key): 36_chunk_triggers.sql
    EXECUTE format('CREATE TABLE %s (row_key %s NOT NULL, chunk integer NOT NULL, start_char integer NOT NULL, '
                   'end_char integer NOT NULL, embedding @vector_schema@.vector(%s) NOT NULL%s, '
                   'PRIMARY KEY (row_key, chunk))%s',
                   chunks, key_type, dimension, CASE WHEN lexical THEN ', lexemes tsvector' END,
                   pgbert._partition_clause(tbl, 'row_key'));
    EXECUTE format('ALTER TABLE %s OWNER TO %I', chunks, owner);
    -- Oids and attribute numbers, not names: the policy survives renames of the table and its columns,
    -- and it names no table, so it never stands in the way of a DROP TABLE. The row check runs only when
    -- the table has row-level security of its own (the subquery on pg_class runs once per query).
    EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', chunks);
    EXECUTE format('CREATE POLICY readers ON %1$s FOR SELECT USING (pg_catalog.has_column_privilege(%2$s::oid, '
                   '%3$s::smallint, ''SELECT'') AND ((SELECT NOT c.relrowsecurity FROM pg_catalog.pg_class c '
                   'WHERE c.oid = %2$s::oid) OR pgbert.row_visible(%2$s::oid, %3$s::smallint, %4$s::smallint, row_key)))',
                   chunks, tbl::oid, source_num, key_num);
    EXECUTE format('GRANT SELECT ON %s TO PUBLIC', chunks);
    EXECUTE format('COMMENT ON TABLE %s IS %L', chunks, format('pgbert: the chunks of %s.%I and their vectors '
                   '(passage = substr(text, start_char + 1, end_char - start_char)); kept by triggers, readable '
                   'where the text is.', tbl, source_column));
    RETURN to_regclass(chunks)::oid;
END
$fn$;
COMMENT ON FUNCTION pgbert._create_chunk_table(regclass, name, name, name, integer, boolean) IS
    'Internal: creates a chunk table (<table>_chunks, or a model change''s) owned by the table''s owner, readable where the text is.';

-- A chunked table: checks chunking's arguments (one chunking of a word proves chunk_tokens fits the
-- model's window) and creates <table>_chunks. Chunks need the table's key (they point at their row; a
-- partitioned table's single-column key is its partition key, so its chunks are partitioned by it too).
CREATE OR REPLACE FUNCTION pgbert._register_chunks(tbl regclass, model pgbert.models, key_col name,
                                                   source_column name, vector_column name, lexical text,
                                                   chunk_tokens integer, overlap_tokens integer)
RETURNS oid
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF key_col IS NULL THEN
        RAISE EXCEPTION 'pgbert: a chunked table needs a single-column primary key (chunks point at their row)'
              USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'ALTER TABLE ... ADD PRIMARY KEY (...);';
    ELSIF vector_column IS NOT NULL THEN
        RAISE EXCEPTION 'pgbert: a chunked table keeps its vectors in %, not in a column of its own',
              pgbert._chunk_table_name(tbl) USING ERRCODE = 'invalid_parameter_value',
              HINT = 'Leave vector_column out.';
    ELSIF chunk_tokens < 1 THEN
        RAISE EXCEPTION 'pgbert: chunk_tokens must be at least 1, got %', chunk_tokens
              USING ERRCODE = 'invalid_parameter_value';
    ELSIF overlap_tokens IS NULL OR overlap_tokens < 0 OR overlap_tokens >= chunk_tokens THEN
        RAISE EXCEPTION 'pgbert: overlap_tokens must be 0 .. chunk_tokens - 1, got % with chunk_tokens %',
              coalesce(overlap_tokens::text, 'NULL'), chunk_tokens USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM count(*) FROM pgbert.embed_chunks(ARRAY['pgbert'], chunk_tokens, overlap_tokens, model.name);
    IF lexical IS NOT NULL THEN
        PERFORM pgbert._check_lexical_config(lexical);
    END IF;
    RAISE NOTICE 'pgbert: % embeds %.% in chunks of % tokens (% overlapping) into %_chunks (model %)', tbl, tbl,
          quote_ident(source_column), chunk_tokens, overlap_tokens, tbl, model.name;
    RETURN pgbert._create_chunk_table(tbl, pgbert._chunk_table_name(tbl), key_col, source_column, model.dimension,
                                      lexical IS NOT NULL);
END
$fn$;
COMMENT ON FUNCTION pgbert._register_chunks(regclass, pgbert.models, name, name, name, text, integer, integer) IS
    'Internal: checks enable_embedding''s chunking arguments and creates the chunk table; returns its oid.';
