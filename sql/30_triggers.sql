-- ---------------------------------------------------------------------------------------------------
-- Auto-embedding triggers. One name per step, from SQL trigger to Python handler:
--
--   trigger               fires                                 function                  handler
--   pgbert_embed_insert   BEFORE INSERT, each row               pgbert.embed_row()        triggers.embed_row
--   pgbert_embed_update   BEFORE UPDATE OF source, vector, row  pgbert.embed_row()        triggers.embed_row
--   pgbert_batch_start    BEFORE INSERT, each statement         pgbert.batch_start()      triggers.batch_start
--   pgbert_batch_write    AFTER INSERT, each statement          pgbert.write_back_<oid>   32_write_back.sql
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

-- A table's write-back function: SECURITY DEFINER, owned by (and re-owned with) the table's owner, so
-- a role that may only INSERT gets its rows embedded. Its body is fixed text and the table's oid, nothing
-- else: it hands the statement's transition rows (as jsonb: a transition table's rows have no type name) to
-- the static implementations of 32_write_back.sql, which find every name in the catalogs. It refuses to run
-- for any other table than it and its partitions (whose copies of the trigger write back through the table).
CREATE OR REPLACE FUNCTION pgbert._writer_body(tbl oid) RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $fn$ SELECT replace($body$
BEGIN
    IF TG_LEVEL <> 'STATEMENT' OR TG_RELID NOT IN (SELECT @relid@::pg_catalog.oid UNION SELECT relid FROM pg_catalog.pg_partition_tree(@relid@)) THEN
        RAISE EXCEPTION 'pgbert: % writes back after statements on the table of oid @relid@ (or its partitions) only', TG_NAME
              USING ERRCODE = 'insufficient_privilege';
    END IF;
    PERFORM pgbert._check_partition_owners(@relid@, TG_RELID);  -- 72_partitions.sql
    IF TG_NAME = 'pgbert_next_insert' THEN  -- a model change in progress: the new model's column too
        PERFORM pgbert._write_next(@relid@, (SELECT jsonb_agg(n) FROM pgbert_new_rows n), NULL);
    ELSIF TG_NAME = 'pgbert_next_update' THEN
        PERFORM pgbert._write_next(@relid@, (SELECT jsonb_agg(n) FROM pgbert_new_rows n),
                                   (SELECT jsonb_agg(o) FROM pgbert_old_rows o));
    ELSIF TG_OP = 'INSERT' THEN
        PERFORM pgbert._write_inserted(@relid@, (SELECT jsonb_agg(n) FROM pgbert_new_rows n));
    ELSIF TG_OP = 'UPDATE' THEN
        PERFORM pgbert._write_updated(@relid@, (SELECT jsonb_agg(o) FROM pgbert_old_rows o),
                                      (SELECT jsonb_agg(n) FROM pgbert_new_rows n));
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM pgbert._write_deleted(@relid@, (SELECT jsonb_agg(o) FROM pgbert_old_rows o));
    ELSE
        PERFORM pgbert._write_truncation(@relid@, TG_RELID);  -- the table's or a partition's (36_chunk_triggers.sql)
    END IF;
    RETURN NULL;
END
$body$, '@relid@', tbl::bigint::text) $fn$;
COMMENT ON FUNCTION pgbert._writer_body(oid) IS
    'Internal: the body of a table''s write-back function: fixed text and the table''s oid.';

-- Creates a registered table's write-back function (or keeps it), owned by the table's owner, and re-owns
-- its chunk table with it. Run by the installer's entry points only (EXECUTE: nobody else).
CREATE OR REPLACE FUNCTION pgbert._install_writer(tbl regclass) RETURNS name
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET check_function_bodies = on
AS $fn$
DECLARE
    fn          name := pgbert._writer_name(tbl);
    existing    pg_catalog.pg_proc := (SELECT p FROM pg_catalog.pg_proc p
                                        WHERE p.oid = to_regprocedure(format('pgbert.%I()', fn)));
    owner       oid := (SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = tbl);
    chunk       oid;
BEGIN
    -- Settings pinned too: keys travel as jsonb, whose text must not depend on the inserting session (a float
    -- key printed with fewer digits would match another row).
    IF existing.oid IS NULL
       OR (existing.prosrc || '|' || array_to_string(existing.proconfig, '|')) COLLATE "C"
          IS DISTINCT FROM pgbert._writer_body(tbl) || '|search_path=pg_catalog, pg_temp|extra_float_digits=1'
                           '|IntervalStyle=postgres|DateStyle=ISO, MDY'
    THEN  -- missing, or another version's (upgrades)
        EXECUTE format('CREATE OR REPLACE FUNCTION pgbert.%I() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER '
                       'SET search_path = pg_catalog, pg_temp SET extra_float_digits = 1 '
                       'SET IntervalStyle = postgres SET DateStyle = ''ISO, MDY'' AS %L', fn, pgbert._writer_body(tbl));
        EXECUTE format('REVOKE ALL ON FUNCTION pgbert.%I() FROM PUBLIC', fn);
        EXECUTE format('COMMENT ON FUNCTION pgbert.%I() IS %L', fn,
                       format('Trigger (pgbert_* on %s): writes back vectors and chunks, as the table''s owner.', tbl));
    END IF;
    EXECUTE format('ALTER FUNCTION pgbert.%I() OWNER TO %I', fn, pg_get_userbyid(owner));  -- a no-op when it is
    -- Its chunk tables as pgbert recorded them (a model change's too), only while the function's old owner owns them.
    FOR chunk IN SELECT c.oid FROM pgbert.embedded_tables e JOIN pg_catalog.pg_class c
                     ON c.oid IN (e.chunk_relid, e.next_chunk_relid, e.old_chunk_relid) WHERE e.relid = tbl
                    AND c.relowner <> owner AND (existing.proowner IS NULL OR c.relowner = existing.proowner) LOOP
        EXECUTE format('ALTER TABLE %s OWNER TO %I', chunk::regclass, pg_get_userbyid(owner));
    END LOOP;
    RETURN fn;
END
$fn$;
COMMENT ON FUNCTION pgbert._install_writer(regclass) IS
    'Internal: creates a registered table''s write-back function (fixed body, the table''s oid) owned by the table''s owner, and re-owns its chunk table.';

-- Drops a table's write-back functions (those of earlier versions too) when its registry row is gone.
CREATE OR REPLACE FUNCTION pgbert._drop_writers(tbl oid) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    fn name;
BEGIN
    FOREACH fn IN ARRAY ARRAY[pgbert._writer_name(tbl), ('batch_write_' || tbl)::name, ('chunk_write_' || tbl)::name] LOOP
        IF (fn <> pgbert._writer_name(tbl) OR NOT EXISTS (SELECT 1 FROM pgbert.embedded_tables e WHERE e.relid = tbl))
           AND to_regprocedure(format('pgbert.%I()', fn)) IS NOT NULL THEN  -- no NOTICE when none
            EXECUTE format('DROP FUNCTION pgbert.%I()', fn);
        END IF;
    END LOOP;
    fn := pgbert._store_name(tbl);  -- the queue's store function (46_queue_store.sql)
    IF NOT EXISTS (SELECT 1 FROM pgbert.embedded_tables e WHERE e.relid = tbl)
       AND to_regprocedure(format('pgbert.%I(text[], xid[], @vector_schema@.vector[], jsonb[], boolean)', fn)) IS NOT NULL THEN
        EXECUTE format('DROP FUNCTION pgbert.%I(text[], xid[], @vector_schema@.vector[], jsonb[], boolean)', fn);
    END IF;
END
$fn$;
COMMENT ON FUNCTION pgbert._drop_writers(oid) IS
    'Internal: drops the write-back functions a table''s registry row no longer calls for (earlier versions'' names too).';
DROP FUNCTION IF EXISTS pgbert._batch_writer_ddl(pgbert.embedded_tables);  -- before 0010: generated bodies
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
    PERFORM pgbert._drop_writers(tbl);  -- an earlier version's (its triggers are gone)
    IF cfg.strategy IN ('queue', 'auto') THEN
        PERFORM pgbert._install_queue_triggers(tbl);  -- 45_queue.sql
    END IF;
    IF cfg.next_model_name IS NOT NULL AND cfg.chunk_relid IS NULL THEN  -- (chunks: _chunk_targets writes both)
        PERFORM pgbert._install_next_triggers(tbl);  -- a model change in progress (55_model_change.sql)
    END IF;
    IF cfg.chunk_tokens IS NOT NULL THEN
        PERFORM pgbert._install_chunk_triggers(tbl);  -- chunked: statement triggers only (35_chunks.sql)
        RETURN;
    END IF;
    IF cfg.strategy IN ('batch', 'auto') THEN  -- auto: a statement's rows share one token budget
        EXECUTE format('CREATE TRIGGER pgbert_batch_start BEFORE INSERT%s ON %s FOR EACH STATEMENT '
                       'EXECUTE FUNCTION pgbert.batch_start()', CASE cfg.strategy WHEN 'auto' THEN ' OR UPDATE' END, tbl);
        EXECUTE format('CREATE TRIGGER pgbert_batch_end AFTER INSERT%s ON %s FOR EACH STATEMENT '
                       'EXECUTE FUNCTION pgbert.batch_end()', CASE cfg.strategy WHEN 'auto' THEN ' OR UPDATE' END, tbl);
    END IF;
    IF cfg.strategy = 'batch' THEN
        EXECUTE format('CREATE TRIGGER pgbert_batch_write AFTER INSERT ON %s REFERENCING NEW TABLE AS pgbert_new_rows '
                       'FOR EACH STATEMENT EXECUTE FUNCTION pgbert.%I()', tbl, pgbert._install_writer(tbl));
    END IF;
    -- The table's oid lets rows inserted straight into a partition find their statement's batch state;
    -- the lexical column and config follow when the table has a lexical side.
    lexical := CASE WHEN cfg.lexical_column IS NOT NULL
                    THEN format(', %L, %L', cfg.lexical_column, cfg.lexical_config) ELSE '' END;
    IF cfg.strategy <> 'queue' OR lexical <> '' THEN  -- a queued row without lexical side needs no row trigger
        EXECUTE format('CREATE TRIGGER pgbert_embed_insert BEFORE INSERT ON %s FOR EACH ROW '
                       'EXECUTE FUNCTION pgbert.embed_row(%L, %L, %L, %L, %L%s)',
                       tbl, cfg.source_column, cfg.vector_column, cfg.strategy, tbl::oid, cfg.model_name, lexical);
    END IF;
    -- An UPDATE that changes the text, or that leaves a row with text but no vector (an ORM's save() of a
    -- stale instance, an upsert copying EXCLUDED.*): other updates never call the model.
    EXECUTE format('CREATE TRIGGER pgbert_embed_update BEFORE UPDATE OF %1$I, %3$I ON %2$s FOR EACH ROW '
                   'WHEN (OLD.%1$I IS DISTINCT FROM NEW.%1$I OR (NEW.%3$I IS NULL AND NEW.%1$I IS NOT NULL)) '
                   'EXECUTE FUNCTION pgbert.embed_row(%1$L, %3$L, %4$L, %5$L, %7$L%6$s)',
                   cfg.source_column, tbl, cfg.vector_column,
                   CASE WHEN cfg.strategy IN ('queue', 'auto') THEN cfg.strategy ELSE 'row' END, tbl::oid, lexical,
                   cfg.model_name);
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
    PERFORM pgbert._drop_partition_triggers(tbl, false);  -- their copies on its partitions (72_partitions.sql)
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
    tbl regclass;
    n   integer := 0;
BEGIN
    FOR tbl IN SELECT e.relid FROM pgbert.embedded_tables e ORDER BY e.relid LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid = tbl) THEN  -- gone unseen: forget it
            RAISE WARNING 'pgbert: forgetting table %, which is gone', tbl::oid;
            DELETE FROM pgbert.embedded_tables e WHERE e.relid = tbl;
            PERFORM pgbert._drop_writers(tbl);
            CONTINUE;
        END IF;
        PERFORM pgbert._require_owner(tbl, 'reinstall');
        PERFORM pgbert._reinstall(tbl);  -- 70_events.sql
        n := n + 1;
    END LOOP;
    RETURN n;
END
$fn$;
COMMENT ON FUNCTION pgbert.reinstall_triggers() IS
    'Superuser: re-creates the triggers and write-back functions of every embedding-enabled table, keeping disabled ones disabled (run by every upgrade).';
