"""Read scale-out: embed() and search() work unchanged on a hot standby of the cluster."""
import psycopg
import pytest

from helpers import hot_standby, wait_for_replay

pytestmark = pytest.mark.slow  # real weights / long runs: `make test`, not `make check`


@pytest.fixture(scope="module")
def standby_port():
    with hot_standby() as port:
        yield port


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
