"""One model per server: the model host holds the model, and backends load nothing of it; with model_host off,
backends map the model prepared once under the data directory (pgbert_cache) instead of each loading its own
copy; a failed preparation falls back to a private copy and says why; the prepared model and the host's
service outlive a restart, and the host ends with its server."""
import json
import os
import shutil

import numpy as np
import psycopg
import pytest

from helpers import CLUSTER, status, tiny_bundle_path, wait_for_exit
from pgbert_runtime import prepared


@pytest.fixture(autouse=True)
def onnxruntime(conn):
    """These files are ONNX Runtime's: on a CPU with native bf16, 'auto' would run OpenVINO instead."""
    conn.execute("UPDATE pgbert.settings SET value = 'onnxruntime-fp32' WHERE name = 'engine'")


def connect(conn) -> psycopg.Connection:
    return psycopg.connect(CLUSTER.url(conn.info.dbname), autocommit=True)


def vector(conn, text: str) -> np.ndarray:
    return np.array(json.loads(conn.execute("SELECT embed(%s)::text", (text,)).fetchone()[0]))


def mapped_files(conn, pid: int | None = None) -> str:
    pid = pid or conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    with open(f"/proc/{pid}/maps") as f:
        return f.read()


def prepared_folder(conn, bundle: str) -> str:
    """Where the server keeps the prepared model for this bundle (as engines/prepared name it)."""
    with open(os.path.join(bundle, "manifest.json")) as f:
        digest = json.load(f)["files"]["model.onnx"]["sha256"][:16]
    data_directory = conn.execute("SHOW data_directory").fetchone()[0]
    version = status(conn)["onnxruntime"]
    return prepared.folder_for(os.path.join(data_directory, "pgbert_cache", digest), version)


def test_the_model_host_maps_the_prepared_model_and_backends_load_nothing(conn, tiny_bundle):
    conn.execute("SELECT embed('load it in the host')")
    folder = prepared_folder(conn, tiny_bundle)
    st = status(conn)
    host = int(st["model_host_pid"])
    assert st["model_runs_in"] == f"the model host, pid {host}"
    assert st["weights"] == f"shared, memory-mapped from {folder}"
    assert os.path.join(folder, prepared.DATA_FILE) in mapped_files(conn, host)
    with connect(conn) as other:
        other.execute("SELECT embed('a second backend')")
        assert status(other)["model_host_pid"] == str(host)  # one host for the server
        for backend in (conn, other):
            maps = mapped_files(backend)
            assert "onnxruntime" not in maps and "pgbert_cache" not in maps and "numpy" not in maps


def test_backends_map_one_prepared_model_and_embed_as_a_private_copy_does(conn, tiny_bundle):
    conn.execute("UPDATE pgbert.settings SET value = 'off' WHERE name = 'model_host'")
    conn.execute("SELECT embed('load it here')")
    folder = prepared_folder(conn, tiny_bundle)
    assert status(conn)["weights"] == f"shared, memory-mapped from {folder}"
    data = os.path.join(folder, prepared.DATA_FILE)
    assert data in mapped_files(conn)
    written = os.stat(data).st_mtime_ns
    texts = ["a first text", "自然言語処理", "x " * 500]
    with connect(conn) as other:  # a second backend maps the same file, prepares nothing
        shared = [vector(other, t) for t in texts]
        assert status(other)["weights"].startswith("shared") and data in mapped_files(other)
    assert os.stat(data).st_mtime_ns == written
    conn.execute("UPDATE pgbert.settings SET value = 'off' WHERE name = 'shared_weights'")
    private = [vector(conn, t) for t in texts]  # the setting's change reloads, as a private copy
    assert status(conn)["weights"] == "private copy (shared_weights is off in pgbert.settings)"
    for a, b in zip(shared, private, strict=True):
        assert a @ b / (np.linalg.norm(a) * np.linalg.norm(b)) >= 0.9999


def test_a_failed_preparation_falls_back_to_a_private_copy_and_says_how_to_retry(conn):
    bundle = tiny_bundle_path("tiny-bert-shared", seed=7)  # a model of its own: its own cache folder
    conn.execute("UPDATE pgbert.settings SET value = 'off' WHERE name = 'model_host'")  # a load per backend
    folder = prepared_folder(conn, bundle)
    shutil.rmtree(folder, ignore_errors=True)  # left by an earlier run
    os.makedirs(os.path.dirname(folder), exist_ok=True)
    shutil.chown(os.path.dirname(folder), CLUSTER.owner, CLUSTER.owner)  # the server trusts only its own folders
    with open(folder + ".failed", "w") as f:  # as a backend writes it when preparing fails (disk full...)
        f.write("preparing the shared model failed: No space left on device\n")
    conn.execute("SELECT pgbert.use_model(%s)", (bundle,))
    with connect(conn) as fresh:
        fresh.execute("SELECT embed('still embeds')")
        weights = status(fresh)["weights"]
    assert weights == (f"private copy: preparing the shared model failed: No space left on device "
                       f"(delete {folder}.failed to try again)")
    assert not os.path.exists(folder)  # the note is respected: nobody retried
    os.remove(folder + ".failed")  # what the operator does
    with connect(conn) as fresh:
        fresh.execute("SELECT embed('shared now')")
        assert status(fresh)["weights"] == f"shared, memory-mapped from {folder}"
    assert prepared.ready(folder)


@pytest.mark.slow
def test_the_prepared_model_outlives_a_restart(conn, tiny_bundle):
    conn.execute("SELECT embed('prepare it')")
    folder = prepared_folder(conn, tiny_bundle)
    record = os.path.join(folder, "prepared.json")
    written = os.stat(record).st_mtime_ns
    dbname = conn.info.dbname
    host = int(status(conn)["model_host_pid"])
    conn.close()
    CLUSTER.stop(echo=lambda *_: None)
    wait_for_exit(host)  # the host ends with its server
    CLUSTER.start(echo=lambda *_: None)
    with psycopg.connect(CLUSTER.url(dbname), autocommit=True) as after:
        assert after.execute("SELECT vector_dims(embed('after the restart'))").fetchone() == (32,)
        st = status(after)
        assert st["weights"] == f"shared, memory-mapped from {folder}" and int(st["model_host_pid"]) != host
    assert os.stat(record).st_mtime_ns == written
