"""`pgbert worker` as a user runs it: the real command, in a subprocess, against a queued table of a test
database. A trigger of the test's own counts every committed vector write per row (table `writes`), so a row
embedded twice shows."""
import signal
import subprocess
import sys
import time

import pytest

from helpers import assert_embedded, db_url, hot_standby, standby_url, status, wait_for_replay
from pgbert.paths import ROOT

WORKER = [sys.executable, "-m", "pgbert.cli", "worker"]


def queued_table(conn, rows: int, store_delay: float = 0.0, words: int = 20) -> None:
    """docs(id, body) with strategy 'queue' and `rows` rows queued; each vector write sleeps store_delay s (a
    batch that takes a while) and is counted in writes (with the backend that wrote it)."""
    conn.execute("CREATE TABLE docs (id integer PRIMARY KEY, body text)")
    conn.execute("CALL pgbert.enable_embedding('docs', 'body', strategy => 'queue')")
    conn.execute("CREATE TABLE writes (id integer, backend integer)")
    # pgbert stores with search_path = pg_catalog, pg_temp: the trigger names its schema
    conn.execute(f"""CREATE FUNCTION public.count_write() RETURNS trigger LANGUAGE plpgsql AS $$
                     BEGIN
                         INSERT INTO public.writes VALUES (NEW.id, pg_backend_pid());
                         PERFORM pg_sleep({store_delay});
                         RETURN NEW;
                     END $$""")
    conn.execute("CREATE TRIGGER count_write AFTER UPDATE OF body_embedding ON docs FOR EACH ROW "
                 "WHEN (NEW.body_embedding IS NOT NULL) EXECUTE FUNCTION public.count_write()")
    conn.execute("INSERT INTO docs SELECT i, 'document ' || i || repeat(' lorem ipsum', %s + i %% 7) "
                 "FROM generate_series(1, %s) i", (words, rows))
    assert queued(conn) == rows


def queued(conn) -> int:
    return conn.execute("SELECT count(*) FROM pgbert.embedding_queue").fetchone()[0]


def claimed(conn) -> int:
    return conn.execute("SELECT count(*) FROM pgbert.embedding_queue WHERE claimed_pid IS NOT NULL").fetchone()[0]


def embedded(conn) -> int:
    return conn.execute("SELECT count(body_embedding) FROM docs").fetchone()[0]


def assert_written_once(conn, rows: int) -> None:
    twice = conn.execute("SELECT id, count(*) FROM writes GROUP BY id HAVING count(*) > 1").fetchall()
    assert twice == [], f"rows embedded more than once: {twice[:10]}"
    assert conn.execute("SELECT count(DISTINCT id) FROM writes").fetchone()[0] == rows


def run_worker(conn, *argv, url=None, timeout=60) -> subprocess.CompletedProcess:
    return subprocess.run([*WORKER, "--url", url or db_url(conn.info.dbname), *argv], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def start_worker(conn, *argv) -> subprocess.Popen:
    return subprocess.Popen([*WORKER, "--url", db_url(conn.info.dbname), *argv], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_until(condition, what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_two_workers_drain_the_queue_and_embed_no_row_twice(conn):
    queued_table(conn, 300)
    out = run_worker(conn, "--workers", "2", "--batch-rows", "8", "--until-empty")
    assert out.returncode == 0, out.stderr
    assert "stopped: 300 rows embedded" in out.stdout, out.stdout
    assert_written_once(conn, 300)
    assert conn.execute("SELECT count(DISTINCT backend) FROM writes").fetchone()[0] == 2  # both took batches
    assert queued(conn) == 0
    assert_embedded(conn)


def test_a_worker_killed_mid_batch_loses_nothing(conn):
    queued_table(conn, 60, store_delay=0.05)  # a batch of 20 takes a second to store
    first = start_worker(conn, "--batch-rows", "20")
    wait_until(lambda: claimed(conn) > 0, "the first claim")
    first.kill()
    first.wait()
    # Its backend goes too (as when the worker's host dies): its claims stay behind in the queue.
    backends = [r[0] for r in conn.execute(
        "SELECT pid FROM pg_stat_activity WHERE application_name = 'pgbert worker' AND datname = current_database()")]
    conn.execute("SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) pid", (backends,))
    wait_until(lambda: not conn.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY (%s)",
                                        (backends,)).fetchone()[0], "the killed worker's backends to end")
    assert claimed(conn) > 0 and embedded(conn) < 60
    second = run_worker(conn, "--until-empty")
    assert second.returncode == 0, second.stderr
    assert embedded(conn) == 60 and queued(conn) == 0
    assert_written_once(conn, 60)


def test_sigterm_finishes_the_batch_and_leaves_no_claim(conn):
    queued_table(conn, 100, store_delay=0.02)
    worker = start_worker(conn, "--batch-rows", "20")
    wait_until(lambda: claimed(conn) > 0, "the first claim")
    worker.send_signal(signal.SIGTERM)
    out, err = worker.communicate(timeout=60)
    assert worker.returncode == 0, err
    assert "stopping after the current batch" in err and "stopped:" in out
    assert claimed(conn) == 0
    assert 20 <= embedded(conn) < 100  # the batch in hand was stored, no other was taken
    assert queued(conn) == 100 - embedded(conn)


def test_a_second_signal_cancels_the_batch_and_gives_its_rows_back(conn):
    queued_table(conn, 30, store_delay=0.5)  # the batch would take 15 s to store
    worker = start_worker(conn, "--batch-rows", "30")
    wait_until(lambda: conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgbert worker' "
                                    "AND wait_event = 'PgSleep'").fetchone()[0], "the batch's store")
    worker.send_signal(signal.SIGTERM)
    time.sleep(0.5)  # two signals at once may arrive as one
    worker.send_signal(signal.SIGINT)
    out, err = worker.communicate(timeout=10)
    assert worker.returncode == 0, err
    assert "stopping now" in err
    assert claimed(conn) == 0 and embedded(conn) == 0 and queued(conn) == 30


def test_an_idle_worker_sleeps_until_a_row_commits(conn):
    queued_table(conn, 0)
    worker = start_worker(conn, "--poll", "60")
    try:
        idle = ("SELECT query_start FROM pg_stat_activity WHERE application_name = 'pgbert worker' "
                "AND datname = current_database() AND state = 'idle' AND query = 'SELECT pgbert.queue_wait_seconds()'")
        wait_until(lambda: conn.execute(idle).fetchone(), "the worker to go idle")
        asleep = conn.execute(idle).fetchone()
        time.sleep(1)
        assert conn.execute(idle).fetchone() == asleep  # no statement while idle: it does not poll
        conn.execute("INSERT INTO docs VALUES (1, 'a row embedded soon after its commit')")
        wait_until(lambda: embedded(conn) == 1, "the row's vector", seconds=5)  # NOTIFY, not the 60 s poll
        assert_embedded(conn)
    finally:
        worker.send_signal(signal.SIGTERM)
        out, err = worker.communicate(timeout=30)
    assert worker.returncode == 0, err


def test_bad_usage_exits_2_and_pgbert_worker_is_all_a_role_needs(conn, role):
    queued_table(conn, 3)
    out = run_worker(conn, "--workers", "0")
    assert out.returncode == 2 and "--workers" in out.stderr
    out = run_worker(conn, "--until-empty", url=db_url(conn.info.dbname).replace("port=", "port=1"))
    assert out.returncode == 2 and "cannot connect to the database" in out.stderr
    name = role("queue_outsider")
    conn.execute(f"ALTER ROLE {name} LOGIN")
    as_role = db_url(conn.info.dbname).replace("postgres@", f"{name}@")
    assert as_role != db_url(conn.info.dbname)
    out = run_worker(conn, "--until-empty", url=as_role)
    assert out.returncode == 2 and f"GRANT pgbert_worker TO {name}" in out.stderr, out.stderr
    conn.execute(f"GRANT pgbert_worker TO {name}")
    out = run_worker(conn, "--until-empty", url=as_role)
    assert out.returncode == 0, out.stderr
    assert embedded(conn) == 3 and queued(conn) == 0


@pytest.fixture(scope="module")
def standby_port():
    with hot_standby() as port:
        yield port


@pytest.mark.slow  # a pg_basebackup of the cluster
def test_compute_on_a_hot_standby_writes_to_the_primary(conn, standby_port):
    queued_table(conn, 40)
    wait_for_replay(conn, standby_port, conn.info.dbname).close()
    texts = int(status(conn)["model_host_texts"])
    out = run_worker(conn, "--compute", standby_url(standby_port, conn.info.dbname), "--batch-rows", "16",
                     "--until-empty")
    assert out.returncode == 0, out.stderr
    assert "the model runs on the standby" in out.stdout
    assert int(status(conn)["model_host_texts"]) - texts < 40  # the primary's model did not embed them
    assert queued(conn) == 0
    assert_written_once(conn, 40)
    assert_embedded(conn)  # the standby's vectors are embed()'s on the primary, within the engine's tolerance
