-- ---------------------------------------------------------------------------------------------------
-- Auto-embedding triggers. One name per step, from SQL trigger to Python handler:
--
--   trigger               fires                                 function                  handler
--   pgbert_embed_insert   BEFORE INSERT, each row               pgbert.embed_row()        triggers.embed_row
--   pgbert_embed_update   BEFORE UPDATE OF source, each row     pgbert.embed_row()        triggers.embed_row
--   pgbert_batch_start    BEFORE INSERT, each statement         pgbert.batch_start()      triggers.batch_start
--   pgbert_batch_write    AFTER INSERT, each statement          pgbert.batch_write_<oid>  (generated plpgsql)
--   pgbert_batch_end      AFTER INSERT, each statement          pgbert.batch_end()        triggers.batch_end
--
-- Strategy 'row' uses the first two; 'batch' all five: the statement's first row is embedded inline,
-- the others by pgbert_batch_write in batched model calls (see plpython/pgbert_runtime/triggers.py).
-- ---------------------------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION pgbert.embed_row() RETURNS trigger
LANGUAGE plpython3u
SET search_path = pg_catalog, pg_temp
AS $$
if "pgbert_api" not in GD:
    plpy.execute("SELECT pgbert._boot()")
return GD["pgbert_triggers"].embed_row(plpy, TD)
$$;
COMMENT ON FUNCTION pgbert.embed_row() IS
    'Trigger (pgbert_embed_insert, pgbert_embed_update): embeds the row''s text into its vector column, inline.';

CREATE OR REPLACE FUNCTION pgbert.batch_start() RETURNS trigger
LANGUAGE plpython3u
SET search_path = pg_catalog, pg_temp
AS $$
if "pgbert_api" not in GD:
    plpy.execute("SELECT pgbert._boot()")
GD["pgbert_triggers"].batch_start(TD)
$$;
COMMENT ON FUNCTION pgbert.batch_start() IS
    'Trigger (pgbert_batch_start): an INSERT statement on a batch table begins; its first row is embedded inline.';

CREATE OR REPLACE FUNCTION pgbert.batch_end() RETURNS trigger
LANGUAGE plpython3u
SET search_path = pg_catalog, pg_temp
AS $$
if "pgbert_api" not in GD:
    plpy.execute("SELECT pgbert._boot()")
GD["pgbert_triggers"].batch_end(TD)
$$;
COMMENT ON FUNCTION pgbert.batch_end() IS
    'Trigger (pgbert_batch_end): the INSERT statement on a batch table ended.';

-- The write-back function of a batch table, from a template with named markers. It embeds the new rows
-- in calls of at most 1,024 texts and about 8 MB (under the max_input_chars cap of embed_batch). It runs as the table's
-- owner (SECURITY DEFINER, owned by and re-owned with the table), so a role that may only INSERT gets
-- its rows embedded; it refuses to run for any other table, or once its owner is not the table's.
CREATE OR REPLACE FUNCTION pgbert._batch_writer_ddl(cfg pgbert.embedded_tables) RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    RETURN replace(replace(replace(replace(replace(replace(replace($template$
CREATE OR REPLACE FUNCTION pgbert.@writer@() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $body$
BEGIN
    IF TG_RELID <> @relid@ OR TG_OP <> 'INSERT' OR TG_LEVEL <> 'STATEMENT' THEN
        RAISE EXCEPTION 'pgbert: % writes back only after an INSERT into the table of oid @relid@', TG_NAME
              USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF (SELECT relowner FROM pg_catalog.pg_class WHERE oid = TG_RELID)
       <> (SELECT proowner FROM pg_catalog.pg_proc WHERE oid = 'pgbert.@writer@()'::pg_catalog.regprocedure) THEN
        RAISE EXCEPTION 'pgbert: the owner of % changed; its write-back function was not re-owned', TG_RELID::regclass
              USING ERRCODE = 'insufficient_privilege',
                    HINT = 'CALL pgbert.disable_embedding(table), then pgbert.enable_embedding(...) again.';
    END IF;
    UPDATE @table@ AS t SET @vector@ = e.v
      FROM (SELECT u.k, u.v
              FROM (SELECT array_agg(r.k) AS ks, array_agg(r.s) AS ts
                      FROM (SELECT n.@key@ AS k, n.@source@ AS s, (row_number() OVER w - 1) / 1024 AS chunk,
                                   sum(octet_length(n.@source@)) OVER w / 8388608 AS part
                              FROM pgbert_new_rows n
                             WHERE n.@source@ IS NOT NULL AND n.@vector@ IS NULL
                            WINDOW w AS (ROWS UNBOUNDED PRECEDING)) r
                     GROUP BY r.chunk, r.part) a,
                   unnest(a.ks, public.embed_batch(a.ts)) AS u(k, v)) e
     WHERE t.@key@ @key_eq@ e.k;
    RETURN NULL;
END
$body$
$template$,
        '@writer@', pgbert._batch_writer_name(cfg.relid)),
        '@relid@', cfg.relid::oid::text),
        '@table@', pgbert._qualified(cfg.relid)),
        '@vector@', quote_ident(cfg.vector_column)),
        '@key@', quote_ident(cfg.key_column)),
        '@source@', quote_ident(cfg.source_column)),
        '@key_eq@', pgbert._key_equality(cfg.relid, cfg.key_column));
END
$fn$;
COMMENT ON FUNCTION pgbert._batch_writer_ddl(pgbert.embedded_tables) IS
    'Internal: the CREATE FUNCTION statement of a batch table''s write-back function.';

-- Creates or updates the write-back function the registry row calls for (batch, or chunks: 36_chunk_triggers),
-- owned by the table's owner (so is a chunk table). SECURITY DEFINER: only the installer creates in schema
-- pgbert; safe for any caller, as everything comes from the registry row, which only the table's owner can
-- write. Replaced in place, so the trigger that calls it, enabled or not, is untouched.
CREATE OR REPLACE FUNCTION pgbert._install_writer(tbl regclass) RETURNS name
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    cfg      pgbert.embedded_tables;
    chunked  boolean;
    fn       name;
    ddl      text;
    owner    name := (SELECT pg_get_userbyid(c.relowner) FROM pg_catalog.pg_class c WHERE c.oid = tbl);
    existing regprocedure;
BEGIN
    SELECT * INTO cfg FROM pgbert.embedded_tables e WHERE e.relid = tbl AND e.strategy = 'batch';
    IF NOT FOUND THEN
        RAISE EXCEPTION 'pgbert: % is not registered for batch embedding', tbl
              USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    chunked := cfg.chunk_relid IS NOT NULL;
    fn := CASE WHEN chunked THEN pgbert._chunk_writer_name(tbl) ELSE pgbert._batch_writer_name(tbl) END;
    ddl := CASE WHEN chunked THEN pgbert._chunk_writer_ddl(cfg) ELSE pgbert._batch_writer_ddl(cfg) END;
    existing := to_regprocedure(format('pgbert.%I()', fn));
    IF existing IS NULL OR (SELECT p.prosrc FROM pg_catalog.pg_proc p WHERE p.oid = existing)
                           IS DISTINCT FROM substring(ddl FROM '\$body\$(.*)\$body\$') THEN
        EXECUTE ddl;
        EXECUTE format('REVOKE ALL ON FUNCTION pgbert.%I() FROM PUBLIC', fn);
        EXECUTE format('COMMENT ON FUNCTION pgbert.%I() IS %L', fn, CASE WHEN chunked
            THEN format('Trigger (pgbert_chunks_* on %s): keeps its chunks and their vectors, as the table''s owner.', tbl)
            ELSE format('Trigger (pgbert_batch_write on %s): writes the vectors of an INSERT''s rows back, as the '
                        'table''s owner.', tbl) END);
    END IF;
    EXECUTE format('ALTER FUNCTION pgbert.%I() OWNER TO %I', fn, owner);  -- a no-op when it already is
    IF chunked THEN
        EXECUTE format('ALTER TABLE %s OWNER TO %I', pgbert._qualified(cfg.chunk_relid), owner);
    END IF;
    RETURN fn;
END
$fn$;
COMMENT ON FUNCTION pgbert._install_writer(regclass) IS
    'Internal: creates or updates the write-back function a table''s registry row calls for (batch or chunks), owned by the table''s owner.';

-- Drops the write-back functions a table's registry row no longer calls for (all of them when it is gone).
CREATE OR REPLACE FUNCTION pgbert._drop_writers(tbl oid) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    keep name := (SELECT CASE WHEN e.chunk_relid IS NULL THEN pgbert._batch_writer_name(tbl)
                              ELSE pgbert._chunk_writer_name(tbl) END
                    FROM pgbert.embedded_tables e WHERE e.relid = tbl AND e.strategy = 'batch');
    fn   name;
BEGIN
    FOREACH fn IN ARRAY ARRAY[pgbert._batch_writer_name(tbl), pgbert._chunk_writer_name(tbl)] LOOP
        IF fn IS DISTINCT FROM keep AND to_regprocedure(format('pgbert.%I()', fn)) IS NOT NULL THEN  -- no NOTICE when none
            EXECUTE format('DROP FUNCTION pgbert.%I()', fn);
        END IF;
    END LOOP;
END
$fn$;
COMMENT ON FUNCTION pgbert._drop_writers(oid) IS
    'Internal: drops the write-back functions a table''s registry row no longer calls for.';
DROP FUNCTION IF EXISTS pgbert._install_batch_writer(regclass), pgbert._drop_batch_writer(oid);  -- before 0008

-- Installs the triggers the registry row of a table calls for (the table's owner runs this).
CREATE OR REPLACE FUNCTION pgbert._install_triggers(tbl regclass) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    cfg     pgbert.embedded_tables := pgbert._embedding_config(tbl);
    lexical text;
BEGIN
    IF cfg.chunk_tokens IS NOT NULL THEN
        PERFORM pgbert._install_chunk_triggers(tbl);  -- chunked: statement triggers only (35_chunks.sql)
        RETURN;
    END IF;
    IF cfg.strategy = 'batch' THEN
        EXECUTE format('CREATE TRIGGER pgbert_batch_start BEFORE INSERT ON %s FOR EACH STATEMENT '
                       'EXECUTE FUNCTION pgbert.batch_start()', tbl);
        EXECUTE format('CREATE TRIGGER pgbert_batch_write AFTER INSERT ON %s REFERENCING NEW TABLE AS pgbert_new_rows '
                       'FOR EACH STATEMENT EXECUTE FUNCTION pgbert.%I()', tbl, pgbert._install_writer(tbl));
        EXECUTE format('CREATE TRIGGER pgbert_batch_end AFTER INSERT ON %s FOR EACH STATEMENT '
                       'EXECUTE FUNCTION pgbert.batch_end()', tbl);
    END IF;
    -- The table's oid lets rows inserted straight into a partition find their statement's batch state;
    -- the lexical column and config follow when the table has a lexical side.
    lexical := CASE WHEN cfg.lexical_column IS NOT NULL
                    THEN format(', %L, %L', cfg.lexical_column, cfg.lexical_config) ELSE '' END;
    EXECUTE format('CREATE TRIGGER pgbert_embed_insert BEFORE INSERT ON %s FOR EACH ROW '
                   'EXECUTE FUNCTION pgbert.embed_row(%L, %L, %L, %L%s)',
                   tbl, cfg.source_column, cfg.vector_column, cfg.strategy, tbl::oid, lexical);
    EXECUTE format('CREATE TRIGGER pgbert_embed_update BEFORE UPDATE OF %1$I ON %2$s FOR EACH ROW '
                   'WHEN (OLD.%1$I IS DISTINCT FROM NEW.%1$I) '
                   'EXECUTE FUNCTION pgbert.embed_row(%1$L, %3$L, %4$L, %5$L%6$s)',
                   cfg.source_column, tbl, cfg.vector_column, 'row', tbl::oid, lexical);
END
$fn$;
COMMENT ON FUNCTION pgbert._install_triggers(regclass) IS
    'Internal: creates the triggers (and batch write-back function) that a table''s registry row calls for.';

-- Drops every pgbert trigger of a table: those whose function lives in schema pgbert (partitions' clones
-- go with their parent's), so the list of names is written once, in _install_triggers.
CREATE OR REPLACE FUNCTION pgbert._drop_triggers(tbl regclass) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    trigger_name name;
BEGIN
    FOR trigger_name IN
        SELECT t.tgname FROM pg_catalog.pg_trigger t JOIN pg_catalog.pg_proc p ON p.oid = t.tgfoid
         WHERE t.tgrelid = tbl AND t.tgparentid = 0 AND NOT t.tgisinternal
           AND p.pronamespace = 'pgbert'::regnamespace
    LOOP
        EXECUTE format('DROP TRIGGER %I ON %s', trigger_name, tbl);
    END LOOP;
END
$fn$;
COMMENT ON FUNCTION pgbert._drop_triggers(regclass) IS
    'Internal: drops every pgbert trigger of a table (its write-back function goes with its registry row).';

-- After an upgrade (and from psql after a restore): every registered table gets the triggers and
-- write-back function of the sql/ now installed. Triggers a DBA disabled stay disabled.
CREATE OR REPLACE FUNCTION pgbert.reinstall_triggers() RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    tbl      regclass;
    disabled name[];
    n        integer := 0;
BEGIN
    FOR tbl IN SELECT e.relid FROM pgbert.embedded_tables e ORDER BY e.relid LOOP
        PERFORM pgbert._require_owner(tbl, 'reinstall');
        disabled := ARRAY(SELECT t.tgname FROM pg_catalog.pg_trigger t
                           WHERE t.tgrelid = tbl AND t.tgenabled = 'D' AND t.tgname LIKE 'pgbert\_%');
        PERFORM pgbert._drop_triggers(tbl);
        PERFORM pgbert._install_triggers(tbl);
        FOR i IN 1 .. coalesce(array_length(disabled, 1), 0) LOOP
            EXECUTE format('ALTER TABLE %s DISABLE TRIGGER %I', tbl, disabled[i]);
        END LOOP;
        n := n + 1;
    END LOOP;
    RETURN n;
END
$fn$;
COMMENT ON FUNCTION pgbert.reinstall_triggers() IS
    'Superuser: re-creates the triggers and write-back functions of every embedding-enabled table, keeping disabled ones disabled (run by every upgrade).';
