"""From real applications: the examples/ programs (the README's snippets, verbatim) run against a test
database with the real libraries (psycopg2, psycopg 3 + pgvector-python, SQLAlchemy 2 sync and asyncio,
Django), and PgBouncer in transaction pooling mode in front of the cluster."""
import os
import shutil
import subprocess
import sys
import time

import psycopg
import pytest

from helpers import CLUSTER, PATHS, ROOT, db_url

EXAMPLES = os.path.join(ROOT, "examples")


def run_example(conn, bundle, name: str) -> str:
    env = {**os.environ, "DATABASE_URL": db_url(conn.info.dbname), "PGBERT_BUNDLE": bundle,
           "PGBERT_DIMENSION": "32", "PYTHONPATH": EXAMPLES}
    out = subprocess.run([sys.executable, os.path.join(EXAMPLES, name)], cwd=EXAMPLES, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def test_the_tutorials_own_flow(conn, tiny_bundle):
    lines = run_example(conn, tiny_bundle, "tutorial_psycopg2.py").splitlines()
    assert len(lines) == 3 and set(lines) == {"I love natural language processing", "PostgreSQL is a database",
                                              "The weather is nice today"}
    # the client's vectors were kept: the model in the client is the same, so they equal embed()
    assert conn.execute("SELECT bool_and(embedding = embed(text)) FROM text_embeddings").fetchone() == (True,)


TWO = {"compress files with gzip", "a game about ancient wars"}


def test_psycopg3_with_pgvector_python(conn, tiny_bundle):
    nearest, found = run_example(conn, tiny_bundle, "psycopg3_pgvector.py").strip().split(" | ")
    assert {nearest, found} <= TWO  # rows the database embedded, found through numpy and search()
    assert conn.execute("SELECT count(*), count(embedding) FROM text_embeddings").fetchone() == (2, 2)


def test_sqlalchemy_orm_sync_then_asyncio(conn, tiny_bundle):
    nearest, found = run_example(conn, tiny_bundle, "sqlalchemy_orm.py").strip().split(" | ")
    assert {nearest, found} <= TWO
    assert run_example(conn, tiny_bundle, "sqlalchemy_async.py").strip() in TWO | {"tools for Japanese text input"}
    assert conn.execute("SELECT count(*), count(body_embedding) FROM orm_docs").fetchone() == (3, 3)


def test_django_model_migration_and_ordering(conn, tiny_bundle):
    assert run_example(conn, tiny_bundle, "django_example.py").strip() in TWO
    # the two rows, and the note created then saved
    assert conn.execute("SELECT count(*), count(body_embedding) FROM django_docs").fetchone() == (3, 3)
    assert conn.execute("SELECT count(*) FROM pg_indexes WHERE tablename = 'django_docs' AND indexdef LIKE '%hnsw%'"
                        ).fetchone() == (1,)  # the migration's enable_embedding ran


def test_the_readme_shows_the_tested_examples():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    for name in ("tutorial_psycopg2.py", "psycopg3_pgvector.py", "sqlalchemy_orm.py", "django_example.py"):
        with open(os.path.join(EXAMPLES, name), encoding="utf-8") as f:
            body = f.read().split('"""', 2)[2].strip()  # the code, without its docstring
        assert body in readme, f"README's snippet of examples/{name} differs from the tested file"


# ---- PgBouncer ---------------------------------------------------------------------------------------
@pytest.fixture()
def pgbouncer(conn, tmp_path_factory):
    binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    if not os.path.exists(binary):
        pytest.fail("pgbouncer is not installed: scripts/install-system.sh installs it")
    folder = os.path.join(PATHS.state, "pgbouncer-test")
    os.makedirs(folder, exist_ok=True)
    port = CLUSTER.port + 1000
    with open(os.path.join(folder, "pgbouncer.ini"), "w") as f:
        f.write(f"[databases]\n{conn.info.dbname} = host={PATHS.run} port={CLUSTER.port}\n"
                f"[pgbouncer]\nlisten_addr =\nlisten_port = {port}\nunix_socket_dir = {folder}\n"
                f"auth_type = trust\nauth_file = {folder}/users.txt\npool_mode = transaction\n"
                f"default_pool_size = 1\nmax_client_conn = 20\nlogfile = {folder}/pgbouncer.log\n"
                f"pidfile = {folder}/pgbouncer.pid\nignore_startup_parameters = extra_float_digits\n")
    with open(os.path.join(folder, "users.txt"), "w") as f:
        f.write(f'"{CLUSTER.owner}" ""\n')
    as_server_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_server_user:
        subprocess.run(["chown", "-R", "postgres", folder], check=True)
    proc = subprocess.Popen([*as_server_user, binary, os.path.join(folder, "pgbouncer.ini")])
    url = f"postgresql://{CLUSTER.owner}@/{conn.info.dbname}?host={folder}&port={port}"
    for _ in range(50):
        if os.path.exists(os.path.join(folder, f".s.PGSQL.{port}")):
            break
        time.sleep(0.1)
    yield url
    proc.terminate()
    proc.wait(10)


def test_through_pgbouncer_in_transaction_pooling(conn, pgbouncer):
    pids = set()
    for _ in range(3):  # short client connections: the pool hands out the same warm backend
        with psycopg.connect(pgbouncer, autocommit=True, prepare_threshold=None) as client:
            pids.add(client.execute("SELECT pg_backend_pid()").fetchone()[0])
            assert client.execute("SELECT vector_dims(embed('through the pooler'))").fetchone() == (32,)
            client.execute("INSERT INTO text_embeddings (text) VALUES ('pooled one'), ('pooled two')")
            with client.cursor().copy("COPY text_embeddings (text) FROM STDIN") as copy:
                copy.write_row(("copied through the pooler",))
            assert client.execute("SELECT count(*) FROM search('pooled one', 3)").fetchone() == (3,)
    assert len(pids) == 1
    assert conn.execute("SELECT count(*), count(embedding) FROM text_embeddings").fetchone() == (9, 9)
