-- ---------------------------------------------------------------------------------------------------
-- Event triggers: the registry follows DDL on embedding-enabled tables. SECURITY DEFINER (owned by the
-- installing superuser), because they run as whoever issues the DDL — any role at all — and must not
-- fail for a role that cannot write the registry. They wait at most lock_timeout on pgbert's tables
-- (which only pgbert's owner can lock anyway), and act only on what pgbert recorded for the table in the
-- DDL: its columns by number, its write-back function by its oid, the chunk table pgbert made for it (and
-- that chunk table's partitions), the copies of its statement triggers on its partitions.
-- ---------------------------------------------------------------------------------------------------

-- A dropped table is forgotten with its write-back functions and its chunk table; a dropped source,
-- vector, key or lexemes column, or chunk table, turns embedding off on its table (the triggers would fail
-- on every INSERT otherwise). The registry row is read as jsonb for the columns a later revision added, so
-- a DROP never fails on a downgraded database.
CREATE OR REPLACE FUNCTION pgbert.forget_dropped() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET check_function_bodies = on
SET lock_timeout = '10s'
AS $fn$
DECLARE
    gone record;
BEGIN
    IF to_regclass('pgbert.embedded_tables') IS NULL THEN
        RETURN;  -- pgbert itself is being removed
    END IF;
    PERFORM pgbert._forget_change_chunks(ARRAY(SELECT d.objid FROM pg_event_trigger_dropped_objects() d  -- 56_model_change_chunks.sql
                                                WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objsubid = 0));
    FOR gone IN
        SELECT DISTINCT e.relid::oid AS relid, d.objid = e.relid::oid AND d.objsubid = 0 AS whole_table,
               (to_jsonb(e) ->> 'chunk_relid')::oid AS chunk_relid, (to_jsonb(e) ->> 'next_chunk_relid')::oid AS next_chunks,
               (to_jsonb(e) ->> 'old_chunk_relid')::oid AS old_chunks
          FROM pg_event_trigger_dropped_objects() d JOIN pgbert.embedded_tables e
               ON d.objid IN (e.relid::oid, (to_jsonb(e) ->> 'chunk_relid')::oid)
         WHERE d.classid = 'pg_catalog.pg_class'::regclass
           AND (d.objsubid = 0 OR (d.objid = e.relid::oid AND (
                    d.objsubid::text IN (to_jsonb(e) ->> 'source_attnum', to_jsonb(e) ->> 'vector_attnum',
                                         to_jsonb(e) ->> 'key_attnum', to_jsonb(e) ->> 'lexical_attnum')
                    OR (NOT to_jsonb(e) ? 'source_attnum'
                        AND d.address_names[3] IN (e.source_column, e.vector_column, to_jsonb(e) ->> 'lexical_column')))))
    LOOP
        IF NOT gone.whole_table THEN
            PERFORM pgbert._drop_triggers(gone.relid);
            RAISE NOTICE 'pgbert: a column or the chunk table embedding used was dropped: embedding on % is off',
                  gone.relid::regclass;
        END IF;
        DELETE FROM pgbert.embedded_tables e WHERE e.relid = gone.relid;
        PERFORM pgbert._drop_writers(gone.relid);
        IF to_regclass('pgbert.embedding_queue') IS NOT NULL THEN  -- (0011)
            DELETE FROM pgbert.embedding_queue q WHERE q.relid = gone.relid;
            DELETE FROM pgbert.queue_batches b WHERE b.relid = gone.relid;
        END IF;
        IF gone.whole_table AND EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid = gone.chunk_relid) THEN
            -- CASCADE: another role's view on these chunks must not stop the owner's DROP of the table
            EXECUTE format('DROP TABLE %s CASCADE', gone.chunk_relid::regclass);
        END IF;
        PERFORM pgbert._drop_chunk_tables(ARRAY[gone.next_chunks, gone.old_chunks]);  -- a model change's, with the table
    END LOOP;
    IF EXISTS (SELECT 1 FROM pg_event_trigger_dropped_objects() d WHERE d.object_type = 'table') THEN
        PERFORM pgbert._mirror_all_partitions();  -- a dropped partition's chunks go with it (36_chunk_triggers.sql)
    END IF;
END
$fn$;
COMMENT ON FUNCTION pgbert.forget_dropped() IS
    'Event trigger (pgbert_forget_dropped): forgets dropped tables (and drops their chunks); a dropped source, vector, key or lexemes column, or chunk table, turns embedding off.';
DROP EVENT TRIGGER IF EXISTS pgbert_forget_dropped_tables;  -- its name before 0.2
DROP EVENT TRIGGER IF EXISTS pgbert_forget_dropped;
CREATE EVENT TRIGGER pgbert_forget_dropped ON sql_drop EXECUTE FUNCTION pgbert.forget_dropped();

-- Re-creates a registered table's triggers (after an upgrade, or when a column was renamed): triggers a
-- DBA disabled stay disabled.
CREATE OR REPLACE FUNCTION pgbert._reinstall(tbl regclass) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    disabled name[] := ARRAY(SELECT t.tgname FROM pg_catalog.pg_trigger t
                              WHERE t.tgrelid = tbl AND t.tgenabled = 'D' AND t.tgname LIKE 'pgbert\_%');
    t        record;
BEGIN
    PERFORM pgbert._drop_triggers(tbl);
    PERFORM pgbert._install_triggers(tbl);
    PERFORM pgbert._follow_partitions(tbl, false);  -- its partitions' copies of its triggers (72_partitions.sql)
    FOR t IN SELECT s.tgname, s.tgrelid::regclass AS rel FROM pg_catalog.pg_trigger s  -- the copies too
              WHERE s.tgname = ANY (disabled) AND s.tgparentid = 0
                AND (s.tgrelid = tbl OR s.tgrelid IN (SELECT p.relid FROM pg_catalog.pg_partition_tree(tbl) p)) LOOP
        EXECUTE format('ALTER TABLE %s DISABLE TRIGGER %I', t.rel, t.tgname);
    END LOOP;
END
$fn$;
COMMENT ON FUNCTION pgbert._reinstall(regclass) IS
    'Internal: re-creates a registered table''s triggers, keeping disabled ones disabled.';

-- After ALTER TABLE on an embedding-enabled table: renamed columns are followed (the registry names
-- them by number; the triggers, which name them, are re-created), and a new owner gets the write-back
-- function and chunk table, so they always run as the table's current owner. A partitioned table's
-- partitions are kept in step (72_partitions.sql).
CREATE OR REPLACE FUNCTION pgbert._follow_altered(tbl regclass) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    renamed integer;
BEGIN
    UPDATE pgbert.embedded_tables e
       SET source_column = pgbert._attname(tbl, e.source_attnum),
           vector_column = coalesce(pgbert._attname(tbl, e.vector_attnum), e.vector_column),
           key_column = pgbert._attname(tbl, e.key_attnum),
           lexical_column = coalesce(pgbert._attname(tbl, e.lexical_attnum), e.lexical_column)
     WHERE e.relid = tbl AND (e.source_column, e.vector_column, e.key_column, e.lexical_column)
           IS DISTINCT FROM (pgbert._attname(tbl, e.source_attnum),
                             coalesce(pgbert._attname(tbl, e.vector_attnum), e.vector_column),
                             pgbert._attname(tbl, e.key_attnum),
                             coalesce(pgbert._attname(tbl, e.lexical_attnum), e.lexical_column));
    GET DIAGNOSTICS renamed = ROW_COUNT;
    IF renamed > 0 THEN
        PERFORM pgbert._reinstall(tbl);  -- the triggers name the columns
    ELSE  -- a new owner: the write-back and store functions and the chunk table follow
        IF (SELECT e.strategy = 'batch' OR e.chunk_relid IS NOT NULL FROM pgbert.embedded_tables e WHERE e.relid = tbl) THEN
            PERFORM pgbert._install_writer(tbl);
        END IF;
        IF to_regprocedure(format('pgbert.%I(text[], xid[], @vector_schema@.vector[], jsonb[], boolean)',
                                  pgbert._store_name(tbl))) IS NOT NULL THEN
            PERFORM pgbert._install_store(tbl);
        END IF;
        PERFORM pgbert._follow_partitions(tbl, true);
    END IF;
    IF NOT has_function_privilege((SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = tbl),
                                  'pgbert.embed_batch(text[])', 'EXECUTE') THEN
        RAISE WARNING 'pgbert: the owner of % may not embed: INSERTs into it will fail', tbl
              USING HINT = format('GRANT pgbert_user TO %s;', (SELECT c.relowner::regrole FROM pg_catalog.pg_class c
                                                                WHERE c.oid = tbl));
    END IF;
END
$fn$;
COMMENT ON FUNCTION pgbert._follow_altered(regclass) IS
    'Internal: follows ALTER TABLE on an embedding-enabled table (renamed columns, a new owner, its partitions).';

-- The event trigger: after ALTER TABLE or CREATE TABLE, each embedding-enabled table the DDL touched, itself
-- or through one of its partitions (ATTACH, DETACH, CREATE TABLE ... PARTITION OF, ALTER of a partition).
CREATE OR REPLACE FUNCTION pgbert.follow_altered_tables() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET check_function_bodies = on
SET lock_timeout = '10s'
AS $fn$
DECLARE
    tbl regclass;
BEGIN
    IF to_regclass('pgbert.embedded_tables') IS NULL THEN
        RETURN;
    END IF;
    FOR tbl IN
        SELECT DISTINCT e.relid FROM pg_event_trigger_ddl_commands() c
          JOIN pgbert.embedded_tables e
               ON e.relid::oid = c.objid OR e.relid::oid IN (SELECT a.relid FROM pg_catalog.pg_partition_ancestors(c.objid) a)
         WHERE c.classid = 'pg_catalog.pg_class'::regclass
    LOOP
        PERFORM pgbert._follow_altered(tbl);
    END LOOP;
    FOR tbl IN  -- a table that became a partition of one that is not embedding-enabled (ATTACH)
        SELECT DISTINCT e.relid FROM pg_event_trigger_ddl_commands() c, pg_catalog.pg_partition_tree(c.objid) p
          JOIN pgbert.embedded_tables e ON e.relid::oid = p.relid
         WHERE c.classid = 'pg_catalog.pg_class'::regclass AND p.relid <> c.objid
           AND (e.strategy IN ('queue', 'auto') OR to_jsonb(e) ->> 'chunk_relid' IS NOT NULL)  -- (a downgrade: as jsonb)
           AND pgbert._registered_ancestor(c.objid) IS NULL
    LOOP
        RAISE WARNING 'pgbert: % is a partition of %: rows written through % are not queued or chunked', tbl,
              pg_catalog.pg_partition_root(tbl), pg_catalog.pg_partition_root(tbl)
              USING HINT = 'Write into the partition itself, or move embedding to the partitioned table (disable_embedding, then enable_embedding on it).';
    END LOOP;
END
$fn$;
COMMENT ON FUNCTION pgbert.follow_altered_tables() IS
    'Event trigger (pgbert_follow_altered_tables): after ALTER TABLE or CREATE TABLE, follows renamed columns, re-owns the table''s write-back function and chunk table, and keeps a partitioned table''s partitions in step.';
DROP EVENT TRIGGER IF EXISTS pgbert_follow_altered_tables;
CREATE EVENT TRIGGER pgbert_follow_altered_tables ON ddl_command_end WHEN TAG IN ('ALTER TABLE', 'CREATE TABLE')
    EXECUTE FUNCTION pgbert.follow_altered_tables();
