"""model_stats.py: per-model call statistics that every process running a model writes to a file of its own, summed,
kept when a process dies, reset without reaching the processes; the percentiles its histogram gives; what
LocalModel.encode, the model host and load_encoder record."""
import json
import math
import os
import random
import struct
import threading
import time
import zlib
from contextlib import contextmanager

import pytest

from fake_plpy import FakePlpy
from pgbert_runtime import host, host_client, local, model_stats, sql_api
from pgbert_runtime.bundle import load_bundle

SETTINGS = {"threads": "1", "shared_weights": "off"}


@pytest.fixture()
def folder(tmp_path):
    return str(tmp_path / model_stats.FOLDER)


@pytest.fixture()
def recorder(folder, monkeypatch):
    """This process's recorder, writing to a test folder (what a server's process writes to its data directory)."""
    mine = model_stats.Recorder(folder)
    monkeypatch.setattr(model_stats, "recorder", mine)
    return mine


def only(rows, path="/b/one"):
    [row] = [r for r in rows if r[0] == path]
    return dict(zip(("bundle_path", "engine", "calls", "texts", "tokens", "total_ms", "p50_ms", "p95_ms", "wait_ms",
                     "loads", "load_ms", "since"), row, strict=True))


def test_percentiles_are_within_half_a_bucket_of_the_exact_ones():
    rng = random.Random(7)
    for mu, sigma in ((-6, 0.3), (-3, 1.5), (0, 0.1)):  # ~2.5 ms, ~50 ms spread wide, ~1 s
        samples = sorted(rng.lognormvariate(mu, sigma) for _ in range(5000))
        histogram = [0] * model_stats.BUCKETS
        for s in samples:
            histogram[model_stats.bucket(s)] += 1
        for q in (0.5, 0.95):
            exact = samples[math.ceil(q * len(samples)) - 1]  # nearest rank
            assert model_stats.percentile(histogram, q) == pytest.approx(exact, rel=0.022)
    assert model_stats.percentile([0] * model_stats.BUCKETS, 0.5) is None
    assert model_stats.bucket(0.0) == 0 and model_stats.bucket(1e9) == model_stats.BUCKETS - 1  # clamped


def test_processes_files_are_summed(folder):
    one, two = model_stats.Recorder(folder, "1-1.stats"), model_stats.Recorder(folder, "2-1.stats")
    for _ in range(10):
        one.call("/b/one", "onnxruntime-fp32", 3, 30, 0.010, 0.001)
    two.call("/b/one", "onnxruntime-fp32", 1, 5, 0.100, 0.0)
    two.call("/b/two", "openvino-bf16", 2, 8, 0.020, 0.0)
    two.load("/b/two", "openvino-bf16", 0.5)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(model_stats, "alive", lambda name: True)
        rows = model_stats.rows(folder)
    first = only(rows)
    assert (first["calls"], first["texts"], first["tokens"], first["loads"]) == (11, 31, 305, 0)
    assert first["total_ms"] == pytest.approx(200.0) and first["wait_ms"] == pytest.approx(10.0)
    assert first["p50_ms"] == pytest.approx(10.0, rel=0.022) and first["p95_ms"] == pytest.approx(100.0, rel=0.022)
    second = only(rows, "/b/two")
    assert (second["calls"], second["texts"], second["loads"], second["load_ms"]) == (1, 2, 1, 500.0)
    assert second["engine"] == "openvino-bf16"


def test_a_dead_processs_counts_are_kept_and_its_file_removed(folder, monkeypatch):
    living = {"1-1.stats", "2-1.stats"}
    monkeypatch.setattr(model_stats, "alive", lambda name: name in living)
    one, two = model_stats.Recorder(folder, "1-1.stats"), model_stats.Recorder(folder, "2-1.stats")
    one.call("/b/one", "e", 1, 1, 0.01, 0.0)
    two.call("/b/one", "e", 4, 4, 0.01, 0.0)
    assert only(model_stats.rows(folder))["calls"] == 2
    living.discard("2-1.stats")
    assert only(model_stats.rows(folder))["calls"] == 2  # merged into retired.json...
    assert sorted(os.listdir(folder)) == ["1-1.stats", "lock", "retired.json"]  # ...and its file gone
    assert only(model_stats.rows(folder))["texts"] == 5  # counted once, not again at each read


def test_a_reset_starts_from_zero_without_reaching_the_processes(folder, monkeypatch):
    living = {"1-1.stats", "2-1.stats"}
    monkeypatch.setattr(model_stats, "alive", lambda name: name in living)
    one, two = model_stats.Recorder(folder, "1-1.stats"), model_stats.Recorder(folder, "2-1.stats")
    one.call("/b/one", "e", 1, 1, 5.0, 0.0)
    two.call("/b/one", "e", 1, 1, 5.0, 0.0)
    living.discard("2-1.stats")
    model_stats.rows(folder)  # two's counts are retired now
    before = time.time()
    _, since = model_stats.collect(folder, reset=True)
    assert since >= before and model_stats.rows(folder) == []
    one.call("/b/one", "e", 2, 2, 0.01, 0.0)
    three = model_stats.Recorder(folder, "3-1.stats")
    living.add("3-1.stats")
    three.call("/b/one", "e", 3, 3, 0.01, 0.0)
    after = only(model_stats.rows(folder))
    assert (after["calls"], after["texts"]) == (2, 5) and after["since"] == since
    assert after["p95_ms"] == pytest.approx(10.0, rel=0.022)  # the 5 s calls before the reset are gone
    living.discard("1-1.stats")  # one dies after the reset: only its later call stays counted
    assert only(model_stats.rows(folder))["calls"] == 2


def test_a_half_written_file_is_not_taken_for_counts(folder, monkeypatch):
    monkeypatch.setattr(model_stats, "alive", lambda name: True)
    monkeypatch.setattr(time, "sleep", lambda s: None)
    one = model_stats.Recorder(folder, "1-1.stats")
    one.call("/b/one", "e", 1, 1, 0.01, 0.0)
    path = os.path.join(folder, "1-1.stats")
    with open(path, "r+b") as f:
        f.seek(model_stats.FRAME.size + 6)
        f.write(b"9")  # a torn write: the checksum no longer matches
    assert model_stats.rows(folder) == []
    one.call("/b/one", "e", 1, 1, 0.01, 0.0)  # the next write is whole again
    assert only(model_stats.rows(folder))["calls"] == 2


def test_files_of_another_format_are_skipped_and_never_fail_a_call(folder, monkeypatch):
    """Round 1 note: the model host failed every load while a file of an earlier format sat in the folder."""
    living = {"7-1.stats", "8-1.stats"}
    monkeypatch.setattr(model_stats, "alive", lambda name: name in living)
    os.makedirs(folder)
    payload = b'[["/b/one", "e", 5, 5]]'  # an older format: no mark, a JSON payload
    with open(os.path.join(folder, "7-1.stats"), "wb") as f:
        f.write(struct.pack("!II", len(payload), zlib.crc32(payload)) + payload)
    with open(os.path.join(folder, "retired.json"), "w") as f:
        f.write('{"since": 1, "entries": [["/b/one"]]}')  # damaged
    mine = model_stats.Recorder(folder, "8-1.stats")
    mine.call("/b/one", "e", 1, 1, 0.01, 0.0)
    assert mine.fd is not None and only(model_stats.rows(folder))["calls"] == 1
    living.discard("7-1.stats")
    assert only(model_stats.rows(folder))["calls"] == 1 and "7-1.stats" not in os.listdir(folder)


def test_dead_processes_files_stay_bounded(folder, monkeypatch):
    monkeypatch.setattr(model_stats, "alive", lambda name: name == "new-1.stats")
    n = 3 * model_stats.COMPACT_OVER
    for pid in range(n):  # short-lived backends that nobody reads the statistics of
        model_stats.Recorder(folder, f"{pid}-1.stats").call("/b/one", "e", 1, 1, 0.01, 0.0)
        assert len(os.listdir(folder)) <= model_stats.COMPACT_OVER + 3  # their files, lock, retired.json
    model_stats.Recorder(folder, "new-1.stats").call("/b/one", "e", 1, 1, 0.01, 0.0)
    assert only(model_stats.rows(folder))["calls"] == n + 1


def test_the_recorders_of_a_process_files_are_named_by_pid_and_start_time(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "PG_VERSION").write_text("16\n")  # a data directory
    mine = model_stats.Recorder()
    mine.call("/b/one", "e", 1, 1, 0.01, 0.0)
    [name] = [n for n in os.listdir(tmp_path / model_stats.FOLDER) if n.endswith(".stats")]
    assert name.startswith(f"{os.getpid()}-") and model_stats.alive(name)
    assert not model_stats.alive(f"{os.getpid()}-1.stats")  # the same pid, another process: a reused pid
    elsewhere = model_stats.Recorder()
    monkeypatch.chdir(tmp_path / model_stats.FOLDER)  # no PG_VERSION: not a server's process
    elsewhere.call("/b/one", "e", 1, 1, 0.01, 0.0)
    assert elsewhere.fd is None and elsewhere.entries[("/b/one", "e")].calls == 1


def test_a_write_that_fails_never_fails_the_call(tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("in the way")
    mine = model_stats.Recorder(str(blocked / model_stats.FOLDER))
    mine.call("/b/one", "e", 1, 1, 0.01, 0.0)
    assert mine.entries[("/b/one", "e")].calls == 1 and mine.fd is None


@contextmanager
def slow_gate(seconds: float):
    time.sleep(seconds)
    yield


def test_local_model_calls_are_recorded_with_tokens_and_wait(recorder, folder, tiny_bundle, monkeypatch):
    monkeypatch.setattr(model_stats, "alive", lambda name: True)
    model = local.LocalModel(local.load_encoder(tiny_bundle, SETTINGS, cached=False))
    texts = ["hello world", "a longer text of several words"]
    expected_tokens = sum(len(ids) for ids in model.encoder.tokenize(texts))
    model.encode(texts, gate=lambda: slow_gate(0.01))
    model.encode([])  # no model call
    model.encode(["not counted"], record=False)
    monkeypatch.setattr(model_stats, "enabled", False)
    model.encode(["not counted either"])
    row = only(model_stats.rows(folder), model.bundle.path)
    assert (row["calls"], row["texts"], row["tokens"], row["loads"]) == (1, 2, expected_tokens, 1)
    assert row["engine"] == model.encoder.engine.name
    assert row["wait_ms"] >= 20  # the tokenizer's gate and the model call's: 10 ms each
    assert row["total_ms"] >= row["wait_ms"] and row["load_ms"] > 0


def test_a_backends_cached_load_is_recorded_once(recorder, tiny_bundle, monkeypatch):
    settings = {**SETTINGS, "batch_size": "7"}  # a cache key of this test's own
    encoder = local.load_encoder(tiny_bundle, settings)
    assert local.load_encoder(tiny_bundle, settings) is encoder
    assert recorder.entries[(encoder.bundle.path, encoder.engine.name)].loads == 1


def test_the_host_records_each_call_unless_the_backend_turned_statistics_off(recorder, tmp_path, tiny_bundle,
                                                                            monkeypatch):
    the_host = host.Host()
    server = host.bind(str(tmp_path), the_host)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        remote = host_client.RemoteModel(host_client.Connection(datadir=str(tmp_path)), load_bundle(tiny_bundle),
                                         SETTINGS)
        for text in ("one", "two", "three"):
            remote.encode([text])
        remote.encode(["four", "five"], "query")
        remote._ask("encode", None, ["not counted"], kind="document", stats=False)  # a benchmark's backend
    finally:
        server.shutdown()
        server.server_close()
    [entry] = recorder.entries.values()
    assert (entry.calls, entry.texts, entry.loads) == (4, 5, 1)


def test_a_backend_with_statistics_off_tells_the_host(tiny_bundle, monkeypatch):
    sent = []

    class Connection:
        def request(self, header, check=None, body=b""):
            sent.append(header)
            return {"n": 0, "dimension": 32}, b""

    remote = host_client.RemoteModel(Connection(), load_bundle(tiny_bundle), SETTINGS)
    remote.encode(["x"])
    monkeypatch.setattr(model_stats, "enabled", False)
    remote.encode(["x"])
    assert [header.get("stats") for header in sent] == [None, False]


def test_sql_api_rows_carry_a_timestamp_and_reset_empties_them(recorder, tmp_path, tiny_bundle, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a backend's working directory: its data directory
    monkeypatch.setattr(model_stats, "alive", lambda name: True)
    with open(os.path.join(tiny_bundle, "manifest.json")) as f:
        plpy = FakePlpy(tiny_bundle, json.dumps(json.load(f)["files"]), model_host="off")
    sql_api.embed_batch(plpy, ["x", None, "y"])
    sql_api.embed_batch(plpy, ["z"])
    row = only(sql_api.model_stats(plpy), load_bundle(tiny_bundle).path)
    assert (row["calls"], row["texts"]) == (2, 3) and "T" in row["since"]
    since = sql_api.reset_model_stats(plpy)
    assert sql_api.model_stats(plpy) == [] and since > row["since"]
