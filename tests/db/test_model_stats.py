"""pgbert.model_stats in a real server: it counts every backend's calls (through the model host, and with
model_host = off in the backends themselves) exactly as the clients made them, resets, and is pgbert_admin's alone."""
import subprocess
import sys
import threading

import psycopg
import pytest

from helpers import CLUSTER, ROOT, tiny_bundle_path

COLUMNS = ("model", "bundle_path", "engine", "calls", "texts", "tokens", "total_time_ms", "mean_time_per_text_ms",
           "p50_call_ms", "p95_call_ms", "queue_wait_ms", "loads", "load_time_ms", "stats_since")


@pytest.fixture()
def bundle(conn):
    """A model of this test's own (its own row in model_stats, whatever else the server embeds), made active."""
    path = tiny_bundle_path("tiny-bert-stats", seed=11)
    name = conn.execute("SELECT pgbert.use_model(%s)", (path,)).fetchone()[0]
    return path, name


def stats(conn, bundle_path: str) -> dict:
    rows = conn.execute(f"SELECT {', '.join(COLUMNS)} FROM pgbert.model_stats WHERE bundle_path = %s",
                        (bundle_path,)).fetchall()
    assert len(rows) <= 1  # one engine runs it
    return dict(zip(COLUMNS, rows[0], strict=True)) if rows else {"calls": 0, "texts": 0, "tokens": 0, "loads": 0}


def embed_from_clients(conn, n: int, clients: int = 2) -> tuple[int, int]:
    """n embed() and n embed_batch() calls from each of `clients` connections at once: (calls, texts) made."""
    def client(k: int):
        with psycopg.connect(CLUSTER.url(conn.info.dbname), autocommit=True) as other:
            for i in range(n):
                other.execute("SELECT embed(%s)", (f"client {k} text {i}",))  # distinct: the cache never answers
                other.execute("SELECT embed_batch(%s)", ([f"client {k} batch {i} a", None, f"client {k} batch {i} b"],))

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return clients * 2 * n, clients * 3 * n  # NULL texts reach no model


def test_the_stats_count_every_backends_calls_as_the_clients_made_them(conn, bundle):
    path, name = bundle
    conn.execute("SELECT embed('load it')")
    before = stats(conn, path)
    calls, texts = embed_from_clients(conn, 25)
    after = stats(conn, path)
    assert (after["calls"] - before["calls"], after["texts"] - before["texts"]) == (calls, texts)
    assert after["model"] == name and after["engine"]
    assert after["tokens"] - before["tokens"] >= 3 * texts  # [CLS] word(s) [SEP] at least
    assert 0 < after["p50_call_ms"] <= after["p95_call_ms"] and after["queue_wait_ms"] >= 0
    assert after["mean_time_per_text_ms"] == pytest.approx(after["total_time_ms"] / after["texts"])
    assert after["loads"] >= 1 and after["load_time_ms"] > 0


def test_backends_report_too_when_they_run_the_model_themselves(conn, bundle):
    path, _ = bundle
    conn.execute("UPDATE pgbert.settings SET value = 'off' WHERE name = 'model_host'")
    before = stats(conn, path)
    calls, texts = embed_from_clients(conn, 10)  # two new backends: each loads the model
    after = stats(conn, path)
    assert (after["calls"] - before["calls"], after["texts"] - before["texts"]) == (calls, texts)
    assert after["loads"] - before["loads"] == 2
    # the backends have gone: their counts stay (retired), counted once
    assert stats(conn, path)["calls"] == after["calls"]


def test_a_reset_starts_again_from_zero(conn, bundle):
    path, _ = bundle
    conn.execute("SELECT embed('counted before the reset')")
    assert stats(conn, path)["calls"] >= 1
    since = conn.execute("SELECT pgbert.reset_model_stats()").fetchone()[0]
    assert stats(conn, path)["calls"] == 0
    conn.execute("SELECT embed_batch(ARRAY['after', 'the reset'])")
    after = stats(conn, path)
    assert (after["calls"], after["texts"], after["stats_since"]) == (1, 2, since)


def test_only_pgbert_admin_reads_or_resets_the_stats(conn, bundle, role):
    user = role("pgbert_stats_user", "pgbert_user")
    admin = role("pgbert_stats_admin", "pgbert_admin")
    conn.execute(f"SET ROLE {user}")
    conn.execute("SELECT embed('a user embeds')")
    for query in ("SELECT count(*) FROM pgbert.model_stats", "SELECT * FROM pgbert._model_stats()",
                  "SELECT pgbert.reset_model_stats()"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(query)
    conn.execute(f"SET ROLE {admin}")
    assert stats(conn, bundle[0])["calls"] >= 1
    conn.execute("SELECT pgbert.reset_model_stats()")


def test_the_overhead_benchmark_runs(conn, tmp_path):
    """bench/model_stats.py in a few calls, so that it never rots (its figures come from a full run)."""
    output = tmp_path / "RESULTS-model-stats.md"
    done = subprocess.run([sys.executable, "bench/model_stats.py", "--calls", "20", "--url",
                           CLUSTER.url(conn.info.dbname), "--output", str(output)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    table = output.read_text()
    for where in ("the model host", "the backend (model_host = off)"):
        for workload in ("embed(), 1 text a call", "embed_batch(), 32 texts a call"):
            assert f"| {where} | {workload} |" in table
    assert "of throughput (target: at most 2%)" in table
    assert conn.execute("SELECT value FROM pgbert.settings WHERE name = 'model_host'").fetchone()[0] in (None, "on")
