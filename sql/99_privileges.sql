-- ---------------------------------------------------------------------------------------------------
-- Every privilege pgbert grants, in one place. The least that works:
--   PUBLIC        reads the model registry, settings and table registry (an INSERT-only role's rows are
--                 embedded by triggers that read them as that role), and may import the runtime (_boot:
--                 the triggers call it as that role; it loads no model). Nothing that runs the model.
--   pgbert_user   embeds, searches, turns embedding on and off for tables it owns.
--   pgbert_admin  also switches models and tunes runtime settings (never python_path: row-level security).
-- Trigger functions need EXECUTE only to be attached (CREATE TRIGGER), never to fire.
-- ---------------------------------------------------------------------------------------------------
GRANT USAGE ON SCHEMA pgbert TO PUBLIC;

REVOKE ALL ON ALL TABLES IN SCHEMA pgbert FROM PUBLIC;
GRANT SELECT ON pgbert.settings, pgbert.models, pgbert.active_model, pgbert.embedded_tables TO PUBLIC;
GRANT UPDATE (value) ON pgbert.settings TO pgbert_admin;          -- python_path excluded by row-level security
GRANT INSERT, UPDATE, DELETE ON pgbert.models TO pgbert_admin;
GRANT INSERT, UPDATE, DELETE ON pgbert.embedded_tables TO pgbert_user;  -- own tables only: row-level security

-- Functions and procedures: nothing for PUBLIC but _boot, then each signature granted once.
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA pgbert FROM PUBLIC;
REVOKE ALL ON ALL PROCEDURES IN SCHEMA pgbert FROM PUBLIC;
REVOKE ALL ON FUNCTION public.embed(text), public.embed(text, text), public.embed_batch(text[]),
                       public.embed_batch(text[], text), public.search(text, integer),
                       public.search(text, integer, regclass, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pgbert._boot() TO PUBLIC;

GRANT EXECUTE ON FUNCTION
    public.embed(text), public.embed(text, text), public.embed_batch(text[]), public.embed_batch(text[], text),
    public.search(text, integer),
    public.search(text, integer, regclass, text), pgbert.status(), pgbert.pending_rows(regclass),
    -- attached by enable_embedding, as the table's owner
    pgbert.embed_row(), pgbert.batch_start(), pgbert.batch_end(),
    -- the steps of enable/disable_embedding, backfill and search, which run as their caller
    pgbert._embedding_config(regclass), pgbert._require_owner(regclass, text), pgbert._distance_operator(text),
    pgbert._operator_class(text), pgbert._batch_writer_name(oid), pgbert._batch_writer_ddl(pgbert.embedded_tables),
    pgbert._install_writer(regclass), pgbert._drop_writers(oid), pgbert._install_triggers(regclass),
    pgbert._drop_triggers(regclass), pgbert._check_source(regclass, name),
    pgbert._ensure_vector_column(regclass, name, pgbert.models), pgbert._batch_key(regclass),
    pgbert._register(regclass, name, name, text, text, integer, integer), pgbert._build_index(regclass),
    pgbert._key_equality(regclass, name), pgbert._qualified(oid), pgbert._check_lexical_config(text),
    -- chunked tables
    pgbert.embed_chunks(text[], integer, integer), pgbert._chunk_table_name(regclass),
    pgbert.row_visible(oid, smallint, smallint, anyelement),
    pgbert._create_chunk_table(regclass, name, name, integer, boolean), pgbert._chunk_writer_name(oid),
    pgbert._chunk_writer_ddl(pgbert.embedded_tables), pgbert._install_chunk_triggers(regclass),
    pgbert._register_chunks(regclass, pgbert.models, name, name, name, text, integer, integer),
    pgbert._backfill_chunks_batch(regclass, integer), pgbert._chunk_search(pgbert.embedded_tables, text, integer, text),
    pgbert._best_chunks(pgbert.embedded_tables, text, @vector_schema@.vector, integer, text, text, float8, float8, float8,
                        integer),
    pgbert._chunk_writer_template(),
    pgbert._index_on(regclass, name, name),
    pgbert._ensure_lexical_column(regclass, name, text), pgbert.lexemes(text, text), pgbert.query_lexemes(text, text),
    pgbert.text_language(text),
    pgbert._backfill_batch(regclass, integer), pgbert._backfill_lexemes_batch(regclass, integer),
    pgbert._row_columns(pgbert.embedded_tables), pgbert._vector_ranking(pgbert.embedded_tables, @vector_schema@.vector, integer),
    pgbert._lexical_ranking(pgbert.embedded_tables, text[], integer),
    pgbert._fused_search(pgbert.embedded_tables, text, integer, text)
TO pgbert_user;
GRANT EXECUTE ON PROCEDURE
    pgbert.enable_embedding(regclass, name, name, text, boolean, boolean, integer, text, integer, integer),
    pgbert.disable_embedding(regclass, boolean), pgbert.backfill(regclass, integer)
TO pgbert_user;

GRANT EXECUTE ON FUNCTION pgbert.use_model(text, text) TO pgbert_admin;
