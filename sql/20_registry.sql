-- ---------------------------------------------------------------------------------------------------
-- The registry of embedding-enabled tables (pgbert.embedded_tables) and the facts derived from it,
-- one helper each: the registry lookup, the ownership check, metric -> operator / operator class, and
-- the name of a table's batch write-back function.
-- ---------------------------------------------------------------------------------------------------

COMMENT ON TABLE pgbert.embedded_tables IS
    'Tables whose rows embed themselves: source and vector columns, key, strategy, metric, model. One row per CALL pgbert.enable_embedding().';

-- The role a SQL statement runs as, as its caller sees it: inside SECURITY DEFINER code current_user is
-- the definer, but the role setting (SET ROLE) is untouched and can only name a role the session's login
-- role may become. Entry points that act as pgbert's owner check the caller with this.
CREATE OR REPLACE FUNCTION pgbert._caller() RETURNS oid
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT r.oid FROM pg_catalog.pg_roles r
     WHERE r.rolname = CASE current_setting('role') WHEN 'none' THEN session_user ELSE current_setting('role') END
$$;
COMMENT ON FUNCTION pgbert._caller() IS
    'Internal: the role of the session (SET ROLE, else the login role): whom a SECURITY DEFINER entry point acts for.';

-- The newest index of an access method ('hnsw', 'gin') on one column of a table, or NULL.
CREATE OR REPLACE FUNCTION pgbert._index_on(tbl regclass, col name, method name) RETURNS name
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT ic.relname FROM pg_catalog.pg_index i
      JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
      JOIN pg_catalog.pg_am am ON am.oid = ic.relam
      JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
     WHERE i.indrelid = tbl AND am.amname = method AND i.indnatts = 1 AND a.attname = col
     ORDER BY ic.oid DESC LIMIT 1
$$;
COMMENT ON FUNCTION pgbert._index_on(regclass, name, name) IS
    'Internal: the newest single-column index of an access method on a column, or NULL.';

-- The single-column, unique (checked at once, not deferred), not-null key that batch write-back finds new
-- rows by (NULL: none).
CREATE OR REPLACE FUNCTION pgbert._batch_key(tbl regclass) RETURNS name
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT a.attname
      FROM pg_catalog.pg_index i
      JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
     WHERE i.indrelid = tbl AND i.indnkeyatts = 1 AND i.indisunique AND i.indimmediate AND i.indpred IS NULL
       AND i.indexprs IS NULL AND a.attnotnull
     ORDER BY i.indisprimary DESC, a.attnum
     LIMIT 1
$$;
COMMENT ON FUNCTION pgbert._batch_key(regclass) IS
    'Internal: the single-column unique not-null key of a table (its primary key first), or NULL.';

-- A live column's attribute number (NULL: none). The registry names columns by number, so a column stays
-- the same column through renames.
CREATE OR REPLACE FUNCTION pgbert._attnum(tbl regclass, col name) RETURNS smallint
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT a.attnum FROM pg_catalog.pg_attribute a
     WHERE a.attrelid = tbl AND a.attname = col AND a.attnum > 0 AND NOT a.attisdropped
$$;
COMMENT ON FUNCTION pgbert._attnum(regclass, name) IS 'Internal: the attribute number of a live column, or NULL.';

-- base || suffix, base cut (by whole characters) so that the whole fits PostgreSQL's 63-byte names: a long
-- name's suffixed column or table never collapses onto the name itself.
CREATE OR REPLACE FUNCTION pgbert._suffixed(base name, suffix text) RETURNS name
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT (left(base, n) || suffix)::name FROM generate_series(length(base), 0, -1) n
     WHERE octet_length(left(base, n)) + octet_length(suffix) <= 63 ORDER BY n DESC LIMIT 1
$$;
COMMENT ON FUNCTION pgbert._suffixed(name, text) IS 'Internal: base || suffix, base cut to fit a 63-byte name.';

-- A live column's name by its attribute number (NULL: none).
CREATE OR REPLACE FUNCTION pgbert._attname(tbl regclass, attnum smallint) RETURNS name
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT a.attname FROM pg_catalog.pg_attribute a
     WHERE a.attrelid = tbl AND a.attnum = _attname.attnum AND a.attnum > 0 AND NOT a.attisdropped
$$;
COMMENT ON FUNCTION pgbert._attname(regclass, smallint) IS 'Internal: the name of a live column by its number, or NULL.';

-- The embedding-enabled tables a role may see: those it owns (or whose owner it is a member of) and those
-- whose columns it may read (search() needs their registry row). The registry itself is pgbert's alone.
CREATE OR REPLACE VIEW pgbert.enabled_tables WITH (security_barrier) AS
    SELECT e.relid, e.source_column, e.vector_column, e.key_column, e.strategy, e.metric, e.dimension,
           e.model_name, pgbert._index_on(coalesce(e.chunk_relid, e.relid::oid)::regclass, e.vector_column, 'hnsw')
           AS index_name, e.enabled_by, e.enabled_at, e.lexical_config, e.lexical_column, e.chunk_tokens,
           e.overlap_tokens, e.chunk_relid, e.source_attnum, e.vector_attnum, e.key_attnum, e.lexical_attnum,
           e.next_model_name, e.next_vector_attnum, e.change_started_at, e.old_vector_attnum, e.next_chunk_relid,
           e.old_chunk_relid  -- (the registry's order)
      FROM pgbert.embedded_tables e JOIN pg_catalog.pg_class c ON c.oid = e.relid::oid
     WHERE pg_catalog.pg_has_role(c.relowner, 'USAGE')
        OR pg_catalog.has_any_column_privilege(c.oid, 'SELECT');
COMMENT ON VIEW pgbert.enabled_tables IS
    'The embedding-enabled tables you own or may read: source and vector columns, key, strategy, metric, model, index, lexical side, chunks.';

-- The registry row of an embedding-enabled table the caller may see, or the one "not enabled" error.
CREATE OR REPLACE FUNCTION pgbert._embedding_config(tbl regclass) RETURNS pgbert.embedded_tables
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    cfg pgbert.embedded_tables;
BEGIN
    SELECT * INTO cfg FROM pgbert.enabled_tables e WHERE e.relid = tbl;
    IF NOT FOUND AND NOT pg_has_role((SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = tbl), 'USAGE')
       AND NOT has_any_column_privilege(tbl, 'SELECT') THEN
        RAISE EXCEPTION 'pgbert: permission denied for table %', tbl USING ERRCODE = 'insufficient_privilege',
              HINT = format('Its owner can GRANT SELECT ON %s TO %I;', tbl, current_user);
    ELSIF NOT FOUND THEN
        RAISE EXCEPTION 'pgbert: embedding is not enabled on %', tbl
              USING ERRCODE = 'object_not_in_prerequisite_state',
                    HINT = 'CALL pgbert.enable_embedding(table, source_column) first.';
    END IF;
    RETURN cfg;
END
$fn$;
COMMENT ON FUNCTION pgbert._embedding_config(regclass) IS
    'Internal: the registry row of an embedding-enabled table (as pgbert.enabled_tables shows it), or SQLSTATE 55000 "embedding is not enabled".';

-- Distance of a metric: the pgvector operator (schema-qualified: no look-alike can take its place) and
-- the HNSW operator class that serves it.
CREATE OR REPLACE FUNCTION pgbert._distance_operator(metric text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE metric WHEN 'cosine' THEN 'OPERATOR(@vector_schema@.<=>)' WHEN 'l2' THEN 'OPERATOR(@vector_schema@.<->)'
                       WHEN 'inner_product' THEN 'OPERATOR(@vector_schema@.<#>)' END
$$;
COMMENT ON FUNCTION pgbert._distance_operator(text) IS
    'Internal: the qualified pgvector distance operator of a metric (cosine: <=>, l2: <->, inner_product: <#>).';

CREATE OR REPLACE FUNCTION pgbert._operator_class(metric text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE metric WHEN 'cosine' THEN '@vector_schema@.vector_cosine_ops' WHEN 'l2' THEN '@vector_schema@.vector_l2_ops'
                       WHEN 'inner_product' THEN '@vector_schema@.vector_ip_ops' END
$$;
COMMENT ON FUNCTION pgbert._operator_class(text) IS 'Internal: the qualified HNSW operator class of a metric.';

-- A table's write-back function (30_triggers.sql) lives in the pgbert schema, where only the installer
-- creates objects: its name cannot be claimed in advance.
CREATE OR REPLACE FUNCTION pgbert._writer_name(tbl oid) RETURNS name
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT ('write_back_' || tbl)::name $$;
COMMENT ON FUNCTION pgbert._writer_name(oid) IS
    'Internal: the name (in schema pgbert) of a table''s write-back function.';
DROP FUNCTION IF EXISTS pgbert._batch_writer_name(oid), pgbert._chunk_writer_name(oid);  -- before 0010

-- The type under a column's domains (a domain's CHECK runs its owner's functions as whoever casts to it:
-- code that reads another role's table casts to this base type, never to the domain).
CREATE OR REPLACE FUNCTION pgbert._key_base_type(tbl regclass, key_column name) RETURNS oid
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    WITH RECURSIVE t(oid, base) AS (
        SELECT y.oid, y.typbasetype FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type y ON y.oid = a.atttypid
         WHERE a.attrelid = tbl AND a.attname = key_column
        UNION ALL
        SELECT y.oid, y.typbasetype FROM t JOIN pg_catalog.pg_type y ON y.oid = t.base WHERE t.base <> 0)
    SELECT t.oid FROM t WHERE t.base = 0
$$;
COMMENT ON FUNCTION pgbert._key_base_type(regclass, name) IS
    'Internal: the type of a column with its domains resolved (casting to it runs no domain CHECK).';

-- The key type's own equality: the '=' (strategy 3) of its type's default btree operator class, which only
-- a superuser can create; never an operator found by name (one planted in any schema could win).
CREATE OR REPLACE FUNCTION pgbert._key_equality(tbl regclass, key_column name) RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    key_type oid := pgbert._key_base_type(tbl, key_column);
    key_eq   text := (SELECT format('OPERATOR(%I.%s)', n.nspname, o.oprname)
                        FROM pg_catalog.pg_opclass c
                        JOIN pg_catalog.pg_am am ON am.oid = c.opcmethod AND am.amname = 'btree'
                        JOIN pg_catalog.pg_amop ao ON ao.amopfamily = c.opcfamily AND ao.amopstrategy = 3
                             AND ao.amoplefttype = c.opcintype AND ao.amoprighttype = c.opcintype
                        JOIN pg_catalog.pg_operator o ON o.oid = ao.amopopr
                        JOIN pg_catalog.pg_namespace n ON n.oid = o.oprnamespace
                       WHERE c.opcdefault
                         AND (c.opcintype = key_type
                              OR EXISTS (SELECT 1 FROM pg_catalog.pg_cast k WHERE k.castsource = key_type
                                            AND k.casttarget = c.opcintype AND k.castmethod = 'b'))
                       ORDER BY c.opcintype <> key_type LIMIT 1);
BEGIN
    IF key_eq IS NULL THEN
        RAISE EXCEPTION 'pgbert: the key column %.% has no default btree equality', tbl, quote_ident(key_column)
              USING ERRCODE = 'undefined_function', HINT = 'Use strategy => ''row''.';
    END IF;
    RETURN key_eq;
END
$fn$;
COMMENT ON FUNCTION pgbert._key_equality(regclass, name) IS
    'Internal: OPERATOR(schema.=) of the default btree operator class of a key column''s type, or an error when it has none.';

-- Schema-qualified, quoted name of a table (for generated function bodies, which must not depend on the
-- search_path of whoever runs them).
CREATE OR REPLACE FUNCTION pgbert._qualified(tbl oid) RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT format('%I.%I', n.nspname, c.relname)
      FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = tbl
$$;
COMMENT ON FUNCTION pgbert._qualified(oid) IS 'Internal: schema.table of a relation, both quoted.';
