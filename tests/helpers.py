"""Helpers shared by the tests (fixtures live in conftest.py)."""
from __future__ import annotations

import os
import subprocess
import sys
from functools import cache

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


def assert_embedded(conn, table="docs", source="body", target="body_embedding"):
    """Every row with text has exactly embed(text); rows without text have no vector."""
    rows = conn.execute(f"SELECT {source}, {target} IS NULL, {target} = embed({source}) FROM {table}").fetchall()
    assert rows
    for text, missing, equal in rows:
        assert missing == (text is None), text
        assert text is None or equal, text


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
