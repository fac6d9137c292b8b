"""search(): one embedding per query, the HNSW index, k, filters, and recall against exact search.

Quality runs on real text with real weights: 5,000 Debian package summaries, all-MiniLM-L6-v2.
"""
import numpy as np
import psycopg
import pytest

from helpers import CLUSTER, model_calls
from pgbert.corpus import load_packages

pytestmark = pytest.mark.slow  # real weights / long runs: `make test`, not `make check`

ROWS, QUERIES = 5000, 200


@pytest.fixture(scope="module")
def packages():
    return load_packages(echo=print)


@pytest.fixture(scope="module")
def search_db(pgbert_proc, minilm_bundle, packages):
    """A database with the real model and 5,000 embedded rows, shared by this module's tests."""
    name = "pgbert_search_test"
    admin = psycopg.connect(CLUSTER.url("postgres"), autocommit=True)
    admin.execute(f"DROP DATABASE IF EXISTS {name}")
    admin.execute(f"CREATE DATABASE {name} TEMPLATE {pgbert_proc.template_dbname}")
    conn = psycopg.connect(CLUSTER.url(name), autocommit=True)
    conn.execute("DROP TABLE text_embeddings")
    conn.execute("SELECT pgbert.use_model(%s)", (minilm_bundle,))
    conn.execute("CREATE TABLE pkgs (id int PRIMARY KEY, name text, section int, body text)")
    conn.execute("CALL pgbert.enable_embedding('pkgs', 'body')")
    with conn.cursor().copy("COPY pkgs (id, name, section, body) FROM STDIN") as copy:
        for i, pkg in enumerate(packages[:ROWS]):
            copy.write_row((i, pkg.name, i % 50, pkg.summary))
    yield conn
    conn.close()
    admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
    admin.close()


def test_all_rows_were_embedded_by_copy(search_db):
    assert search_db.execute("SELECT count(*), count(body_embedding) FROM pkgs").fetchone() == (ROWS, ROWS)


def test_search_embeds_the_query_once(search_db):
    before = model_calls(search_db)
    rows = search_db.execute("SELECT * FROM search('a game about ancient wars', 10, 'pkgs')").fetchall()
    assert len(rows) == 10 and model_calls(search_db) - before == 1
    assert [c for c in rows[0][3]] and "body_embedding" not in rows[0][3]  # the row, without its vector


def test_search_uses_the_hnsw_index(search_db):
    notices = []
    search_db.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
    search_db.execute("LOAD 'auto_explain'")
    search_db.execute("SET auto_explain.log_min_duration = 0")
    search_db.execute("SET auto_explain.log_nested_statements = on")
    search_db.execute("SET auto_explain.log_level = notice")
    try:
        search_db.execute("SELECT * FROM search('compress files', 5, 'pkgs')").fetchall()
    finally:
        search_db.execute("RESET auto_explain.log_min_duration")
    plans = "\n".join(notices)
    assert "Index Scan using pkgs_body_embedding_idx" in plans, plans


def test_the_documented_plain_sql_uses_the_index(search_db):
    plan = "\n".join(r[0] for r in search_db.execute(
        "EXPLAIN WITH q AS MATERIALIZED (SELECT embed('compress files') AS v) "
        "SELECT id, body FROM pkgs ORDER BY body_embedding <=> (SELECT v FROM q) LIMIT 5").fetchall())
    assert "Index Scan using pkgs_body_embedding_idx" in plan, plan


def test_large_k_returns_k_rows(search_db):
    """hnsw.ef_search (default 40) caps what an index scan returns; search() raises it to k."""
    assert len(search_db.execute("SELECT * FROM search('database', 300, 'pkgs')").fetchall()) == 300
    assert search_db.execute("SHOW hnsw.ef_search").fetchone() == ("40",)  # restored afterwards


def test_filtered_query_with_iterative_scan_returns_k_rows(search_db):
    query = ("WITH q AS MATERIALIZED (SELECT embed('library for images') AS v) "
             "SELECT id FROM pkgs WHERE section = 7 ORDER BY body_embedding <=> (SELECT v FROM q) LIMIT 10")
    search_db.execute("SET hnsw.iterative_scan = relaxed_order")
    try:
        rows = search_db.execute(query).fetchall()
    finally:
        search_db.execute("RESET hnsw.iterative_scan")
    assert len(rows) == 10 and all(r[0] % 50 == 7 for r in rows)


def test_bad_k_and_unknown_tables(search_db):
    for k in (0, -1):
        with pytest.raises(psycopg.errors.InvalidParameterValue):
            search_db.execute("SELECT * FROM search('x', %s, 'pkgs')", (k,))
    with pytest.raises(psycopg.errors.UndefinedTable):
        search_db.execute("SELECT * FROM search('x', 5, 'no_such_table')")
    search_db.execute("CREATE TABLE plain (id int)")
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match="not enabled"):
        search_db.execute("SELECT * FROM search('x', 5, 'plain')")
    assert search_db.execute("SELECT * FROM search(NULL, 5, 'pkgs')").fetchall() == []


def test_recall_at_10_against_exact_search(search_db, packages):
    """HNSW (default settings) finds >= 95% of the exact top 10 on real text."""
    queries = [p.description.split(". ")[0] for p in packages[ROWS:ROWS + QUERIES]]
    recalls = []
    for query in queries:
        approx = [int(r[0]) for r in search_db.execute("SELECT id FROM search(%s, 10, 'pkgs')", (query,))]
        search_db.execute("SET enable_indexscan = off")
        exact = [r[0] for r in search_db.execute(
            "WITH q AS MATERIALIZED (SELECT embed(%s) AS v) "
            "SELECT id FROM pkgs ORDER BY body_embedding <=> (SELECT v FROM q) LIMIT 10", (query,))]
        search_db.execute("RESET enable_indexscan")
        recalls.append(len(set(approx) & set(exact)) / 10)
    print(f"recall@10 = {np.mean(recalls):.4f} over {len(queries)} queries, {ROWS} rows")
    assert np.mean(recalls) >= 0.95


def test_queries_calling_embed_never_go_parallel(search_db):
    """PL/Python opens a subtransaction per query, which parallel mode forbids: embed() is PARALLEL UNSAFE."""
    for setting in ("parallel_setup_cost = 0", "parallel_tuple_cost = 0", "min_parallel_table_scan_size = 0",
                    "max_parallel_workers_per_gather = 2"):
        search_db.execute(f"SET {setting}")
    try:
        count = search_db.execute("SELECT count(*) FROM pkgs WHERE id % 25 = 0 "
                                  "AND body_embedding <=> embed('tools') < 2").fetchone()
    finally:
        search_db.execute("RESET ALL")
    assert count == (ROWS // 25,)


def test_a_raised_ef_search_is_kept(search_db):
    search_db.execute("SET hnsw.ef_search = 200")
    try:
        assert len(search_db.execute("SELECT * FROM search('editor', 10, 'pkgs')").fetchall()) == 10
        assert search_db.execute("SHOW hnsw.ef_search").fetchone() == ("200",)
    finally:
        search_db.execute("RESET hnsw.ef_search")
