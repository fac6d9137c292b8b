"""Named models: several per database, each name bound to its weights; embed(text, model => name) is IMMUTABLE
(folded once per plan); each table keeps the model it was enabled with."""
import threading

import psycopg
import pytest

from helpers import assert_embedded, assert_same_vectors, db_url, status, tiny_bundle_path


@pytest.fixture()
def wide(conn):
    """A second registered model, 64-d, beside the default 32-d tiny BERT."""
    conn.execute("SELECT pgbert.add_model('wide', %s)", (tiny_bundle_path("tiny-bert-64", hidden=64),))
    return "wide"


def test_a_named_model_embeds_beside_the_default(conn, wide):
    assert conn.execute("SELECT vector_dims(embed('hello', model => 'wide')), vector_dims(embed('hello'))"
                        ).fetchone() == (64, 32)
    assert conn.execute("SELECT vector_dims(v) FROM unnest(embed_batch(ARRAY['a', NULL], model => 'wide')) v"
                        ).fetchall() == [(64,), (None,)]
    assert conn.execute("SELECT embed('q', 'query') IS NOT NULL").fetchone() == (True,)  # kind, not a model
    rows = conn.execute("SELECT name, active, dimension, length(sha256) FROM pgbert.models ORDER BY name").fetchall()
    assert rows == [("tiny-bert", True, 32, 64), ("wide", False, 64, 64)]
    with pytest.raises(psycopg.errors.UndefinedObject, match="no model named 'nope'"):
        conn.execute("SELECT embed('x', model => 'nope')")


def test_a_name_is_bound_to_its_weights(conn, wide):
    other = tiny_bundle_path("tiny-bert-48", hidden=48)
    with pytest.raises(psycopg.errors.DuplicateObject, match="bound to other weights"):
        conn.execute("SELECT pgbert.add_model('wide', %s)", (other,))
    with pytest.raises(psycopg.errors.DuplicateObject, match="registered as model 'wide'"):
        conn.execute("SELECT pgbert.add_model('another', %s)", (tiny_bundle_path("tiny-bert-64", hidden=64),))
    assert conn.execute("SELECT pgbert.add_model('wide', %s)", (tiny_bundle_path("tiny-bert-64", hidden=64),)
                        ).fetchone() == ("wide",)  # the same again: nothing changes


def test_a_constant_call_is_folded_once_per_plan(conn, wide):
    conn.execute("UPDATE pgbert.settings SET value = '0' WHERE name = 'embed_cache_mb'")  # every call would count
    conn.execute("CREATE TABLE many (id int PRIMARY KEY, v vector(64))")
    conn.execute("INSERT INTO many SELECT g, ('[' || array_to_string(ARRAY(SELECT random() + g * 0 FROM "
                 "generate_series(1, 64)), ',') || ']')::vector FROM generate_series(1, 20000) g")
    plan = conn.execute("EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM many ORDER BY v <-> embed('q', model => 'wide') "
                        "LIMIT 5").fetchall()
    assert "Seq Scan" in str(plan) and "embed(" not in str(plan)  # a constant in the plan
    requests = lambda: int(status(conn)["model_host_requests"])  # noqa: E731 (every model's calls)
    before = requests()
    assert len(conn.execute("SELECT id FROM many ORDER BY v <-> embed('q', model => 'wide') LIMIT 5").fetchall()) == 5
    assert requests() - before == 1
    assert "tiny-bert-64" in status(conn)["model_host_loaded"]  # which models the host holds


def test_a_table_keeps_its_model(conn, wide):
    conn.execute("CREATE TABLE docs (id int PRIMARY KEY, body text)")
    conn.execute("CALL pgbert.enable_embedding('docs', 'body', model => 'wide')")
    conn.execute("INSERT INTO docs VALUES (1, 'graphics drivers'), (2, 'a text editor'), (3, 'kernel')")
    assert conn.execute("SELECT model_name FROM pgbert.enabled_tables WHERE relid = 'docs'::regclass").fetchone() \
        == ("wide",)
    rows = conn.execute("SELECT body, body_embedding::text, embed(body, model => 'wide')::text FROM docs").fetchall()
    assert_same_vectors(conn, rows)
    assert len(conn.execute("SELECT id FROM search('video drivers', 2, 'docs')").fetchall()) == 2
    conn.execute("ALTER TABLE docs ADD COLUMN g vector(64) GENERATED ALWAYS AS (embed(body, model => 'wide')) STORED")
    assert conn.execute("SELECT count(g) FROM docs").fetchone() == (3,)
    with pytest.raises(psycopg.errors.ObjectInUse, match="used by public.docs"):
        conn.execute("SELECT pgbert.drop_model('wide')")
    with pytest.raises(psycopg.errors.ObjectInUse, match="default"):
        conn.execute("SELECT pgbert.drop_model('tiny-bert')")
    conn.execute("ALTER TABLE docs DROP COLUMN g")
    conn.execute("CALL pgbert.disable_embedding('docs')")
    conn.execute("SELECT pgbert.drop_model('wide')")
    assert conn.execute("SELECT count(*) FROM pgbert.models").fetchone() == (1,)


def test_the_default_model_changes_without_touching_tables(conn, wide):
    conn.execute("CREATE TABLE docs (id int PRIMARY KEY, body text)")
    conn.execute("CALL pgbert.enable_embedding('docs', 'body')")
    conn.execute("SELECT pgbert.use_model(%s)", (tiny_bundle_path("tiny-bert-64", hidden=64),))  # 'wide'
    conn.execute("INSERT INTO docs VALUES (1, 'still the table''s model')")
    assert conn.execute("SELECT vector_dims(body_embedding), vector_dims(embed('x')) FROM docs").fetchone() == (32, 64)


def test_a_named_model_embeds_in_parallel_workers(conn, wide):
    """embed(text, model) is PARALLEL SAFE: a worker runs it (PL/Python could run no query there)."""
    assert conn.execute("SELECT DISTINCT proparallel FROM pg_proc WHERE proname IN ('embed', 'embed_batch') "
                        "AND 'name'::regtype = ANY (proargtypes)").fetchall() == [("s",)]
    texts = [f"text number {i}" for i in range(40)]
    conn.execute("CREATE TABLE t AS SELECT i, t FROM unnest(%s::text[]) WITH ORDINALITY u(t, i)", (texts,))
    serial = conn.execute("SELECT i, embed(t, model => 'wide')::text FROM t ORDER BY i").fetchall()
    conn.execute("SET force_parallel_mode = on" if conn.info.server_version < 160000
                 else "SET debug_parallel_query = on")
    conn.execute("SET parallel_leader_participation = off")  # the worker embeds, not the leader
    query = "SELECT i, embed(t, model => 'wide')::text FROM t ORDER BY i"
    plan = str(conn.execute("EXPLAIN (ANALYZE, VERBOSE, COSTS OFF) " + query).fetchall())
    assert "Workers Launched: 1" in plan and "Worker 0:  actual" in plan and "embed(" in plan
    parallel = conn.execute(query).fetchall()
    assert [i for i, _ in parallel] == [i for i, _ in serial]
    assert_same_vectors(conn, [(i, a, b) for (i, a), (_, b) in zip(serial, parallel)])
    batch = conn.execute("SELECT embed_batch(array_agg(t ORDER BY i), model => 'wide')::text[] FROM t").fetchone()[0]
    assert_same_vectors(conn, [(i, a, b) for a, (i, b) in zip(batch, serial)])


def test_a_named_models_batch_goes_in_slices_and_keeps_order_limits_and_cancels(conn, wide):
    texts = [None if i % 7 == 3 else f"word {i} " * (i % 5 + 1) for i in range(150)]  # 3 slices of 64
    one_by_one = [None if t is None else conn.execute("SELECT embed(%s, model => 'wide')::text", (t,)).fetchone()[0]
                  for t in texts]
    batch = conn.execute("SELECT embed_batch(%s, model => 'wide')::text[]", (texts,)).fetchone()[0]
    assert [v is None for v in batch] == [t is None for t in texts]
    assert_same_vectors(conn, [(t, a, b) for t, a, b in zip(texts, batch, one_by_one) if t is not None])
    shifted = conn.execute("SELECT embed_batch('[0:1]={a,b}'::text[], model => 'wide')::text[]").fetchone()[0]
    assert len(shifted) == 2  # an array not starting at 1 loses no element
    total = sum(len(t) for t in texts if t)
    conn.execute("UPDATE pgbert.settings SET value = %s WHERE name = 'max_input_chars'", (str(total - 1),))
    with pytest.raises(psycopg.errors.ProgramLimitExceeded, match=f"{total} characters in one call"):
        conn.execute("SELECT embed_batch(%s, model => 'wide')", (texts,))  # each slice fits: the call does not
    conn.execute("UPDATE pgbert.settings SET value = NULL WHERE name = 'max_input_chars'")
    conn.execute("SET statement_timeout = '300ms'")
    with pytest.raises(psycopg.errors.QueryCanceled):  # between slices: _embed_with cannot check
        conn.execute("SELECT embed_batch(array_agg('long text ' || g || repeat(' more words', 40)), model => 'wide') "
                     "FROM generate_series(1, 30000) g")


def test_change_model_moves_a_table_while_it_is_written_and_searched(conn, wide):
    conn.execute("CREATE TABLE docs (id int PRIMARY KEY, body text)")
    conn.execute("CALL pgbert.enable_embedding('docs', 'body')")
    conn.execute("INSERT INTO docs SELECT g, 'document number ' || g FROM generate_series(1, 300) g")
    stop, errors, short = threading.Event(), [], []

    def insert(n):
        with psycopg.connect(db_url(conn.info.dbname), autocommit=True) as c:
            i = 0
            while not stop.is_set():
                i += 1
                c.execute("INSERT INTO docs VALUES (%s, %s)", (100000 * n + i, f"inserted by {n}, row {i}"))
                c.execute("UPDATE docs SET body = body || ' (edited)' WHERE id = %s", (n * 7 + i % 50 + 1,))

    def search(n):
        with psycopg.connect(db_url(conn.info.dbname), autocommit=True) as c:
            while not stop.is_set():
                if len(c.execute("SELECT id FROM search(%s, 10, 'docs')", (f"number {n}",)).fetchall()) < 10:
                    short.append(n)

    def guard(fn, n):
        try:
            fn(n)
        except Exception as exc:  # a thread's exception is otherwise lost
            errors.append(exc)

    threads = [threading.Thread(target=guard, args=(f, n)) for f in (insert, search) for n in range(1, 5)]
    for t in threads:
        t.start()
    try:
        conn.execute("CALL pgbert.change_model('docs', 'wide', batch_size => 50)")
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert errors == [] and short == []
    assert conn.execute("SELECT model_name, vector_column FROM pgbert.enabled_tables WHERE relid = 'docs'::regclass"
                        ).fetchone() == \
        ("wide", "body_embedding_wide")
    rows = conn.execute("SELECT body, body_embedding_wide::text, embed(body, model => 'wide')::text FROM docs"
                        ).fetchall()
    assert all(vector and len(vector.split(",")) == 64 for _, vector, _ in rows)  # every row, old or new
    assert_same_vectors(conn, rows)
    conn.execute("CALL pgbert.drop_old_vectors('docs')")
    assert conn.execute("SELECT count(*) FROM pg_attribute WHERE attrelid = 'docs'::regclass "
                        "AND attname LIKE 'body_embedding%' AND NOT attisdropped").fetchone() == (1,)


def test_a_model_change_can_be_aborted_and_resumed(conn, wide):
    conn.execute("CREATE TABLE docs (id int PRIMARY KEY, body text)")
    conn.execute("CALL pgbert.enable_embedding('docs', 'body')")
    conn.execute("INSERT INTO docs SELECT g, 'text ' || g FROM generate_series(1, 20) g")
    with conn.transaction():  # change_model's first step, as it runs it
        conn.execute("SELECT pgbert._prove_caller('docs', true)")
        conn.execute("SELECT pgbert.model_change_step('docs', 'begin', 'wide')")
    conn.execute("INSERT INTO docs VALUES (21, 'during the change')")
    assert conn.execute("SELECT vector_dims(body_embedding), vector_dims(body_embedding_wide) FROM docs WHERE id = 21"
                        ).fetchone() == (32, 64)
    with pytest.raises(psycopg.errors.ObjectInUse, match="already moving"):
        conn.execute("CALL pgbert.change_model('docs', 'tiny-bert')")
    conn.execute("CALL pgbert.abort_model_change('docs')")
    assert conn.execute("SELECT model_name, next_model_name FROM pgbert.enabled_tables WHERE relid = 'docs'::regclass"
                        ).fetchone() == \
        ("tiny-bert", None)
    assert_embedded(conn)
    conn.execute("CALL pgbert.change_model('docs', 'wide')")
    assert conn.execute("SELECT count(*) FROM docs WHERE vector_dims(body_embedding_wide) = 64").fetchone() == (21,)


def test_change_model_on_a_partitioned_table_gives_each_row_its_own_vector(conn, wide):
    conn.execute("CREATE TABLE parts (id int PRIMARY KEY, body text) PARTITION BY RANGE (id)")
    conn.execute("CREATE TABLE parts_a PARTITION OF parts FOR VALUES FROM (0) TO (100)")
    conn.execute("CREATE TABLE parts_b PARTITION OF parts FOR VALUES FROM (100) TO (200)")
    conn.execute("CALL pgbert.enable_embedding('parts', 'body')")
    # the same ctids in both partitions: a step that finds rows by ctid alone writes one row's vector on another
    conn.execute("INSERT INTO parts SELECT g, 'partition a text ' || g FROM generate_series(1, 5) g")
    conn.execute("INSERT INTO parts SELECT g, 'other words in b ' || g FROM generate_series(101, 105) g")
    conn.execute("CALL pgbert.change_model('parts', 'wide', batch_size => 3)")
    rows = conn.execute("SELECT body, body_embedding_wide::text, embed(body, model => 'wide')::text FROM parts"
                        ).fetchall()
    assert len(rows) == 10 and all(vector for _, vector, _ in rows)
    assert_same_vectors(conn, rows)


def test_a_resumed_change_keeps_the_index_it_built(conn, wide):
    conn.execute("CREATE TABLE docs (id int PRIMARY KEY, body text)")
    conn.execute("CALL pgbert.enable_embedding('docs', 'body')")
    conn.execute("INSERT INTO docs SELECT g, 'text ' || g FROM generate_series(1, 5) g")
    with conn.transaction():  # a change stopped after its index was built, before the switch
        conn.execute("SELECT pgbert._prove_caller('docs', true)")
        conn.execute("SELECT pgbert.model_change_step('docs', 'begin', 'wide')")
    opclass = conn.execute("SELECT pgbert._operator_class(metric) FROM pgbert.enabled_tables "
                           "WHERE relid = 'docs'::regclass").fetchone()[0]
    conn.execute(f"CREATE INDEX ON docs USING hnsw (body_embedding_wide {opclass})")
    conn.execute("CALL pgbert.change_model('docs', 'wide')")  # resumed
    assert conn.execute("""SELECT count(*) FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid
                            AND a.attnum = ANY (i.indkey) WHERE i.indrelid = 'docs'::regclass
                            AND a.attname = 'body_embedding_wide'""").fetchone() == (1,)
