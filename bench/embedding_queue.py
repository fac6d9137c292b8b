"""The embedding queue against the synchronous default, side by side in one run -> bench/RESULTS-queue.md
(part of `make bench`; issue 21's targets).

  .venv/bin/python bench/embedding_queue.py [--url URL] [--rows 5000] [--inserts 30] [--standby-rows 400]
                                  [--worker auto|cli|sql] [--sections latency,copy,drain,notify,standby]
  .venv/bin/python bench/embedding_queue.py --quick --url URL --output /tmp/x.md   (the tests: tiny sizes, seconds)

Texts: Debian's English package descriptions (long texts, about 100 tokens; bench/_common's loader, file
order): the same rows under every strategy. The database's active model and its engine ('auto'). Tables
bench_queue_batch (strategy 'batch', pgbert's default) and bench_queue_queue ('queue'), no index, dropped
at the end. Measures:
  latency  commit latency of a one-row INSERT (autocommit: trigger work and commit) under 'queue' and
           'batch', the two interleaved insert by insert; no worker runs (what the writer itself waits for)
  copy     COPY of --rows rows under 'queue' and 'batch': seconds until COPY returns, committed
  drain    the --rows rows COPY queued, embedded by one worker, then (queued again) by two at once,
           against the rows/s of the batch COPY of the same rows
  notify   commit-to-vector latency with an idle worker woken by LISTEN/NOTIFY: one-row inserts spaced
           apart, from the INSERT's commit until this connection sees the row's vector (polled every 5 ms)
  standby  a hot standby of the cluster (pg_basebackup, its own port and data directory under .pgbert/,
           removed afterwards): the primary's CPU time per embedded row when the worker computes on the
           standby (`--compute`) against a worker that embeds on the primary, --standby-rows each. The
           primary's CPU: utime+stime (with reaped children's) of every process under its postmaster, plus
           its model host (a detached process, found by its --datadir), before and after.
Workers: `pgbert worker` (the CLI, --worker cli) or, with --worker sql, what it runs written out here:
N connections each CALLing pgbert.process_queue(); a LISTEN pgbert_queue loop; the --compute steps of
docs/queue-contract.md. --worker auto takes the CLI when `pgbert worker --help` works.
"""
from __future__ import annotations

import argparse
import math
import os
import re
import select
import shutil
import statistics
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from functools import partial

from _common import connect, copy_buffer, cpu_summary  # noqa: E402  (also puts cli/ on sys.path)
from pgbert.cluster import Cluster  # noqa: E402
from pgbert.corpus import load_packages  # noqa: E402
from pgbert.paths import ROOT  # noqa: E402

BATCH, QUEUE = "bench_queue_batch", "bench_queue_queue"
SECTIONS = ("latency", "copy", "drain", "notify", "standby")
POLL_SECONDS = 0.005  # how often the notify section looks for a vector
BATCH_ROWS = 64  # rows per worker batch: --batch-rows, else process_queue's default in the database
WAIT_SECONDS = 600  # longest wait for a queue to drain or a vector to appear before the run fails
TARGETS = {"latency": 0.1, "copy": 20.0, "drain1": 0.9, "drain2": 1.0, "notify": 1.0, "standby": 0.1}


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100): with 30 values, p95 is the second largest."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, int(-(-len(ordered) * q // 100)) - 1))] if ordered else float("nan")


def fmt(value: float, unit: str = "") -> str:
    """Three significant digits (no exponent): 0.0123, 1.23, 12.3, 123, 12345."""
    digits = 0 if value >= 100 or value == 0 else max(0, 2 - math.floor(math.log10(abs(value))))
    return f"{value:.{digits}f}{unit}"


def token_summary(bundle: str, window: int, texts: list[str]) -> str:
    """The texts' lengths in the model's tokens (its own tokenizer, no truncation, no special tokens)."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(os.path.join(bundle, "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    counts = [len(e.ids) for e in tok.encode_batch(texts, add_special_tokens=False)]
    return (f"the {len(texts)} rows of the COPY and drain sections: {statistics.mean(counts):.0f} tokens on average, "
            f"median {statistics.median(counts):.0f}, max {max(counts)}; the model reads at most {window}")


# -- tables ---------------------------------------------------------------------------------------------
def make_table(cur, name: str, strategy: str) -> None:
    cur.execute(f"DROP TABLE IF EXISTS {name}")  # the event trigger forgets it (and its queue rows)
    cur.execute(f"CREATE TABLE {name} (id bigserial PRIMARY KEY, body text)")
    cur.execute("CALL pgbert.enable_embedding(%s, 'body', strategy => %s, build_index => false)", (name, strategy))


def copy_rows(cur, name: str, texts: list[str]) -> float:
    """Seconds until COPY of the texts returns (autocommit: triggers and commit included)."""
    buffer = copy_buffer((t,) for t in texts)
    started = time.perf_counter()
    cur.copy_expert(f"COPY {name} (body) FROM STDIN", buffer)
    return time.perf_counter() - started


def queued(cur, name: str | None = None) -> int:
    """Rows waiting in pgbert.embedding_queue (failed ones included), of one table or of all."""
    if name:
        cur.execute("SELECT count(*) FROM pgbert.embedding_queue WHERE relid = %s::regclass", (name,))
    else:
        cur.execute("SELECT count(*) FROM pgbert.embedding_queue")
    return cur.fetchone()[0]


def without_vector(cur, name: str) -> int:
    cur.execute(f"SELECT count(*) FROM {name} WHERE body_embedding IS NULL")
    return cur.fetchone()[0]


def check_done(cur, name: str, rows: int) -> None:
    cur.execute(f"SELECT count(*), count(body_embedding) FROM {name}")
    total, embedded = cur.fetchone()
    left = queued(cur, name)
    if total != rows or embedded != rows or left:
        raise SystemExit(f"{name}: {embedded} of {total} rows have a vector (expected {rows}), {left} still queued; "
                         f"see SELECT * FROM pgbert.embedding_errors and the server's log")


def replayed(standby, lsn: str) -> bool:
    standby.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,))
    return standby.fetchone()[0]


def has_vector(cur, row: int, worker) -> bool:
    worker.check()
    cur.execute(f"SELECT body_embedding IS NOT NULL FROM {QUEUE} WHERE id = %s", (row,))
    return cur.fetchone()[0]


def wait_for(what: str, done, timeout: float | None = None, every: float = 0.05) -> None:
    timeout = timeout or WAIT_SECONDS
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise SystemExit(f"gave up after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


# -- workers ----------------------------------------------------------------------------------------------
def cli_available() -> bool:
    exe = os.path.join(ROOT, ".venv", "bin", "pgbert")
    try:
        return subprocess.run([exe, "worker", "--help"], capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


class CliWorker:
    """`pgbert worker` as a subprocess: with until_empty it exits once the queue has no row due; else it waits
    on LISTEN until stop() sends SIGTERM (it finishes or returns its batch)."""

    def __init__(self, url: str, workers: int = 1, compute: str | None = None, until_empty: bool = False):
        argv = [os.path.join(ROOT, ".venv", "bin", "pgbert"), "worker", "--url", url, "--workers", str(workers),
                "--batch-rows", str(BATCH_ROWS)]
        argv += (["--compute", compute] if compute else []) + (["--until-empty"] if until_empty else [])
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        self.reader = threading.Thread(target=lambda: self.lines.extend(self.proc.stdout), daemon=True)
        self.reader.start()

    def check(self) -> None:
        if self.proc.poll() is not None:
            raise SystemExit(f"pgbert worker exited ({self.proc.returncode}):\n" + "".join(self.lines[-20:]))

    def wait(self) -> None:
        """Until it exits by itself (until_empty); fails on an exit status other than 0."""
        try:
            self.proc.wait(WAIT_SECONDS)
        except subprocess.TimeoutExpired:
            self.stop()
            raise SystemExit(f"pgbert worker --until-empty still ran after {WAIT_SECONDS} s") from None
        self.reader.join(5)
        if self.proc.returncode:
            raise SystemExit(f"pgbert worker exited ({self.proc.returncode}):\n" + "".join(self.lines[-20:]))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.reader.join(5)


class ListenWorker(threading.Thread):
    """What an idle `pgbert worker` does, in a thread: LISTEN pgbert_queue, CALL pgbert.process_queue() when
    woken, then sleep until the next row is due or a NOTIFY arrives (a pipe wakes it to stop)."""

    def __init__(self, url: str, poll: float = 60.0):
        super().__init__(daemon=True)
        self.url, self.poll, self.embedded, self.error = url, poll, 0, None
        self.listening, self.stopping = threading.Event(), threading.Event()
        self.wake_r, self.wake_w = os.pipe()

    def run(self) -> None:
        try:
            conn = connect(self.url)
            cur = conn.cursor()
            cur.execute("LISTEN pgbert_queue")
            self.listening.set()
            while not self.stopping.is_set():
                cur.execute("CALL pgbert.process_queue(batch_rows => %s)", (BATCH_ROWS,))
                self.embedded += cur.fetchone()[0] or 0
                cur.execute("SELECT pgbert.queue_wait_seconds()")
                due = cur.fetchone()[0]
                if conn.notifies:  # arrived while the calls ran
                    conn.notifies.clear()
                    continue
                timeout = self.poll if due is None else min(due, self.poll)
                if timeout > 0 and select.select([conn, self.wake_r], [], [], timeout)[0]:
                    conn.poll()
                    conn.notifies.clear()
            conn.close()
        except Exception as exc:  # reported by check()
            self.error = exc
            self.listening.set()

    def check(self) -> None:
        if self.error or not self.is_alive():
            raise SystemExit(f"the LISTEN worker stopped: {self.error}")

    def stop(self) -> None:
        self.stopping.set()
        os.write(self.wake_w, b"x")
        self.join(60)


def drain_sql(url: str, workers: int) -> float:
    """Seconds for `workers` connections, each CALLing pgbert.process_queue() once (it returns when no due row
    is left), to empty the queue."""
    conns = [connect(url) for _ in range(workers)]
    for c in conns:
        c.cursor().execute("SELECT embed('warm up')")  # the backend's link to the model host, as a running worker has
    errors: list[Exception] = []

    def work(conn) -> None:
        try:
            conn.cursor().execute("CALL pgbert.process_queue(batch_rows => %s)", (BATCH_ROWS,))
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(c,)) for c in conns]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = time.perf_counter() - started
    for c in conns:
        c.close()
    if errors:
        raise SystemExit(f"process_queue failed: {errors[0]}")
    return took


def drain_cli(url: str, workers: int, compute: str | None = None) -> float:
    """Seconds for `pgbert worker --workers N --until-empty` to empty the queue, from its start to its exit
    (its own start, about a second, included)."""
    started = time.perf_counter()
    CliWorker(url, workers, compute, until_empty=True).wait()
    return time.perf_counter() - started


def default_batch_rows(cur) -> int:
    """process_queue's batch_rows default, as installed (what a worker uses unless told otherwise)."""
    cur.execute("SELECT pg_get_function_arguments('pgbert.process_queue'::regproc)")
    found = re.search(r"batch_rows integer DEFAULT (\d+)", cur.fetchone()[0])
    return int(found.group(1)) if found else BATCH_ROWS


def vector_type(cur, name: str) -> str:
    cur.execute("SELECT format_type(atttypid, NULL) FROM pg_attribute WHERE attrelid = %s::regclass "
                "AND attname = 'body_embedding'", (name,))
    return cur.fetchone()[0]


def compute_on_standby(primary_url: str, standby_url: str, vtype: str) -> int:
    """The --compute steps of docs/queue-contract.md, written out: claim on the primary, wait for the standby to
    replay the claim, embed there, store on the primary. Returns the rows stored."""
    primary, standby = connect(primary_url).cursor(), connect(standby_url).cursor()
    stored = 0
    try:
        while True:
            primary.execute("SELECT relid, ids FROM pgbert.claim_batch(%s)", (BATCH_ROWS,))
            _, ids = primary.fetchone()
            if not ids:
                return stored
            primary.execute("SELECT pg_current_wal_lsn()::text")
            lsn = primary.fetchone()[0]
            wait_for("the standby to replay the claim", partial(replayed, standby, lsn), 60, 0.002)
            standby.execute("SELECT id, version::text, embedding::text, chunks::text "
                            "FROM pgbert.compute_claimed(%s::bigint[])", (ids,))
            rows = standby.fetchall()
            primary.execute(f"SELECT pgbert.store_claimed(%s::bigint[], %s::text[]::xid[], %s::text[]::{vtype}[], "
                            "%s::text[]::jsonb[])", tuple([r[i] for r in rows] for i in range(4)))
            stored += primary.fetchone()[0]
    finally:
        primary.execute("SELECT pgbert.release_claims()")
        primary.connection.close()
        standby.connection.close()


# -- CPU time of a server -------------------------------------------------------------------------------------
TICK = os.sysconf("SC_CLK_TCK")


def _procs() -> dict[int, tuple[int, int, str]]:
    """pid -> (parent pid, CPU ticks: utime + stime + those of its reaped children, command line)."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # gone meanwhile
        out[int(entry)] = (int(fields[1]), sum(int(x) for x in fields[11:15]), cmdline)
    return out


def server_cpu_seconds(datadir: str) -> float:
    """CPU seconds so far of the server in datadir: its postmaster and every process under it (a process that
    ended was reaped by its parent, which counts it in cutime/cstime), plus its model host, which detaches
    from the backend that starts it (found by the --datadir on its command line)."""
    procs = _procs()
    tree, hosts = server_processes(datadir, procs)
    return sum(procs[pid][1] for pid in tree | hosts) / TICK


def server_processes(datadir: str, procs: dict | None = None) -> tuple[set[int], set[int]]:
    """(the postmaster and every process under it, the server's model hosts)."""
    with open(os.path.join(datadir, "postmaster.pid")) as f:
        postmaster = int(f.readline())
    procs = procs or _procs()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in procs.items():
        children.setdefault(ppid, []).append(pid)
    tree, todo = set(), [postmaster]
    while todo:
        pid = todo.pop()
        if pid in procs and pid not in tree:
            tree.add(pid)
            todo += children.get(pid, [])
    marker = f"--datadir {os.path.realpath(datadir)} "
    hosts = {pid for pid, (_, _, cmd) in procs.items() if "pgbert_runtime.host" in cmd and marker in cmd + " "}
    return tree, hosts


class Standby:
    """A streaming-replication hot standby of the cluster (as tests/db/test_standby.py builds one)."""

    def __init__(self, cluster: Cluster, primary_url: str):
        import psycopg2.extensions

        self.cluster = cluster
        self.data = os.path.join(cluster.paths.state, "standby-bench")
        self.port = cluster.port + 2
        while os.path.exists(os.path.join(cluster.paths.run, f".s.PGSQL.{self.port}")):
            self.port += 1
        dsn = psycopg2.extensions.parse_dsn(primary_url)
        dsn["port"] = str(self.port)
        self.url = psycopg2.extensions.make_dsn(**dsn)

    def _run(self, *argv: str) -> None:
        subprocess.run(self.cluster._cmd(*argv), check=True, capture_output=True, text=True)

    def start(self) -> None:
        shutil.rmtree(self.data, ignore_errors=True)
        os.makedirs(self.data, mode=0o700)
        if os.geteuid() == 0:
            import pwd
            owner = pwd.getpwnam(self.cluster.owner)
            os.chown(self.data, owner.pw_uid, owner.pw_gid)
        self._run("pg_basebackup", "-D", self.data, "-h", self.cluster.paths.run, "-p", str(self.cluster.port),
                  "-X", "stream", "-R", "-c", "fast")
        with open(os.path.join(self.data, "postgresql.auto.conf"), "a") as conf:
            conf.write(f"port = {self.port}\nhot_standby = on\n")
        self._run("pg_ctl", "start", "-w", "-D", self.data, "-l", os.path.join(self.data, "standby.log"))

    def stop(self) -> None:
        subprocess.run(self.cluster._cmd("pg_ctl", "stop", "-m", "fast", "-D", self.data), capture_output=True)
        shutil.rmtree(self.data, ignore_errors=True)


# -- the run ----------------------------------------------------------------------------------------------------
class Bench:
    def __init__(self, args):
        self.args = args
        self.cluster = Cluster()
        self.url = args.url or self.cluster.url()
        self.conn = connect(self.url)
        self.cur = self.conn.cursor()
        self.cur.execute("SHOW data_directory")
        self.datadir = self.cur.fetchone()[0]
        self.rows: list[tuple] = []  # measure, queue, batch, ratio, target, met
        self.notes: list[str] = []
        self.tokens = ""
        self.cli = False  # main() decides: `pgbert worker`, or the SQL it runs written out here
        self.started = time.perf_counter()

    def say(self, message: str) -> None:
        print(f"[{time.perf_counter() - self.started:6.0f} s] {message}", flush=True)

    def record(self, measure: str, queue: str, batch: str, ratio: str = "", target: str = "", met=None) -> None:
        self.rows.append((measure, queue, batch or "—", ratio or "—", target or "—",
                          "—" if met is None else ("yes" if met else "**no**")))
        self.say(f"{measure}: queue {queue}, batch/local {batch}, ratio {ratio or '-'} (target {target or '-'})")

    @contextmanager
    def watching_host(self, section: str):
        """Flags a section during which the server's model host changed: a new host (pgbert's runtime code
        changed under a running server, or the host died) loads the model again, inside the timings."""
        before = server_processes(self.datadir)[1]
        yield
        after = server_processes(self.datadir)[1]
        if after != before:
            self.notes.append(f"**The model host changed during the {section} section** (pids {sorted(before)} -> "
                              f"{sorted(after)}): its timings include a model load; run the benchmark again.")
            self.say(self.notes[-1])

    def status(self) -> dict:
        self.cur.execute("SELECT * FROM pgbert.status()")
        return dict(self.cur.fetchall())

    # 1 --------------------------------------------------------------------------------------------------------
    def latency(self, texts: list[str]) -> None:
        self.say(f"latency: {len(texts) - 1} one-row INSERTs per strategy, interleaved")
        make_table(self.cur, BATCH, "batch")
        make_table(self.cur, QUEUE, "queue")
        took = {BATCH: [], QUEUE: []}
        for i, text in enumerate(texts):
            for name in (BATCH, QUEUE) if i % 2 else (QUEUE, BATCH):
                started = time.perf_counter()
                self.cur.execute(f"INSERT INTO {name} (body) VALUES (%s)", (text,))
                if i:  # the first is a warm-up
                    took[name].append((time.perf_counter() - started) * 1000)
        assert without_vector(self.cur, BATCH) == 0 and queued(self.cur, QUEUE) == len(texts)
        q50, b50 = statistics.median(took[QUEUE]), statistics.median(took[BATCH])
        q95, b95 = percentile(took[QUEUE], 95), percentile(took[BATCH], 95)
        n = len(took[QUEUE])
        self.record(f"one-row INSERT commit latency, median ms ({n} inserts)", fmt(q50), fmt(b50),
                    fmt(q50 / b50, "×"), f"≤ {TARGETS['latency']}×", q50 / b50 <= TARGETS["latency"])
        self.record(f"one-row INSERT commit latency, p95 ms ({n} inserts)", fmt(q95), fmt(b95),
                    fmt(q95 / b95, "×"), f"≤ {TARGETS['latency']}×", q95 / b95 <= TARGETS["latency"])

    # 2 and 3 ------------------------------------------------------------------------------------------------------
    def copy_and_drain(self, texts: list[str], drain: bool) -> None:
        n = len(texts)
        make_table(self.cur, BATCH, "batch")
        make_table(self.cur, QUEUE, "queue")
        self.say(f"copy: {n} rows under 'queue'")
        queue_s = copy_rows(self.cur, QUEUE, texts)
        if queued(self.cur, QUEUE) != n:
            raise SystemExit(f"{QUEUE}: {queued(self.cur, QUEUE)} rows queued after COPY of {n}")
        self.say(f"copy: {n} rows under 'batch' (embeds them; minutes on a real model)")
        batch_s = copy_rows(self.cur, BATCH, texts)
        check_done(self.cur, BATCH, n)
        self.record(f"COPY {n} rows, seconds to commit", fmt(queue_s), fmt(batch_s),
                    fmt(batch_s / queue_s, "× faster"), f"≥ {TARGETS['copy']:.0f}× faster",
                    batch_s / queue_s >= TARGETS["copy"])
        if not drain:
            return
        rates = []
        for workers, key in ((1, "drain1"), (2, "drain2")):
            if workers > 1:  # the same rows queued again
                self.cur.execute(f"TRUNCATE {QUEUE}")
                copy_rows(self.cur, QUEUE, texts)
            if queued(self.cur, QUEUE) != n:
                raise SystemExit(f"{QUEUE}: {queued(self.cur, QUEUE)} rows queued, expected {n}: is another worker "
                                 "(pg_cron, a `pgbert worker`) running on this database? Stop it, or use --url.")
            self.say(f"drain: {n} queued rows, {workers} worker(s) ({self.worker_name})")
            took = drain_cli(self.url, workers) if self.cli else drain_sql(self.url, workers)
            check_done(self.cur, QUEUE, n)
            rates.append((workers, key, n / took))
        # The batch COPY once more after the drains: drift on a shared machine hits both sides alike.
        self.say(f"drain: the batch COPY of the same {n} rows again, after the drains")
        self.cur.execute(f"TRUNCATE {BATCH}")
        batch_again_s = copy_rows(self.cur, BATCH, texts)
        check_done(self.cur, BATCH, n)
        batch_rate = 2 * n / (batch_s + batch_again_s)
        start = ("from the CLI's start to its exit (--until-empty; its own start, under a second, included)"
                 if self.cli else "from the first CALL to the last one's return")
        self.notes.append(f"Drain: each worker timed {start}. The batch "
                          f"rows/s is that of both batch COPYs of the same {n} rows, before the drains "
                          f"({n / batch_s:.1f} rows/s) and after them ({n / batch_again_s:.1f} rows/s).")
        for workers, key, rate in rates:
            self.record(f"drain, rows/s: {workers} worker{'s' if workers > 1 else ''} against batch COPY",
                        fmt(rate), fmt(batch_rate), fmt(rate / batch_rate, "×"), f"≥ {TARGETS[key]}×",
                        rate / batch_rate >= TARGETS[key])

    # 4 ----------------------------------------------------------------------------------------------------------
    def notify(self, texts: list[str], gap: float) -> None:
        make_table(self.cur, QUEUE, "queue")
        worker = CliWorker(self.url) if self.cli else ListenWorker(self.url)
        if not self.cli:
            worker.start()
            worker.listening.wait(60)
        latencies = []
        try:
            self.say(f"notify: {len(texts) - 1} one-row inserts {gap} s apart, idle worker ({self.worker_name})")
            for i, text in enumerate(texts):
                time.sleep(gap if i else 0)
                self.cur.execute(f"INSERT INTO {QUEUE} (body) VALUES (%s) RETURNING id", (text,))
                committed = time.perf_counter()
                row = self.cur.fetchone()[0]
                wait_for("the idle worker to embed a new row", partial(has_vector, self.cur, row, worker),
                         120 if i else None, POLL_SECONDS)
                if i:  # the first is a warm-up (a CLI worker's start)
                    latencies.append(time.perf_counter() - committed)
        finally:
            worker.stop()
        check_done(self.cur, QUEUE, len(texts))
        p50, p95 = statistics.median(latencies), percentile(latencies, 95)
        how = "`pgbert worker`" if self.cli else "a LISTEN loop calling process_queue (this script's ListenWorker)"
        self.record(f"commit to vector, idle worker, p50 ms ({len(latencies)} inserts)", fmt(p50 * 1000), "", "",
                    "", None)
        self.record(f"commit to vector, idle worker, p95 ms ({len(latencies)} inserts)", fmt(p95 * 1000), "", "",
                    f"≤ {TARGETS['notify'] * 1000:.0f} ms", p95 <= TARGETS["notify"])
        self.notes.append(f"Commit to vector: {how}, woken by NOTIFY pgbert_queue; inserts {gap} s apart; latency from "
                          f"the INSERT's commit until the inserting connection sees the vector (polled every "
                          f"{POLL_SECONDS * 1000:.0f} ms).")

    # 5 ----------------------------------------------------------------------------------------------------------
    def standby(self, texts: list[str]) -> None:
        n = len(texts)
        datadir = self.datadir
        standby = Standby(self.cluster, self.url)
        self.say(f"standby: pg_basebackup to {standby.data}, port {standby.port}")
        standby.start()
        try:
            make_table(self.cur, QUEUE, "queue")
            vtype = vector_type(self.cur, QUEUE)
            spent = {}
            for where in ("local", "standby"):
                self.cur.execute(f"TRUNCATE {QUEUE}")
                copy_rows(self.cur, QUEUE, texts)
                self.cur.execute("SELECT pg_current_wal_lsn()::text")
                lsn = self.cur.fetchone()[0]
                replica = connect(standby.url).cursor()
                wait_for("the standby to replay the rows", partial(replayed, replica, lsn), 120)
                replica.execute("SELECT embed('warm up')")  # the standby's model host, loaded before the clock starts
                replica.connection.close()
                self.say(f"standby: {n} queued rows embedded by a worker that "
                         + ("computes on the standby" if where == "standby" else "embeds on the primary"))
                (tree, hosts), (s_tree, s_hosts) = server_processes(datadir), server_processes(standby.data)
                self.say(f"standby: counting {len(tree)} processes of the primary, its model host(s) {sorted(hosts)}; "
                         f"{len(s_tree)} of the standby, its host(s) {sorted(s_hosts)}")
                cpu_before, standby_before = server_cpu_seconds(datadir), server_cpu_seconds(standby.data)
                started = time.perf_counter()
                if self.cli:
                    drain_cli(self.url, 1, standby.url if where == "standby" else None)
                elif where == "standby":
                    compute_on_standby(self.url, standby.url, vtype)
                else:
                    drain_sql(self.url, 1)
                wall = time.perf_counter() - started
                time.sleep(1)  # the workers' backends exit and their parent reaps them (their CPU moves to it)
                spent[where] = (server_cpu_seconds(datadir) - cpu_before, server_cpu_seconds(standby.data)
                                - standby_before, wall)
                check_done(self.cur, QUEUE, n)
        finally:
            standby.stop()
        (local, local_standby, local_wall), (remote, remote_standby, remote_wall) = spent["local"], spent["standby"]
        ratio = remote / local
        self.record(f"primary CPU ms per embedded row ({n} rows): model on a standby (--compute), against on "
                    "the primary",
                    fmt(remote / n * 1000), fmt(local / n * 1000), fmt(ratio, "×"),
                    f"≤ {TARGETS['standby']}×", ratio <= TARGETS["standby"])
        self.notes.append(f"Standby: the standby's own CPU per row {remote_standby / n * 1000:.1f} ms with --compute "
                          f"({local_standby / n * 1000:.1f} ms while the primary embedded: replay); wall time "
                          f"{remote_wall:.1f} s with --compute, {local_wall:.1f} s on the primary (both servers share "
                          f"this machine's {os.cpu_count()} CPUs).")

    # -- report --------------------------------------------------------------------------------------------------
    def write(self, model: str, engine: str, engine_reason: str) -> None:
        elapsed = (time.perf_counter() - self.started) / 60
        lines = ["# The embedding queue against the batch strategy (issue 21)", "", cpu_summary(), "",
                 f"Model {model}, engine {engine} ({engine_reason}). Texts: Debian package descriptions (long texts; "
                 f"{self.tokens}), the same rows under every strategy; tables without an index. "
                 f"Workers: {self.worker_name}, batches of {BATCH_ROWS} rows. "
                 f"One run, {elapsed:.1f} min, on a machine shared with other work: the ratios are the measure, "
                 f"absolute times drift. Command: `bench/embedding_queue.py{''.join(' ' + a for a in sys.argv[1:])}`"
                 f"{' (defaults)' if len(sys.argv) == 1 else ''}.", "",
                 "| measure | queue | batch (or local) | ratio | target | met? |", "|---|---|---|---|---|---|"]
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        lines += [""] + [f"- {note}" for note in self.notes]
        with open(self.args.output, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        print("\n".join(lines))
        print(f"wrote {self.args.output}")

    @property
    def worker_name(self) -> str:
        return "`pgbert worker`" if self.cli else "process_queue() from one connection per worker (--worker sql)"


def main() -> int:
    global BATCH_ROWS, WAIT_SECONDS  # the run's settings (--batch-rows, --quick)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="database URL (default: the local cluster's database)")
    parser.add_argument("--rows", type=int, default=5000, help="rows of the COPY and drain sections")
    parser.add_argument("--inserts", type=int, default=30, help="one-row inserts of the latency and notify sections")
    parser.add_argument("--gap", type=float, default=1.0, help="seconds between the notify section's inserts")
    parser.add_argument("--standby-rows", type=int, default=400, help="rows of the standby section, each way")
    parser.add_argument("--worker", choices=("auto", "cli", "sql"), default="auto")
    parser.add_argument("--batch-rows", type=int, help="rows per worker batch (default: process_queue's default)")
    parser.add_argument("--sections", default=",".join(SECTIONS),
                        help="comma-separated subset of " + ",".join(SECTIONS))
    parser.add_argument("--quick", action="store_true", help="tiny sizes: the tests run this")
    parser.add_argument("--keep", action="store_true", help="keep the tables")
    parser.add_argument("--output", default=os.path.join(ROOT, "bench", "RESULTS-queue.md"))
    args = parser.parse_args()
    if args.quick:
        args.rows, args.inserts, args.gap, args.standby_rows, WAIT_SECONDS = 40, 4, 0.1, 20, 120
    sections = set(args.sections.split(","))
    if sections - set(SECTIONS):
        parser.error(f"unknown sections: {', '.join(sorted(sections - set(SECTIONS)))}")

    bench = Bench(args)
    BATCH_ROWS = args.batch_rows or default_batch_rows(bench.cur)
    bench.cli = args.worker == "cli" or (args.worker == "auto" and cli_available())
    status = bench.status()
    model, engine, reason = status["model"], status["engine"], status.get("engine_reason", "")
    bench.say(f"{cpu_summary()}; model {model}, engine {engine}; workers: {bench.worker_name}, batches of "
              f"{BATCH_ROWS} rows")
    if queued(bench.cur):
        raise SystemExit(f"pgbert.embedding_queue already holds {queued(bench.cur)} rows: the workers here would "
                         "embed them too. Drain them first (CALL pgbert.process_queue()) or use another database "
                         "(--url).")
    texts = [p.description for p in load_packages(echo=bench.say)]
    need = args.rows + 2 * (args.inserts + 1) + args.standby_rows
    if len(texts) < need:
        raise SystemExit(f"only {len(texts)} descriptions, {need} needed")
    bulk, at = texts[: args.rows], args.rows
    singles, at = texts[at: at + args.inserts + 1], at + args.inserts + 1
    woken, at = texts[at: at + args.inserts + 1], at + args.inserts + 1
    standby_texts = texts[at: at + args.standby_rows]
    bench.cur.execute("SELECT bundle_path, max_tokens FROM pgbert.active_model")
    bundle, window = bench.cur.fetchone()
    bench.tokens = token_summary(bundle, window, bulk)
    bench.say(f"texts: {bench.tokens}")
    bench.cur.execute("SELECT embed('warm up')")
    try:
        if "latency" in sections:
            with bench.watching_host("latency"):
                bench.latency(singles)
        if "copy" in sections or "drain" in sections:
            with bench.watching_host("copy and drain"):
                bench.copy_and_drain(bulk, "drain" in sections)
        if "notify" in sections:
            with bench.watching_host("notify"):
                bench.notify(woken, args.gap)
        if "standby" in sections:
            with bench.watching_host("standby"):
                bench.standby(standby_texts)
    finally:
        if not args.keep:
            for name in (BATCH, QUEUE):
                bench.cur.execute(f"DROP TABLE IF EXISTS {name}")
    bench.write(model, engine, reason)
    return 0


if __name__ == "__main__":
    sys.exit(main())
