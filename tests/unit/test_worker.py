"""`pgbert worker` without a database: arguments, the loop's decisions, signals, --compute's batch (fake
connections answer the SQL the worker sends)."""
import os
import select
import threading
import time

import psycopg2
import psycopg2.extensions
import pytest

from pgbert import worker
from pgbert.cli import build_parser


def pg_error(code, text, base=psycopg2.DatabaseError):
    """A psycopg2 error as the server raises it (pgcode and pgerror are read-only on real ones)."""
    return type("ServerError", (base,), {"pgcode": code, "pgerror": f"ERROR:  {text}\n"})(text)


class FakeConn:
    """Answers each statement with answer(sql, params) -> rows (or raises); a NOTIFY is a byte on its pipe."""

    def __init__(self, answer):
        self.answer, self.log = answer, []
        self.notifies, self.notices = [], []
        self.closed, self.cancelled, self.polled = 0, 0, 0
        self._r, self._w = os.pipe()

    def cursor(self):
        return FakeCursor(self)

    def fileno(self):
        return self._r

    def notify(self):
        os.write(self._w, b"n")

    def poll(self):
        os.read(self._r, 1)
        self.polled += 1
        self.notifies.append("pgbert_queue")

    def cancel(self):
        self.cancelled += 1

    def close(self):
        self.closed = 1

    def sent(self, fragment):
        return [params for sql, params in self.log if fragment in sql]


class FakeCursor:
    def __init__(self, conn):
        self.conn, self.rows = conn, []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def execute(self, sql, params=None):
        self.conn.log.append((sql, params))
        self.rows = self.conn.answer(sql, params) or []

    def fetchone(self):
        return self.rows[0]

    def fetchall(self):
        return self.rows


def local_answers(embedded, due=(None,), on_wait_query=None):
    """process_queue embeds the next of `embedded` (then 0); queue_wait_seconds() says the next of due (the last
    one from then on)."""
    batches, dues = list(embedded), list(due)

    def answer(sql, params):
        if "process_queue" in sql:
            return [(batches.pop(0) if batches else 0,)]
        if "queue_wait_seconds" in sql:
            if on_wait_query:
                on_wait_query()
            return [(dues.pop(0) if len(dues) > 1 else dues[0],)]
        return [(0,)]  # release_claims()
    return answer


def options(*argv):
    return build_parser().parse_args(["worker", *argv])


# ---- arguments ----------------------------------------------------------------------------------------

def test_defaults():
    opts = options()
    assert (opts.url, opts.workers, opts.compute, opts.batch_rows, opts.poll, opts.max_rows, opts.until_empty) == \
        (None, 1, None, 256, 30.0, None, False)
    opts = options("--url", "dbname=x", "--workers", "3", "--compute", "host=standby", "--batch-rows", "16",
                   "--poll", "2.5", "--max-rows", "100", "--until-empty")
    assert (opts.url, opts.workers, opts.compute, opts.batch_rows, opts.poll, opts.max_rows, opts.until_empty) == \
        ("dbname=x", 3, "host=standby", 16, 2.5, 100, True)


@pytest.mark.parametrize("argv", [["--workers", "0"], ["--batch-rows", "-1"], ["--poll", "0"], ["--poll", "nan"],
                                  ["--poll", "inf"], ["--max-rows", "ten"], ["--workers", "1.5"]])
def test_bad_arguments_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as stopped:
        options(*argv)
    assert stopped.value.code == 2
    assert argv[0] in capsys.readouterr().err


# ---- the loop's decisions -----------------------------------------------------------------------------

def test_idle_sleep_is_until_the_next_due_row_at_most_poll():
    assert worker.idle_seconds(None, 30) == 30  # nothing queued: only a NOTIFY (or poll) wakes it
    assert worker.idle_seconds(2.5, 30) == 2.5  # a retry is due then
    assert worker.idle_seconds(100, 30) == 30
    assert worker.idle_seconds(0, 30) == worker.MIN_IDLE  # due but not claimed (held by a writer): no spinning


def test_max_rows_is_shared_by_the_threads():
    tally = worker.Tally(max_rows=100)
    assert tally.reserve(64) == 64 and tally.reserve(64) == 36 and tally.reserve(64) == 0
    tally.settle(64, 60)  # four rows of that batch were not embedded: they may be claimed again
    assert tally.reserve(64) == 4
    tally.settle(36, 36)
    tally.settle(4, 4)
    assert tally.embedded == 100 and tally.reserve(64) == 0
    assert worker.Tally().reserve(64) == 64


def test_until_empty_stops_when_nothing_is_due():
    conn = FakeConn(local_answers([5, 0]))
    tally = worker.Tally()
    worker.serve(conn, lambda rows: worker.process_batch(conn, rows), options("--until-empty"), worker.Control(), tally)
    assert conn.log[0][0] == "LISTEN pgbert_queue"
    assert conn.sent("process_queue") == [(256, 256), (256, 256)]  # one batch per CALL: a stop is honoured between
    assert len(conn.sent("queue_wait_seconds")) == 1 and tally.embedded == 5


def test_until_empty_waits_for_rows_that_are_due_but_not_claimed(monkeypatch):
    waits = []
    monkeypatch.setattr(worker, "wait_for_work", lambda conn, seconds, control: waits.append(seconds))
    conn = FakeConn(local_answers([0, 7], due=(0.0, None)))
    worker.serve(conn, lambda rows: worker.process_batch(conn, rows), options("--until-empty"), worker.Control(),
                 worker.Tally())
    assert waits == [worker.MIN_IDLE] and len(conn.sent("process_queue")) == 3


def test_max_rows_sizes_the_last_batch_and_stops():
    conn = FakeConn(lambda sql, params: [(params[0],)] if "process_queue" in sql else [])
    tally = worker.Tally(max_rows=300)
    worker.serve(conn, lambda rows: worker.process_batch(conn, rows), options(), worker.Control(), tally)
    assert conn.sent("process_queue") == [(256, 256), (44, 44)] and tally.embedded == 300
    assert conn.sent("queue_wait_seconds") == []


def test_a_retry_due_later_sleeps_until_then(monkeypatch):
    waits, control = [], worker.Control()
    monkeypatch.setattr(worker, "wait_for_work", lambda conn, seconds, ctl: (waits.append(seconds), control.stop()))
    conn = FakeConn(local_answers([0], due=(2.5,)))
    worker.serve(conn, lambda rows: worker.process_batch(conn, rows), options(), control, worker.Tally())
    assert waits == [2.5]


def test_a_notify_that_came_during_the_wait_query_skips_the_sleep(monkeypatch):
    monkeypatch.setattr(worker, "wait_for_work", lambda *a: pytest.fail("slept although a NOTIFY had come"))
    conn, notified = FakeConn(None), []

    def notify_once():
        if not notified:
            notified.append(conn.notifies.append("pgbert_queue"))
    conn.answer = local_answers([0, 1], on_wait_query=notify_once)
    worker.serve(conn, lambda rows: worker.process_batch(conn, rows), options("--until-empty"), worker.Control(),
                 worker.Tally())
    assert len(conn.sent("process_queue")) == 3


def test_an_idle_worker_wakes_on_notify_and_on_stop():
    conn = FakeConn(local_answers([0, 3]))
    control, tally = worker.Control(), worker.Tally()
    thread = threading.Thread(target=worker.serve, daemon=True,
                              args=(conn, lambda rows: worker.process_batch(conn, rows), options("--poll", "60"),
                                    control, tally))
    thread.start()
    deadline = time.monotonic() + 10
    while len(conn.sent("queue_wait_seconds")) < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    conn.notify()  # a row was queued: the worker wakes, embeds it, finds nothing more and sleeps again
    while len(conn.sent("queue_wait_seconds")) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert conn.polled == 1 and tally.embedded == 3 and len(conn.sent("process_queue")) == 3
    control.stop()
    thread.join(10)
    assert not thread.is_alive()


# ---- signals and exit statuses ------------------------------------------------------------------------

def test_first_signal_stops_after_the_batch_second_cancels(capfd):
    control = worker.Control()
    conns = [FakeConn(None), FakeConn(None)]
    for conn in conns:
        control.watch(conn)
    control.on_signal()
    assert control.stopping.is_set() and not control.hard
    assert select.select([control.wake_fd], [], [], 0)[0] == [control.wake_fd]  # idle threads wake
    assert [c.cancelled for c in conns] == [0, 0]
    control.check()  # a batch in hand goes on
    control.on_signal()
    assert [c.cancelled for c in conns] == [1, 1]
    with pytest.raises(worker.Stopped):
        control.check()
    assert "signal again to stop at once" in capfd.readouterr().err


def test_outcomes():
    control, live, closed = worker.Control(), FakeConn(None), FakeConn(None)
    closed.closed = 2
    code, text = worker.outcome_of(pg_error("42501", "permission denied for function claim_batch"), live, "database",
                                   control)
    assert code == 2 and "GRANT pgbert_worker TO" in text
    code, text = worker.outcome_of(psycopg2.OperationalError("server closed the connection unexpectedly"), closed,
                                   "standby", control)
    assert code == 1 and "lost the connection to the standby" in text and "Restart=on-failure" in text
    code, text = worker.outcome_of(pg_error("XX000", "store failed"), live, "database", control)
    assert code == 1 and "store failed" in text
    control.signals = 2  # a cancel we asked for is a clean stop
    assert worker.outcome_of(psycopg2.extensions.QueryCanceledError("canceling statement"), live, "database",
                             control) == (0, None)


def test_a_failing_thread_releases_its_claims_and_stops_the_others():
    def answer(sql, params):
        if "process_queue" in sql:
            raise pg_error("XX000", "could not write the vectors")
        return [(0,)]
    conn, control = FakeConn(answer), worker.Control()
    outcomes = [(0, None)]
    worker.work(0, conn, None, options(), control, worker.Tally(), outcomes)
    assert outcomes[0][0] == 1 and "could not write the vectors" in outcomes[0][1]
    assert control.stopping.is_set() and conn.sent("release_claims") == [None] and conn.closed


# ---- --compute -----------------------------------------------------------------------------------------

def compute_pair(compute, replayed=True):
    primary = FakeConn(lambda sql, params: {
        "claim_batch": [("docs", [1, 2, 3])], "pg_current_wal_lsn": [("0/3000060",)],
        "store_claimed": [(2,)], "fail_claimed": [(1,)], "release_claims": [(3,)]}.get(
            next((k for k in ("claim_batch", "pg_current_wal_lsn", "store_claimed", "fail_claimed", "release_claims")
                  if k in sql), ""), []))
    standby = FakeConn(lambda sql, params: [(replayed,)] if "pg_last_wal_replay_lsn" in sql else compute(params[0]))
    return primary, standby


def test_compute_stores_what_the_standby_embedded():
    rows = {1: (1, "741", "[1,0]", None), 2: (2, None, None, None), 3: (3, "742", "[0,1]", None)}
    primary, standby = compute_pair(lambda ids: [rows[i] for i in ids])
    assert worker.ComputeBatch(primary, standby, worker.Control())(64) == 2
    assert primary.sent("claim_batch") == [(64,)]
    assert standby.sent("pg_last_wal_replay_lsn") == [("0/3000060",)]
    assert primary.sent("store_claimed") == [([1, 2, 3], '{"741",NULL,"742"}', '{"[1,0]",NULL,"[0,1]"}',
                                              "{NULL,NULL,NULL}")]


def test_compute_isolates_a_poison_row():
    def compute(ids):
        if 2 in ids:
            raise pg_error("22000", "pgbert: the model failed on this text")
        return [(i, str(700 + i), f"[{i}]", None) for i in ids]
    primary, standby = compute_pair(compute)
    assert worker.ComputeBatch(primary, standby, worker.Control())(64) == 2
    assert standby.sent("compute_claimed") == [([1, 2, 3],), ([1],), ([2],), ([3],)]
    assert primary.sent("fail_claimed") == [([2], "pgbert: the model failed on this text")]
    assert primary.sent("store_claimed") == [([1, 3], '{"701","703"}', '{"[1]","[3]"}', "{NULL,NULL}")]


def test_a_lost_standby_is_no_poison_row():
    def compute(ids):
        standby.closed = 2
        raise psycopg2.OperationalError("server closed the connection unexpectedly")
    primary, standby = compute_pair(compute)
    with pytest.raises(psycopg2.OperationalError):
        worker.ComputeBatch(primary, standby, worker.Control())(64)
    assert primary.sent("fail_claimed") == [] and primary.sent("store_claimed") == []


def test_a_standby_behind_gets_the_claims_back(capsys):
    primary, standby = compute_pair(lambda ids: pytest.fail("computed before the standby had the claim"),
                                    replayed=False)
    assert worker.ComputeBatch(primary, standby, worker.Control(), replay_timeout=0.05)(64) == 0
    assert primary.sent("release_claims") == [None]
    assert "has not replayed" in capsys.readouterr().err


def test_a_second_signal_drops_the_batch_while_waiting_for_the_standby():
    primary, standby = compute_pair(lambda ids: pytest.fail("computed after the stop"), replayed=False)
    control = worker.Control()
    control.signals = 2
    with pytest.raises(worker.Stopped):
        worker.ComputeBatch(primary, standby, control)(64)


def test_array_literals_keep_nulls_and_quote():
    assert worker.pg_array(['a"b', "c\\d", None, "{x,y}"]) == '{"a\\"b","c\\\\d",NULL,"{x,y}"}'
    assert worker.pg_array([]) == "{}"


# ---- progress ------------------------------------------------------------------------------------------

def test_progress_lines(capsys):
    tally = worker.Tally()
    monitor = FakeConn(lambda sql, params: [(0,)])
    reporter = worker.Reporter(tally, monitor)
    reporter.tick()
    assert capsys.readouterr().out == ""  # not yet due
    reporter.due = 0
    reporter.tick()
    assert capsys.readouterr().out == ""  # nothing changed: an idle worker stays quiet
    tally.settle(0, 120)
    reporter.due = 0
    reporter.tick()
    assert "pgbert worker: 120 rows embedded (" in capsys.readouterr().out
    reporter.tick(final=True)
    assert "stopped: 120 rows embedded in" in capsys.readouterr().out


# ---- the command -----------------------------------------------------------------------------------------

class Info:
    dbname, host, port = "app", "/run/postgresql", 5432


def test_connections_per_thread(monkeypatch):
    made = []

    def connect(dsn, what, standby=False):
        if dsn == "refused":
            raise worker.UsageError("cannot connect")
        made.append(FakeConn(None))
        made[-1].name = f"{what}{len(made)}"
        return made[-1]
    monkeypatch.setattr(worker, "connect", connect)
    monitor, pairs = worker.open_connections(options("--workers", "2"), "primary")
    assert monitor.name == "database1" and [(p.name, s) for p, s in pairs] == [("database2", None), ("database3", None)]
    made.clear()
    monitor, pairs = worker.open_connections(options("--workers", "2", "--compute", "standby"), "primary")
    assert [(p.name, s.name) for p, s in pairs] == [("database2", "standby3"), ("database4", "standby5")]
    made.clear()
    with pytest.raises(worker.UsageError):
        worker.open_connections(options("--workers", "2", "--compute", "refused"), "primary")
    assert [c.closed for c in made] == [1, 1]  # what was opened before the refusal is closed


def test_run_drains_and_exits_0(monkeypatch, capsys):
    conns = []

    def connect(dsn, what, standby=False):
        conns.append(FakeConn(local_answers([4, 0]) if conns else (lambda sql, params: [(0,)])))
        conns[-1].info = Info()
        return conns[-1]
    monkeypatch.setattr(worker, "connect", connect)
    assert worker.run(options("--until-empty"), "dbname=app") == 0
    out = capsys.readouterr().out
    assert "1 worker(s) on database app" in out and "stopped: 4 rows embedded" in out
    assert conns[1].sent("release_claims") == [None] and all(c.closed for c in conns)


def test_run_exits_1_when_the_database_fails(monkeypatch, capsys):
    def answer(sql, params):
        if "process_queue" in sql:
            raise psycopg2.OperationalError("server closed the connection unexpectedly")
        return [(0,)]
    monkeypatch.setattr(worker, "connect", lambda *a, **k: setattr(conn := FakeConn(answer), "info", Info()) or conn)
    assert worker.run(options("--workers", "2"), "dbname=app") == 1
    err = capsys.readouterr().err
    assert err.count("lost the connection to the database") == 1  # said once, not per thread
