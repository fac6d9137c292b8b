-- ---------------------------------------------------------------------------------------------------
-- Backfill: embedding the rows that have text but no vector (rows there before enable_embedding, or
-- loaded with triggers off), in committed batches with progress.
-- ---------------------------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION pgbert.pending_rows(tbl regclass) RETURNS bigint
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    cfg pgbert.embedded_tables := pgbert._embedding_config(tbl);
    n   bigint;
BEGIN
    IF cfg.chunk_relid IS NOT NULL THEN  -- rows with text and no chunk yet (56_model_change_chunks.sql)
        RETURN pgbert._missing_chunks(cfg, NULL);
    END IF;
    EXECUTE format('SELECT count(*) FROM %s WHERE (%I IS NULL OR %s) AND %I IS NOT NULL', tbl, cfg.vector_column,
                   CASE WHEN cfg.lexical_column IS NULL THEN 'false' ELSE format('%I IS NULL', cfg.lexical_column) END,
                   cfg.source_column) INTO n;
    RETURN n;
END
$fn$;
COMMENT ON FUNCTION pgbert.pending_rows(regclass) IS
    'Rows of an embedding-enabled table that have text but no vector (or no lexemes; a chunked table''s: no chunks) yet: CALL pgbert.backfill(table) fills them.';

-- One backfill batch: embeds up to batch_size rows that have text but no vector; returns how many.
-- ctid addresses the rows without needing a key (with tableoid: partitions repeat each other's ctids); a row
-- updated meanwhile is simply picked up again.
CREATE OR REPLACE FUNCTION pgbert._backfill_batch(tbl regclass, batch_size integer) RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    cfg pgbert.embedded_tables := pgbert._embedding_config(tbl);
    n   bigint;
BEGIN
    IF cfg.chunk_relid IS NOT NULL THEN
        RETURN pgbert._backfill_chunks_batch(tbl, batch_size);
    END IF;
    RETURN pgbert._fill_vectors(tbl, cfg.source_column, cfg.vector_column, cfg.model_name, batch_size);
END
$fn$;
COMMENT ON FUNCTION pgbert._backfill_batch(regclass, integer) IS
    'Internal: embeds up to batch_size rows of a table that have text but no vector; returns how many.';

-- Up to batch_size rows whose target column is NULL and source text is not get the model's vectors: the
-- backfill, and a model change's shadow column. Rows by table oid and ctid (partitions repeat ctids).
CREATE OR REPLACE FUNCTION pgbert._fill_vectors(tbl regclass, source name, target name, model text,
                                                batch_size integer) RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    n bigint;
BEGIN
    EXECUTE format($q$
        WITH todo AS (SELECT tableoid AS r, ctid AS c, %2$I AS s FROM %1$s WHERE %3$I IS NULL AND %2$I IS NOT NULL LIMIT %4$s),
             parts AS (SELECT array_agg(r) AS rs, array_agg(c) AS cs, array_agg(s) AS ts  -- embed_batch calls of about 8 MB at most
                         FROM (SELECT r, c, s, sum(octet_length(s)) OVER (ROWS UNBOUNDED PRECEDING) / 8388608 AS part
                                 FROM todo) p
                        GROUP BY part),
             vecs AS (SELECT u.r, u.c, u.v FROM parts, unnest(parts.rs, parts.cs, pgbert.embed_batch(parts.ts::pg_catalog.text[], 'document', %5$L)) AS u(r, c, v))
        UPDATE %1$s AS t SET %3$I = vecs.v FROM vecs WHERE t.tableoid = vecs.r AND t.ctid = vecs.c$q$,
        tbl, source, target, batch_size, model);
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$fn$;
COMMENT ON FUNCTION pgbert._fill_vectors(regclass, name, name, text, integer) IS
    'Internal: embeds up to batch_size rows whose target column is NULL with the model; returns how many.';

-- One batch of a chunked table: rows that have text and no chunks (the chunk writer's INSERT, for rows
-- found by key instead of a statement's new rows).
CREATE OR REPLACE FUNCTION pgbert._backfill_chunks_batch(tbl regclass, batch_size integer) RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    RETURN pgbert._fill_chunks(pgbert._embedding_config(tbl), batch_size);
END
$fn$;
COMMENT ON FUNCTION pgbert._backfill_chunks_batch(regclass, integer) IS
    'Internal: chunks and embeds up to batch_size rows of a chunked table that have text but no chunks; returns how many.';

-- Up to batch_size rows of cfg's table that have text and no chunk in cfg's chunk table get their chunks,
-- embedded with cfg's model: the backfill, and a model change's next chunk table (56_model_change_chunks.sql).
-- Writers run meanwhile: a row is locked (FOR SHARE) while its chunks are made, so an UPDATE or DELETE of it
-- waits and then replaces or deletes them; a row a writer chunked first is chunked alike (its latest text)
-- and its chunks are kept (ON CONFLICT DO NOTHING). Returns how many rows were done.
CREATE OR REPLACE FUNCTION pgbert._fill_chunks(cfg pgbert.embedded_tables, batch_size integer) RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    tbl regclass := cfg.relid;
    n   bigint := 0;
BEGIN
    IF cfg.chunk_relid IS NULL THEN
        RETURN 0;
    END IF;
    EXECUTE format($q$
        WITH todo AS (SELECT t.%3$I AS k, t.%2$I AS s FROM %1$s t
                       WHERE t.%2$I IS NOT NULL AND NOT EXISTS (SELECT 1 FROM %4$s c WHERE c.row_key %5$s t.%3$I)
                       LIMIT %6$s FOR SHARE OF t),
             parts AS (SELECT array_agg(k) AS ks, array_agg(s) AS ts
                         FROM (SELECT k, s, sum(octet_length(s)) OVER (ROWS UNBOUNDED PRECEDING) / 8388608 AS part
                                 FROM todo) p
                        GROUP BY part),
             chunks AS (INSERT INTO %4$s (row_key, chunk, start_char, end_char, embedding%7$s)
                        SELECT parts.ks[c.ord], c.chunk, c.start_char, c.end_char, c.embedding%8$s
                          FROM parts, pgbert.embed_chunks(parts.ts::pg_catalog.text[], %9$s, %10$s, %11$L) c
                        ON CONFLICT DO NOTHING)
        SELECT count(*) FROM todo$q$,
        tbl, cfg.source_column, cfg.key_column, pgbert._qualified(cfg.chunk_relid),
        pgbert._key_equality(tbl, cfg.key_column), batch_size,
        CASE WHEN cfg.lexical_config IS NOT NULL THEN ', lexemes' ELSE '' END,
        CASE WHEN cfg.lexical_config IS NOT NULL THEN format(', pgbert.lexemes(c.passage, %L)', cfg.lexical_config)
             ELSE '' END,
        cfg.chunk_tokens, cfg.overlap_tokens, cfg.model_name) INTO n;
    RETURN n;
END
$fn$;
COMMENT ON FUNCTION pgbert._fill_chunks(pgbert.embedded_tables, integer) IS
    'Internal: chunks and embeds, with the model of cfg, up to batch_size rows that have text but no chunk in cfg''s chunk table; returns how many.';

-- One batch of the lexical side: rows that have text but no lexemes (their vectors may be there already). The
-- partitions of a partitioned table repeat each other's ctids: only rows without lexemes are touched.
CREATE OR REPLACE FUNCTION pgbert._backfill_lexemes_batch(tbl regclass, batch_size integer) RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    cfg pgbert.embedded_tables := pgbert._embedding_config(tbl);
    n   bigint := 0;
BEGIN
    IF cfg.lexical_column IS NOT NULL AND cfg.chunk_relid IS NULL THEN  -- chunks get theirs with their vectors
        EXECUTE format('UPDATE %1$s AS t SET %2$I = pgbert.lexemes(t.%3$I, %4$L)
                         WHERE t.ctid = ANY (ARRAY(SELECT ctid FROM %1$s
                                                    WHERE %2$I IS NULL AND %3$I IS NOT NULL LIMIT %5$s))
                           AND t.%2$I IS NULL AND t.%3$I IS NOT NULL',
                       tbl, cfg.lexical_column, cfg.source_column, cfg.lexical_config, batch_size);
        GET DIAGNOSTICS n = ROW_COUNT;
    END IF;
    RETURN n;
END
$fn$;
COMMENT ON FUNCTION pgbert._backfill_lexemes_batch(regclass, integer) IS
    'Internal: fills the lexical column of up to batch_size rows that have text but no lexemes; returns how many.';

-- Commits between batches when CALLed on its own; inside a transaction block it runs as one. A procedure
-- without a SET clause (only those may commit): it pins search_path itself.
CREATE OR REPLACE PROCEDURE pgbert.backfill(tbl regclass, batch_size integer DEFAULT 500)
LANGUAGE plpgsql
AS $proc$
DECLARE
    caller_path text := pg_catalog.current_setting('search_path');
    -- A CALL that began its own transaction may commit; one inside BEGIN ... COMMIT may not.
    may_commit  boolean := pg_catalog.transaction_timestamp() OPERATOR(pg_catalog.=) pg_catalog.statement_timestamp();
    total       bigint;
    done        bigint := 0;
    n           bigint;
    started     timestamptz := pg_catalog.clock_timestamp();
BEGIN
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    IF batch_size IS NULL OR batch_size < 1 THEN
        RAISE EXCEPTION 'pgbert: batch_size must be positive, got %', coalesce(batch_size::text, 'NULL')
              USING ERRCODE = 'invalid_parameter_value';
    END IF;
    total := pgbert.pending_rows(tbl);
    IF total > 0 THEN
        RAISE NOTICE 'pgbert: embedding % existing rows of % in batches of %', total, tbl, batch_size;
    END IF;
    LOOP
        n := greatest(pgbert._backfill_batch(tbl, batch_size), pgbert._backfill_lexemes_batch(tbl, batch_size));
        EXIT WHEN n = 0;
        done := done + n;
        RAISE NOTICE 'pgbert: %: % / % rows embedded (% rows/s)', tbl, done, total,
            round(done / greatest(extract(epoch FROM clock_timestamp() - started), 0.001));
        IF may_commit THEN
            COMMIT;
            PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
        END IF;
    END LOOP;
    PERFORM pg_catalog.set_config('search_path', caller_path, true);
END
$proc$;
COMMENT ON PROCEDURE pgbert.backfill(regclass, integer) IS
    'Embeds every row that has text but no vector, batch_size rows per committed transaction, with progress NOTICEs.';

-- (change_model, 55_model_change.sql: its progress)
CREATE OR REPLACE FUNCTION pgbert._count_next_pending(tbl regclass) RETURNS bigint
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    cfg pgbert.embedded_tables := pgbert._embedding_config(tbl);
    n   bigint;
BEGIN
    EXECUTE format('SELECT count(*) FROM %s WHERE %I IS NULL AND %I IS NOT NULL', tbl,
                   pgbert._attname(tbl, cfg.next_vector_attnum), cfg.source_column) INTO n;
    RETURN n;
END
$fn$;
COMMENT ON FUNCTION pgbert._count_next_pending(regclass) IS 'Internal: rows without the new model''s vector yet.';
