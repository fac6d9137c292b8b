"""Tables whose rows embed themselves: every trigger path, both strategies, privileges, identifiers."""
import psycopg
import pytest

from helpers import assert_embedded, model_calls

TEXTS = ["PostgreSQL is a database", "自然言語処理", "🚀", "", "a much longer text " * 50]


@pytest.fixture(params=["batch", "row"])
def docs(conn, request):
    conn.execute("CREATE TABLE docs (id serial PRIMARY KEY, body text, tag text)")
    conn.execute("CALL pgbert.enable_embedding('docs', 'body', strategy => %s)", (request.param,))
    return request.param


# ---- the tutorial's flow -------------------------------------------------------------------------------
def test_tutorial_table_embeds_on_insert_and_returning_shows_it(conn):
    row = conn.execute("INSERT INTO text_embeddings (text) VALUES ('I love natural language processing') "
                       "RETURNING id, vector_dims(embedding), embedding = embed(text)").fetchone()
    assert row[1:] == (32, True)
    conn.execute("INSERT INTO text_embeddings (text) SELECT 'row ' || g FROM generate_series(1, 20) g")
    assert_embedded(conn, "text_embeddings", "text", "embedding")
    result = conn.execute("SELECT * FROM search('I love natural language processing', 5)")
    assert [c.name for c in result.description] == ["id", "text", "distance"]
    rows = result.fetchall()
    assert len(rows) == 5 and rows[0][1] == "I love natural language processing"
    assert rows[0][2] == pytest.approx(0, abs=1e-5)
    assert [r[2] for r in rows] == sorted(r[2] for r in rows)  # nearest first


def test_a_vector_sent_by_the_client_is_kept(conn):
    """The original tutorial computed vectors in the client and inserted them: that still works."""
    client_vector = "[" + ",".join(["0.5"] * 32) + "]"
    conn.execute("INSERT INTO text_embeddings (text, embedding) VALUES ('from the client', %s)", (client_vector,))
    assert conn.execute("SELECT embedding::text FROM text_embeddings WHERE text = 'from the client'"
                        ).fetchone()[0] == client_vector


# ---- every insert path ---------------------------------------------------------------------------------
def test_single_row_insert(conn, docs):
    got = conn.execute("INSERT INTO docs (body) VALUES ('hello') RETURNING body_embedding = embed(body)").fetchone()
    assert got == (True,)  # RETURNING sees the vector, whatever the strategy
    assert_embedded(conn)


def test_multi_row_values(conn, docs):
    conn.execute("INSERT INTO docs (body) VALUES (%s), (%s), (%s), (%s), (%s), (NULL)", TEXTS)
    assert_embedded(conn)


def test_insert_select(conn, docs):
    conn.execute("INSERT INTO docs (body) SELECT 'text number ' || g FROM generate_series(1, 100) g")
    assert_embedded(conn)


def test_copy(conn, docs):
    with conn.cursor().copy("COPY docs (body, tag) FROM STDIN") as copy:
        for i, text in enumerate(TEXTS * 10):
            copy.write_row((text, f"t{i}"))
        copy.write_row((None, "no text"))
    assert conn.execute("SELECT count(*) FROM docs").fetchone() == (len(TEXTS) * 10 + 1,)
    assert_embedded(conn)


def test_batch_strategy_batches_model_calls(conn, docs):
    before = model_calls(conn)
    conn.execute("INSERT INTO docs (body) SELECT 'text number ' || g FROM generate_series(1, 100) g")
    calls = model_calls(conn) - before
    if docs == "batch":
        assert calls == 1 + 4  # the first row inline, then 99 rows in batches of 32
    else:
        assert calls == 100


def test_a_rolled_back_insert_leaves_nothing_and_the_next_statement_starts_clean(conn, docs):
    conn.autocommit = False
    conn.execute("INSERT INTO docs (body) SELECT 'x' || g FROM generate_series(1, 10) g")
    assert_embedded(conn)  # the triggers ran inside the transaction
    # A statement that fails half-way (after its first rows were handled) must not leave the batch state
    # of the table behind: the next statement's first row is embedded inline again.
    conn.execute("ALTER TABLE docs ADD CHECK (body <> 'boom')")
    with pytest.raises(psycopg.errors.CheckViolation):
        conn.execute("INSERT INTO docs (body) VALUES ('y1'), ('y2'), ('y3'), ('boom'), ('y5')")
    conn.rollback()
    conn.autocommit = True
    assert conn.execute("SELECT count(*) FROM docs").fetchone() == (0,)
    got = conn.execute("INSERT INTO docs (body) VALUES ('after the rollback') RETURNING body_embedding = embed(body)")
    assert got.fetchone() == (True,)


# ---- updates -------------------------------------------------------------------------------------------
def test_update_of_another_column_does_not_call_the_model(conn, docs):
    conn.execute("INSERT INTO docs (body) SELECT 'text ' || g FROM generate_series(1, 10) g")
    before_vectors = conn.execute("SELECT id, body_embedding::text FROM docs ORDER BY id").fetchall()
    before = model_calls(conn)
    conn.execute("UPDATE docs SET tag = 'new tag'")
    conn.execute("UPDATE docs SET body = body")  # same text: no re-embedding either
    assert model_calls(conn) == before
    assert conn.execute("SELECT id, body_embedding::text FROM docs ORDER BY id").fetchall() == before_vectors


def test_update_of_the_text_re_embeds_and_null_clears(conn, docs):
    conn.execute("INSERT INTO docs (body) VALUES ('old text')")
    conn.execute("UPDATE docs SET body = 'new text'")
    assert_embedded(conn)
    conn.execute("UPDATE docs SET body = NULL")
    assert conn.execute("SELECT body_embedding IS NULL FROM docs").fetchone() == (True,)
    conn.execute("UPDATE docs SET body = 'back again'")
    assert_embedded(conn)


# ---- enable / disable on an existing table -------------------------------------------------------------
def test_enable_on_a_table_with_rows_backfills_and_indexes(conn):
    conn.execute("CREATE TABLE articles (id bigint PRIMARY KEY, body text)")
    conn.execute("INSERT INTO articles SELECT g, 'article ' || g FROM generate_series(1, 1200) g")
    notices = []
    conn.add_notice_handler(lambda d: notices.append(d.message_primary))
    conn.execute("CALL pgbert.enable_embedding('public.articles', 'body', batch_size => 500)")
    assert conn.execute("SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
                        "WHERE attrelid = 'articles'::regclass AND attname = 'body_embedding'"
                        ).fetchone() == ("vector(32)",)
    assert_embedded(conn, "articles")
    progress = [n for n in notices if "rows embedded" in n]
    assert len(progress) == 3 and "1200 / 1200" in progress[-1]
    index = conn.execute("SELECT indexdef FROM pg_indexes WHERE tablename = 'articles' AND indexdef LIKE '%hnsw%'"
                         ).fetchone()[0]
    assert "vector_cosine_ops" in index  # the tiny model is normalised: cosine
    assert conn.execute("SELECT pgbert.pending_rows('articles')").fetchone() == (0,)

    conn.execute("CALL pgbert.disable_embedding('public.articles')")
    triggers = conn.execute("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'articles'::regclass "
                            "AND NOT tgisinternal").fetchone()
    assert triggers == (0,)
    assert conn.execute("SELECT count(*) FROM pgbert.embedded_tables WHERE relid = 'articles'::regclass"
                        ).fetchone() == (0,)
    conn.execute("INSERT INTO articles VALUES (9999, 'not embedded any more')")
    assert conn.execute("SELECT body_embedding IS NULL FROM articles WHERE id = 9999").fetchone() == (True,)


def test_backfill_commits_in_batches(conn):
    """A failure after some batches keeps the committed ones: no giant transaction."""
    conn.execute("CREATE TABLE big (id int PRIMARY KEY, body text)")
    conn.execute("INSERT INTO big SELECT g, 'row ' || g FROM generate_series(1, 300) g")
    conn.execute("CALL pgbert.enable_embedding('big', 'body', backfill => false, build_index => false)")
    conn.execute("CREATE FUNCTION fail_late() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                 "IF NEW.id > 250 THEN RAISE EXCEPTION 'boom'; END IF; RETURN NEW; END $$")
    conn.execute("CREATE TRIGGER zz_fail BEFORE UPDATE ON big FOR EACH ROW EXECUTE FUNCTION fail_late()")
    with pytest.raises(psycopg.errors.RaiseException, match="boom"):
        conn.execute("CALL pgbert.backfill('big', 100)")
    done = conn.execute("SELECT count(*) FROM big WHERE body_embedding IS NOT NULL").fetchone()[0]
    assert 0 < done < 300 and done % 100 == 0


def test_table_without_primary_key_falls_back_to_row_strategy(conn):
    conn.execute("CREATE TABLE nokey (body text)")
    conn.execute("CALL pgbert.enable_embedding('nokey', 'body')")
    assert conn.execute("SELECT strategy FROM pgbert.embedded_tables WHERE relid = 'nokey'::regclass"
                        ).fetchone() == ("row",)
    conn.execute("INSERT INTO nokey SELECT 'x' || g FROM generate_series(1, 5) g")
    assert_embedded(conn, "nokey")


def test_bad_arguments_are_clear_errors(conn):
    conn.execute("CREATE TABLE t (id int PRIMARY KEY, body text, n int, v vector(7))")
    with pytest.raises(psycopg.errors.UndefinedColumn):
        conn.execute("CALL pgbert.enable_embedding('t', 'nope')")
    with pytest.raises(psycopg.errors.DatatypeMismatch, match="not text"):
        conn.execute("CALL pgbert.enable_embedding('t', 'n')")
    with pytest.raises(psycopg.errors.DatatypeMismatch, match="vector\\(32\\)"):
        conn.execute("CALL pgbert.enable_embedding('t', 'body', 'v')")
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        conn.execute("CALL pgbert.enable_embedding('t', 'body', strategy => 'sometimes')")
    with pytest.raises(psycopg.errors.UndefinedTable):
        conn.execute("CALL pgbert.enable_embedding('no_such_table', 'body')")
    conn.execute("CALL pgbert.enable_embedding('t', 'body')")
    with pytest.raises(psycopg.errors.DuplicateObject):  # the same arguments are a no-op (test_real_users2.py)
        conn.execute("CALL pgbert.enable_embedding('t', 'body', strategy => 'row')")


# ---- identifiers and injection -------------------------------------------------------------------------
def test_odd_identifiers_work(conn):
    conn.execute('CREATE SCHEMA "My Schema"')
    conn.execute('CREATE TABLE "My Schema"."Odd ""Table"" Name" ("Key" int PRIMARY KEY, "Body Text" text)')
    conn.execute("""CALL pgbert.enable_embedding('"My Schema"."Odd ""Table"" Name"', 'Body Text',
                                                  'Vec; DROP TABLE docs')""")
    conn.execute('INSERT INTO "My Schema"."Odd ""Table"" Name" VALUES (1, \'one\'), (2, \'two\')')
    assert_embedded(conn, '"My Schema"."Odd ""Table"" Name"', '"Body Text"', '"Vec; DROP TABLE docs"')
    rows = conn.execute("""SELECT id, content FROM search('one', 1, '"My Schema"."Odd ""Table"" Name"')""").fetchall()
    assert rows == [("1", "one")]
    conn.execute("""CALL pgbert.disable_embedding('"My Schema"."Odd ""Table"" Name"', drop_column => true)""")


def test_injection_attempts_are_never_executed(conn):
    conn.execute("CREATE TABLE victim (id int PRIMARY KEY, body text)")
    conn.execute("CREATE TABLE t (id int PRIMARY KEY, body text)")
    for attempt in ["body); DROP TABLE victim; --", "body\" text); DROP TABLE victim; --"]:
        with pytest.raises(psycopg.errors.UndefinedColumn):
            conn.execute("CALL pgbert.enable_embedding('t', %s)", (attempt,))
    with pytest.raises((psycopg.errors.InvalidName, psycopg.errors.UndefinedTable, psycopg.errors.SyntaxError)):
        conn.execute("CALL pgbert.enable_embedding('t; DROP TABLE victim', 'body')")
    # A quoted vector column name is just a name.
    conn.execute("CALL pgbert.enable_embedding('t', 'body', 'x\"); DROP TABLE victim; --')")
    conn.execute("INSERT INTO t VALUES (1, 'safe')")
    assert conn.execute("SELECT to_regclass('victim') IS NOT NULL").fetchone() == (True,)


# ---- privileges ----------------------------------------------------------------------------------------
@pytest.fixture()
def writer_role(role):
    return role("pgbert_test_writer")


def test_insert_privilege_alone_is_enough(conn, docs, writer_role):
    conn.execute(f"GRANT INSERT, SELECT ON docs TO {writer_role}")
    conn.execute(f"GRANT USAGE ON SEQUENCE docs_id_seq TO {writer_role}")
    conn.execute(f"SET ROLE {writer_role}")
    conn.execute("INSERT INTO docs (body) SELECT 'from a writer ' || g FROM generate_series(1, 5) g")
    conn.execute("RESET ROLE")
    assert_embedded(conn)


def test_non_owner_cannot_enable_or_disable(conn, docs, writer_role):
    conn.execute("CREATE TABLE other (id int PRIMARY KEY, body text)")
    conn.execute(f"GRANT ALL ON other, docs TO {writer_role}")
    conn.execute(f"GRANT pgbert_user TO {writer_role}")  # may embed: the ownership check is what stops it
    conn.execute(f"SET ROLE {writer_role}")
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="must be the owner"):
        conn.execute("CALL pgbert.enable_embedding('other', 'body')")
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="must be the owner"):
        conn.execute("CALL pgbert.disable_embedding('docs')")
    # The registry is pgbert's alone: no role writes it but through the entry points.
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("DELETE FROM pgbert.embedded_tables")
    conn.execute("RESET ROLE")
    assert conn.execute("SELECT count(*) FROM pgbert.embedded_tables WHERE relid = 'docs'::regclass").fetchone() == (1,)


def test_owner_who_is_not_superuser_can_enable(conn, writer_role):
    conn.execute(f"GRANT CREATE ON SCHEMA public TO {writer_role}")
    conn.execute(f"GRANT pgbert_user TO {writer_role}")
    conn.execute(f"SET ROLE {writer_role}")
    conn.execute("CREATE TABLE mine (id int PRIMARY KEY, body text)")
    conn.execute("CALL pgbert.enable_embedding('mine', 'body')")
    conn.execute("INSERT INTO mine SELECT g, 'mine ' || g FROM generate_series(1, 3) g")
    assert_embedded(conn, "mine")
    conn.execute("CALL pgbert.disable_embedding('mine')")
    conn.execute("DROP TABLE mine")


def test_dropping_a_table_forgets_it(conn, docs):
    conn.execute("DROP TABLE docs")
    assert conn.execute("SELECT count(*) FROM pgbert.embedded_tables").fetchone() == (1,)  # text_embeddings
    # ... and the table's batch write-back function went with it (only text_embeddings' remains).
    assert conn.execute("SELECT count(*) FROM pg_proc WHERE proname LIKE 'write\\_back\\_%'").fetchone() == (1,)
