"""The model host in a real server: started by the first backend that embeds, restarted by the next call when
it dies, stops a canceled statement's work, and when it cannot start a backend loads the model itself, warns
once and says why in status()."""
import os
import shutil
import signal
import threading
import time

import psycopg
import pytest

from helpers import CLUSTER, model_calls, status, wait_for_exit


def host_pid(conn) -> int:
    return int(status(conn)["model_host_pid"])


def test_a_killed_host_is_replaced_by_the_next_call(conn):
    first = conn.execute("SELECT embed('before')::text").fetchone()[0]
    pid = host_pid(conn)
    os.kill(pid, signal.SIGKILL)  # as the OOM killer would
    wait_for_exit(pid)
    assert conn.execute("SELECT embed('before')::text").fetchone()[0] == first  # the cache: no model call
    assert conn.execute("SELECT vector_dims(embed('after'))").fetchone() == (32,)
    assert host_pid(conn) != pid


def test_a_host_killed_during_a_call_costs_that_statement_a_second_try(conn):
    conn.execute("UPDATE pgbert.settings SET value = '1' WHERE name = 'batch_size'")  # many model calls
    conn.execute("SELECT embed('load it with batch_size 1')")
    pid = host_pid(conn)
    texts = [f"text number {i} " * 20 for i in range(2_000)]
    with psycopg.connect(CLUSTER.url(conn.info.dbname), autocommit=True) as other:
        result = []
        worker = threading.Thread(target=lambda: result.append(
            other.execute("SELECT cardinality(embed_batch(%s))", (texts,)).fetchone()[0]))
        worker.start()
        deadline = time.monotonic() + 30
        while model_calls(conn) < 3 and time.monotonic() < deadline:  # it is embedding in the host
            time.sleep(0.05)
        assert worker.is_alive() and not result  # killed in the middle of the call, not after it
        os.kill(pid, signal.SIGKILL)
        worker.join(120)
        assert result == [2_000]  # sent again to a new host: no error, nothing lost
        assert host_pid(other) != pid


def test_a_canceled_statement_stops_the_hosts_work(conn):
    conn.execute("UPDATE pgbert.settings SET value = '1' WHERE name = 'batch_size'")
    conn.execute("SELECT embed('load it')")
    conn.execute("SET statement_timeout = '300ms'")
    started = time.monotonic()
    with pytest.raises(psycopg.errors.QueryCanceled):
        conn.execute("SELECT embed_batch(%s)", ([f"text number {i} " * 20 for i in range(20_000)],))
    assert time.monotonic() - started < 5
    conn.execute("SET statement_timeout = 0")
    time.sleep(0.3)
    calls = model_calls(conn)
    time.sleep(0.5)
    assert model_calls(conn) == calls < 20_000  # the host stopped at its next model call
    assert conn.execute("SELECT vector_dims(embed('still serving'))").fetchone() == (32,)


def test_a_host_that_cannot_start_leaves_the_backend_to_load_the_model(conn):
    conn.execute("SELECT embed('load it')")
    pid = host_pid(conn)
    folder = os.path.join(conn.execute("SHOW data_directory").fetchone()[0], "pgbert_host")
    os.kill(pid, signal.SIGTERM)
    wait_for_exit(pid)
    shutil.rmtree(folder)
    with open(folder, "w") as f:  # a file where its folder should be: no host can start
        f.write("in the way")
    try:
        warnings = []
        with psycopg.connect(CLUSTER.url(conn.info.dbname), autocommit=True) as fresh:
            fresh.add_notice_handler(lambda d: warnings.append(d.message_primary))
            assert fresh.execute("SELECT vector_dims(embed('x'))").fetchone() == (32,)
            assert fresh.execute("SELECT vector_dims(embed('y'))").fetchone() == (32,)
            st = status(fresh)
        assert len(warnings) == 1 and "cannot start the model host" in warnings[0], warnings
        assert st["model_runs_in"].startswith("this backend: the model host is unavailable (cannot start")
        assert "model_host_pid" not in st
    finally:
        os.remove(folder)
    assert conn.execute("SELECT vector_dims(embed('a host again'))").fetchone() == (32,)  # this backend: no wait
    assert host_pid(conn) != pid


def test_model_host_off_runs_the_model_in_each_backend(conn):
    conn.execute("UPDATE pgbert.settings SET value = 'off' WHERE name = 'model_host'")
    conn.execute("SELECT embed('here')")
    st = status(conn)
    assert st["model_runs_in"] == "this backend (model_host is off in pgbert.settings)"
    pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    with open(f"/proc/{pid}/maps") as f:
        assert "onnxruntime" in f.read()
