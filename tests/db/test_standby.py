"""Read scale-out: embed() and search() work unchanged on a hot standby of the cluster."""
import os
import shutil
import subprocess
import time

import psycopg
import pytest

from helpers import CLUSTER, PATHS

pytestmark = pytest.mark.slow  # real weights / long runs: `make test`, not `make check`


@pytest.fixture(scope="module")
def standby_port():
    """A streaming-replication standby of the test cluster, made with pg_basebackup, on the next port."""
    data = os.path.join(PATHS.state, "standby-test")
    port = CLUSTER.port + 1
    shutil.rmtree(data, ignore_errors=True)
    os.makedirs(data, mode=0o700)
    if os.geteuid() == 0:
        import pwd
        owner = pwd.getpwnam(CLUSTER.owner)
        os.chown(data, owner.pw_uid, owner.pw_gid)
    run = lambda *argv: subprocess.run(CLUSTER._cmd(*argv), check=True, capture_output=True, text=True)  # noqa: E731
    run("pg_basebackup", "-D", data, "-h", PATHS.run, "-p", str(CLUSTER.port), "-X", "stream", "-R", "-c", "fast")
    with open(os.path.join(data, "postgresql.auto.conf"), "a") as conf:
        conf.write(f"port = {port}\nhot_standby = on\n")
    run("pg_ctl", "start", "-w", "-D", data, "-l", os.path.join(data, "standby.log"))
    try:
        yield port
    finally:
        subprocess.run(CLUSTER._cmd("pg_ctl", "stop", "-m", "immediate", "-D", data), capture_output=True)
        shutil.rmtree(data, ignore_errors=True)


def standby_url(port: int, dbname: str) -> str:
    return CLUSTER.url(dbname).replace(f"port={CLUSTER.port}", f"port={port}")


def wait_for_replay(primary, port: int, dbname: str) -> psycopg.Connection:
    lsn = primary.execute("SELECT pg_current_wal_lsn()").fetchone()[0]
    deadline = time.time() + 30
    while True:
        try:
            replica = psycopg.connect(standby_url(port, dbname), autocommit=True)
            if replica.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,)).fetchone()[0]:
                return replica
            replica.close()
        except psycopg.OperationalError:
            pass  # the database itself may not have been replayed yet
        assert time.time() < deadline, "the standby did not catch up"
        time.sleep(0.2)


def test_search_on_a_hot_standby(conn, standby_port):
    conn.execute("INSERT INTO text_embeddings (text) VALUES ('replicated to the standby'), ('another row')")
    replica = wait_for_replay(conn, standby_port, conn.info.dbname)
    try:
        assert replica.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
        rows = replica.execute("SELECT text, distance FROM search('replicated to the standby', 1)").fetchall()
        assert rows[0][0] == "replicated to the standby" and rows[0][1] == pytest.approx(0, abs=1e-5)
        assert replica.execute("SELECT embed('x') = %s::vector",
                               (conn.execute("SELECT embed('x')::text").fetchone()[0],)).fetchone() == (True,)
        assert dict(replica.execute("SELECT * FROM pgbert.status()").fetchall())["ok"] == "true"
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            replica.execute("INSERT INTO text_embeddings (text) VALUES ('nope')")
    finally:
        replica.close()
