"""embed() and embed_batch() inside PostgreSQL, against the plain-Python runtime."""
import numpy as np
import psycopg
import pytest

from pgbert_runtime import get_encoder

TEXTS = ["I love natural language processing", "", "自然言語処理が大好きです。", "🚀🔥✨",
         "x" * 50_000, "word " * 10_000]


def vec(text: str) -> np.ndarray:
    return np.array([float(x) for x in text.strip("[]").split(",")], dtype=np.float32)


def test_embed_returns_the_models_dimension(conn, tiny_bundle):
    row = conn.execute("SELECT vector_dims(embed('I love natural language processing')), "
                       "pg_typeof(embed('x'))::text").fetchone()
    assert row == (32, "vector")


def test_null_gives_null(conn):
    assert conn.execute("SELECT embed(NULL) IS NULL, embed_batch(NULL) IS NULL").fetchone() == (True, True)


@pytest.mark.parametrize("text", TEXTS, ids=["english", "empty", "japanese", "emoji", "50k-chars", "10k-words"])
def test_in_database_vector_equals_plain_python_runtime(conn, tiny_bundle, text):
    stored = vec(conn.execute("SELECT embed(%s)::text", (text,)).fetchone()[0])
    expected = get_encoder(tiny_bundle).encode([text])[0]
    np.testing.assert_allclose(stored, expected, atol=1e-6)
    assert float(stored @ expected / np.linalg.norm(stored) / np.linalg.norm(expected)) >= 0.9999


def test_batch_keeps_order_and_nulls(conn, tiny_bundle):
    rows = conn.execute("SELECT u.v::text FROM unnest(embed_batch(%s)) WITH ORDINALITY u(v, n) ORDER BY n",
                        (["b", None, *TEXTS],)).fetchall()
    assert rows[1][0] is None
    expected = get_encoder(tiny_bundle).encode(["b", *TEXTS])
    got = np.stack([vec(r[0]) for i, r in enumerate(rows) if i != 1])
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_batch_is_one_model_pass_per_batch(conn):
    before = dict(conn.execute("SELECT * FROM pgbert.status()").fetchall())
    conn.execute("SELECT embed_batch(array_agg('text ' || g)) FROM generate_series(1, 64) g")
    after = dict(conn.execute("SELECT * FROM pgbert.status()").fetchall())
    assert int(after["model_calls"]) - int(before["model_calls"]) == 2  # 64 texts, batch_size 32


def test_status_reports_the_active_model(conn, tiny_bundle):
    status = dict(conn.execute("SELECT * FROM pgbert.status()").fetchall())
    assert status["ok"] == "true" and status["dimension"] == "32" and status["bundle_path"] == tiny_bundle
    assert conn.execute("SELECT name, dimension FROM pgbert.active_model").fetchone() == ("tiny-bert", 32)


def test_embedding_needs_pgbert_user_and_models_need_pgbert_admin(conn, role):
    reader = role("pgbert_test_reader")
    conn.execute(f"SET ROLE {reader}")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("SELECT embed('hello')")
    conn.execute("RESET ROLE")
    conn.execute(f"GRANT pgbert_user TO {reader}")
    conn.execute(f"SET ROLE {reader}")
    assert conn.execute("SELECT vector_dims(embed('hello'))").fetchone() == (32,)
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("SELECT pgbert.use_model('/tmp/x')")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("UPDATE pgbert.settings SET value = '/tmp' WHERE name = 'python_path'")


def test_missing_active_model_is_a_clear_error(conn):
    conn.execute("UPDATE pgbert.models SET active = false")
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match="no active model") as info:
        conn.execute("SELECT embed('x')")
    assert "use_model" in (info.value.diag.message_hint or "")
    # The backend is still alive and working after the error.
    assert conn.execute("SELECT 1").fetchone() == (1,)


def test_the_orm_query_costs_one_model_call_whatever_the_plan(conn):
    """ORDER BY embedding <=> embed('...') (what SQLAlchemy and Django write) under a sequential scan."""
    conn.execute("INSERT INTO text_embeddings (text) SELECT 'row ' || g FROM generate_series(1, 50) g")
    conn.execute("SET enable_indexscan = off")
    before = dict(conn.execute("SELECT * FROM pgbert.status()").fetchall())
    rows = conn.execute("SELECT id FROM text_embeddings ORDER BY embedding <=> embed('row 7') LIMIT 5").fetchall()
    after = dict(conn.execute("SELECT * FROM pgbert.status()").fetchall())
    assert len(rows) == 5
    assert int(after["model_calls"]) - int(before["model_calls"]) == 1
    assert int(after["cache_hits"]) - int(before["cache_hits"]) >= 49


def test_the_planner_prefers_the_index_to_calling_embed_per_row(conn):
    conn.execute("INSERT INTO text_embeddings (text) SELECT 'row ' || g FROM generate_series(1, 50) g")
    conn.execute("ANALYZE text_embeddings")
    plan = "\n".join(r[0] for r in conn.execute(
        "EXPLAIN SELECT id FROM text_embeddings ORDER BY embedding <-> embed('x') LIMIT 5").fetchall())
    assert "Index Scan using text_embeddings_embedding" in plan, plan
