"""pg_cron runs the embedding queue (issue 21): the README's one-line schedule, as a login role holding only
pgbert_worker, embeds a queued table with no process outside PostgreSQL, and pg_cron records its runs as
succeeded. The cluster preloads pg_cron (`pgbert setup`); its jobs live in the `postgres` database and run in
the per-test database through cron.schedule_in_database."""
import re
import time

import psycopg
import pytest

from helpers import CLUSTER, assert_embedded

# pg_cron before 1.5 (Debian 12 has 1.4) schedules by the minute: the first run may be a minute away.
pytestmark = pytest.mark.slow

JOB = "pgbert-queue-test"
TEXTS = ["PostgreSQL is a database", "自然言語処理", "🚀", "", "a much longer text " * 50]


@pytest.fixture()
def cron():
    """A connection to pg_cron's database (the `postgres` one), the extension created there."""
    with psycopg.connect(CLUSTER.url("postgres"), autocommit=True) as admin:
        if not admin.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_cron'").fetchone():
            pytest.skip("pg_cron is not installed on this machine: scripts/install-system.sh (make setup) installs "
                        "postgresql-<major>-cron where apt has it")
        preloaded = admin.execute("SHOW shared_preload_libraries").fetchone()[0]
        if "pg_cron" not in re.split(r'[\s,"]+', preloaded):
            pytest.fail("pg_cron is installed but the cluster does not preload it: run `.venv/bin/pgbert setup` "
                        "(it sets shared_preload_libraries and restarts the cluster once)")
        admin.execute("CREATE EXTENSION IF NOT EXISTS pg_cron")
        # a job left by an interrupted run would embed into a database that is gone
        admin.execute("SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname = %s", (JOB,))
        yield admin


def schedule(cron) -> tuple[str, int]:
    """The README's schedule: every few seconds where pg_cron has seconds (1.5), else every minute."""
    version = cron.execute("SELECT extversion FROM pg_extension WHERE extname = 'pg_cron'").fetchone()[0]
    seconds = tuple(int(n) for n in re.findall(r"\d+", version)[:2]) >= (1, 5)
    return ("5 seconds", 4) if seconds else ("* * * * *", 55)


def wait_for(what: str, done, timeout: float):
    deadline = time.monotonic() + timeout
    while not (result := done()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.5)
    return result


def test_pg_cron_drains_a_queued_table_as_a_pgbert_worker(conn, cron, role):
    conn.execute("CREATE TABLE docs (id serial PRIMARY KEY, body text, tag text)")
    conn.execute("CALL pgbert.enable_embedding('docs', 'body', strategy => 'queue')")
    conn.execute("INSERT INTO docs (body) SELECT unnest(%s::text[]) FROM generate_series(1, 8)", (TEXTS,))
    conn.execute("INSERT INTO docs (body) VALUES (NULL)")
    assert conn.execute("SELECT count(*) FROM docs WHERE body_embedding IS NOT NULL").fetchone()[0] == 0
    worker = role("pgbert_cron_test", "pgbert_worker")
    conn.execute(f"ALTER ROLE {worker} LOGIN")  # pg_cron's background worker logs in as the job's role

    every, max_seconds = schedule(cron)
    database = conn.info.dbname
    job = cron.execute("SELECT cron.schedule_in_database(%s, %s, %s, %s, username => %s)",
                       (JOB, every, f"CALL pgbert.process_queue(max_seconds => {max_seconds})", database,
                        worker)).fetchone()[0]
    try:
        def drained():
            return conn.execute("SELECT count(*) = 0 FROM docs WHERE body IS NOT NULL AND body_embedding IS NULL"
                                ).fetchone()[0]

        wait_for("pg_cron's job to embed the queued rows", drained, 120)
        runs = wait_for("pg_cron's run to finish", lambda: cron.execute(
            "SELECT status, return_message, username, database FROM cron.job_run_details "
            "WHERE jobid = %s AND status NOT IN ('starting', 'running') ORDER BY runid", (job,)).fetchall(), 60)
    finally:
        cron.execute("SELECT cron.unschedule(%s)", (job,))
        cron.execute("DELETE FROM cron.job_run_details WHERE jobid = %s", (job,))
    assert_embedded(conn)
    assert [(status, user, db) for status, _, user, db in runs] == [("succeeded", worker, database)] * len(runs), runs
    assert conn.execute("SELECT pending, failed FROM pgbert.queue_status WHERE relid = 'docs'::regclass"
                        ).fetchall() in ([], [(0, 0)])
