"""Real users, round 2 (issue 20): what a newcomer with an ORM, a migration tool and the tutorial hit."""
import psycopg
import pytest
from test_applications import TWO, run_example

from helpers import status


# ---- migrations run twice ----------------------------------------------------------------------------------
@pytest.mark.parametrize("options", ["", ", strategy => 'row'", ", chunk_tokens => 16, lexical => 'english'"])
def test_enable_embedding_twice_with_the_same_arguments_changes_nothing(conn, options):
    conn.execute("CREATE TABLE docs (id int PRIMARY KEY, body text)")
    conn.execute(f"CALL pgbert.enable_embedding('docs', 'body'{options})")
    conn.execute("INSERT INTO docs VALUES (1, 'one'), (2, 'two')")
    state = """SELECT (SELECT array_agg(t.tgname::text || t.tgenabled::text ORDER BY t.tgname) FROM pg_trigger t
                        WHERE t.tgrelid = 'docs'::regclass),
                      (SELECT to_jsonb(e) - 'enabled_at' FROM pgbert.embedded_tables e
                        WHERE e.relid = 'docs'::regclass),
                      (SELECT count(*) FROM pg_indexes WHERE tablename LIKE 'docs%')"""
    before = conn.execute(state).fetchone()
    notices = []
    conn.add_notice_handler(lambda d: notices.append(d.message_primary))
    conn.execute(f"CALL pgbert.enable_embedding('docs', 'body'{options})")
    assert conn.execute(state).fetchone() == before
    assert any("already enabled on public.docs with these settings" in n for n in notices)


def test_enable_embedding_again_with_other_arguments_says_what_differs(conn):
    conn.execute("CREATE TABLE docs (id int PRIMARY KEY, body text, title text)")
    conn.execute("CALL pgbert.enable_embedding('docs', 'body', build_index => false)")
    with pytest.raises(psycopg.errors.DuplicateObject) as caught:
        conn.execute("CALL pgbert.enable_embedding('docs', 'title', strategy => 'row', build_index => false)")
    message = str(caught.value)
    assert "source_column is body (asked: title)" in message and "strategy is batch (asked: row)" in message
    assert "disable_embedding" in caught.value.diag.message_hint


def test_the_sqlalchemy_example_runs_twice(conn, tiny_bundle):
    for _ in range(2):
        nearest, found = run_example(conn, tiny_bundle, "sqlalchemy_orm.py").strip().split(" | ")
        assert {nearest, found} <= TWO
    assert conn.execute("SELECT count(*), count(body_embedding) FROM orm_docs").fetchone() == (4, 4)


# ---- the natural forms of embed_batch run the model once -----------------------------------------------------
@pytest.mark.parametrize("query", [
    "SELECT count(*) FROM unnest(embed_batch(%(texts)s))",
    "SELECT count(v) FROM unnest(embed_batch(%(texts)s)) AS v",
    "SELECT cardinality(embed_batch(%(texts)s))",
    "SELECT count(*) FROM unnest(%(texts)s::text[], embed_batch(%(texts)s)) AS u(t, v)",
])
def test_embed_batch_embeds_each_text_once(conn, query):
    texts = [f"text number {i}" for i in range(300)]
    before = int(status(conn)["backend_texts"])
    assert conn.execute(query, {"texts": texts}).fetchone() == (300,)
    assert int(status(conn)["backend_texts"]) - before == 300


# ---- the query forms people write ------------------------------------------------------------------------------
def plan(conn, query):
    return "\n".join(r[0] for r in conn.execute("EXPLAIN " + query))


def test_the_tutorials_l2_operator_uses_the_index(conn):
    conn.execute("INSERT INTO text_embeddings (text) SELECT 'row ' || g FROM generate_series(1, 50) g")
    conn.execute("SET enable_seqscan = off")  # a 50-row table: what matters is that the index can serve <->
    assert "Index Scan" in plan(conn, "SELECT id FROM text_embeddings ORDER BY embedding <-> embed('row 7') LIMIT 5")
    assert conn.execute("SELECT text FROM search('row 7', 1)").fetchone() == ("row 7",)


@pytest.mark.parametrize("distance, operator", [("cosine", "<=>"), ("l2", "<->"), ("inner_product", "<#>")])
def test_each_distance_gets_an_index_its_operator_uses_and_search_agrees(conn, distance, operator):
    conn.execute("CREATE TABLE docs (id int PRIMARY KEY, body text)")
    conn.execute("INSERT INTO docs SELECT g, 'document number ' || g FROM generate_series(1, 40) g")
    conn.execute(f"CALL pgbert.enable_embedding('docs', 'body', distance => '{distance}')")
    assert conn.execute("SELECT metric FROM pgbert.enabled_tables WHERE relid = 'docs'::regclass").fetchone() == (
        distance,)
    conn.execute("SET enable_seqscan = off")
    query = f"SELECT id FROM docs ORDER BY body_embedding {operator} embed('document number 12', 'query') LIMIT 5"
    assert "Index Scan" in plan(conn, query)
    conn.execute("RESET enable_seqscan")
    exact = [str(r[0]) for r in conn.execute(query.replace("LIMIT 5", "LIMIT 3"))]
    assert [r[0] for r in conn.execute("SELECT id FROM search('document number 12', 3, 'docs')")] == exact
    with pytest.raises(psycopg.errors.DuplicateObject, match="distance is"):
        other = "l2" if distance != "l2" else "cosine"
        conn.execute(f"CALL pgbert.enable_embedding('docs', 'body', distance => '{other}')")
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        conn.execute("CALL pgbert.enable_embedding('docs', 'body', distance => 'manhattan')")


# ---- an ORM's save() and an upsert never leave a row with text without its vector -------------------------------
@pytest.mark.parametrize("options", ["", ", strategy => 'row'", ", lexical => 'english'"])
def test_writing_back_a_stale_null_vector_re_embeds(conn, options):
    conn.execute("CREATE TABLE docs (id int PRIMARY KEY, body text, tag text)")
    conn.execute(f"CALL pgbert.enable_embedding('docs', 'body'{options})")
    conn.execute("INSERT INTO docs VALUES (1, 'alpha', 'a'), (2, 'beta', 'b'), (3, 'gamma', 'c')")
    # Django's save() of an instance made by create(): every column, the stale NULL vector included
    conn.execute("UPDATE docs SET body = body, tag = 'saved', body_embedding = NULL WHERE id = 1")
    # an upsert that copies EXCLUDED.* with unchanged texts (the batch strategy leaves rows after the first NULL
    # in EXCLUDED)
    conn.execute("INSERT INTO docs AS d VALUES (1, 'alpha', 'a'), (2, 'beta', 'b'), (3, 'gamma', 'c') "
                 "ON CONFLICT (id) DO UPDATE SET body = EXCLUDED.body, body_embedding = EXCLUDED.body_embedding")
    assert conn.execute("SELECT count(*) FROM docs WHERE body_embedding IS NULL").fetchone() == (0,)
    assert conn.execute("SELECT pgbert.pending_rows('docs')").fetchone() == (0,)
    # A vector the client sends is kept (the tutorial's flow), with a new text or alone; a NULL text clears it.
    mine = "[" + ",".join(["0.5"] * 32) + "]"
    conn.execute("UPDATE docs SET body = 'delta', body_embedding = %s WHERE id = 2", (mine,))
    conn.execute("UPDATE docs SET body_embedding = %s WHERE id = 3", (mine,))
    assert conn.execute("SELECT count(*) FROM docs WHERE body_embedding = %s::vector", (mine,)).fetchone() == (2,)
    conn.execute("UPDATE docs SET body = NULL WHERE id = 3")
    assert conn.execute("SELECT body_embedding FROM docs WHERE id = 3").fetchone() == (None,)
    # Other columns alone never call the model.
    before = int(status(conn)["backend_texts"])
    conn.execute("UPDATE docs SET tag = 'again'")
    assert int(status(conn)["backend_texts"]) == before


def test_an_upsert_keeps_the_chunks_of_a_chunked_table(conn):
    conn.execute("CREATE TABLE docs (id int PRIMARY KEY, body text)")
    conn.execute("CALL pgbert.enable_embedding('docs', 'body', chunk_tokens => 16)")
    conn.execute("INSERT INTO docs VALUES (1, 'alpha'), (2, 'beta'), (3, 'gamma')")
    conn.execute("INSERT INTO docs AS d VALUES (1, 'alpha'), (2, 'beta changed'), (3, 'gamma') "
                 "ON CONFLICT (id) DO UPDATE SET body = EXCLUDED.body")
    assert conn.execute("SELECT pgbert.pending_rows('docs')").fetchone() == (0,)
    assert conn.execute("SELECT count(DISTINCT row_key) FROM docs_chunks").fetchone() == (3,)


def test_the_django_example_saves_and_finds(conn, tiny_bundle):
    assert run_example(conn, tiny_bundle, "django_example.py").strip() in TWO


# ---- filtered search returns k rows --------------------------------------------------------------------------
@pytest.fixture()
def sections(conn):
    """10,000 rows in 100 sections (1% each), vectors given by the client (the point is the scan, not the text)."""
    conn.execute("CREATE TABLE articles (id int PRIMARY KEY, section int, body text)")
    conn.execute("CALL pgbert.enable_embedding('articles', 'body', lexical => 'english', build_index => false)")
    conn.execute("INSERT INTO articles (id, section, body, body_embedding) "
                 "SELECT g, g % 100, 'article number ' || g, "
                 "(SELECT array_agg(random() - 0.5) FROM generate_series(1, 32) WHERE g > 0)::vector "
                 "FROM generate_series(1, 10000) g")
    conn.execute("CALL pgbert.enable_embedding('articles', 'body', lexical => 'english')")  # the indexes
    conn.execute("ANALYZE articles")


def test_a_filter_matching_one_percent_still_returns_k_rows_found_by_the_index(conn, sections):
    query = "article number 4207"
    got = conn.execute("SELECT id::int, (row->>'section')::int FROM search(%s, 10, 'articles', 'vector', "
                       "filter => '{\"section\": 7}')", (query,)).fetchall()
    assert len(got) == 10 and {s for _, s in got} == {7}
    conn.execute("SET enable_indexscan = off")
    exact = {r[0] for r in conn.execute(
        "SELECT id FROM articles WHERE section = 7 ORDER BY body_embedding <=> embed(%s, 'query') LIMIT 10", (query,))}
    conn.execute("RESET enable_indexscan")
    assert len(exact & {i for i, _ in got}) / 10 >= 0.9
    for mode in ("lexical", "hybrid"):
        rows = conn.execute("SELECT (row->>'section')::int FROM search('article number', 10, 'articles', %s, "
                            "filter => '{\"section\": 7}')", (mode,)).fetchall()
        assert rows == [(7,)] * 10, mode
    # The search ends with the caller's settings as they were.
    assert conn.execute("SELECT current_setting('hnsw.iterative_scan')").fetchone() == ("off",)


def test_a_filter_on_a_chunked_table_returns_k_matching_rows(conn):
    conn.execute("CREATE TABLE kb (id int PRIMARY KEY, section int, body text)")
    conn.execute("CALL pgbert.enable_embedding('kb', 'body', chunk_tokens => 16, lexical => 'english')")
    conn.execute("INSERT INTO kb SELECT g, g % 10, 'knowledge base entry ' || g FROM generate_series(1, 300) g")
    for mode in ("vector", "lexical", "hybrid"):
        rows = conn.execute("SELECT (row->>'section')::int FROM search('knowledge entry', 5, 'kb', %s, "
                            "filter => '{\"section\": 3}')", (mode,)).fetchall()
        assert rows == [(3,)] * 5, mode


def test_a_filter_on_a_column_the_caller_may_not_read_is_refused(conn, role):
    reader = role("pgbert_filter_reader", "pgbert_user")
    conn.execute("CREATE TABLE articles (id int PRIMARY KEY, section int, secret text, body text)")
    # chunked: a reader with column grants searches it (chunks are readable where the text is)
    conn.execute("CALL pgbert.enable_embedding('articles', 'body', chunk_tokens => 16)")
    conn.execute("INSERT INTO articles VALUES (1, 1, 'x', 'one'), (2, 2, 'y', 'two')")
    conn.execute(f"GRANT SELECT (id, section, body) ON articles TO {reader}")
    conn.execute(f"SET ROLE {reader}")
    assert conn.execute("SELECT id FROM search('one', 5, 'articles', filter => '{\"section\": 2}')").fetchall() == [
        ("2",)]
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="cannot be filtered on"):
        conn.execute("SELECT * FROM search('one', 5, 'articles', filter => '{\"secret\": \"x\"}')")
    with pytest.raises(psycopg.errors.UndefinedColumn):
        conn.execute("SELECT * FROM search('one', 5, 'articles', filter => '{\"nope\": 1}')")
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        conn.execute("SELECT * FROM search('one', 5, 'articles', filter => '[1, 2]')")


# ---- typed results --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("options", ["", ", chunk_tokens => 16, lexical => 'english'"])
def test_search_rows_returns_the_tables_own_rows_in_searchs_order(conn, options):
    conn.execute("CREATE TABLE articles (id bigint PRIMARY KEY, section int, published date, body text)")
    conn.execute(f"CALL pgbert.enable_embedding('articles', 'body'{options})")
    conn.execute("INSERT INTO articles SELECT g, g % 3, date '2026-01-01' + g, 'article ' || g "
                 "FROM generate_series(1, 30) g")
    by_search = [int(r[0]) for r in conn.execute("SELECT id FROM search('article 7', 5, 'articles')")]
    rows = conn.execute("SELECT (s.r).id, (s.r).published, s.distance "
                        "FROM search_rows('article 7', 5, NULL::articles) s").fetchall()
    assert [r[0] for r in rows] == by_search and rows[0][0] == 7
    assert str(rows[0][1]) == "2026-01-08"  # the column's own type
    joined = conn.execute("SELECT a.section FROM search_rows('article 7', 1, NULL::articles) s "
                          "JOIN articles a ON a.id = (s.r).id").fetchone()
    assert joined == (1,)
    with pytest.raises(psycopg.errors.DatatypeMismatch):
        conn.execute("SELECT * FROM search_rows('x', 5, NULL::integer)")


# ---- errors that say what to do -------------------------------------------------------------------------------
@pytest.mark.parametrize("call", [
    "SELECT embed('x')", "SELECT embed('x', 'query')", "SELECT embed_batch(ARRAY['x'])",
    "SELECT embed_batch(ARRAY['x'], 'query')", "SELECT * FROM search('x', 5)",
    "SELECT * FROM search('x', 5, 'text_embeddings')", "SELECT * FROM search_rows('x', 5, NULL::text_embeddings)",
])
def test_a_role_without_pgbert_user_is_told_which_grant_it_needs(conn, role, call):
    app = role("pgbert_test_newcomer")
    conn.execute("GRANT SELECT ON text_embeddings TO pgbert_test_newcomer")
    conn.execute(f"SET ROLE {app}")
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="may not embed or search") as caught:
        conn.execute(call)
    assert caught.value.diag.message_hint == f"GRANT pgbert_user TO {app};"
    with pytest.raises(psycopg.errors.InsufficientPrivilege):  # the model itself stays pgbert_user's
        conn.execute("SELECT pgbert.embed('x', 'query')")
