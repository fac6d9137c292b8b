"""The model host: embeds for backends over its socket exactly as a backend would, reports their errors as the
same exceptions, stops the work of a backend that goes away, starts detached and ends with its server."""
import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from helpers import wait_for_exit
from pgbert_runtime import host, host_client, local, memory, wire
from pgbert_runtime.bundle import BundleError, load_bundle
from pgbert_runtime.chunker import TooManyChunks
from pgbert_runtime.memory import NotEnoughMemory

TEXTS = ["I love natural language processing", "自然言語処理", "a", "long " * 300]
SETTINGS = {"threads": "1", "shared_weights": "off"}


@pytest.fixture()
def served(tmp_path):
    """A host serving tmp_path (as a data directory) from a thread of this process."""
    the_host = host.Host()
    server = host.bind(str(tmp_path), the_host)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield the_host, host_client.Connection(datadir=str(tmp_path))
    server.shutdown()
    server.server_close()


def test_the_host_embeds_and_chunks_as_this_process_does(served, tiny_bundle):
    the_host, connection = served
    remote = host_client.RemoteModel(connection, load_bundle(tiny_bundle), SETTINGS)
    here = local.LocalModel(local.load_encoder(tiny_bundle, SETTINGS, cached=False))
    for kind in ("document", "query"):
        assert np.array_equal(np.array(remote.encode(TEXTS, kind)), here.encode(TEXTS, kind))
    assert remote.encode([]) == []
    assert remote.chunk(TEXTS, 8, 2, 1000) == here.chunk(TEXTS, 8, 2, 1000)
    assert remote.chunk_window == here.chunk_window
    info = remote.info()
    assert info["model_host_pid"] == os.getpid() and info["model_host_texts"] == 2 * len(TEXTS)
    assert info["weights"].startswith("private copy") and info["model_host_models"] == 1


def test_errors_come_back_as_the_exceptions_a_backend_reports(served, tiny_bundle, tmp_path):
    _, connection = served
    remote = host_client.RemoteModel(connection, load_bundle(tiny_bundle), SETTINGS)
    with pytest.raises(TooManyChunks, match="max_chunks_per_row"):
        remote.chunk(["many words " * 100], 8, 2, 10)
    with pytest.raises(ValueError, match="unknown kind"):
        remote.encode(["x"], "Query")
    greedy = host_client.RemoteModel(connection, load_bundle(tiny_bundle),
                                     {**SETTINGS, "threads": "2", "memory_reserve_mb": "100000000"})
    with pytest.raises(NotEnoughMemory, match="memory_reserve_mb"):
        greedy.encode(["another load of the model, with a reserve of 100 TB"])
    moved = dataclasses.replace(load_bundle(tiny_bundle), path=str(tmp_path / "no-such-bundle"))
    gone = host_client.RemoteModel(connection, moved, SETTINGS)
    with pytest.raises(BundleError, match="no model bundle"):
        gone.encode(["x"])
    assert len(remote.encode(["the host still answers"])) == 1


def test_a_backend_that_goes_away_stops_its_work_at_the_next_model_call(served, tiny_bundle):
    the_host, connection = served
    remote = host_client.RemoteModel(connection, load_bundle(tiny_bundle), {**SETTINGS, "batch_size": "1"})
    remote.encode(["load it"])
    encoder = next(iter(the_host.models.values())).encoder
    before = encoder.calls

    def cancel():  # what a backend's check does when the user cancels: raise
        raise KeyboardInterrupt("canceled")

    with pytest.raises(KeyboardInterrupt):
        remote.encode([f"text number {i}" for i in range(5000)], check=cancel)
    assert connection.sock is None  # dropped: the host sees it closed
    time.sleep(0.3)
    stopped_at = encoder.calls
    time.sleep(0.3)
    assert encoder.calls == stopped_at and stopped_at - before < 5000
    assert len(remote.encode(["a new connection for the next call"])) == 1


def test_a_request_the_host_drops_is_sent_once_more_then_fails(served, tiny_bundle):
    the_host, connection = served
    answer, seen = the_host.answer, []

    def dies_on_encode(request, conn, body=b""):  # as a host killed in the middle of the work would
        if request["op"] == "encode":
            seen.append(bytes(body))
            raise host.ClientGone()  # the handler returns: the connection closes unanswered
        return answer(request, conn, body)

    the_host.answer = dies_on_encode
    remote = host_client.RemoteModel(connection, load_bundle(tiny_bundle), SETTINGS)
    with pytest.raises(wire.HostError, match="stopped twice while answering"):
        remote.encode(["x"])
    assert seen == [b"x", b"x"]
    the_host.answer = answer
    assert len(remote.encode(["served again"])) == 1


def test_the_budget_runs_at_most_n_calls_at_once():
    budget, running, most = host.Budget(), [0], [0]
    lock = threading.Lock()

    def call():
        with budget.hold(2, lambda: None):
            with lock:
                running[0] += 1
                most[0] = max(most[0], running[0])
            time.sleep(0.02)
            with lock:
                running[0] -= 1

    threads = [threading.Thread(target=call) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert most[0] == 2 and budget.waited_seconds > 0


def test_a_started_host_is_detached_and_ends_with_its_server(tmp_path):
    postmaster = subprocess.Popen(["sleep", "60"])  # stands for the server the host serves
    (tmp_path / "postmaster.pid").write_text(f"{postmaster.pid}\n{tmp_path}\n")
    connection = host_client.Connection(datadir=str(tmp_path), postmaster=postmaster.pid)
    try:
        reply, _ = connection.request({"op": "ping"})
        pid = reply["pid"]
        assert pid != os.getpid() and os.getsid(pid) != os.getsid(0)  # detached: a session of its own
        assert oct(os.stat(tmp_path / host.FOLDER).st_mode & 0o777) == "0o700"
        second = host_client.Connection(datadir=str(tmp_path), postmaster=postmaster.pid)
        assert second.request({"op": "ping"})[0]["pid"] == pid  # one host per server
    finally:
        postmaster.kill()
        postmaster.wait()
    wait_for_exit(pid, seconds=host.WATCH_SECONDS * 5)
    connection.close()


def test_a_host_that_cannot_start_is_reported_and_not_retried_at_once(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-python"))
    connection = host_client.Connection(datadir=str(tmp_path), postmaster=os.getpid())
    with pytest.raises(host_client.HostUnavailable, match="cannot start the model host"):
        connection.ensure()
    monkeypatch.setattr(sys, "executable", "/bin/false")  # it would fail differently now: it is not tried
    with pytest.raises(host_client.HostUnavailable, match="cannot start the model host"):
        connection.ensure()


def test_the_host_exits_quietly_on_sigterm(tmp_path):
    """Exit code 0, never death by a signal: a postmaster that inherits it (PID 1 in a container) would
    otherwise take it for a crashed backend and restart every connection."""
    (tmp_path / "postmaster.pid").write_text(f"{os.getpid()}\n")
    connection = host_client.Connection(datadir=str(tmp_path), postmaster=os.getpid())
    pid = connection.request({"op": "ping"})[0]["pid"]
    with open(f"/proc/{pid}/status") as f:
        caught = int(next(line for line in f if line.startswith("SigCgt:")).split()[1], 16)
    assert caught & (1 << (signal.SIGTERM - 1)) and caught & (1 << (signal.SIGINT - 1))
    os.kill(pid, signal.SIGTERM)
    wait_for_exit(pid)
    connection.close()


def test_a_host_running_other_code_retires_when_a_backend_of_the_new_code_connects(served, tmp_path):
    """After an upgrade, new backends get a host with the new code; the old host serves its old backends
    until they leave, then exits."""
    old_host, old_backend = served
    old_host.version = "the version before"
    exited = threading.Event()
    old_host.exit = exited.set
    old_backend.sock = old_backend._connect(str(tmp_path))  # connected before the upgrade
    (tmp_path / "postmaster.pid").write_text(f"{os.getpid()}\n")
    new_backend = host_client.Connection(datadir=str(tmp_path), postmaster=os.getpid())
    new = new_backend.request({"op": "ping"})[0]
    assert new["pid"] != os.getpid() and new["version"] == wire.code_version()
    assert old_backend.request({"op": "ping"})[0]["version"] == "the version before"  # still served
    assert not exited.is_set()
    old_backend.close()
    assert exited.wait(5)
    os.kill(new["pid"], signal.SIGTERM)
    wait_for_exit(new["pid"])
    new_backend.close()


# ---- round 3: one database's requests must not cost the others (findings 8, 15, and the socket note) ---------
def test_the_host_keeps_at_most_max_models_the_least_recently_used_goes(served, tiny_bundle):
    """Round 3, finding 15: each distinct settings tuple (any database's pgbert_admin) left another model."""
    the_host, connection = served
    sizes = range(1, host.MAX_MODELS + 2)  # batch_size: one model more than the host keeps
    remotes = [host_client.RemoteModel(connection, load_bundle(tiny_bundle), {**SETTINGS, "batch_size": str(n)})
               for n in sizes]
    for remote in remotes[:-1]:
        remote.encode(["load it"])
    remotes[0].encode(["used again: the second is now the least recently used"])
    remotes[-1].encode(["one model more"])
    loaded = [m.encoder.batch_size for m in the_host.models.values()]
    assert len(loaded) == host.MAX_MODELS and sorted(loaded) == sorted(set(sizes) - {2})
    assert len(remotes[1].encode(["loaded again when asked for"])) == 1


def test_a_request_cannot_raise_the_hosts_thread_budget(tmp_path, tiny_bundle, monkeypatch):
    the_host = host.Host(thread_budget=2)
    asked = []
    hold = the_host.budget.hold
    monkeypatch.setattr(the_host.budget, "hold", lambda n, check: asked.append(n) or hold(n, check))
    server = host.bind(str(tmp_path), the_host)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        connection = host_client.Connection(datadir=str(tmp_path))
        for budget in ("100", "1", None):
            settings = {**SETTINGS, "thread_budget": budget}
            host_client.RemoteModel(connection, load_bundle(tiny_bundle), settings).encode(["x"])
    finally:
        server.shutdown()
        server.server_close()
    assert set(asked) == {2, 1} and asked[-1] == 2  # 100 // 1 thread clamped to the host's 2; 1 kept; unset: 2


def test_a_negative_memory_reserve_does_not_lift_the_guard(served, tiny_bundle, monkeypatch):
    _, connection = served
    monkeypatch.setattr(memory, "available_bytes", lambda: 0)  # nothing left: no model fits
    reckless = host_client.RemoteModel(connection, load_bundle(tiny_bundle),
                                       {**SETTINGS, "memory_reserve_mb": "-100000"})
    with pytest.raises(NotEnoughMemory, match=r"0 MB to keep free \(memory_reserve_mb\)"):
        reckless.encode(["a load on another database's behalf"])


def test_the_host_gets_only_what_the_model_reads_of_a_huge_text(served, tiny_bundle):
    the_host, connection = served
    answer, sizes = the_host.answer, []
    the_host.answer = lambda request, conn, body=b"": (request["op"] == "encode" and sizes.append(len(body))
                                                       or answer(request, conn, body))
    bundle = load_bundle(tiny_bundle)
    remote = host_client.RemoteModel(connection, bundle, SETTINGS)
    text = "😀" * 4_194_304
    vector = remote.encode([text])[0]
    assert sizes == [4 * bundle.readable_chars]  # not 16 MB
    here = local.LocalModel(local.load_encoder(tiny_bundle, SETTINGS, cached=False))
    assert np.array_equal(np.array(vector), here.encode([text])[0])


def test_requests_wait_while_the_memory_others_hold_leaves_too_little(monkeypatch):
    in_flight, mb, order = host.InFlight(), 2**20, []
    monkeypatch.setattr(memory, "available_bytes", lambda: 1000 * mb)

    def gone():
        raise host.ClientGone()

    def run_second():
        with in_flight.hold(300 * mb, "256", lambda: None):
            order.append("second")

    with in_flight.hold(600 * mb, "256", lambda: None):
        assert in_flight.held == 600 * mb
        # 600 + 300 + 256 > 1000: it waits for the first to finish; its backend leaves meanwhile
        with pytest.raises(host.ClientGone), in_flight.hold(300 * mb, "256", gone):
            pass
        second = threading.Thread(target=run_second)
        second.start()
        time.sleep(3 * host.WAIT_SECONDS)
        order.append("first done")
    second.join(5)
    assert order == ["first done", "second"] and in_flight.held == 0


def test_a_request_alone_always_runs(monkeypatch):
    in_flight = host.InFlight()
    monkeypatch.setattr(memory, "available_bytes", lambda: 0)
    with in_flight.hold(800 * 2**20, "256", lambda: None):  # as a backend's own call would
        assert in_flight.held == 800 * 2**20
    assert in_flight.held == 0


def test_the_request_bytes_are_freed_before_the_work(served, tiny_bundle):
    the_host, connection = served
    work, bodies = the_host._work, []

    def spy(op, request, model, texts, check):
        bodies.append(len(seen[-1]))
        return work(op, request, model, texts, check)

    answer, seen = the_host.answer, []
    the_host.answer = lambda request, conn, body=b"": seen.append(body) or answer(request, conn, body)
    the_host._work = spy
    host_client.RemoteModel(connection, load_bundle(tiny_bundle), SETTINGS).encode(["some text " * 100])
    assert bodies == [0]  # _serve's reference no longer holds the bytes


def test_a_symlink_at_the_socket_path_does_not_block_the_host(tmp_path):
    """Round 3 note: a dangling symlink at pgbert_host/host.sock made every start fail with EADDRINUSE."""
    os.makedirs(tmp_path / host.FOLDER, mode=0o700)
    os.symlink(tmp_path / "nowhere", wire.address(str(tmp_path)))
    server = host.bind(str(tmp_path), host.Host())
    try:
        assert not os.path.islink(wire.address(str(tmp_path)))
    finally:
        server.server_close()


def test_log_lines_are_stamped_like_the_servers(capsys):
    import re

    from pgbert_runtime import host as host_module

    host_module.log("its server stopped; exiting")
    line = capsys.readouterr().err.strip()
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} \S+ \[\d+\] LOG:  pgbert model host: "
                        r"its server stopped; exiting", line), line
