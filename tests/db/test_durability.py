"""A backend killed mid-load loses nothing committed and leaves no half-written state; migrations keep rows."""
import threading
import time

import psycopg
import pytest

from helpers import CLUSTER, alembic, assert_embedded, assert_same_vectors, db_url


def kill_when(conn, pid: int, ready) -> None:
    deadline = time.time() + 60
    while not ready():
        assert time.time() < deadline, "the load never got going"
        time.sleep(0.05)
    conn.execute("SELECT pg_terminate_backend(%s)", (pid,))


def run_in_thread(url: str, sql: str):
    loader = psycopg.connect(url, autocommit=True)
    errors = []

    def work():
        try:
            loader.execute(sql)
        except psycopg.Error as exc:
            errors.append(exc)

    thread = threading.Thread(target=work)
    thread.start()
    return loader.info.backend_pid, thread, errors


@pytest.mark.slow
def test_killed_bulk_insert_loses_nothing_committed(conn):
    conn.execute("CREATE TABLE docs (id serial PRIMARY KEY, body text)")
    conn.execute("CALL pgbert.enable_embedding('docs', 'body')")
    conn.execute("INSERT INTO docs (body) SELECT 'committed ' || g FROM generate_series(1, 50) g")
    pid, thread, errors = run_in_thread(
        CLUSTER.url(conn.info.dbname),
        "INSERT INTO docs (body) SELECT 'doomed row number ' || g FROM generate_series(1, 300000) g")
    kill_when(conn, pid, lambda: conn.execute(
        "SELECT now() - query_start > interval '1 second' FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()[0])
    thread.join(60)
    assert errors and isinstance(errors[0], psycopg.OperationalError)
    assert conn.execute("SELECT count(*) FROM docs").fetchone() == (50,)
    assert_embedded(conn)


@pytest.mark.slow
def test_killed_backfill_keeps_committed_batches_and_resumes(conn):
    conn.execute("CREATE TABLE big (id int PRIMARY KEY, body text)")
    conn.execute("INSERT INTO big SELECT g, 'backfill row ' || g FROM generate_series(1, 60000) g")
    conn.execute("CALL pgbert.enable_embedding('big', 'body', backfill => false, build_index => false)")
    pid, thread, errors = run_in_thread(CLUSTER.url(conn.info.dbname), "CALL pgbert.backfill('big', 200)")
    kill_when(conn, pid, lambda: conn.execute("SELECT count(body_embedding) >= 1000 FROM big").fetchone()[0])
    thread.join(60)
    assert errors
    done, total = conn.execute("SELECT count(body_embedding), count(*) FROM big").fetchone()
    assert total == 60000 and 1000 <= done < 60000 and done % 200 == 0  # whole batches only
    sample = conn.execute("SELECT body, body_embedding::text, embed(body)::text FROM big "
                          "WHERE body_embedding IS NOT NULL AND id % 97 = 0").fetchall()
    assert sample
    assert_same_vectors(conn, sample)
    conn.execute("DELETE FROM big WHERE id > 5000")  # keep the resumed run short
    conn.execute("CALL pgbert.backfill('big', 1000)")
    assert conn.execute("SELECT pgbert.pending_rows('big')").fetchone() == (0,)


def fingerprint(conn, table: str) -> tuple:
    return conn.execute(f"SELECT count(*), md5(string_agg(t::text, '|' ORDER BY t::text)) FROM {table} t").fetchone()


def test_every_migration_keeps_rows_and_vectors(empty_db, tiny_bundle):
    empty_db.autocommit = True
    url = db_url(empty_db.info.dbname)
    alembic(url, "upgrade", "0001", bundle=tiny_bundle)
    empty_db.execute("CREATE TABLE mine (id int PRIMARY KEY, v vector(3))")
    empty_db.execute("INSERT INTO mine SELECT g, ARRAY[g, g * 2, g * 3]::vector FROM generate_series(1, 100) g")
    before = fingerprint(empty_db, "mine")
    heads = alembic(url, "heads").stdout.split()[0]
    while alembic(url, "current").stdout.split()[0] != heads:
        alembic(url, "upgrade", "+1", bundle=tiny_bundle)
        assert fingerprint(empty_db, "mine") == before
    empty_db.execute("INSERT INTO text_embeddings (text) SELECT 'row ' || g FROM generate_series(1, 200) g")
    embedded = fingerprint(empty_db, "text_embeddings")
    # Down one revision and back up, on a database full of embedded rows.
    alembic(url, "downgrade", "-1")
    alembic(url, "upgrade", "head", bundle=tiny_bundle)
    assert fingerprint(empty_db, "text_embeddings") == embedded and fingerprint(empty_db, "mine") == before
    empty_db.execute("INSERT INTO text_embeddings (text) VALUES ('still embedding')")
    assert empty_db.execute("SELECT embedding = embed(text) FROM text_embeddings WHERE text = 'still embedding'"
                            ).fetchone() == (True,)
