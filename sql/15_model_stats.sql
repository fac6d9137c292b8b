-- ---------------------------------------------------------------------------------------------------
-- Per-model statistics: what every model call of the server cost, per model and engine, across all backends
-- (the model host's calls, and those of backends that run the model themselves: model_host = off), kept by
-- pgbert_runtime.model_stats in the data directory's pgbert_stats/. pgbert_admin's alone (99_privileges.sql):
-- the counts tell one role about every other's activity, in every database of the server.
-- ---------------------------------------------------------------------------------------------------

-- A call is one request to the model that returned (an embed() the vector cache did not answer, an embed_batch(),
-- a trigger's batch); its latency is what the process running the model measures around it: tokenizing, waiting
-- for the thread budget (queue_wait_ms) and running the model. Failed and cancelled calls are not counted.
CREATE OR REPLACE FUNCTION pgbert._model_stats(
    OUT bundle_path text, OUT engine text, OUT calls bigint, OUT texts bigint, OUT tokens bigint,
    OUT total_time_ms double precision, OUT p50_call_ms double precision, OUT p95_call_ms double precision,
    OUT queue_wait_ms double precision, OUT loads bigint, OUT load_time_ms double precision,
    OUT stats_since timestamptz) RETURNS SETOF record
LANGUAGE plpython3u VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
if "pgbert_api" not in GD:
    plpy.execute("SELECT pgbert._boot()")
return GD["pgbert_api"].model_stats(plpy)
$$;
COMMENT ON FUNCTION pgbert._model_stats() IS
    'Internal: the rows of the view pgbert.model_stats, summed over every process of the server that ran a model.';

CREATE OR REPLACE VIEW pgbert.model_stats AS
SELECT (SELECT pg_catalog.string_agg(m.name, ', ' ORDER BY m.name) FROM pgbert.models m
         WHERE m.bundle_path = s.bundle_path) AS model,
       s.bundle_path, s.engine, s.calls, s.texts, s.tokens, s.total_time_ms,
       s.total_time_ms / NULLIF(s.texts, 0) AS mean_time_per_text_ms,
       s.p50_call_ms, s.p95_call_ms, s.queue_wait_ms, s.loads, s.load_time_ms, s.stats_since
  FROM pgbert._model_stats() s;
COMMENT ON VIEW pgbert.model_stats IS
    'Model calls per model (bundle) and engine since pgbert.reset_model_stats(), across all backends and the model host: calls, texts, tokens, total and mean time per text, p50/p95 call latency (within 2.2%), time waited for the thread budget, loads and load time. model: the names this database registers the bundle under (NULL: registered only in another database). pgbert_admin only.';

CREATE OR REPLACE FUNCTION pgbert.reset_model_stats() RETURNS timestamptz
LANGUAGE plpython3u VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
if "pgbert_api" not in GD:
    plpy.execute("SELECT pgbert._boot()")
return GD["pgbert_api"].reset_model_stats(plpy)
$$;
COMMENT ON FUNCTION pgbert.reset_model_stats() IS
    'Starts pgbert.model_stats again from zero, for every database of the server; returns the new stats_since. pgbert_admin only.';
