"""The bf16 engine's paths on any CPU (issue 20): with tests/fake_openvino in place of OpenVINO (on a path only a
superuser sets: python_path), a text's vector batched with others differs in its last bits from the same
text's alone, as it does with real bf16; what the tests and status() say must hold there too."""
import psycopg
import pytest

from helpers import CLUSTER, assert_embedded, cosine_distance, fake_bf16_bundle, status, tolerance


@pytest.fixture()
def bf16(conn):
    """A connection whose backend runs the fake bf16 engine on the fake-bf16 tiny model."""
    bundle, site = fake_bf16_bundle()
    path = conn.execute("SELECT value FROM pgbert.settings WHERE name = 'python_path'").fetchone()[0]
    conn.execute("UPDATE pgbert.settings SET value = %s WHERE name = 'python_path'", (f"{site}:{path}",))
    # The model host serves every database of the server: the fake must stay in this test's own backends.
    conn.execute("UPDATE pgbert.settings SET value = 'off' WHERE name = 'model_host'")
    conn.execute("UPDATE pgbert.settings SET value = 'openvino-bf16' WHERE name = 'engine'")
    with psycopg.connect(CLUSTER.url(conn.info.dbname), autocommit=True) as fresh:  # boots with that path
        fresh.execute("SELECT pgbert.use_model(%s)", (bundle,))
        yield fresh


def test_batched_rows_hold_their_texts_vectors_within_the_engines_tolerance(bf16):
    st = status(bf16)
    assert st["engine"] == "openvino-bf16"
    bf16.execute("CREATE TABLE docs (id int PRIMARY KEY, body text)")
    bf16.execute("CALL pgbert.enable_embedding('docs', 'body', build_index => false)")
    bf16.execute("INSERT INTO docs SELECT g, 'text number ' || g FROM generate_series(1, 100) g")
    assert_embedded(bf16)
    rows = bf16.execute("SELECT body_embedding::text, embed(body)::text FROM docs").fetchall()
    assert sum(stored != alone for stored, alone in rows) > 10  # not bit for bit: the tolerance is what holds
    assert 0 < max(cosine_distance(*r) for r in rows) <= tolerance(bf16) < 1e-4


def test_the_tolerance_still_tells_texts_apart(bf16):
    near, far = bf16.execute("SELECT embed('PostgreSQL is a database')::text, embed('自然言語処理')::text").fetchone()
    assert cosine_distance(near, far) > 100 * tolerance(bf16)


def test_status_says_where_the_weights_are_and_why_this_engine(bf16):
    st = status(bf16)
    assert st["model_runs_in"] == "this backend (model_host is off in pgbert.settings)"
    assert st["weights"].startswith("one copy per process that runs the model (OpenVINO shares no weights")
    assert st["engine_reason"].startswith("faithful (min cosine ")
    assert st["engine_reason"].endswith(("native bf16", "chosen by setting on a CPU without native bf16"))


def test_under_the_model_host_real_bf16_is_held_once(conn):
    """The model host serves every backend from its one copy (ONNX Runtime's line: test_shared_weights)."""
    conn.execute("SELECT embed('load it')")
    st = status(conn)
    if st["engine"] != "openvino-bf16":
        pytest.skip(f"the server runs {st['engine']} here ({st['engine_reason']})")
    assert st["model_runs_in"] == f"the model host, pid {st['model_host_pid']}"
    assert st["weights"].startswith("one copy per process that runs the model")
