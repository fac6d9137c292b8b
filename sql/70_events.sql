-- ---------------------------------------------------------------------------------------------------
-- Event triggers: the registry follows DDL on embedding-enabled tables. SECURITY DEFINER (owned by the
-- installing superuser), because they run as whoever issues the DDL — any role at all — and must
-- neither fail for a role that cannot write the registry nor be hidden from rows by row-level security.
-- ---------------------------------------------------------------------------------------------------

-- A dropped table is forgotten with its write-back functions and its chunk table; a dropped source or
-- vector column, or chunk table, turns embedding off on its table (the triggers would fail on every
-- INSERT otherwise). The registry row is read as jsonb for the columns a later revision added, so a DROP
-- never fails on a downgraded database.
CREATE OR REPLACE FUNCTION pgbert.forget_dropped() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    gone record;
BEGIN
    IF to_regclass('pgbert.embedded_tables') IS NULL THEN
        RETURN;  -- pgbert itself is being removed
    END IF;
    FOR gone IN
        SELECT DISTINCT e.relid::oid AS relid, d.objid = e.relid::oid AND d.objsubid = 0 AS whole_table,
               (to_jsonb(e) ->> 'chunk_relid')::oid AS chunk_relid
          FROM pg_event_trigger_dropped_objects() d JOIN pgbert.embedded_tables e
               ON d.objid IN (e.relid::oid, (to_jsonb(e) ->> 'chunk_relid')::oid)
         WHERE d.classid = 'pg_catalog.pg_class'::regclass
           AND (d.objsubid = 0 OR (d.objid = e.relid::oid
                                   AND d.address_names[3] IN (e.source_column, e.vector_column,
                                                              to_jsonb(e) ->> 'lexical_column')))
    LOOP
        IF NOT gone.whole_table THEN
            PERFORM pgbert._drop_triggers(gone.relid);
            RAISE NOTICE 'pgbert: a column or the chunk table embedding used was dropped: embedding on % is off',
                  gone.relid::regclass;
        END IF;
        DELETE FROM pgbert.embedded_tables e WHERE e.relid = gone.relid;
        PERFORM pgbert._drop_writers(gone.relid);
        IF gone.whole_table AND pgbert._qualified(gone.chunk_relid) IS NOT NULL THEN
            EXECUTE format('DROP TABLE %s', pgbert._qualified(gone.chunk_relid));
        END IF;
    END LOOP;
END
$fn$;
COMMENT ON FUNCTION pgbert.forget_dropped() IS
    'Event trigger (pgbert_forget_dropped): forgets dropped tables (and drops their chunks); a dropped source or vector column, or chunk table, turns embedding off.';
DROP EVENT TRIGGER IF EXISTS pgbert_forget_dropped_tables;  -- its name before 0.2
DROP EVENT TRIGGER IF EXISTS pgbert_forget_dropped;
CREATE EVENT TRIGGER pgbert_forget_dropped ON sql_drop EXECUTE FUNCTION pgbert.forget_dropped();

-- After ALTER TABLE on an embedding-enabled table (new owner, new name, new schema) its write-back
-- function is updated in place and re-owned: it always runs as the table's current owner.
CREATE OR REPLACE FUNCTION pgbert.follow_altered_tables() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    tbl regclass;
BEGIN
    IF to_regclass('pgbert.embedded_tables') IS NULL THEN
        RETURN;
    END IF;
    FOR tbl IN
        SELECT DISTINCT e.relid FROM pg_event_trigger_ddl_commands() c
          JOIN pgbert.embedded_tables e ON e.relid::oid = c.objid
         WHERE c.classid = 'pg_catalog.pg_class'::regclass AND e.strategy = 'batch'
    LOOP
        PERFORM pgbert._install_writer(tbl);  -- a chunked table's chunk table is re-owned too
        IF NOT has_function_privilege((SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = tbl),
                                      'public.embed_batch(text[])', 'EXECUTE') THEN
            RAISE WARNING 'pgbert: the owner of % may not embed: INSERTs into it will fail', tbl
                  USING HINT = format('GRANT pgbert_user TO %s;', (SELECT c.relowner::regrole FROM pg_catalog.pg_class c
                                                                    WHERE c.oid = tbl));
        END IF;
    END LOOP;
END
$fn$;
COMMENT ON FUNCTION pgbert.follow_altered_tables() IS
    'Event trigger (pgbert_follow_altered_tables): after ALTER TABLE, updates and re-owns the table''s write-back function.';
DROP EVENT TRIGGER IF EXISTS pgbert_follow_altered_tables;
CREATE EVENT TRIGGER pgbert_follow_altered_tables ON ddl_command_end WHEN TAG IN ('ALTER TABLE')
    EXECUTE FUNCTION pgbert.follow_altered_tables();
