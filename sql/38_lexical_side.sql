-- ---------------------------------------------------------------------------------------------------
-- The lexical side of a table (enable_embedding(..., lexical => config)) for hybrid search: its config
-- is checked here; its tsvector column (unchunked tables) or the chunks' lexemes (chunked) are filled
-- by the triggers with pgbert.lexemes() (10_runtime.sql) and searched in 60_search.sql.
-- ---------------------------------------------------------------------------------------------------

-- A lexical config is 'japanese', 'auto' or a PostgreSQL text search configuration; one analysis proves
-- it works here (a missing analyzer fails now, not on the first INSERT).
CREATE OR REPLACE FUNCTION pgbert._check_lexical_config(config text) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF lower(config) NOT IN ('japanese', 'auto') THEN
        BEGIN
            PERFORM config::regconfig;
        EXCEPTION WHEN undefined_object OR invalid_name OR syntax_error THEN
            RAISE EXCEPTION 'pgbert: lexical must be ''japanese'', ''auto'' or a text search configuration, not %',
                  quote_literal(config) USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'SELECT cfgname FROM pg_ts_config; lists the configurations (english, simple, ...).';
        END;
    END IF;
    PERFORM pgbert.lexemes('テスト test', config);
END
$fn$;
COMMENT ON FUNCTION pgbert._check_lexical_config(text) IS
    'Internal: raises unless a lexical config is japanese, auto or a text search configuration that works here.';

-- The lexical side of an unchunked table: the tsvector column <source>_lexemes, added when missing.
CREATE OR REPLACE FUNCTION pgbert._ensure_lexical_column(tbl regclass, source_column name, config text)
RETURNS name
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    col      name := pgbert._suffixed(source_column, '_lexemes');
    col_type regtype := (SELECT a.atttypid FROM pg_catalog.pg_attribute a
                          WHERE a.attrelid = tbl AND a.attname = col AND a.attnum > 0 AND NOT a.attisdropped);
BEGIN
    PERFORM pgbert._check_lexical_config(config);
    IF col_type IS NULL THEN
        EXECUTE format('ALTER TABLE %s ADD COLUMN %I tsvector', tbl, col);
    ELSIF col_type <> 'pg_catalog.tsvector'::regtype THEN
        RAISE EXCEPTION 'pgbert: column %.% is %, not tsvector', tbl, quote_ident(col), col_type
              USING ERRCODE = 'datatype_mismatch';
    END IF;
    RETURN col;
END
$fn$;
COMMENT ON FUNCTION pgbert._ensure_lexical_column(regclass, name, text) IS
    'Internal: checks a lexical config and adds the tsvector column <source>_lexemes if missing.';
