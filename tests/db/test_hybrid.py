"""Hybrid search (issue 9): a lexical side per table kept by the same triggers, search() in three modes,
Japanese segmented for real, and models with query/document prompts."""
import psycopg
import pytest

from helpers import model_calls, tiny_bundle_path

JA = ["日本語の形態素解析器です。文章を単語に分割します。", "パズルゲームで遊びましょう", "戦争のゲーム",
      "データベースサーバーを管理するツール", "PostgreSQL is a database server", "A game about ancient wars"]


@pytest.fixture(params=["batch", "row"])
def docs(conn, request):
    conn.execute("CREATE TABLE docs (id int PRIMARY KEY, body text, tag text)")
    conn.execute("INSERT INTO docs VALUES (1, %s, 'before enable')", (JA[0],))
    conn.execute("CALL pgbert.enable_embedding('docs', 'body', strategy => %s, lexical => 'auto')", (request.param,))
    return request.param


def lexemes(conn, doc_id):
    return conn.execute("SELECT body_lexemes::text FROM docs WHERE id = %s", (doc_id,)).fetchone()[0]


def test_every_insert_path_fills_the_lexical_side(conn, docs):
    assert "'形態素'" in lexemes(conn, 1)  # backfilled by enable_embedding
    conn.execute("INSERT INTO docs VALUES (2, %s)", (JA[1],))
    conn.execute("INSERT INTO docs VALUES (3, %s), (4, %s), (5, %s)", JA[2:5])
    with conn.cursor().copy("COPY docs (id, body) FROM STDIN") as copy:
        copy.write_row((6, JA[5]))
        copy.write_row((7, None))
    assert "'パズル'" in lexemes(conn, 2) and "'遊ぶ'" in lexemes(conn, 2)  # 遊びましょう -> 遊ぶ
    assert "'databas'" in lexemes(conn, 5)  # 'auto': English rows get PostgreSQL's english config
    assert lexemes(conn, 7) is None
    assert conn.execute("SELECT count(*) FROM docs WHERE body IS NOT NULL AND (body_lexemes IS NULL "
                        "OR body_lexemes <> pgbert.lexemes(body, 'auto') OR body_embedding <> embed(body))"
                        ).fetchone() == (0,)
    gin = conn.execute("SELECT count(*) FROM pg_indexes WHERE tablename = 'docs' AND indexdef LIKE '%gin%'")
    assert gin.fetchone() == (1,)


def test_only_an_update_of_the_text_re_analyses(conn, docs):
    conn.execute("INSERT INTO docs VALUES (2, %s)", (JA[1],))
    conn.execute("UPDATE docs SET tag = 'x', body_lexemes = NULL WHERE id = 2")  # not the text: untouched
    assert lexemes(conn, 2) is None
    conn.execute("UPDATE docs SET body = %s WHERE id = 2", (JA[2],))
    assert "'戦争'" in lexemes(conn, 2)


def test_the_three_modes(conn, docs):
    conn.execute("INSERT INTO docs SELECT i + 2, b FROM unnest(%s::text[]) WITH ORDINALITY AS u(b, i)", (JA[1:],))
    lexical = conn.execute("SELECT content FROM search('ゲーム', 5, 'docs', 'lexical')").fetchall()
    assert sorted(r[0] for r in lexical) == sorted([JA[1], JA[2]])  # exactly the rows holding the word
    hybrid = conn.execute("SELECT content, score FROM search('ゲーム', 3, 'docs')").fetchall()  # the default
    assert {r[0] for r in hybrid[:2]} == {JA[1], JA[2]} and len(hybrid) == 3
    assert [r[1] for r in hybrid] == sorted((r[1] for r in hybrid), reverse=True)
    vector = conn.execute("SELECT content, distance, score FROM search('ゲーム', 6, 'docs', 'vector')").fetchall()
    assert len(vector) == 6 and all(r[2] is None for r in vector)
    english = conn.execute("SELECT content FROM search('wars', 5, 'docs', 'lexical')").fetchall()
    assert english == [(JA[5],)]  # 'wars' and 'war' share the english stem


def test_hybrid_embeds_the_query_once(conn, docs):
    before = model_calls(conn)
    conn.execute("SELECT * FROM search('ゲーム', 3, 'docs')").fetchall()
    assert model_calls(conn) - before == 1
    before = model_calls(conn)
    conn.execute("SELECT * FROM search('ゲーム', 3, 'docs', 'lexical')").fetchall()
    assert model_calls(conn) == before  # the lexical mode never runs the model


@pytest.mark.parametrize("query", ["。。。", "", "   ", "!!!???", "の", "'\\\"&|!():*<->", "ゲーム game 游戏 게임",
                                   "ゲーム" * 3_333], ids=["punct-ja", "empty", "spaces", "punct", "particle",
                                                           "tsquery-syntax", "mixed-scripts", "longest"])
def test_odd_queries_give_defined_results(conn, docs, query):
    lexical = conn.execute("SELECT count(*) FROM search(%s, 5, 'docs', 'lexical')", (query,)).fetchone()[0]
    hybrid = conn.execute("SELECT count(*) FROM search(%s, 5, 'docs')", (query,)).fetchone()[0]
    # The one row shares no lexeme with any of these queries; the vector side always finds it.
    assert lexical == 0 and hybrid == 1
    assert conn.execute("SELECT 1").fetchone() == (1,)


def test_a_query_longer_than_the_lexical_limit_is_a_clear_54000(conn, docs):
    for mode in ("lexical", "hybrid"):
        with pytest.raises(psycopg.errors.ProgramLimitExceeded, match="search query of 900000 characters") as info:
            conn.execute("SELECT count(*) FROM search(%s, 5, 'docs', %s)", ("ゲーム" * 300_000, mode))
        assert "shorter query" in info.value.diag.message_hint
    vector = conn.execute("SELECT count(*) FROM search(%s, 5, 'docs', 'vector')", ("ゲーム" * 300_000,))
    assert vector.fetchone() == (1,)  # the model reads its window of any query


def test_bad_modes_and_configs_are_clear_errors(conn, docs):
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="mode must be"):
        conn.execute("SELECT * FROM search('x', 5, 'docs', 'fuzzy')")
    conn.execute("CREATE TABLE plain (id int PRIMARY KEY, body text)")
    conn.execute("CALL pgbert.enable_embedding('plain', 'body')")
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match="no lexical side"):
        conn.execute("SELECT * FROM search('x', 5, 'plain', 'hybrid')")
    assert conn.execute("SELECT count(*) FROM search('x', 5, 'plain')").fetchone() == (0,)  # vector: the default
    conn.execute("CREATE TABLE other (id int PRIMARY KEY, body text)")
    for config in ("klingon", "english; DROP TABLE docs", ""):
        with pytest.raises(psycopg.errors.InvalidParameterValue, match="lexical must be"):
            conn.execute("CALL pgbert.enable_embedding('other', 'body', lexical => %s)", (config,))
    assert conn.execute("SELECT to_regclass('docs') IS NOT NULL").fetchone() == (True,)


@pytest.mark.parametrize("config, query, expected", [
    ("japanese", "遊ぶ", "パズルゲームで遊びましょう"), ("english", "servers", "PostgreSQL is a database server"),
    ("simple", "postgresql", "PostgreSQL is a database server")])
def test_each_kind_of_lexical_config(conn, config, query, expected):
    conn.execute("CREATE TABLE t (id int PRIMARY KEY, body text)")
    conn.execute("CALL pgbert.enable_embedding('t', 'body', lexical => %s)", (config,))
    conn.execute("INSERT INTO t SELECT i, b FROM unnest(%s::text[]) WITH ORDINALITY AS u(b, i)", (JA,))
    assert conn.execute("SELECT content FROM search(%s, 1, 't', 'lexical')", (query,)).fetchone() == (expected,)


def test_both_sides_use_their_indexes(conn, docs):
    conn.execute("INSERT INTO docs SELECT g, 'パズルゲーム ' || g FROM generate_series(2, 300) g")
    conn.execute("ANALYZE docs")
    notices = []
    conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
    conn.execute("LOAD 'auto_explain'")
    for setting in ("log_min_duration = 0", "log_nested_statements = on", "log_level = notice"):
        conn.execute(f"SET auto_explain.{setting}")
    conn.execute("SET enable_seqscan = off")  # 300 rows: make the planner show what it would do at scale
    conn.execute("SELECT * FROM search('ゲーム', 5, 'docs')").fetchall()
    plans = "\n".join(notices)
    assert "Index Scan using docs_body_embedding_idx" in plans
    assert "Bitmap Index Scan on docs_body_lexemes_idx" in plans


def test_models_with_prompts_embed_queries_and_documents_with_theirs(conn):
    """E5-style models: documents with 'passage: ', queries with 'query: ' (a tiny random XLM-R here)."""
    bundle = tiny_bundle_path("tiny-xlmr-e5", xlmr=True)
    conn.execute("DROP TABLE text_embeddings")
    conn.execute("SELECT pgbert.use_model(%s)", (bundle,))
    q, d = conn.execute("SELECT embed('ancient wars', 'query')::text, embed('ancient wars', 'document')::text"
                        ).fetchone()
    assert q != d
    assert conn.execute("SELECT embed('x') = embed('x', 'document')").fetchone() == (True,)
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="kind must be"):
        conn.execute("SELECT embed('x', 'passage')")
    conn.execute("CREATE TABLE docs (id int PRIMARY KEY, body text)")
    conn.execute("CALL pgbert.enable_embedding('docs', 'body')")
    conn.execute("INSERT INTO docs VALUES (1, 'ancient wars'), (2, 'puzzle games')")
    assert conn.execute("SELECT count(*) FROM docs WHERE body_embedding = embed(body, 'document')"
                        ).fetchone() == (2,)
    row = conn.execute("SELECT distance, (SELECT body_embedding <=> embed('wars', 'query') FROM docs WHERE id = 1) "
                       "FROM search('wars', 2, 'docs') WHERE id = '1'").fetchone()
    assert row[0] == pytest.approx(row[1], abs=1e-6)
