"""The memory guard: a backend that cannot hold the model refuses to load it (SQLSTATE 53200) instead of
meeting the OOM killer; status() shows why; lowering the setting lets the same connection load it."""
import psycopg
import pytest

from helpers import CLUSTER, status


def test_a_load_the_server_cannot_hold_is_refused_and_recovers(conn):
    conn.execute("CREATE TABLE docs (id int PRIMARY KEY, body text)")
    conn.execute("CALL pgbert.enable_embedding('docs', 'body')")
    conn.execute("SELECT embed('load the model in this backend')")
    conn.execute("UPDATE pgbert.settings SET value = '100000000' WHERE name = 'memory_reserve_mb'")  # 100 TB free
    try:
        assert conn.execute("SELECT vector_dims(embed('already loaded here'))").fetchone() == (32,)  # no reload
        fresh = psycopg.connect(CLUSTER.url(conn.info.dbname), autocommit=True)  # a new backend must load
        with pytest.raises(psycopg.errors.OutOfMemory, match="not enough memory to load the model") as info:
            fresh.execute("SELECT embed('x')")
        assert "memory_reserve_mb" in info.value.diag.message_hint
        with pytest.raises(psycopg.errors.OutOfMemory):
            fresh.execute("INSERT INTO docs VALUES (1, 'refused')")
        st = status(fresh)
        assert st["ok"] == "false" and "not enough memory" in st["problem"]
        conn.execute("UPDATE pgbert.settings SET value = '256' WHERE name = 'memory_reserve_mb'")
        fresh.execute("INSERT INTO docs VALUES (1, 'loaded now')")  # the same connection: no restart
        assert fresh.execute("SELECT body_embedding IS NOT NULL FROM docs").fetchone() == (True,)
        fresh.close()
    finally:
        conn.execute("UPDATE pgbert.settings SET value = '256' WHERE name = 'memory_reserve_mb'")
