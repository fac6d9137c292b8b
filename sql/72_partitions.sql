-- ---------------------------------------------------------------------------------------------------
-- Partitioned tables. A registered partitioned table has one registry row; its partitions are found in the
-- catalogs whenever they are needed. PostgreSQL clones the table's row triggers onto every partition, but a
-- statement that names a partition fires only that partition's statement triggers, never its parent's: so
-- the table's statement triggers (batch write-back, chunks, queue) are copied onto every partition, each
-- copy carrying the registered table's oid as its argument. A chunked table's chunk table is partitioned as
-- the table is (by row_key, the table's key, which is its partition key): a partition's chunks live in its
-- twin (same bound, same level), so TRUNCATE, DETACH and DROP of a partition are the same on its twin. The
-- event triggers (70_events.sql) keep both in step with CREATE TABLE ... PARTITION OF, ATTACH, DETACH, DROP.
--
-- Definer code writes rows through the table as its owner (the batch write-back, the queue's store step),
-- and a partition's own triggers then run as that owner: every partition must be owned by a role that can
-- act as the table's owner (the owner, a member of it, a superuser), or those writes are refused.
-- ---------------------------------------------------------------------------------------------------

-- The registered table whose rows rel holds: rel itself, or the registered table it is a partition of.
CREATE OR REPLACE FUNCTION pgbert._registered_ancestor(rel oid) RETURNS regclass
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT e.relid FROM pgbert.embedded_tables e
     WHERE e.relid::oid = rel OR e.relid::oid IN (SELECT a.relid FROM pg_catalog.pg_partition_ancestors(rel) a)
     ORDER BY e.relid::oid = rel DESC LIMIT 1
$$;
COMMENT ON FUNCTION pgbert._registered_ancestor(oid) IS
    'Internal: the embedding-enabled table whose rows a relation holds (itself, or the one it is a partition of), or NULL.';

-- Raises when a relation of scope's partition tree is owned by a role that cannot act as tbl's owner:
-- writing rows through tbl as its owner would run that role's triggers as the owner.
CREATE OR REPLACE FUNCTION pgbert._check_partition_owners(tbl oid, scope oid) RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    owner oid := (SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = tbl);
    bad   record;
BEGIN
    SELECT c.oid::regclass AS rel, c.relowner::regrole AS role INTO bad
      FROM pg_catalog.pg_partition_tree(scope) p JOIN pg_catalog.pg_class c ON c.oid = p.relid
     WHERE c.relowner <> owner AND NOT pg_catalog.pg_has_role(c.relowner, owner, 'USAGE') LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'pgbert: partition % of % is owned by %, who is not a member of its owner %: pgbert writes '
              'no rows into it as %', bad.rel, tbl::regclass, bad.role, owner::regrole, owner::regrole
              USING ERRCODE = 'insufficient_privilege',
                    HINT = format('ALTER TABLE %s OWNER TO %I;', bad.rel, pg_catalog.pg_get_userbyid(owner));
    END IF;
END
$fn$;
COMMENT ON FUNCTION pgbert._check_partition_owners(oid, oid) IS
    'Internal: raises unless every relation of scope''s partition tree is owned by a role that can act as tbl''s owner.';

-- Raises unless tbl's partition tree may be embedded as one: no other table of the tree embeds on its own (an
-- ancestor would embed tbl's rows a second time, a registered partition its own), no partition is a foreign
-- table (no transition tables there), and, with owners, every partition's owner can act as tbl's.
CREATE OR REPLACE FUNCTION pgbert._check_partition_tree(tbl regclass, owners boolean) RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    other regclass := (SELECT e.relid FROM pg_catalog.pg_partition_ancestors(tbl) a
                         JOIN pgbert.embedded_tables e ON e.relid::oid = a.relid WHERE a.relid <> tbl::oid LIMIT 1);
BEGIN
    IF other IS NOT NULL THEN
        RAISE EXCEPTION 'pgbert: % is a partition of %, which has embedding enabled: its rows are embedded through '
              'its parent', tbl, other USING ERRCODE = 'object_not_in_prerequisite_state',
              HINT = format('Search %s; or CALL pgbert.disable_embedding(%L) first.', other, other::text);
    END IF;
    other := (SELECT e.relid FROM pg_catalog.pg_partition_tree(tbl) p
                JOIN pgbert.embedded_tables e ON e.relid::oid = p.relid WHERE p.relid <> tbl::oid LIMIT 1);
    IF other IS NOT NULL THEN
        RAISE EXCEPTION 'pgbert: partition % of % has embedding enabled on its own: CALL pgbert.disable_embedding(%L) '
              'first', other, tbl, other::text USING ERRCODE = 'object_not_in_prerequisite_state',
              HINT = 'Its vectors are kept; the table embeds the partition''s rows from then on.';
    END IF;
    other := (SELECT p.relid FROM pg_catalog.pg_partition_tree(tbl) p JOIN pg_catalog.pg_class c ON c.oid = p.relid
               WHERE c.relkind = 'f' LIMIT 1);
    IF other IS NOT NULL THEN
        RAISE EXCEPTION 'pgbert: partition % of % is a foreign table: pgbert embeds the rows of local tables only',
              other, tbl USING ERRCODE = 'feature_not_supported', HINT = 'Embed its rows where they are stored.';
    END IF;
    IF owners THEN
        PERFORM pgbert._check_partition_owners(tbl, tbl);
    END IF;
END
$fn$;
COMMENT ON FUNCTION pgbert._check_partition_tree(regclass, boolean) IS
    'Internal: raises unless a table''s partition tree may be embedded as one (no other registration in it, no foreign partition, and with owners: partition owners that can act as its owner).';

-- Copies tbl's statement triggers onto every partition (any level) that lacks them, a trigger disabled on
-- tbl disabled there too; returns the partitions that got copies (new ones). The copies are rebuilt from the
-- catalog (timing, events, transition tables) and carry tbl's oid as their only argument.
CREATE OR REPLACE FUNCTION pgbert._copy_statement_triggers(tbl regclass) RETURNS SETOF regclass
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    part regclass;
    t    record;
    got  boolean;
BEGIN
    FOR part IN SELECT p.relid FROM pg_catalog.pg_partition_tree(tbl) p JOIN pg_catalog.pg_class c ON c.oid = p.relid
                 WHERE p.relid <> tbl::oid AND c.relkind IN ('r', 'p') ORDER BY p.level, p.relid LOOP
        got := false;
        FOR t IN SELECT s.tgname, s.tgtype, s.tgoldtable, s.tgnewtable, s.tgenabled, f.proname
                   FROM pg_catalog.pg_trigger s JOIN pg_catalog.pg_proc f ON f.oid = s.tgfoid
                  WHERE s.tgrelid = tbl AND s.tgparentid = 0 AND NOT s.tgisinternal AND s.tgtype & 1 = 0
                    AND f.pronamespace = 'pgbert'::regnamespace
                    AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger o WHERE o.tgrelid = part AND o.tgname = s.tgname)
                  ORDER BY s.tgname LOOP
            EXECUTE format('CREATE TRIGGER %I %s %s ON %s%s FOR EACH STATEMENT EXECUTE FUNCTION pgbert.%I(%L)',
                           t.tgname, CASE WHEN t.tgtype & 2 <> 0 THEN 'BEFORE' ELSE 'AFTER' END,
                           array_to_string(ARRAY(SELECT e.name FROM (VALUES (4, 'INSERT'), (8, 'DELETE'), (16, 'UPDATE'),
                                                                             (32, 'TRUNCATE')) e(bit, name)
                                                  WHERE t.tgtype & e.bit <> 0), ' OR '), part,
                           CASE WHEN t.tgoldtable IS NOT NULL OR t.tgnewtable IS NOT NULL THEN ' REFERENCING'
                                || coalesce(' OLD TABLE AS ' || quote_ident(t.tgoldtable), '')
                                || coalesce(' NEW TABLE AS ' || quote_ident(t.tgnewtable), '') ELSE '' END,
                           t.proname, tbl::oid);
            IF t.tgenabled = 'D' THEN
                EXECUTE format('ALTER TABLE %s DISABLE TRIGGER %I', part, t.tgname);
            END IF;
            got := true;
        END LOOP;
        IF got THEN
            RETURN NEXT part;
        END IF;
    END LOOP;
END
$fn$;
COMMENT ON FUNCTION pgbert._copy_statement_triggers(regclass) IS
    'Internal: copies a partitioned table''s statement triggers onto the partitions that lack them; returns those partitions.';

-- Drops the copies of tbl's statement triggers (found by their argument, tbl's oid): every copy, or with
-- detached_only those left on tables that are no longer in tbl's tree (DETACH PARTITION).
CREATE OR REPLACE FUNCTION pgbert._drop_partition_triggers(tbl regclass, detached_only boolean) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    t record;
BEGIN
    FOR t IN SELECT s.tgname, s.tgrelid::regclass AS rel FROM pg_catalog.pg_trigger s
               JOIN pg_catalog.pg_proc f ON f.oid = s.tgfoid
              WHERE f.pronamespace = 'pgbert'::regnamespace AND s.tgparentid = 0 AND s.tgnargs = 1
                AND pg_catalog.encode(s.tgargs, 'escape') = tbl::oid || '\000' AND s.tgrelid <> tbl::oid
                AND NOT (detached_only AND s.tgrelid IN (SELECT p.relid FROM pg_catalog.pg_partition_tree(tbl) p)) LOOP
        EXECUTE format('DROP TRIGGER %I ON %s', t.tgname, t.rel);
    END LOOP;
END
$fn$;
COMMENT ON FUNCTION pgbert._drop_partition_triggers(regclass, boolean) IS
    'Internal: drops the copies of a table''s statement triggers on its partitions (or only on tables detached from it).';

-- The rows of a partition that joined a registered table (ATTACH) with text and no vector (no chunks):
-- queued for the workers (strategies queue and auto), or counted in a NOTICE that says how to backfill them.
CREATE OR REPLACE FUNCTION pgbert._joined_rows(tbl regclass, part regclass) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    cfg pgbert.embedded_tables := (SELECT e FROM pgbert.embedded_tables e WHERE e.relid = tbl);
    n   bigint;
BEGIN
    IF (SELECT c.relkind FROM pg_catalog.pg_class c WHERE c.oid = part) <> 'r' THEN
        RETURN;  -- no rows of its own: its leaves joined too
    ELSIF cfg.strategy IN ('queue', 'auto') THEN
        PERFORM pgbert._enqueue_existing(tbl, part);  -- 48_queue_admin.sql
        RETURN;
    END IF;
    EXECUTE format('SELECT count(*) FROM %s t WHERE t.%I IS NOT NULL AND %s', part, cfg.source_column,
                   CASE WHEN cfg.chunk_relid IS NULL THEN format('t.%I IS NULL', cfg.vector_column)
                        ELSE format('NOT EXISTS (SELECT 1 FROM %s c WHERE c.row_key %s t.%I)', cfg.chunk_relid::regclass,
                                    pgbert._key_equality(tbl, cfg.key_column), cfg.key_column) END) INTO n;
    IF n > 0 THEN
        RAISE NOTICE 'pgbert: % rows of % have text and no vector yet: CALL pgbert.backfill(%L);', n, part, tbl::text;
    END IF;
END
$fn$;
COMMENT ON FUNCTION pgbert._joined_rows(regclass, regclass) IS
    'Internal: queues (or counts, for a NOTICE) the rows without vectors of a partition that joined an embedding-enabled table.';

-- Keeps a registered partitioned table's partitions in step: after setup_embedding and _reinstall, and with
-- joined after DDL on its tree (70_events.sql). The chunk table's partitions mirror the table's; partitions
-- that lack the table's statement triggers get copies (with joined: their owners are checked and their rows
-- without vectors queued or counted); partitions whose owner cannot act as the table's are warned about;
-- copies left on detached tables are dropped.
CREATE OR REPLACE FUNCTION pgbert._follow_partitions(tbl regclass, joined boolean) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    -- the chunk table, and a model change's next and old ones (56_model_change_chunks.sql): all follow
    chunks oid[] := (SELECT ARRAY[e.chunk_relid, e.next_chunk_relid, e.old_chunk_relid] FROM pgbert.embedded_tables e
                      WHERE e.relid = tbl);
    owner  oid := (SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = tbl);
    part   record;
BEGIN
    IF (SELECT c.relkind FROM pg_catalog.pg_class c WHERE c.oid = tbl) <> 'p' THEN
        RETURN;
    ELSIF joined THEN
        PERFORM pgbert._check_partition_tree(tbl, false);
    END IF;
    PERFORM pgbert._mirror_partitions(tbl, c) FROM unnest(chunks) c WHERE c IS NOT NULL;  -- 36_chunk_triggers.sql
    FOR part IN SELECT s AS rel FROM pgbert._copy_statement_triggers(tbl) s LOOP
        IF joined THEN  -- a partition that joins with an owner who cannot act as the table's: refused
            PERFORM pgbert._check_partition_owners(tbl, part.rel);
            PERFORM pgbert._joined_rows(tbl, part.rel);
        END IF;
    END LOOP;
    FOR part IN SELECT p.relid::regclass AS rel, c.relowner::regrole AS role
                  FROM pg_catalog.pg_partition_tree(tbl) p JOIN pg_catalog.pg_class c ON c.oid = p.relid
                 WHERE NOT pg_catalog.pg_has_role(c.relowner, owner, 'USAGE') LOOP
        RAISE WARNING 'pgbert: partition % of % is owned by %, who is not a member of its owner %: pgbert will '
              'refuse to write vectors into %', part.rel, tbl, part.role, owner::regrole, tbl
              USING HINT = format('ALTER TABLE %s OWNER TO %I;', part.rel, pg_catalog.pg_get_userbyid(owner));
    END LOOP;
    PERFORM pgbert._drop_partition_triggers(tbl, true);
END
$fn$;
COMMENT ON FUNCTION pgbert._follow_partitions(regclass, boolean) IS
    'Internal: keeps an embedding-enabled partitioned table''s partitions in step (statement triggers, chunk partitions, owners, rows of partitions that joined).';
