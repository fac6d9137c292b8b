"""Helpers shared by the tests (fixtures live in conftest.py)."""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from contextlib import contextmanager
from functools import cache

import numpy as np

from pgbert.cluster import Cluster
from pgbert.paths import ROOT, Paths

PATHS = Paths.default()
CLUSTER = Cluster(PATHS)
TEST_BUNDLES = os.path.join(PATHS.state, "test-bundles")


@cache
def tiny_bundle_path(name: str = "tiny-bert", xlmr: bool = False, **kwargs) -> str:
    """A random-init BERT (or, with xlmr, an XLM-R with E5's query/passage prompts) exported with pgbert's
    own exporter (built once per run)."""
    from pgbert_export import export_model
    from tiny_bert import make_tiny_bert, make_tiny_xlmr

    bundle = os.path.join(TEST_BUNDLES, name)
    source = os.path.join(TEST_BUNDLES, "src", name)
    (make_tiny_xlmr if xlmr else make_tiny_bert)(source, **kwargs)
    export_model(source, bundle, echo=lambda *_: None)
    os.chmod(TEST_BUNDLES, 0o755)
    return bundle


def alembic(url: str, *args: str, bundle: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "alembic", "-c", os.path.join(ROOT, "alembic.ini"), "-x", f"url={url}"]
    if bundle:
        argv += ["-x", f"bundle={bundle}"]
    out = subprocess.run([*argv, *args], cwd=ROOT, capture_output=True, text=True)
    if check and out.returncode != 0:
        raise AssertionError(f"alembic {' '.join(args)} failed:\n{out.stderr[-3000:]}")
    return out


def db_url(dbname: str) -> str:
    return CLUSTER.url(dbname)


def model_calls(conn) -> int:
    """Model invocations so far by what runs this connection's model: the host or the backend (status())."""
    return int(dict(conn.execute("SELECT * FROM pgbert.status()").fetchall())["model_calls"])


def status(conn) -> dict:
    return dict(conn.execute("SELECT * FROM pgbert.status()").fetchall())


def tolerance(conn) -> float:
    """How far apart (cosine distance) two vectors of one text may be with the engine the server runs.
    A reduced precision rounds a text batched with others differently, in the last bits, from the same text
    alone (OpenVINO bf16). Export measured how close each engine comes to PyTorch fp32 (min_cosine, in the
    manifest's precisions; computed in float32, so lower by up to its epsilon); two vectors each that close
    to fp32's are within twice that angle of each other: a cosine distance of at most 2 (1 - min_cosine²)."""
    engine = status(conn)["engine"]
    measured = conn.execute("SELECT (manifest->'precisions'->%s->>'min_cosine')::float8 FROM pgbert.models "
                            "WHERE active", (engine,)).fetchone()[0]
    assert measured is not None, f"the active model's manifest has no fidelity for {engine}"
    lowest = measured - float(np.finfo(np.float32).eps)
    return 2 * (1 - lowest * lowest)


def cosine_distance(a: str, b: str) -> float:
    """Of two vectors as pgvector writes them, in float64 (pgvector's <=> sums in float32)."""
    x, y = np.array(json.loads(a), dtype=np.float64), np.array(json.loads(b), dtype=np.float64)
    return float(1 - x @ y / (np.linalg.norm(x) * np.linalg.norm(y)))


def assert_same_vectors(conn, rows):
    """rows: (text, its stored vector, embed(text)), vectors as text: each the other within tolerance()."""
    limit = tolerance(conn)
    for text, stored, expected in rows:
        distance = cosine_distance(stored, expected)
        assert distance <= limit, (text, distance, limit)


def assert_embedded(conn, table="docs", source="body", target="body_embedding"):
    """Every row with text has embed(text)'s vector, within the engine's tolerance(); rows without text have
    no vector."""
    rows = conn.execute(f"SELECT {source}, {target}::text, embed({source})::text FROM {table}").fetchall()
    assert rows
    for text, stored, _ in rows:
        assert (stored is None) == (text is None), text
    assert_same_vectors(conn, [row for row in rows if row[0] is not None])


FAKE_OPENVINO = os.path.join(os.path.dirname(__file__), "fake_openvino")


@contextmanager
def fake_openvino():
    """tests/fake_openvino in place of openvino in this process: engines.OpenVinoEngine runs it."""
    spec = importlib.util.spec_from_file_location("openvino", os.path.join(FAKE_OPENVINO, "openvino", "__init__.py"))
    fake = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fake)
    real = sys.modules.get("openvino")
    sys.modules["openvino"] = fake
    try:
        yield fake
    finally:
        if real is None:
            del sys.modules["openvino"]
        else:
            sys.modules["openvino"] = real


@cache
def fake_bf16_bundle() -> tuple[str, str]:
    """The tiny model for fake_openvino's bf16, on any CPU: (bundle, a folder for python_path that holds the
    fake, where the server can read it). Its manifest records the fidelity export measures (here against
    ONNX Runtime fp32, itself validated against PyTorch), accepted as export accepts it with native bf16."""
    from pgbert_export.export import SAMPLE_TEXTS, measure_bf16
    from pgbert_runtime.bundle import load_bundle
    from pgbert_runtime.encoder import Encoder

    site = os.path.join(TEST_BUNDLES, "fake-openvino")
    shutil.copytree(FAKE_OPENVINO, site, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
    bundle = os.path.join(TEST_BUNDLES, "tiny-bert-fake-bf16")
    shutil.copytree(tiny_bundle_path(), bundle, dirs_exist_ok=True)
    reference = Encoder(load_bundle(bundle), engine="onnxruntime-fp32", shared_weights=False).encode(SAMPLE_TEXTS)
    with fake_openvino():
        measured = measure_bf16(bundle, reference)
    assert measured["min_cosine"] >= 0.999, measured
    with open(os.path.join(bundle, "manifest.json")) as f:
        manifest = json.load(f)
    manifest["precisions"]["openvino-bf16"] = {**measured, "accepted": True, "why": ""}
    with open(os.path.join(bundle, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
    for folder in (site, bundle):
        subprocess.run(["chmod", "-R", "a+rX", folder], check=True)
    return bundle, site


def is_superuser(conn, role: str) -> bool:
    return conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = %s", (role,)).fetchone()[0]


def wait_for_exit(pid: int, seconds: float = 10.0) -> None:
    """Wait until process pid is gone (or a zombie); fail the test past seconds."""
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().split(") ", 1)[1].startswith("Z"):
                    return
        except (FileNotFoundError, ProcessLookupError):
            return
        time.sleep(0.02)
    raise AssertionError(f"process {pid} still runs after {seconds} s")


@contextmanager
def hot_standby(name: str = "standby-test"):
    """A streaming-replication standby of the test cluster, made with pg_basebackup, on the next port: yields
    its port; stopped and removed afterwards."""
    data = os.path.join(PATHS.state, name)
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


def wait_for_replay(primary, port: int, dbname: str):
    """A psycopg connection to dbname on the standby, once it has replayed what the primary has written."""
    import time

    import psycopg

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
