"""Chunked tables: long texts are embedded window by window into <table>_chunks, kept exact in the row's own
transaction, readable only where the text is, and searched as rows with their best passage."""
import psycopg
import pytest

from helpers import CLUSTER

LONG = " ".join(f"Sentence number {i} talks about topic {i % 7} in some detail." for i in range(120))


def chunks(conn, table="docs") -> dict[int, list[tuple]]:
    """row_key -> [(chunk, start_char, end_char), ...] as stored."""
    got: dict[int, list[tuple]] = {}
    for key, chunk, start, end in conn.execute(
            f"SELECT row_key, chunk, start_char, end_char FROM {table}_chunks ORDER BY 1, 2"):
        got.setdefault(key, []).append((chunk, start, end))
    return got


def registered(conn) -> int:
    """Registry rows of this test's tables (the tutorial's text_embeddings is registered too)."""
    return conn.execute("SELECT count(*) FROM pgbert.embedded_tables "
                        "WHERE relid::text IN ('docs', 'nokey')").fetchone()[0]


def versions(conn) -> list:
    return conn.execute("SELECT xmin::text, row_key, chunk FROM docs_chunks ORDER BY 2, 3").fetchall()


@pytest.fixture()
def docs(conn):
    conn.execute("CREATE TABLE docs (id int PRIMARY KEY, body text, tag text)")
    conn.execute("CALL pgbert.enable_embedding('docs', 'body', chunk_tokens => 24, overlap_tokens => 4)")
    return conn


def assert_exact(conn):
    """Every row with text has chunks that are exact, ordered substrings covering its text; no others."""
    rows = dict(conn.execute("SELECT id, body FROM docs WHERE body IS NOT NULL").fetchall())
    stored = chunks(conn)
    assert set(stored) == set(rows)
    for key, spans in stored.items():
        text = rows[key]
        assert [c for c, _, _ in spans] == list(range(len(spans)))
        assert spans[0][1] == 0 and spans[-1][2] == len(text)
        for (_, _, end), (_, start, _) in zip(spans, spans[1:]):
            assert text[end:start].strip() == ""
    mismatched = conn.execute(
        "SELECT count(*) FROM docs d JOIN docs_chunks c ON c.row_key = d.id "
        "WHERE c.embedding <> embed(substr(d.body, c.start_char + 1, c.end_char - c.start_char))").fetchone()[0]
    assert mismatched == 0


def test_insert_copy_update_delete_truncate_keep_the_chunks_exact(docs):
    conn = docs
    conn.execute("INSERT INTO docs VALUES (1, %s, 'a'), (2, 'short', 'b'), (3, NULL, 'c')", (LONG,))
    assert len(chunks(conn)[1]) > 5 and len(chunks(conn)[2]) == 1
    assert_exact(conn)
    with conn.cursor().copy("COPY docs (id, body) FROM STDIN") as copy:
        for i in range(10, 20):
            copy.write_row((i, LONG[: 200 * (i - 9)]))
    assert_exact(conn)
    before = versions(conn)
    conn.execute("UPDATE docs SET tag = 'other'")  # not the text: no chunk is touched
    assert versions(conn) == before
    conn.execute("UPDATE docs SET body = 'now short' WHERE id = 1")
    conn.execute("UPDATE docs SET body = %s WHERE id = 3", (LONG,))  # NULL -> text
    conn.execute("UPDATE docs SET id = 4 WHERE id = 2")  # a new key
    assert_exact(conn)
    assert len(chunks(conn)[1]) == 1 and len(chunks(conn)[3]) > 5 and 2 not in chunks(conn)
    conn.execute("DELETE FROM docs WHERE id >= 10")
    assert_exact(conn)
    conn.execute("INSERT INTO docs VALUES (5, 'x') ON CONFLICT (id) DO NOTHING")
    conn.execute("INSERT INTO docs VALUES (5, 'upserted text') ON CONFLICT (id) DO UPDATE SET body = EXCLUDED.body")
    assert_exact(conn)
    conn.execute("TRUNCATE docs")
    assert chunks(conn) == {}
    assert conn.execute("SELECT pgbert.pending_rows('docs')").fetchone() == (0,)


def test_a_rollback_leaves_no_chunk(docs):
    conn = docs
    with pytest.raises(psycopg.errors.DivisionByZero), conn.transaction():
        conn.execute("INSERT INTO docs VALUES (1, %s)", (LONG,))
        assert len(chunks(conn)[1]) > 5  # inside the transaction they are there
        conn.execute("SELECT 1 / 0")
    assert chunks(conn) == {}
    conn.execute("INSERT INTO docs VALUES (1, %s)", (LONG,))  # no batch state left behind
    assert_exact(conn)


def test_backfill_pending_rows_disable_and_drop(conn):
    conn.execute("CREATE TABLE docs (id int PRIMARY KEY, body text)")
    conn.execute("INSERT INTO docs SELECT g, repeat('old text ' || g || '. ', 30) FROM generate_series(1, 12) g")
    conn.execute("CALL pgbert.enable_embedding('docs', 'body', chunk_tokens => 24, batch_size => 5)")
    assert_exact(conn)  # backfilled
    conn.execute("ALTER TABLE docs DISABLE TRIGGER USER")
    conn.execute("INSERT INTO docs VALUES (20, %s), (21, NULL)", (LONG,))
    conn.execute("ALTER TABLE docs ENABLE TRIGGER USER")
    assert conn.execute("SELECT pgbert.pending_rows('docs')").fetchone() == (1,)
    conn.execute("CALL pgbert.backfill('docs')")
    assert conn.execute("SELECT pgbert.pending_rows('docs')").fetchone() == (0,)
    assert_exact(conn)
    assert conn.execute("SELECT count(*) FROM pg_indexes WHERE tablename = 'docs_chunks' "
                        "AND indexdef LIKE '%hnsw%'").fetchone() == (1,)
    conn.execute("CALL pgbert.disable_embedding('docs')")
    assert conn.execute("SELECT to_regclass('docs_chunks')").fetchone() == (None,)
    assert conn.execute("SELECT tgname FROM pg_trigger WHERE tgrelid = 'docs'::regclass").fetchall() == []
    writer = conn.execute("SELECT to_regprocedure('pgbert.write_back_' || 'docs'::regclass::oid || '()')")
    assert writer.fetchone() == (None,)
    conn.execute("INSERT INTO docs VALUES (30, 'after disable')")  # no trigger left to fail

    conn.execute("CALL pgbert.enable_embedding('docs', 'body', chunk_tokens => 24)")
    conn.execute("DROP TABLE docs_chunks")  # the chunks gone: embedding turns off, the table stays usable
    assert registered(conn) == 0
    conn.execute("INSERT INTO docs VALUES (31, 'still insertable')")
    conn.execute("CALL pgbert.enable_embedding('docs', 'body', chunk_tokens => 24)")
    conn.execute("DROP TABLE docs")
    assert conn.execute("SELECT to_regclass('docs_chunks')").fetchone() == (None,)
    assert registered(conn) == 0


def test_search_returns_distinct_rows_with_their_best_passage(docs):
    conn = docs
    conn.execute("INSERT INTO docs VALUES (1, %s), (2, %s), (3, 'unrelated words about cats')",
                 (LONG + " The violet zebra sleeps under the moon.", LONG))
    # The tiny test model has random weights: query with one stored passage, which it finds at distance 0.
    key, start, end, passage = conn.execute(
        "SELECT row_key, start_char, end_char, substr(d.body, start_char + 1, end_char - start_char) "
        "FROM docs_chunks JOIN docs d ON d.id = row_key WHERE row_key = 1 ORDER BY chunk DESC LIMIT 1").fetchone()
    rows = conn.execute("SELECT id, content, passage, passage_start, passage_end, distance "
                        "FROM search(%s, 10, 'docs')", (passage,)).fetchall()
    assert sorted(r[0] for r in rows) == ["1", "2", "3"]  # each row once, however many chunks matched
    assert rows[0][0] == "1" and rows[0][2:5] == (passage, start, end) and rows[0][5] == pytest.approx(0, abs=1e-5)
    for _, content, passage, start, end, _ in rows:
        assert passage == content[start:end]
    assert [r[5] for r in rows] == sorted(r[5] for r in rows)


def test_hybrid_search_works_on_chunks(conn):
    conn.execute("CREATE TABLE docs (id int PRIMARY KEY, body text)")
    conn.execute("CALL pgbert.enable_embedding('docs', 'body', chunk_tokens => 24, lexical => 'japanese')")
    conn.execute("INSERT INTO docs VALUES (1, %s), (2, %s)",
                 (LONG + " 東京の図書館は月曜日に休みです。", "大阪の天気は晴れです。" * 20))
    for mode in ("hybrid", "lexical"):
        rows = conn.execute("SELECT id, passage FROM search('図書館', 2, 'docs', %s)", (mode,)).fetchall()
        assert rows[0][0] == "1" and "図書館" in rows[0][1]
    assert conn.execute("SELECT count(*) FROM docs_chunks WHERE lexemes IS NULL").fetchone() == (0,)


def test_a_role_that_may_not_read_the_table_cannot_read_its_chunks(conn, role):
    conn.execute("CREATE TABLE docs (id int PRIMARY KEY, body text, secret text)")
    conn.execute("CALL pgbert.enable_embedding('docs', 'body', chunk_tokens => 24)")
    writer, outsider, reader = role("c_writer", "pgbert_user"), role("c_outsider", "pgbert_user"), role("c_reader",
                                                                                                         "pgbert_user")
    conn.execute(f"GRANT INSERT ON docs TO {writer}")
    conn.execute(f"GRANT SELECT (id, body) ON docs TO {reader}")
    conn.execute(f"SET ROLE {writer}")
    conn.execute("INSERT INTO docs VALUES (1, %s, 's'), (2, 'hidden by policy', 's')", (LONG,))  # INSERT only
    conn.execute("RESET ROLE")
    assert_exact(conn)
    conn.execute(f"SET ROLE {outsider}")
    assert conn.execute("SELECT count(*) FROM docs_chunks").fetchone() == (0,)
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("SELECT * FROM search('topic', 3, 'docs')")
    conn.execute("RESET ROLE")
    conn.execute("ALTER TABLE docs ENABLE ROW LEVEL SECURITY")
    conn.execute(f"CREATE POLICY only_one ON docs FOR SELECT TO {reader} USING (id = 1)")
    conn.execute(f"SET ROLE {reader}")
    assert conn.execute("SELECT DISTINCT row_key FROM docs_chunks").fetchall() == [(1,)]
    assert conn.execute("SELECT id FROM search('hidden by policy', 5, 'docs')").fetchall() == [("1",)]
    conn.execute("RESET ROLE")


def test_bad_chunking_arguments_are_refused_clearly(conn):
    conn.execute("CREATE TABLE docs (id int PRIMARY KEY, body text)")
    for args, error, text in [
        ("chunk_tokens => 0", psycopg.errors.InvalidParameterValue, "chunk_tokens must be at least 1"),
        ("chunk_tokens => 10000", psycopg.errors.InvalidParameterValue, "chunk_tokens must be 1.."),
        ("chunk_tokens => 16, overlap_tokens => 16", psycopg.errors.InvalidParameterValue, "overlap_tokens"),
        ("chunk_tokens => 16, vector_column => 'v'", psycopg.errors.InvalidParameterValue, "keeps its vectors"),
    ]:
        with pytest.raises(error, match=text):
            conn.execute(f"CALL pgbert.enable_embedding('docs', 'body', {args})")
    conn.execute("CREATE TABLE nokey (body text)")
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match="primary key"):
        conn.execute("CALL pgbert.enable_embedding('nokey', 'body', chunk_tokens => 16)")
    assert registered(conn) == 0
    assert conn.execute("SELECT to_regclass('docs_chunks')").fetchone() == (None,)


def test_a_text_past_the_chunk_limit_is_refused_and_nothing_is_lost(docs):
    conn = docs
    conn.execute("UPDATE pgbert.settings SET value = '5' WHERE name = 'max_chunks_per_row'")
    conn.execute("INSERT INTO docs VALUES (1, 'fits')")
    with pytest.raises(psycopg.errors.ProgramLimitExceeded, match="max_chunks_per_row") as info:
        conn.execute("INSERT INTO docs VALUES (2, %s), (3, 'small')", (LONG,))
    assert "raise max_chunks_per_row" in info.value.diag.message_hint
    assert conn.execute("SELECT id FROM docs").fetchall() == [(1,)]  # the statement, not the table, failed
    huge = "word " * 4_000_000  # 20 MB: refused after a bounded amount of work
    with pytest.raises(psycopg.errors.ProgramLimitExceeded, match="max_chunks_per_row"):  # not max_input_chars
        conn.execute("INSERT INTO docs VALUES (4, %s)", (huge,))
    assert_exact(conn)


def test_the_owner_change_follows_to_the_chunks(conn, role):
    owner = role("c_owner", "pgbert_user")
    conn.execute("CREATE TABLE docs (id int PRIMARY KEY, body text)")
    conn.execute("CALL pgbert.enable_embedding('docs', 'body', chunk_tokens => 24)")
    conn.execute(f"ALTER TABLE docs OWNER TO {owner}")
    assert conn.execute("SELECT tableowner FROM pg_tables WHERE tablename = 'docs_chunks'").fetchone() == (owner,)
    assert conn.execute("SELECT proowner::regrole::text FROM pg_proc WHERE proname = 'write_back_' || %s",
                        (conn.execute("SELECT 'docs'::regclass::oid").fetchone()[0],)).fetchone() == (owner,)
    conn.execute(f"SET ROLE {owner}")
    conn.execute("INSERT INTO docs VALUES (1, %s)", (LONG,))
    conn.execute("RESET ROLE")
    assert_exact(conn)
    with psycopg.connect(CLUSTER.url(conn.info.dbname), autocommit=True) as other:
        assert other.execute("SELECT count(*) FROM search('topic', 1, 'docs')").fetchone() == (1,)


@pytest.mark.slow
def test_a_needle_at_the_end_of_a_long_text_is_found_first(conn, default_bundle):
    """The issue's bar, with real weights and real text: 1,000 rows of Debian package descriptions, one of
    them 50,000 characters long with one sentence at its very end that a query asks about."""
    from pgbert.corpus import load_packages

    packages = [p for p in load_packages(echo=print) if p.description]
    conn.execute("DROP TABLE text_embeddings")  # holds the tiny model's dimension
    conn.execute("SELECT pgbert.use_model(%s)", (default_bundle,))
    conn.execute("CREATE TABLE docs (id int PRIMARY KEY, body text)")
    conn.execute("CALL pgbert.enable_embedding('docs', 'body', chunk_tokens => 256)")
    needle = "The lighthouse keeper on Rebun Island feeds the harbour seals with sardines every morning at dawn."
    haystack, i = [], 999
    while sum(len(p) + 2 for p in haystack) < 50_000:
        haystack.append(f"{packages[i].summary}\n{packages[i].description}")
        i += 1
    long_text = "\n\n".join(haystack) + "\n\n" + needle
    assert len(long_text) > 50_000 and long_text.endswith(needle)
    with conn.cursor().copy("COPY docs (id, body) FROM STDIN") as copy:
        copy.write_row((0, long_text))
        for j, package in enumerate(packages[1:1000], 1):
            copy.write_row((j, f"{package.summary}\n{package.description}"))
    assert conn.execute("SELECT pgbert.pending_rows('docs')").fetchone() == (0,)
    hits = conn.execute("SELECT id, passage, passage_end FROM search(%s, 10, 'docs')",
                        ("Who feeds the seals on Rebun Island, and with what?",)
                        ).fetchall()
    assert hits[0][0] == "0" and needle in hits[0][1] and hits[0][2] == len(long_text)
    assert len({h[0] for h in hits}) == 10
