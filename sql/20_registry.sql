-- ---------------------------------------------------------------------------------------------------
-- The registry of embedding-enabled tables (pgbert.embedded_tables) and the facts derived from it,
-- one helper each: the registry lookup, the ownership check, metric -> operator / operator class, and
-- the name of a table's batch write-back function.
-- ---------------------------------------------------------------------------------------------------

COMMENT ON TABLE pgbert.embedded_tables IS
    'Tables whose rows embed themselves: source and vector columns, key, strategy, metric, model. One row per CALL pgbert.enable_embedding().';

-- The registry row of an embedding-enabled table, or the one "not enabled" error.
CREATE OR REPLACE FUNCTION pgbert._embedding_config(tbl regclass) RETURNS pgbert.embedded_tables
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    cfg pgbert.embedded_tables;
BEGIN
    SELECT * INTO cfg FROM pgbert.embedded_tables e WHERE e.relid = tbl;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'pgbert: embedding is not enabled on %', tbl
              USING ERRCODE = 'object_not_in_prerequisite_state',
                    HINT = 'CALL pgbert.enable_embedding(table, source_column) first.';
    END IF;
    RETURN cfg;
END
$fn$;
COMMENT ON FUNCTION pgbert._embedding_config(regclass) IS
    'Internal: the registry row of an embedding-enabled table, or SQLSTATE 55000 "embedding is not enabled".';

-- Only a table's owner (or a member of the owner role, e.g. a superuser) turns embedding on or off.
CREATE OR REPLACE FUNCTION pgbert._require_owner(tbl regclass, action text) RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    owner oid := (SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = tbl);
BEGIN
    IF owner IS NULL THEN  -- never "allowed" by a NULL comparison: the table is gone
        RAISE EXCEPTION 'pgbert: table % does not exist', tbl USING ERRCODE = 'undefined_table';
    END IF;
    IF NOT pg_has_role(current_user, owner, 'USAGE') THEN
        RAISE EXCEPTION 'pgbert: must be the owner of table % to % embedding on it', tbl, action
              USING ERRCODE = 'insufficient_privilege';
    END IF;
END
$fn$;
COMMENT ON FUNCTION pgbert._require_owner(regclass, text) IS
    'Internal: raises unless the current role owns the table (or is a member of its owner role).';

-- Distance of a metric: the pgvector operator (schema-qualified: no look-alike can take its place) and
-- the HNSW operator class that serves it.
CREATE OR REPLACE FUNCTION pgbert._distance_operator(metric text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE metric WHEN 'cosine' THEN 'OPERATOR(@vector_schema@.<=>)' WHEN 'l2' THEN 'OPERATOR(@vector_schema@.<->)' END
$$;
COMMENT ON FUNCTION pgbert._distance_operator(text) IS
    'Internal: the qualified pgvector distance operator of a metric (cosine: <=>, l2: <->).';

CREATE OR REPLACE FUNCTION pgbert._operator_class(metric text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE metric WHEN 'cosine' THEN '@vector_schema@.vector_cosine_ops' WHEN 'l2' THEN '@vector_schema@.vector_l2_ops' END
$$;
COMMENT ON FUNCTION pgbert._operator_class(text) IS 'Internal: the qualified HNSW operator class of a metric.';

-- A table's batch write-back function lives in the pgbert schema, where only the installing superuser
-- creates objects: its name cannot be claimed in advance.
CREATE OR REPLACE FUNCTION pgbert._batch_writer_name(tbl oid) RETURNS name
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT ('batch_write_' || tbl)::name $$;
COMMENT ON FUNCTION pgbert._batch_writer_name(oid) IS
    'Internal: the name (in schema pgbert) of the batch write-back function of a table.';

-- A chunked table's write-back function: the same rule as the batch writer's name.
CREATE OR REPLACE FUNCTION pgbert._chunk_writer_name(tbl oid) RETURNS name
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT ('chunk_write_' || tbl)::name $$;
COMMENT ON FUNCTION pgbert._chunk_writer_name(oid) IS
    'Internal: the name (in schema pgbert) of the chunk write-back function of a chunked table.';

-- The key type's own equality operator, qualified: never one planted in a writable schema.
CREATE OR REPLACE FUNCTION pgbert._key_equality(tbl regclass, key_column name) RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    key_type oid := (SELECT a.atttypid FROM pg_catalog.pg_attribute a WHERE a.attrelid = tbl AND a.attname = key_column);
    key_eq   text := (SELECT format('OPERATOR(%I.=)', n.nspname)
                        FROM pg_catalog.pg_operator o JOIN pg_catalog.pg_namespace n ON n.oid = o.oprnamespace
                       WHERE o.oprname = '=' AND o.oprleft = key_type AND o.oprright = key_type
                       ORDER BY n.nspname <> 'pg_catalog' LIMIT 1);
BEGIN
    IF key_eq IS NULL THEN
        RAISE EXCEPTION 'pgbert: the key column %.% has no equality operator', tbl, quote_ident(key_column)
              USING ERRCODE = 'undefined_function', HINT = 'Use strategy => ''row''.';
    END IF;
    RETURN key_eq;
END
$fn$;
COMMENT ON FUNCTION pgbert._key_equality(regclass, name) IS
    'Internal: OPERATOR(schema.=) of a key column''s type, or an error when it has none.';

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
