"""`pgbert worker`: embeds queued rows (strategies 'queue' and 'auto') soon after they commit.

N threads, each with its own connection; the work runs in the database, so threads are enough. By default a
thread CALLs pgbert.process_queue one batch at a time (a stop is honoured between batches). With --compute,
the model runs on a hot standby: claims and vectors go through the primary, texts are read and embedded on
the standby once it has replayed the claim (docs/queue-contract.md). An idle thread sleeps on LISTEN
pgbert_queue until a row arrives or the next retry is due.

Exit status: 0 stopped (signal, --until-empty, --max-rows); 1 the database failed or went away (a supervisor
restarts the worker); 2 bad arguments, no connection at start, or a role that may not run the queue.
"""
from __future__ import annotations

import contextlib
import os
import select
import signal
import sys
import threading
import time

import psycopg2
import psycopg2.extensions

CHANNEL = "pgbert_queue"
REPORT_EVERY = 10.0  # seconds between progress lines
REPLAY_TIMEOUT = 30.0  # seconds the standby may take to replay a claim before the batch is given back
MIN_IDLE = 0.1  # rows due but none embedded (a writer holds them, another worker claims them): do not spin
NOT_THE_ROWS = ("08", "25", "3D", "3F", "40", "42", "53", "57", "58")  # SQLSTATE classes no row can cause


class Stopped(Exception):
    """A second signal: drop the batch in hand."""


class UsageError(Exception):
    """Exit status 2: what the operator has to fix before starting the worker again."""


class Control:
    """Signals: the first asks every thread to stop after its batch, the second cancels what runs now."""

    def __init__(self):
        self.signals = 0
        self.stopping = threading.Event()
        self.conns: list = []
        self.wake_fd, self._wake_w = os.pipe()  # readable once stopping: ends every thread's idle select()

    def watch(self, conn) -> None:
        self.conns.append(conn)

    @property
    def hard(self) -> bool:
        return self.signals >= 2

    def stop(self) -> None:
        if not self.stopping.is_set():
            self.stopping.set()
            os.write(self._wake_w, b"x")

    def on_signal(self, signum=None, frame=None) -> None:
        self.signals += 1
        note = ("stopping after the current batch (signal again to stop at once)" if self.signals == 1
                else "stopping now: cancelling the running batch")
        os.write(2, f"pgbert worker: {note}\n".encode())  # not print(): this may interrupt a print
        self.stop()
        if self.hard:
            for conn in self.conns:
                with contextlib.suppress(psycopg2.Error):  # one already closed
                    conn.cancel()

    def check(self) -> None:
        if self.hard:
            raise Stopped

    def close(self) -> None:
        os.close(self.wake_fd)
        os.close(self._wake_w)


class Tally:
    """Rows embedded by all threads, and what --max-rows leaves to claim."""

    def __init__(self, max_rows: int | None = None):
        self.lock = threading.Lock()
        self.max_rows, self.embedded, self.reserved = max_rows, 0, 0
        self.started = time.monotonic()

    def reserve(self, want: int) -> int:
        with self.lock:
            rows = want if self.max_rows is None else max(0, min(want, self.max_rows - self.embedded - self.reserved))
            self.reserved += rows
            return rows

    def settle(self, reserved: int, embedded: int) -> None:
        with self.lock:
            self.reserved -= reserved
            self.embedded += embedded


def one(conn, sql: str, params=None):
    with conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchone()


def idle_seconds(due_in: float | None, poll: float) -> float:
    """How long an idle thread sleeps: until the next row is due (queue_wait_seconds()), at most poll."""
    return poll if due_in is None else min(poll, max(due_in, MIN_IDLE))


def wait_for_work(conn, seconds: float, control: Control) -> None:
    """Sleep until a NOTIFY on the connection, a stop, or seconds pass."""
    if control.stopping.is_set():
        return
    ready, _, _ = select.select([conn, control.wake_fd], [], [], seconds)
    if conn in ready:
        conn.poll()  # reads the notifications (or raises if the connection is gone)


def serve(conn, batch, opts, control: Control, tally: Tally) -> None:
    """One thread's loop: batch(rows) embeds up to rows queued rows and says how many it embedded."""
    with conn.cursor() as cur:
        cur.execute(f"LISTEN {CHANNEL}")
    while not control.stopping.is_set():
        rows = tally.reserve(opts.batch_rows)
        if rows == 0:
            return  # --max-rows reached (or held by the other threads' batches)
        embedded = 0
        try:
            embedded = batch(rows)
        finally:
            tally.settle(rows, embedded)
        if embedded:
            continue
        conn.notifies.clear()  # what they announced is committed, so queue_wait_seconds() sees it
        due_in = one(conn, "SELECT pgbert.queue_wait_seconds()")[0]
        if conn.notifies:
            continue  # one that came during the query may announce rows newer than what it saw
        if opts.until_empty and (due_in is None or due_in > 0):
            return
        wait_for_work(conn, idle_seconds(due_in, opts.poll), control)


def process_batch(conn, rows: int) -> int:
    """Local mode: one batch, embedded where the database is."""
    embedded = one(conn, "CALL pgbert.process_queue(max_rows => %s, batch_rows => %s)", (rows, rows))[0]
    conn.notices.clear()
    return embedded or 0


def pg_array(values) -> str:
    """An untyped array literal: the function's parameter gives it its type (vector[] is in pgvector's schema)."""
    quoted = ("NULL" if v is None else '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values)
    return "{" + ",".join(quoted) + "}"


def rows_fault(exc: psycopg2.Error, conn) -> bool:
    """Whether a compute error may be the rows' own (a poison row), not the connection's, a stop or the setup."""
    return not conn.closed and exc.pgcode is not None and exc.pgcode[:2] not in NOT_THE_ROWS


class ComputeBatch:
    """--compute: claim on the primary, embed on the standby once it has replayed the claim, store on the primary."""

    def __init__(self, primary, standby, control: Control, replay_timeout: float = REPLAY_TIMEOUT):
        self.primary, self.standby, self.control, self.replay_timeout = primary, standby, control, replay_timeout

    def __call__(self, rows: int) -> int:
        relid, ids = one(self.primary, "SELECT relid::text, ids FROM pgbert.claim_batch(%s)", (rows,))
        if not ids:
            return 0
        lsn = one(self.primary, "SELECT pg_current_wal_lsn()::text")[0]
        if not self.replayed(lsn):
            one(self.primary, "SELECT pgbert.release_claims()")
            warn(f"the standby has not replayed the primary's WAL to {lsn} in {self.replay_timeout:.0f} s: gave back "
                 f"{len(ids)} rows of {relid} and will retry; check replication (pg_stat_replication on the primary)")
            return 0
        done = self.compute(ids)
        if not done:
            return 0
        ids, versions, vectors, chunks = zip(*done)
        return one(self.primary, "SELECT pgbert.store_claimed(%s::bigint[], %s, %s, %s)",
                   (list(ids), pg_array(versions), pg_array(vectors), pg_array(chunks)))[0] or 0

    def replayed(self, lsn: str) -> bool:
        deadline, pause = time.monotonic() + self.replay_timeout, 0.002
        while True:
            self.control.check()
            if one(self.standby, "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,))[0]:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(pause)
            pause = min(pause * 2, 0.1)

    def compute(self, ids: list[int]) -> list[tuple]:
        """Rows (id, version, vector, chunks) as text; a batch that fails is done again row by row, so a row the
        model cannot embed fails alone (fail_claimed) and the rows beside it are stored."""
        try:
            return self._compute(ids)
        except psycopg2.Error as exc:
            if not rows_fault(exc, self.standby):
                raise
        done = []
        for one_id in ids:
            self.control.check()
            try:
                done += self._compute([one_id])
            except psycopg2.Error as exc:
                if not rows_fault(exc, self.standby):
                    raise
                one(self.primary, "SELECT pgbert.fail_claimed(%s::bigint[], %s)", ([one_id], message(exc)))
        return done

    def _compute(self, ids: list[int]) -> list[tuple]:
        with self.standby.cursor() as cur:
            cur.execute("SELECT id, version::text, embedding::text, chunks::text "
                        "FROM pgbert.compute_claimed(%s::bigint[])", (ids,))
            return cur.fetchall()


def message(exc: psycopg2.Error) -> str:
    return (exc.pgerror or str(exc)).strip().removeprefix("ERROR:").strip()


def warn(text: str) -> None:
    print(f"pgbert worker: {text}", file=sys.stderr, flush=True)


def outcome_of(exc: psycopg2.Error, conn, what: str, control: Control) -> tuple[int, str | None]:
    """Exit status and message for an error that ended a thread (conn: the connection it came from)."""
    if control.hard and isinstance(exc, psycopg2.extensions.QueryCanceledError):
        return 0, None
    if exc.pgcode == "42501":
        return 2, f"{what}: {message(exc)}: GRANT pgbert_worker TO the worker's role"
    if conn.closed or exc.pgcode is None or exc.pgcode.startswith(("08", "57P")):
        return 1, (f"lost the connection to the {what} ({(message(exc).splitlines() or ['closed'])[0]}): check that "
                   "it runs, then start the worker again (systemd: Restart=on-failure); its claimed rows go back to "
                   "the queue")
    return 1, (f"the {what} failed ({exc.pgcode}): {message(exc)}; claimed rows went back to the queue: fix the "
               "cause, then start the worker again (systemd: Restart=on-failure)")


def release(conn) -> None:
    if not conn.closed:
        with contextlib.suppress(psycopg2.Error):  # gone: the claims of a gone backend are taken over anyway
            one(conn, "SELECT pgbert.release_claims()")
        conn.close()


def work(slot: int, primary, standby, opts, control: Control, tally: Tally, outcomes: list) -> None:
    try:
        batch = ComputeBatch(primary, standby, control) if standby else (lambda rows: process_batch(primary, rows))
        serve(primary, batch, opts, control, tally)
    except Stopped:
        pass
    except psycopg2.Error as exc:
        on_standby = standby is not None and (standby.closed or getattr(exc.cursor, "connection", None) is standby)
        outcomes[slot] = outcome_of(exc, standby if on_standby else primary, "standby" if on_standby else "database",
                                    control)
        if outcomes[slot][0]:
            control.stop()  # the other threads finish their batch and stop too
    except Exception as exc:  # a bug: say it, and let a supervisor restart the worker
        outcomes[slot] = 1, f"unexpected error, please report it: {exc!r}"
        control.stop()
    finally:
        release(primary)
        if standby is not None:
            standby.close()


def connect(dsn: str, what: str, standby: bool = False):
    """A checked, autocommit connection; UsageError (exit 2) says what to fix."""
    try:
        conn = psycopg2.connect(dsn, application_name="pgbert worker")
    except psycopg2.Error as exc:
        raise UsageError(f"cannot connect to the {what} ({str(exc).strip().splitlines()[0]}): check the DSN and that "
                         "the server runs") from None
    conn.autocommit = True
    try:
        installed, allowed, recovering, role = one(
            conn, "SELECT to_regprocedure('pgbert.queue_wait_seconds()') IS NOT NULL, "
                  "CASE WHEN EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'pgbert_worker') "
                  "THEN pg_has_role('pgbert_worker', 'USAGE') END, pg_is_in_recovery(), current_user")
    except psycopg2.Error as exc:
        conn.close()
        raise UsageError(f"cannot check the {what}: {message(exc)}") from None
    problem = ("pgbert's queue is not installed there: upgrade its schema (pgbert db migrate)" if not installed
               else f"role {role} may not run the queue: GRANT pgbert_worker TO {role}" if not allowed
               else "it is not a hot standby (pg_is_in_recovery() is false): --compute takes a standby of --url"
               if standby and not recovering else None)
    if problem:
        conn.close()
        raise UsageError(f"{what} {conn.info.dbname} on {conn.info.host}:{conn.info.port}: {problem}")
    return conn


class Reporter:
    """A progress line every REPORT_EVERY seconds while rows are embedded, and one at exit."""

    def __init__(self, tally: Tally, monitor):
        self.tally, self.monitor = tally, monitor
        self.last_at, self.last_rows, self.last_failed = tally.started, 0, self.failed()
        self.due = tally.started + REPORT_EVERY

    def failed(self):
        try:
            return one(self.monitor, "SELECT coalesce(sum(failed), 0)::bigint FROM pgbert.queue_status")[0]
        except psycopg2.Error:
            return None  # its connection went away: the line goes without it

    def tick(self, final: bool = False) -> None:
        now = time.monotonic()
        if now < self.due and not final:
            return
        rows, failed = self.tally.embedded, self.failed()
        if final:
            seconds = max(now - self.tally.started, 1e-9)
            say(f"pgbert worker: stopped: {rows} rows embedded in {seconds:.1f} s ({rows / seconds:.1f} rows/s)"
                + (f", {failed} failed (pgbert.embedding_errors)" if failed is not None else ""))
        elif rows != self.last_rows or failed != self.last_failed:
            rate = (rows - self.last_rows) / max(now - self.last_at, 1e-9)
            say(f"pgbert worker: {rows} rows embedded ({rate:.1f} rows/s)"
                + (f", {failed} failed (pgbert.embedding_errors)" if failed is not None else ""))
        self.last_at, self.last_rows, self.last_failed, self.due = now, rows, failed, now + REPORT_EVERY


def say(text: str) -> None:
    print(text, flush=True)


def open_connections(opts, url: str):
    """The main thread's connection (progress), and each thread's (primary, standby or None); exit 2 on error."""
    opened = []
    try:
        opened.append(connect(url, "database"))
        for _ in range(opts.workers):
            opened.append(connect(url, "database"))
            if opts.compute:
                opened.append(connect(opts.compute, "standby", standby=True))
    except UsageError:
        for conn in opened:
            conn.close()
        raise
    if opts.compute:
        return opened[0], list(zip(opened[1::2], opened[2::2]))
    return opened[0], [(conn, None) for conn in opened[1:]]


def run(opts, url: str) -> int:
    try:
        monitor, pairs = open_connections(opts, url)
    except UsageError as exc:
        warn(str(exc))
        return 2
    control, tally, outcomes = Control(), Tally(opts.max_rows), [(0, None)] * opts.workers
    for conn in (conn for pair in pairs for conn in pair if conn is not None):
        control.watch(conn)
    previous = {sig: signal.signal(sig, control.on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    where = (f"the model runs on the standby at {pairs[0][1].info.host}:{pairs[0][1].info.port}" if opts.compute
             else "the model runs there")
    say(f"pgbert worker: {opts.workers} worker(s) on database {monitor.info.dbname} at {monitor.info.host}:"
        f"{monitor.info.port}, {where}, batches of {opts.batch_rows} rows; idle workers wait for NOTIFY {CHANNEL}")
    threads = [threading.Thread(target=work, args=(slot, primary, standby, opts, control, tally, outcomes),
                                name=f"pgbert-worker-{slot}", daemon=True)
               for slot, (primary, standby) in enumerate(pairs)]
    reporter = Reporter(tally, monitor)
    try:
        for thread in threads:
            thread.start()
        while any(t.is_alive() for t in threads):
            next(t for t in threads if t.is_alive()).join(max(0.0, reporter.due - time.monotonic()))
            reporter.tick()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    reporter.tick(final=True)
    monitor.close()
    control.close()
    for text in dict.fromkeys(text for _, text in outcomes if text):  # the same failure once, not per thread
        warn(text)
    return max(code for code, _ in outcomes)
