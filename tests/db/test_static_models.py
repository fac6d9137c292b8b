"""Static models in the database: word vectors (gensim's test file) and a model2vec distillation of the tiny BERT,
registered beside the transformer; embed(), tables filled by their triggers, search(), a query with no known word."""
import functools
import json
import os
import shutil

import numpy as np
import psycopg
import pytest
from gensim.test.utils import datapath

from helpers import TEST_BUNDLES, cosine_distance, status, tiny_bundle_path

TEXTS = ["the government said the police would act", "the fire spread across the state",
         "the new minister spoke about the economy", "the bank raised interest rates again",
         "the attack killed many people in the city"]


def quiet(*_):
    pass


@functools.cache
def w2v_bundle() -> str:
    """gensim's word2vec_pre_kv_c (1,750 lowercase words, 10-d) as a static bundle, made once per run."""
    from pgbert_export.word_vectors import import_vectors

    path = os.path.join(TEST_BUNDLES, "w2v-static")
    shutil.rmtree(path, ignore_errors=True)  # a bundle of an earlier run: made again with this code
    os.makedirs(TEST_BUNDLES, mode=0o755, exist_ok=True)
    import_vectors(datapath("word2vec_pre_kv_c"), path, name="w2v", echo=quiet)
    return path


@functools.cache
def tiny_static_bundle() -> str:
    """model2vec's distillation of the tiny random BERT (its source folder, made by tiny_bundle_path)."""
    from pgbert_export.static import export_static

    tiny_bundle_path()
    path = os.path.join(TEST_BUNDLES, "tiny-bert-static")
    export_static(os.path.join(TEST_BUNDLES, "src", "tiny-bert"), path, echo=quiet)
    return path


@pytest.fixture()
def w2v(conn):
    assert conn.execute("SELECT pgbert.add_model('w2v', %s)", (w2v_bundle(),)).fetchone() == ("w2v",)
    return "w2v"


def local_vectors(bundle: str, texts: list[str]) -> np.ndarray:
    from pgbert_runtime import load_bundle
    from pgbert_runtime.static import StaticEncoder

    return StaticEncoder(load_bundle(bundle)).encode(texts)


def vector(text: str) -> np.ndarray:
    return np.array(json.loads(text), dtype=np.float32)


def test_embed_gives_the_static_engines_vectors_in_the_host_and_in_a_backend(conn, w2v):
    row = conn.execute("SELECT dimension, pooling, normalize, manifest->>'model_kind' FROM pgbert.models "
                       "WHERE name = 'w2v'").fetchone()
    assert row == (10, "mean", True, "static")
    expected = local_vectors(w2v_bundle(), TEXTS)
    for model_host in ("on", "off"):
        conn.execute("UPDATE pgbert.settings SET value = %s WHERE name = 'model_host'", (model_host,))
        found = conn.execute("SELECT embed(t, model => 'w2v')::text FROM unnest(%s::text[]) t", (TEXTS,)).fetchall()
        np.testing.assert_allclose(np.stack([vector(v) for v, in found]), expected, atol=1e-6)
        batch = conn.execute("SELECT embed_batch(ARRAY[%s, NULL], model => 'w2v')::text[]", (TEXTS[0],)).fetchone()[0]
        assert batch[1] is None and np.allclose(vector(batch[0]), expected[0], atol=1e-6)
    conn.execute("UPDATE pgbert.settings SET value = 'on' WHERE name = 'model_host'")
    assert "w2v (static, word vectors from word2vec_pre_kv_c) (static," in status(conn)["model_host_loaded"]


@pytest.fixture()
def docs(conn, w2v):
    conn.execute("CREATE TABLE docs (id int PRIMARY KEY, body text)")
    conn.execute("CALL pgbert.enable_embedding('docs', 'body', model => 'w2v')")
    conn.execute("INSERT INTO docs VALUES (1, %s), (2, %s), (3, %s)", TEXTS[:3])
    with conn.cursor().copy("COPY docs (id, body) FROM STDIN") as copy:
        for i, text in enumerate(TEXTS[3:], 4):
            copy.write_row((i, text))
    return "docs"


def test_a_table_embeds_itself_on_insert_and_copy_and_is_searched(conn, docs):
    rows = conn.execute("SELECT body, body_embedding::text, embed(body, model => 'w2v')::text FROM docs "
                        "ORDER BY id").fetchall()
    assert [r[0] for r in rows] == TEXTS
    assert all(cosine_distance(stored, again) < 1e-6 for _, stored, again in rows)
    assert conn.execute("SELECT pgbert.pending_rows('docs')").fetchone() == (0,)
    assert conn.execute("SELECT vector_dims(body_embedding) FROM docs LIMIT 1").fetchone() == (10,)
    for i, text in enumerate(TEXTS, 1):
        found = conn.execute("SELECT id, distance FROM search(%s, 2, 'docs')", (text,)).fetchall()
        assert found[0][0] == str(i) and found[0][1] < 1e-6 and found[1][1] > found[0][1]


def test_a_query_without_a_known_word_is_refused_and_a_document_is_stored_as_zeros(conn, docs):
    for query in ("qqqzx wwvyk", ""):
        with pytest.raises(psycopg.errors.InvalidParameterValue,
                           match="model 'w2v': no word of the query is in the vocabulary"):
            conn.execute("SELECT * FROM search(%s, 3, 'docs')", (query,))
        with pytest.raises(psycopg.errors.InvalidParameterValue, match="no word of the query"):
            conn.execute("SELECT embed(%s, model => 'w2v', kind => 'query')", (query,))
    assert conn.execute("SELECT count(*) FROM search('qqqzx police', 3, 'docs')").fetchone() == (3,)  # one known
    conn.execute("INSERT INTO docs VALUES (9, 'qqqzx wwvyk')")  # a document: the zero vector, stored
    assert conn.execute("SELECT vector_norm(body_embedding) FROM docs WHERE id = 9").fetchone() == (0,)
    assert conn.execute("SELECT pgbert.pending_rows('docs')").fetchone() == (0,)
    ranked = conn.execute("SELECT id, distance FROM search('police fire', 10, 'docs')").fetchall()
    if "9" in [i for i, _ in ranked]:  # a sequential scan finds it (NaN distance) after every real one
        assert ranked[-1][0] == "9" and np.isnan(ranked[-1][1])
    assert all(not np.isnan(d) for i, d in ranked if i != "9") and len(ranked) >= len(TEXTS)


def test_a_chunked_table_with_a_static_model(conn, w2v):
    conn.execute("CREATE TABLE long_docs (id int PRIMARY KEY, body text)")
    conn.execute("CALL pgbert.enable_embedding('long_docs', 'body', chunk_tokens => 8, overlap_tokens => 2, "
                 "model => 'w2v')")
    conn.execute("INSERT INTO long_docs VALUES (1, %s), (2, %s)", (". ".join(TEXTS), TEXTS[0]))
    chunks = conn.execute("SELECT row_key, count(*) FROM long_docs_chunks GROUP BY 1 ORDER BY 1").fetchall()
    assert chunks[0][1] > 3 and chunks[1][1] == 1
    best = conn.execute("SELECT id, passage FROM search('interest rates bank', 1, 'long_docs')").fetchone()
    assert best[0] == "1" and "bank" in best[1]


def test_static_models_beside_the_transformer_in_one_database(conn, w2v):
    distilled = tiny_static_bundle()
    conn.execute("SELECT pgbert.add_model('tiny-static', %s)", (distilled,))
    for table, model in (("a", "tiny-bert"), ("b", "w2v"), ("c", "tiny-static")):
        conn.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, body text)")
        conn.execute(f"CALL pgbert.enable_embedding('{table}', 'body', model => '{model}')")
        conn.execute(f"INSERT INTO {table} SELECT i, t FROM unnest(%s::text[]) WITH ORDINALITY AS u(t, i)", (TEXTS,))
        assert conn.execute(f"SELECT id FROM search(%s, 1, '{table}')", (TEXTS[2],)).fetchone() == ("3",)
    dims = conn.execute("SELECT vector_dims(embed('x')), vector_dims(embed('the x', model => 'w2v')), "
                        "vector_dims(embed('x', model => 'tiny-static'))").fetchone()
    assert dims == (32, 10, 32)
    stored = conn.execute("SELECT body_embedding::text FROM c ORDER BY id").fetchall()
    expected = local_vectors(distilled, TEXTS)
    np.testing.assert_allclose(np.stack([vector(v) for v, in stored]), expected, atol=1e-6)
    engines = conn.execute("SELECT DISTINCT model, engine FROM pgbert.model_stats WHERE model IN ('w2v', "
                           "'tiny-static') ORDER BY 1").fetchall()
    assert engines == [("tiny-static", "static"), ("w2v", "static")]
    conn.execute("SELECT pgbert.use_model(%s)", (distilled,))  # the default model: status() shows its engine
    shown = status(conn)
    assert shown["engine"] == "static" and "onnxruntime" not in shown and shown["ok"] == "true"
    conn.execute("SELECT pgbert.use_model(%s)", (tiny_bundle_path(),))


@pytest.mark.slow
def test_all_mpnet_base_v2_distilled_finds_debian_packages(conn):
    """The real model distilled (minutes): checked against model2vec by the export, then searched."""
    from pgbert_export.static import export_static

    path = os.path.join(TEST_BUNDLES, "all-mpnet-base-v2-static")
    manifest = export_static("all-mpnet-base-v2", path, echo=print)
    assert manifest["dimension"] == 256 and manifest["validation"]["min_cosine"] >= 0.999
    conn.execute("SELECT pgbert.add_model('mpnet-static', %s)", (path,))
    conn.execute("CREATE TABLE packages (id int PRIMARY KEY, body text)")
    conn.execute("CALL pgbert.enable_embedding('packages', 'body', model => 'mpnet-static')")
    bodies = ["GNU Image Manipulation Program: a raster graphics editor for photo retouching",
              "Vim: an almost compatible version of the UNIX editor Vi, a text editor for programmers",
              "PostgreSQL: an object-relational SQL database server",
              "OpenSSH client: secure shell for remote login to other machines"]
    conn.execute("INSERT INTO packages SELECT i, t FROM unnest(%s::text[]) WITH ORDINALITY AS u(t, i)", (bodies,))
    for query, expected in (("edit photos", "1"), ("edit source code in a terminal", "2"),
                            ("relational database", "3"), ("log in to a remote server", "4")):
        assert conn.execute("SELECT id FROM search(%s, 1, 'packages')", (query,)).fetchone() == (expected,), query
