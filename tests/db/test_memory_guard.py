"""The memory guard: a process that cannot hold the model refuses to load it (SQLSTATE 53200) instead of
meeting the OOM killer; status() shows why; lowering the setting lets the same connection load it. The load
is the model host's (the default) or, with model_host off, each backend's."""
import os
import signal

import psycopg
import pytest

from helpers import CLUSTER, status, wait_for_exit


def stop_model_host(conn) -> None:
    pid = int(status(conn)["model_host_pid"])
    os.kill(pid, signal.SIGKILL)
    wait_for_exit(pid)


@pytest.mark.parametrize("model_host", ["on", "off"])
def test_a_load_the_server_cannot_hold_is_refused_and_recovers(conn, model_host):
    conn.execute("UPDATE pgbert.settings SET value = %s WHERE name = 'model_host'", (model_host,))
    conn.execute("CREATE TABLE docs (id int PRIMARY KEY, body text)")
    conn.execute("CALL pgbert.enable_embedding('docs', 'body')")
    conn.execute("SELECT embed('load the model')")
    conn.execute("UPDATE pgbert.settings SET value = '100000000' WHERE name = 'memory_reserve_mb'")  # 100 TB free
    try:
        assert conn.execute("SELECT vector_dims(embed('already loaded'))").fetchone() == (32,)  # no reload
        if model_host == "on":
            stop_model_host(conn)  # the next call starts a new host, which must load the model
        fresh = psycopg.connect(CLUSTER.url(conn.info.dbname), autocommit=True)  # with off: a new backend loads
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
        assert status(fresh)["model_runs_in"].startswith("the model host" if model_host == "on" else "this backend")
        fresh.close()
    finally:
        conn.execute("UPDATE pgbert.settings SET value = '256' WHERE name = 'memory_reserve_mb'")
