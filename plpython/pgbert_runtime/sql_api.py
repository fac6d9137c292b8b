"""The SQL API's PL/Python bodies call these (trigger handlers are in triggers.py). Each takes `plpy`,
so it is testable with a fake.

The active model and runtime settings are read from admin-owned tables (pgbert.models,
pgbert.settings) on every call: a non-admin cannot point a backend at another file, and a
model switched or repaired by an admin is picked up by the next call, without a restart.
"""
from __future__ import annotations

import time
from contextlib import contextmanager

from . import host_client, lexical, memory, wire
from .bundle import KINDS, BundleError, NoKnownWords
from .cache import VectorCache
from .chunker import TooManyChunks
from .vectors import to_pgvector

# The runtime settings, one row; NULL means the default.
SETTINGS_SQL = """
SELECT (SELECT value FROM pgbert.settings WHERE name = 'threads') AS threads,
       (SELECT value FROM pgbert.settings WHERE name = 'batch_size') AS batch_size,
       (SELECT value FROM pgbert.settings WHERE name = 'batch_tokens') AS batch_tokens,
       (SELECT value FROM pgbert.settings WHERE name = 'engine') AS engine,
       (SELECT value FROM pgbert.settings WHERE name = 'max_input_chars') AS max_input_chars,
       (SELECT value FROM pgbert.settings WHERE name = 'embed_cache_mb') AS embed_cache_mb,
       (SELECT value FROM pgbert.settings WHERE name = 'memory_reserve_mb') AS memory_reserve_mb,
       (SELECT value FROM pgbert.settings WHERE name = 'thread_budget') AS thread_budget,
       (SELECT value FROM pgbert.settings WHERE name = 'shared_weights') AS shared_weights,
       (SELECT value FROM pgbert.settings WHERE name = 'max_chunks_per_row') AS max_chunks_per_row,
       (SELECT value FROM pgbert.settings WHERE name = 'model_host') AS model_host,
       (SELECT value FROM pgbert.settings WHERE name = 'auto_inline_tokens') AS auto_inline_tokens,
       (SELECT value FROM pgbert.settings WHERE name = 'max_loaded_models') AS max_loaded_models,
       (SELECT value FROM pgbert.settings WHERE name = 'python_path') AS python_path
"""
# current_user: the role embed()'s cache belongs to, read with the model at no extra cost.
ACTIVE_MODEL_SQL = f"""
SELECT m.name, m.bundle_path, m.dimension, m.max_tokens, (m.manifest->'files')::text AS files, current_user AS role,
       s.*
  FROM pgbert.models m, ({SETTINGS_SQL}) s WHERE m.active
"""
# A model by its name (embed(text, model => name), a table's model).
NAMED_MODEL_SQL = ACTIVE_MODEL_SQL.replace("WHERE m.active", "WHERE m.name = $1")
# What status() shows every pgbert_user: the model and where it runs. The counters tell one role about others'
# activity (the model host's count every database's requests; this backend's and its cache's, every role that a
# pooler SET ROLEs to): members of pgbert_admin and superusers only.
PUBLIC_STATUS = frozenset({"model_runs_in", "model", "bundle_path", "dimension", "pooling", "normalize", "max_tokens",
                           "threads", "batch_size", "batch_tokens", "engine", "engine_reason", "weights",
                           "onnxruntime", "tokenizers"})
ADMIN_SQL = "SELECT pg_catalog.pg_has_role(current_user, 'pgbert_admin', 'MEMBER') AS admin"

# SQLSTATE 55000 (object_not_in_prerequisite_state): the model is not usable until an admin acts.
NOT_READY = "55000"
# SQLSTATE 53200 (out_of_memory): the memory guard refused to load the model in this backend.
OUT_OF_MEMORY = "53200"
# SQLSTATE 54000 (program_limit_exceeded): more input in one call than the max_input_chars setting allows.
TOO_MUCH_INPUT = "54000"
# SQLSTATE 58000 (system_error): the model host stopped while answering this call.
HOST_FAILED = "58000"
# Chunks one text may make (chunked tables): past it, SQLSTATE 54000 (max_chunks_per_row in pgbert.settings).
DEFAULT_MAX_CHUNKS = 2000
_plan = None
_named_plan = None
_ping = None
stats = {"calls": 0, "texts": 0, "seconds": 0.0, "load_seconds": 0.0}
cache = VectorCache()
# Why this backend runs the model itself although model_host is on (None: it does not); status() shows it.
host_fallback: str | None = None


def _active(plpy, name: str | None = None):
    """The active model, or the model registered under name (a host_client.RemoteModel, or a
    local.LocalModel loaded in this backend), and the settings row it was read with."""
    global _plan, _named_plan
    if name is None:
        if _plan is None:
            _plan = plpy.prepare(ACTIVE_MODEL_SQL)
        rows = plpy.execute(_plan)
    else:
        if _named_plan is None:
            _named_plan = plpy.prepare(NAMED_MODEL_SQL, ["text"])
        rows = plpy.execute(_named_plan, [name])
        if not rows:
            plpy.error(f"pgbert: no model named {name!r}", sqlstate="42704",
                       hint="SELECT name FROM pgbert.models; lists them. An administrator adds one with "
                            "SELECT pgbert.add_model('name', '/path/to/bundle');")
    if not rows:
        plpy.error("pgbert: no active model", sqlstate=NOT_READY,
                   hint="An administrator registers one with: SELECT pgbert.use_model('/path/to/bundle');")
    return _load_registered(plpy, rows[0]), rows[0]


def _load_registered(plpy, row: dict):
    """The model of a registry row with its settings, its bundle checked against the files registered."""
    started = time.perf_counter()
    with model_errors(plpy, row["name"]):
        model = _model_for(plpy, row["bundle_path"], row)
    stats["load_seconds"] += time.perf_counter() - started  # cache hits add microseconds
    # Equal file lists imply the registered dimension too (the engine checks the ONNX width on load).
    if model.bundle.files != _registered_files(row["files"]):
        plpy.error(f"pgbert: the files in {row['bundle_path']} are not the ones registered for model "
                   f"{row['name']!r} (bundle now holds {model.bundle.model_id}, "
                   f"{model.dimension}-d); vectors would not match the ones already stored", sqlstate=NOT_READY,
                   hint="Restore the registered bundle, or register the new one with "
                        "SELECT pgbert.use_model(path) (a different model needs its tables re-embedded).")
    return model


@contextmanager
def model_errors(plpy, name: str):
    """What loading or running the model may raise, here or in the model host, as SQL errors with a hint."""
    try:
        yield
    except memory.NotEnoughMemory as exc:
        plpy.error(f"pgbert: {exc}", sqlstate=OUT_OF_MEMORY,
                   hint="Free or add memory (with model_host off, every backend that embeds holds the model: pool "
                        "connections with PgBouncer), or, if you know better, lower memory_reserve_mb in "
                        "pgbert.settings.")
    except NoKnownWords as exc:  # a static model's query (static.py says why an error and not zero rows)
        plpy.error(f"pgbert: model {name!r}: {exc}", sqlstate="22023",
                   hint="A static model knows only the words it was built from: search with other words, or "
                        "match words lexically (search(..., mode => 'lexical') on a table with a lexical side).")
    except BundleError as exc:
        plpy.error(f"pgbert: model {name!r} cannot be loaded: {exc}", sqlstate=NOT_READY,
                   hint="Check SELECT * FROM pgbert.status(); fix the bundle or switch with pgbert.use_model().")
    except (wire.HostError, host_client.HostUnavailable) as exc:
        plpy.error(f"pgbert: {exc}", sqlstate=HOST_FAILED,
                   hint="Run the statement again. SELECT * FROM pgbert.status() shows the model host; "
                        "model_host = 'off' in pgbert.settings runs the model in each backend instead.")


def _model_for(plpy, bundle_path: str, settings: dict):
    """The server's model host when the model_host setting is on and one answers (or starts), else the model
    loaded in this backend: a first failure to start the host is a WARNING, and status() says why."""
    global host_fallback
    if wire.is_on(settings.get("model_host")) and host_client.in_server():
        try:
            model = host_client.model_for(bundle_path, settings)
            host_fallback = None
            return model
        except host_client.HostUnavailable as exc:
            if host_fallback is None:
                plpy.warning(f"pgbert: {exc}; this backend loads the model itself",
                             hint="SELECT * FROM pgbert.status() shows why; model_host = 'off' in pgbert.settings "
                                  "makes this the rule (no warning).")
            host_fallback = str(exc)
    from . import local  # numpy, tokenizers, ONNX Runtime: only a backend that runs the model imports them

    thread_budget = int(settings.get("thread_budget") or 0) or None
    return local.LocalModel(local.load_encoder(bundle_path, settings), thread_budget)


_files_cache: tuple[str, dict] | None = None


def _registered_files(files_json: str) -> dict:
    """The registered manifest's file list, parsed once per distinct value."""
    global _files_cache
    if _files_cache is None or _files_cache[0] != files_json:
        import json
        _files_cache = (files_json, json.loads(files_json))
    return _files_cache[1]


def interrupt_check(plpy):
    """A callable the encoder runs between tokenizer chunks and model calls. Running a (prepared, trivial)
    statement lets PostgreSQL act on a pending cancel or statement_timeout: it raises there, and the
    error ends the call. Without it, a long embedding could only be stopped by terminating the backend."""
    global _ping
    if _ping is None:
        _ping = plpy.prepare("SELECT 1")
    return lambda: plpy.execute(_ping)


def _no_check() -> None:
    """The interrupt check of a call that may run no query."""


def _check_input_size(plpy, texts, settings: dict) -> None:
    """call_chars: the whole call's size, where embed_registered gets it in slices."""
    limit = int(settings.get("max_input_chars") or 0)
    total = settings.get("call_chars") or sum(len(t) for t in texts if t is not None)
    if limit and total > limit:
        plpy.error(f"pgbert: {total} characters in one call, more than max_input_chars ({limit})",
                   sqlstate=TOO_MUCH_INPUT,
                   hint="Embed fewer or shorter texts per call (only the first few thousand characters of a text "
                        "reach the model), or ask an administrator to raise max_input_chars in pgbert.settings.")


def _embed(plpy, texts, kind: str, active: tuple | None = None, may_query: bool = True) -> list:
    """Vectors of texts (rows with .tolist()), in order; None for a None text. may_query=False: run no
    query (in parallel mode, where PL/Python's queries are refused): no checks for a cancel meanwhile."""
    model, settings = active or _active(plpy)
    if kind not in KINDS:
        plpy.error(f"pgbert: kind must be 'query' or 'document', not {kind!r}", sqlstate="22023",
                   hint="'query' for a search query, 'document' for a text that is searched (the default).")
    _check_input_size(plpy, texts, settings)
    started = time.perf_counter()
    present = [i for i, t in enumerate(texts) if t is not None]
    with model_errors(plpy, settings["name"]):
        found = model.encode([texts[i] for i in present], kind, interrupt_check(plpy) if may_query else _no_check)
    vectors = [None] * len(texts)
    for i, vector in zip(present, found, strict=True):
        vectors[i] = vector
    stats["calls"] += 1
    stats["texts"] += len(present)
    stats["seconds"] += time.perf_counter() - started
    return vectors


def embed(plpy, text: str | None, kind: str = "document", cached: bool = True, model: str | None = None) -> str | None:
    """kind: 'document' (stored texts: what triggers embed) or 'query' (search queries); a model that
    expects prompts (E5: 'query: ' / 'passage: ') gets the one its manifest records for that kind.
    cached: look in (and fill) the backend's vector cache; the triggers do not, so that loading a table
    does not fill it with texts nobody searches for."""
    if text is None:
        return None
    active = model, settings = _active(plpy, model)
    limit = int(settings.get("embed_cache_mb") or 0) * 1024 * 1024 if cached else 0
    if limit:
        hit = cache.get(model.bundle, settings["role"], (kind, text))  # the bundle object: one per loaded model
        if hit is not None:
            return hit
    vector = to_pgvector(_embed(plpy, [text], kind, active)[0])
    if limit:
        cache.put(model.bundle, settings["role"], (kind, text), vector, limit)
    return vector


def embed_batch(plpy, texts: list | None, kind: str = "document", model: str | None = None) -> list | None:
    """One model pass for many texts; NULL elements give NULL vectors, order kept."""
    if texts is None:
        return None
    vectors = _embed(plpy, texts, kind, _active(plpy, model))
    return [None if v is None else to_pgvector(v) for v in vectors]


def embed_registered(plpy, texts: list, kind: str, registered: str) -> list:
    """embed(text, model => name) and embed_batch(..., model => name), which may run in parallel mode: the
    registry row and settings come as JSON from pgbert._embed_named (PL/pgSQL reads them there without the
    subtransaction PL/Python would need) and no query runs here. No vector cache: the caller's role, its key,
    is not known here (the function runs as its owner)."""
    import json

    row = json.loads(registered)
    vectors = _embed(plpy, texts, kind, (_load_registered(plpy, row), row), may_query=False)
    return [None if v is None else to_pgvector(v) for v in vectors]


def embed_chunks(plpy, texts: list | None, chunk_tokens: int, overlap_tokens: int,
                 model: str | None = None) -> list[tuple]:
    """Chunks of every text (chunker.py) with their vectors, embedded as documents in batched model calls:
    rows (ord: the text's position from 1, chunk from 0, start_char, end_char, passage, vector)."""
    if not texts:
        return []
    model, settings = active = _active(plpy, model)
    with model_errors(plpy, settings["name"]):
        window = model.chunk_window
    if chunk_tokens is None or overlap_tokens is None or not (1 <= chunk_tokens <= window
                                                              and 0 <= overlap_tokens < chunk_tokens):
        plpy.error(f"pgbert: chunk_tokens must be 1..{window} (the model's window less its special tokens and "
                   f"prompt) and overlap_tokens 0..chunk_tokens-1, got {chunk_tokens} and {overlap_tokens}",
                   sqlstate="22023")
    _check_input_size(plpy, texts, settings)
    limit = int(settings.get("max_chunks_per_row") or DEFAULT_MAX_CHUNKS)
    present = [(ord_, text) for ord_, text in enumerate(texts, 1) if text is not None]
    try:
        with model_errors(plpy, settings["name"]):
            spans = model.chunk([text for _, text in present], chunk_tokens, overlap_tokens, limit,
                                interrupt_check(plpy))
    except TooManyChunks as exc:
        plpy.error(f"pgbert: {exc}", sqlstate=TOO_MUCH_INPUT,
                   hint="Split the document into several rows, or ask an administrator to raise "
                        "max_chunks_per_row in pgbert.settings.")
    rows, passages = [], []
    for (ord_, text), text_spans in zip(present, spans, strict=True):
        for chunk, (start, end) in enumerate(text_spans):
            rows.append((ord_, chunk, start, end))
            passages.append(text[start:end])
    vectors = _embed(plpy, passages, "document", active)
    return [(*row, passage, to_pgvector(vector)) for row, passage, vector in zip(rows, passages, vectors, strict=True)]


# ---- the lexical side of hybrid search ------------------------------------------------------------------
# Japanese is segmented here (lexical.py: Sudachi); every other language by PostgreSQL's own text search
# configurations. 'auto' picks per text by script: Japanese, or AUTO_FALLBACK.
AUTO_FALLBACK = "english"
_lexical_plans: dict[str, object] = {}


def _lexical_plan(plpy, name: str, query: str):
    if name not in _lexical_plans:
        _lexical_plans[name] = plpy.prepare(query, ["text", "text"])
    return _lexical_plans[name]


def _postgres_config(config: str) -> str:
    return AUTO_FALLBACK if config.strip().lower() == lexical.AUTO else config


def document_lexemes(plpy, text: str | None, config: str) -> str | None:
    """The tsvector (as text) of a document under a table's lexical config: triggers, backfill and
    pgbert.lexemes() all come here."""
    if text is None:
        return None
    try:
        literal = lexical.to_tsvector_text(text, config, interrupt_check(plpy))
    except lexical.AnalyzerUnavailable as exc:
        plpy.error(f"pgbert: {exc}", sqlstate=NOT_READY,
                   hint="The runtime environment needs sudachipy and sudachidict-core (pgbert's dependencies).")
    if literal is not None:
        return literal
    plan = _lexical_plan(plpy, "tsvector", "SELECT pg_catalog.to_tsvector($1::pg_catalog.regconfig, $2)::text AS v")
    return plpy.execute(plan, [_postgres_config(config), text])[0]["v"]


def query_lexemes(plpy, query: str | None, config: str) -> list[str]:
    """The distinct lexemes of a search query, analysed as the table's documents are; a query over
    lexical.MAX_QUERY_CHARS is refused (SQLSTATE 54000)."""
    if query is None:
        return []
    if len(query) > lexical.MAX_QUERY_CHARS:
        plpy.error(f"pgbert: a search query of {len(query)} characters, more than {lexical.MAX_QUERY_CHARS}",
                   sqlstate=TOO_MUCH_INPUT,
                   hint=f"Search with a shorter query: the lexical side uses its first {lexical.MAX_QUERY_LEXEMES} "
                        "distinct words and the model reads its first few hundred tokens anyway.")
    try:
        if lexical.resolve_config(query, config, fallback=lexical.OTHER) == lexical.JAPANESE:
            return lexical.japanese_query_lexemes(query, check=interrupt_check(plpy))
    except lexical.AnalyzerUnavailable as exc:
        plpy.error(f"pgbert: {exc}", sqlstate=NOT_READY,
                   hint="The runtime environment needs sudachipy and sudachidict-core (pgbert's dependencies).")
    plan = _lexical_plan(plpy, "lexemes", "SELECT coalesce(array_agg(u.lexeme), '{}') AS l FROM "
                                          "pg_catalog.unnest(pg_catalog.to_tsvector($1::pg_catalog.regconfig, $2)) u")
    return plpy.execute(plan, [_postgres_config(config), query])[0]["l"][:lexical.MAX_QUERY_LEXEMES]


def text_language(text: str | None) -> str | None:
    """'japanese' or 'other', by script (lexical.detect_language)."""
    return None if text is None else lexical.detect_language(text)


def runtime_info(plpy) -> dict:
    """What serves this backend's model calls (the model host or this backend) and what it has done: for
    pgbert.status()."""
    model, settings = _active(plpy)
    with model_errors(plpy, settings["name"]):
        info = model.info()
    if model.where == "model host":
        where = f"the model host, pid {info['model_host_pid']}"
    else:
        from . import local

        info["thread_budget_wait_seconds"] = round(local.slots.waited_seconds, 3)
        where = (f"this backend: the model host is unavailable ({host_fallback})" if host_fallback
                 else "this backend (model_host is off in pgbert.settings)")
    return {
        "model_runs_in": where,
        **info,
        "cache_hits": cache.hits,
        "cache_misses": cache.misses,
        "cache_entries": len(cache.entries),
        "cache_mb": round(cache.bytes / 1024 / 1024, 2),
        **{f"backend_{k}": v for k, v in stats.items()},
    }


def use_model(plpy, bundle_path: str, name: str | None = None) -> str:
    """Register a bundle (or find it registered) and make it the default model: what embed(text) and tables
    enabled from now on use. Admin only (EXECUTE is revoked). Tables keep the model they were enabled with."""
    return register_model(plpy, bundle_path, name, activate=True)


def add_model(plpy, name: str, bundle_path: str) -> str:
    """Register a bundle under a name, beside the others (embed(text, model => name)). Admin only."""
    if not name:
        plpy.error("pgbert: a model needs a name", sqlstate="22023", hint="SELECT pgbert.add_model('minilm', '/path');")
    return register_model(plpy, bundle_path, name, activate=False)


REGISTERED_SQL = "SELECT name, bundle_path, (manifest->'files')::text AS files FROM pgbert.models WHERE {} = $1"


def register_model(plpy, bundle_path: str, name: str | None, activate: bool) -> str:
    """A name is bound to its bundle's content for good (the files' sha256 in its manifest): re-pointing it at
    other weights, or registering a path twice under two names, is refused."""
    import json
    import os

    if not os.path.isabs(bundle_path):
        plpy.error(f"pgbert: bundle path must be absolute, got {bundle_path!r}", sqlstate="22023")
    # Prove that it loads in the server, where embed() will run it, with the settings embed() will use.
    with model_errors(plpy, name or bundle_path):
        model = _model_for(plpy, bundle_path, plpy.execute(SETTINGS_SQL)[0])
        model.info()
    bundle = model.bundle
    by_path = plpy.execute(plpy.prepare(REGISTERED_SQL.format("bundle_path"), ["text"]), [bundle_path])
    named = plpy.prepare(REGISTERED_SQL.format("name"), ["text"])
    if not name and by_path:
        name = by_path[0]["name"]
    elif not name:  # the model's own name, numbered when other weights have it already
        base = bundle.model_id.split("/")[-1]
        name = next(n for n in (base if i == 1 else f"{base}-{i}" for i in range(1, 1000))
                    if not plpy.execute(named, [n]))
    by_name = plpy.execute(named, [name])
    if by_path and by_path[0]["name"] != name:
        plpy.error(f"pgbert: {bundle_path} is registered as model {by_path[0]['name']!r}", sqlstate="42710",
                   hint=f"Use that name, or drop it first: SELECT pgbert.drop_model('{by_path[0]['name']}');")
    if by_name and (by_name[0]["bundle_path"] != bundle_path or json.loads(by_name[0]["files"]) != bundle.files):
        plpy.error(f"pgbert: model name {name!r} is bound to other weights ({by_name[0]['bundle_path']})",
                   sqlstate="42710", hint="A name always means the same vectors: register these under a new name.")
    plan = plpy.prepare(
        """INSERT INTO pgbert.models AS m (name, bundle_path, model_id, dimension, pooling, normalize,
                                          max_tokens, manifest, active, sha256)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, false,
                   encode(sha256(convert_to(($8::jsonb -> 'files')::text, 'UTF8')), 'hex'))
           ON CONFLICT (bundle_path) DO UPDATE SET model_id = EXCLUDED.model_id, manifest = EXCLUDED.manifest,
                                                   sha256 = EXCLUDED.sha256""",
        ["text", "text", "text", "int", "text", "bool", "int", "text"])
    plpy.execute(plan, [name, bundle_path, bundle.model_id, bundle.dimension, bundle.pooling,
                        bundle.normalize, bundle.max_tokens, json.dumps(bundle.manifest)])
    if activate:  # one statement each: the unique index on the active row is checked row by row
        plpy.execute(plpy.prepare("UPDATE pgbert.models SET active = false WHERE active AND bundle_path <> $1",
                                  ["text"]), [bundle_path])
        plpy.execute(plpy.prepare("UPDATE pgbert.models SET active = true WHERE bundle_path = $1", ["text"]),
                     [bundle_path])
    return name


def status(plpy) -> list[tuple[str, str]]:
    """Everything an operator checks first; a broken model shows up as a 'problem' row, not an exception.
    Counters only to pgbert_admin members (PUBLIC_STATUS)."""
    rows: list[tuple[str, str]] = []
    try:
        info = runtime_info(plpy)
    except plpy.Error as exc:
        return [("ok", "false"), ("problem", str(exc).removeprefix("pgbert: "))]
    except BundleError as exc:
        return [("ok", "false"), ("problem", str(exc))]
    admin = plpy.execute(ADMIN_SQL)[0]["admin"]
    rows.append(("ok", "true"))
    rows += [(k, str(v)) for k, v in info.items() if admin or k in PUBLIC_STATUS]
    if plpy.execute("SELECT to_regclass('pgbert.embedding_queue') IS NOT NULL AS queue")[0]["queue"]:  # (0011)
        rows += [(k, str(v)) for k, v in plpy.execute(QUEUE_TOTALS_SQL)[0].items()]
    return rows


# The embedding queue's totals over the tables the caller may read (pgbert.queue_status has them per table).
QUEUE_TOTALS_SQL = """
SELECT coalesce(sum(pending), 0) AS queue_pending, coalesce(sum(in_progress), 0) AS queue_in_progress,
       coalesce(sum(failed), 0) AS queue_failed
  FROM pgbert._queue_counts()
"""


# ---- per-model statistics (model_stats.py): pgbert.model_stats, pgbert.reset_model_stats -------------------
def model_stats(plpy) -> list[tuple]:
    """Every process's model calls since the last reset, per bundle path and engine (the view adds the names).
    EXECUTE is pgbert_admin's alone: the counts tell one role about every other's activity."""
    from . import model_stats as stats

    return [(*row[:-1], _timestamp(row[-1])) for row in stats.rows(_stats_folder())]


def reset_model_stats(plpy) -> str:
    """Start the statistics again from zero; returns when (what model_stats shows as stats_since)."""
    from . import model_stats as stats

    return _timestamp(stats.collect(_stats_folder(), reset=True)[1])


def _stats_folder() -> str:
    import os

    from .model_stats import FOLDER

    return os.path.join(os.getcwd(), FOLDER)  # a backend runs in its data directory


def _timestamp(unix_time: float) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(unix_time, timezone.utc).isoformat()
