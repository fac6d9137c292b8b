"""Trust: look-alike objects cannot hijack pgbert; bad input gives clear errors; a broken model bundle
stops INSERTs with an error that says what to do, shows in status(), and a fix needs no restart."""
import os
import shutil

import psycopg
import pytest

from helpers import TEST_BUNDLES, status, tiny_bundle_path


def alive(conn):
    assert conn.execute("SELECT 1").fetchone() == (1,)


@pytest.fixture()
def docs(conn):
    conn.execute("CREATE TABLE docs (id serial PRIMARY KEY, body text)")
    conn.execute("CALL pgbert.enable_embedding('docs', 'body')")


# ---- search_path hijacking ------------------------------------------------------------------------------
def test_look_alike_functions_and_operators_do_not_hijack_pgbert(conn, docs):
    conn.execute("INSERT INTO docs (body) VALUES ('the real text'), ('another text')")
    zeros = "[" + ",".join(["0"] * 32) + "]"
    conn.execute("CREATE SCHEMA evil")
    conn.execute(f"CREATE FUNCTION evil.embed(text) RETURNS vector LANGUAGE sql AS $$ SELECT '{zeros}'::vector $$")
    conn.execute(f"CREATE FUNCTION evil.embed_batch(text[]) RETURNS vector[] LANGUAGE sql "
                 f"AS $$ SELECT array_fill('{zeros}'::vector, ARRAY[cardinality($1)]) $$")
    conn.execute("CREATE FUNCTION evil.dist(vector, vector) RETURNS float8 LANGUAGE sql AS 'SELECT 42::float8'")
    conn.execute("CREATE OPERATOR evil.<=> (LEFTARG = vector, RIGHTARG = vector, FUNCTION = evil.dist)")
    conn.execute("CREATE FUNCTION evil.format(text, text) RETURNS text LANGUAGE sql AS $$ SELECT 'x' $$")
    conn.execute("CREATE TEMP TABLE docs (id int, body text, body_embedding vector)")  # pg_temp look-alike
    conn.execute("SET search_path = evil, public")
    try:
        conn.execute("INSERT INTO public.docs (body) VALUES ('inserted under a hostile path'), ('second')")
        rows = conn.execute("SELECT id, content, distance FROM search('the real text', 2, 'public.docs')").fetchall()
    finally:
        conn.execute("RESET search_path")
    assert rows[0][1] == "the real text" and rows[0][2] == pytest.approx(0, abs=1e-5)
    assert conn.execute("SELECT count(*) FROM public.docs WHERE body_embedding IS NULL "
                        "OR body_embedding <> public.embed(body)").fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM pg_temp.docs").fetchone() == (0,)


def test_every_pgbert_function_pins_search_path(conn):
    """pg_catalog first and pg_temp last, nothing else: every other name in pgbert's code is qualified."""
    configs = conn.execute("""
        SELECT p.oid::regprocedure::text, p.proconfig FROM pg_proc p
         WHERE (p.pronamespace = 'pgbert'::regnamespace
                OR (p.pronamespace = 'public'::regnamespace
                    AND p.proname IN ('embed', 'embed_batch', 'search', 'search_rows')))
           AND p.prokind <> 'p'""").fetchall()
    # SECURITY DEFINER entry points also pin check_function_bodies, and event triggers lock_timeout
    # and a table's write-back function (and the queue's key readers) the settings that print keys the same for
    # every inserter
    same_keys = ["extra_float_digits=1", "IntervalStyle=postgres", "DateStyle=ISO, MDY"]
    allowed = ([], ["check_function_bodies=on"], ["check_function_bodies=on", "lock_timeout=10s"],
               same_keys, ["check_function_bodies=on", *same_keys])
    unpinned = [(fn, config) for fn, config in configs
                if not config or config[0] != "search_path=pg_catalog, pg_temp" or config[1:] not in allowed]
    assert unpinned == []
    # The procedures that commit may not carry a SET clause: they pin the path in their first statement.
    for proc in ("enable_embedding", "backfill"):
        body = conn.execute("SELECT prosrc FROM pg_proc WHERE proname = %s", (proc,)).fetchone()[0]
        assert "set_config('search_path', 'pg_catalog, pg_temp', true)" in body


def test_a_non_admin_cannot_redirect_imports_or_model_files(conn, role):
    admin, user = role("pgbert_test_admin", "pgbert_admin"), role("pgbert_test_user", "pgbert_user")
    conn.execute(f"SET ROLE {user}")
    for statement in ("UPDATE pgbert.settings SET value = '/tmp' WHERE name = 'python_path'",
                      "UPDATE pgbert.models SET bundle_path = '/tmp/evil'",
                      "SELECT pgbert.use_model('/tmp/evil')"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(statement)
    # Session settings are not read by pgbert at all: a made-up GUC changes nothing.
    expected = conn.execute("SELECT embed('x')::text").fetchone()
    conn.execute("SET pgbert.python_path = '/tmp'")
    conn.execute("SET pgbert.bundle_path = '/tmp/evil'")
    assert conn.execute("SELECT embed('x')::text").fetchone() == expected
    conn.execute(f"SET ROLE {admin}")
    # An admin tunes the runtime, but what backends import stays the installing superuser's decision.
    conn.execute("UPDATE pgbert.settings SET value = '1' WHERE name = 'threads'")
    assert conn.execute("UPDATE pgbert.settings SET value = '/tmp' WHERE name = 'python_path' "
                        "RETURNING 1").fetchall() == []
    conn.execute("RESET ROLE")
    assert conn.execute("SELECT value FROM pgbert.settings WHERE name = 'python_path'").fetchone()[0] != "/tmp"


def test_search_respects_table_privileges(conn, docs, role):
    conn.execute("INSERT INTO docs (body) VALUES ('visible to readers'), ('another row')")
    user = role("pgbert_test_user", "pgbert_user")
    conn.execute(f"SET ROLE {user}")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("SELECT * FROM search('x', 5, 'docs')")
    conn.execute("RESET ROLE")
    conn.execute(f"GRANT SELECT ON docs TO {user}")
    conn.execute(f"SET ROLE {user}")
    rows = conn.execute("SELECT content, distance FROM search('visible to readers', 5, 'docs')").fetchall()
    assert [r[0] for r in rows][:1] == ["visible to readers"] and len(rows) == 2
    assert rows[0][1] == pytest.approx(0, abs=1e-5)


# ---- bad input -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("text", [
    "", "   \t\n  ", "x" * 1_000_000, "日本語のテキスト 🎌🍣", "".join(chr(c) for c in range(1, 32)) + " ctl",
    "".join(chr(c) for c in range(1, 0x2FF)), "\u200b\u200b\ufeff",
], ids=["empty", "whitespace", "1MB", "japanese-emoji", "control", "binary-looking", "zero-width"])
def test_odd_texts_embed_and_insert(conn, docs, text):
    assert conn.execute("SELECT vector_dims(embed(%s))", (text,)).fetchone() == (32,)
    conn.execute("INSERT INTO docs (body) VALUES (%s)", (text,))
    assert conn.execute("SELECT body_embedding IS NOT NULL FROM docs").fetchone() == (True,)


def test_null_text_and_null_query(conn, docs):
    conn.execute("INSERT INTO docs (body) VALUES (NULL), ('a row with text')")
    assert conn.execute("SELECT body_embedding IS NULL FROM docs WHERE body IS NULL").fetchone() == (True,)
    assert conn.execute("SELECT * FROM search(NULL, 5, 'docs')").fetchall() == []
    assert len(conn.execute("SELECT * FROM search('a row', 5, 'docs')").fetchall()) == 1


@pytest.mark.parametrize("batch_size", [0, -1, None])
def test_backfill_batch_size_must_be_positive(conn, docs, batch_size):
    conn.execute("ALTER TABLE docs DISABLE TRIGGER USER")
    conn.execute("INSERT INTO docs (body) VALUES ('waiting for its vector')")
    conn.execute("ALTER TABLE docs ENABLE TRIGGER USER")
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="batch_size must be positive"):
        conn.execute("CALL pgbert.backfill('docs', batch_size => %s)", (batch_size,))
    assert conn.execute("SELECT pgbert.pending_rows('docs')").fetchone() == (1,)


def test_k_edges(conn, docs):
    conn.execute("INSERT INTO docs (body) SELECT 'row ' || g FROM generate_series(1, 30) g")
    for k in (0, -5):
        with pytest.raises(psycopg.errors.InvalidParameterValue, match="k must be"):
            conn.execute("SELECT * FROM search('row', %s, 'docs')", (k,))
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        conn.execute("SELECT * FROM search('row', NULL, 'docs')")
    assert len(conn.execute("SELECT * FROM search('row', 2000000000, 'docs')").fetchall()) == 30
    alive(conn)


def test_missing_and_unembedded_tables(conn):
    with pytest.raises(psycopg.errors.UndefinedTable):
        conn.execute("SELECT * FROM search('x', 5, 'nope')")
    conn.execute("CREATE TABLE plain (id int)")
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match="not enabled"):
        conn.execute("SELECT * FROM search('x', 5, 'plain')")
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState):
        conn.execute("CALL pgbert.backfill('plain')")
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState):
        conn.execute("CALL pgbert.disable_embedding('plain')")
    alive(conn)


def test_wrong_vector_dimension_in_a_user_table_stores_nothing(conn, docs):
    # (the UPDATE trigger names the vector column: PostgreSQL refuses to change its type under it)
    with pytest.raises(psycopg.errors.FeatureNotSupported, match="used in a trigger definition"):
        conn.execute("ALTER TABLE docs ALTER COLUMN body_embedding TYPE vector(7) USING NULL")
    conn.execute("DROP TRIGGER pgbert_embed_update ON docs")
    conn.execute("ALTER TABLE docs ALTER COLUMN body_embedding TYPE vector(7) USING NULL")
    with pytest.raises(psycopg.errors.DataException, match="expected 7 dimensions"):
        conn.execute("INSERT INTO docs (body) VALUES ('one')")
    with pytest.raises(psycopg.errors.DataException, match="expected 7 dimensions"):
        conn.execute("INSERT INTO docs (body) SELECT 'x' || g FROM generate_series(1, 5) g")
    assert conn.execute("SELECT count(*) FROM docs").fetchone() == (0,)
    alive(conn)


@pytest.mark.parametrize("call", [
    "SELECT * FROM search('x', 5, 'docs; DROP TABLE victim')",
    "SELECT * FROM search('x', 5, 'docs'' OR 1=1 --')",
    "CALL pgbert.enable_embedding('victim; DROP TABLE victim', 'body')",
    "CALL pgbert.enable_embedding('victim', 'body); DROP TABLE victim; --')",
    "CALL pgbert.enable_embedding('victim', 'body', strategy => 'batch''; DROP TABLE victim; --')",
    "CALL pgbert.disable_embedding('victim\"; DROP TABLE victim; --')",
])
def test_injection_in_identifiers_and_options(conn, call):
    conn.execute("CREATE TABLE victim (id int PRIMARY KEY, body text)")
    with pytest.raises(psycopg.Error):
        conn.execute(call)
    assert conn.execute("SELECT to_regclass('victim') IS NOT NULL").fetchone() == (True,)
    alive(conn)


# ---- faults in the model bundle --------------------------------------------------------------------------
@pytest.fixture()
def own_bundle(conn, tiny_bundle):
    """A private copy of the tiny bundle, registered as the active model (the database's tables match it)."""
    path = os.path.join(TEST_BUNDLES, f"fault-{conn.info.dbname}")
    shutil.rmtree(path, ignore_errors=True)
    shutil.copytree(tiny_bundle, path)
    conn.execute("SELECT pgbert.use_model(%s)", (path,))
    conn.execute("CREATE TABLE docs (id serial PRIMARY KEY, body text)")
    conn.execute("CALL pgbert.enable_embedding('docs', 'body')")
    yield path
    shutil.rmtree(path, ignore_errors=True)
    shutil.rmtree(path + ".saved", ignore_errors=True)


def assert_inserts_fail(conn, match):
    for statement in ("INSERT INTO docs (body) VALUES ('one row')",
                      "INSERT INTO docs (body) SELECT 'row ' || g FROM generate_series(1, 10) g"):
        with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match=match) as info:
            conn.execute(statement)
        assert info.value.diag.message_hint  # says what to do
    assert conn.execute("SELECT count(*) FROM docs").fetchone() == (0,)  # nothing stored without its vector
    st = status(conn)
    assert st["ok"] == "false" and match in st["problem"], st


def assert_works_again(conn):
    conn.execute("INSERT INTO docs (body) VALUES ('after the fix')")
    assert conn.execute("SELECT count(*) FROM docs WHERE body_embedding = embed(body)").fetchone() == (1,)
    assert status(conn)["ok"] == "true"


def test_missing_bundle(conn, own_bundle):
    conn.execute("INSERT INTO docs (body) VALUES ('warm')")  # the model is loaded and cached in this backend
    conn.execute("DELETE FROM docs")
    os.rename(own_bundle, own_bundle + ".saved")
    assert_inserts_fail(conn, "manifest.json not found")
    os.rename(own_bundle + ".saved", own_bundle)
    assert_works_again(conn)  # same connection: no restart


def test_truncated_model_file(conn, own_bundle):
    model = os.path.join(own_bundle, "model.onnx")
    shutil.copy(model, model + ".orig")
    with open(model, "r+b") as f:
        f.truncate(os.path.getsize(model) // 2)
    assert_inserts_fail(conn, "truncated or replaced")
    os.replace(model + ".orig", model)
    assert_works_again(conn)


@pytest.mark.parametrize("replacement, extra", [
    (dict(name="tiny-bert-other", seed=7), "32-d"),   # another model, same dimension
    (dict(name="tiny-bert-64", hidden=64), "64-d"),   # another dimension
], ids=["same-dimension", "other-dimension"])
def test_bundle_replaced_by_another_model(conn, own_bundle, replacement, extra):
    other = tiny_bundle_path(**replacement)
    shutil.move(own_bundle, own_bundle + ".saved")
    shutil.copytree(other, own_bundle)
    assert_inserts_fail(conn, "not the ones registered")
    assert extra in status(conn)["problem"]
    shutil.rmtree(own_bundle)
    shutil.move(own_bundle + ".saved", own_bundle)
    assert_works_again(conn)
