"""Model changes of chunked tables (issue 22): change_model fills <table>_chunks_<model> with the new model's chunks
while writes keep both chunk tables and search() answers from the current one; the switch moves search() to the
new chunks; abort, drop_old_vectors, disable_embedding and DROP TABLE leave no chunk table behind."""
import threading

import psycopg
import pytest

from helpers import alembic, assert_same_vectors, db_url, tiny_bundle_path

LONG = " ".join(f"Sentence number {i} talks about topic {i % 7} in some detail." for i in range(40))


@pytest.fixture()
def wide(conn):
    """A second registered model, 64-d, beside the default 32-d tiny BERT (same tokenizer and window)."""
    conn.execute("SELECT pgbert.add_model('wide', %s)", (tiny_bundle_path("tiny-bert-64", hidden=64),))
    return "wide"


def make_docs(conn, lexical=None, strategy="batch"):
    conn.execute("CREATE TABLE docs (id int PRIMARY KEY, body text, tag text)")
    conn.execute("INSERT INTO docs SELECT g, left(%s, 150 * g), 't' FROM generate_series(1, 8) g", (LONG,))
    conn.execute("INSERT INTO docs VALUES (9, NULL, 'no text')")
    conn.execute("CALL pgbert.enable_embedding('docs', 'body', chunk_tokens => 24, overlap_tokens => 4, "
                 "lexical => %s, strategy => %s)", (lexical, strategy))
    if strategy == "queue":
        conn.execute("CALL pgbert.process_queue()")


def begin(conn, table="docs", model="wide"):
    """change_model's first step alone, as it runs it: the change is then in progress."""
    with conn.transaction():
        conn.execute("SELECT pgbert._prove_caller(%s, true)", (table,))
        conn.execute("SELECT pgbert.model_change_step(%s, 'begin', %s)", (table, model))


def registry(conn, table="docs") -> tuple:
    """(model, chunk table, next model, next chunk table, old chunk table) as pgbert.enabled_tables shows them."""
    return conn.execute(
        "SELECT model_name, chunk_relid::regclass::text, next_model_name, next_chunk_relid::regclass::text, "
        "old_chunk_relid::regclass::text FROM pgbert.enabled_tables WHERE relid = %s::regclass", (table,)).fetchone()


def chunk_tables(conn) -> list[str]:
    return [r[0] for r in conn.execute("SELECT relname::text FROM pg_class WHERE relname ~ '_chunks' AND "
                                       "relnamespace = 'public'::regnamespace AND relkind IN ('r', 'p') ORDER BY 1")]


def spans(conn, chunks) -> dict[int, list[tuple]]:
    got: dict[int, list[tuple]] = {}
    for key, chunk, start, end in conn.execute(f"SELECT row_key, chunk, start_char, end_char FROM {chunks} "
                                               "ORDER BY 1, 2"):
        got.setdefault(key, []).append((chunk, start, end))
    return got


def assert_chunks_exact(conn, chunks, model, table="docs", keys=None):
    """Every row with text (or those of keys) has exact chunks in `chunks` covering its text, each embedded by
    `model` from its passage; no other row has any."""
    rows = dict(conn.execute(f"SELECT id, body FROM {table} WHERE body IS NOT NULL").fetchall())
    stored = spans(conn, chunks)
    assert set(stored) == (set(rows) if keys is None else set(keys))
    for key, got in stored.items():
        assert [c for c, _, _ in got] == list(range(len(got)))
        assert got[0][1] == 0 and got[-1][2] == len(rows[key])
    passage = "substr(t.body, c.start_char + 1, c.end_char - c.start_char)"
    assert_same_vectors(conn, conn.execute(
        f"SELECT {passage}, c.embedding::text, embed({passage}, model => %s)::text "
        f"FROM {table} t JOIN {chunks} c ON c.row_key = t.id", (model,)).fetchall())


def assert_searched_in(conn, chunks, model, query, k, table="docs"):
    """search() returns the k rows whose best chunk in `chunks`, embedded by `model`, is nearest to the query, each
    at that chunk's distance (an exact scan of `chunks`; rows whose texts share a passage tie)."""
    metric = conn.execute("SELECT metric FROM pgbert.enabled_tables WHERE relid = %s::regclass", (table,)).fetchone()[0]
    op = {"cosine": "<=>", "l2": "<->", "inner_product": "<#>"}[metric]
    best = dict(conn.execute(f"SELECT row_key::text, min(embedding {op} embed(%s, model => %s, kind => 'query')) "
                             f"FROM {chunks} GROUP BY row_key", (query, model)).fetchall())
    conn.execute("SET enable_indexscan = off")  # exact, as the scan it is compared with
    try:
        got = conn.execute("SELECT id, distance FROM search(%s, %s, %s, 'vector')", (query, k, table)).fetchall()
    finally:
        conn.execute("RESET enable_indexscan")
    assert [d for _, d in got] == pytest.approx(sorted(best.values())[:k], abs=1e-6)
    assert all(best[key] == pytest.approx(d, abs=1e-6) for key, d in got)


@pytest.mark.parametrize("lexical", [None, "english"])
def test_a_chunked_table_moves_while_it_is_written_and_searched(conn, wide, lexical):
    make_docs(conn, lexical)
    begin(conn)
    assert registry(conn) == ("tiny-bert", "docs_chunks", "wide", "docs_chunks_wide", None)
    assert conn.execute("SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = "
                        "'docs_chunks_wide'::regclass AND attname = 'embedding'").fetchone() == ("vector(64)",)
    conn.execute("INSERT INTO docs VALUES (20, %s, 'new'), (21, 'a short new row', 'new')", (LONG,))
    with conn.cursor().copy("COPY docs (id, body) FROM STDIN") as copy:
        copy.write_row((22, LONG[:400]))
    conn.execute("UPDATE docs SET body = 'now a short text' WHERE id = 1")
    conn.execute("UPDATE docs SET tag = 'not the text' WHERE id = 2")  # touches no chunk
    conn.execute("DELETE FROM docs WHERE id = 3")
    assert_chunks_exact(conn, "docs_chunks", "tiny-bert")
    assert_chunks_exact(conn, "docs_chunks_wide", "wide", keys={1, 20, 21, 22})  # what was written meanwhile
    # search() answers from the current model's chunks throughout
    assert_searched_in(conn, "docs_chunks", "tiny-bert", "topic 3", 4)
    if lexical:
        assert len(conn.execute("SELECT id FROM search('topic sentence', 4, 'docs', 'hybrid')").fetchall()) == 4
    conn.execute("CALL pgbert.change_model('docs', 'wide', batch_size => 3)")  # resumes: backfill, index, switch
    assert registry(conn) == ("wide", "docs_chunks_wide", None, None, "docs_chunks")
    assert conn.execute("SELECT dimension, index_name IS NOT NULL, pgbert.pending_rows('docs') FROM "
                        "pgbert.enabled_tables WHERE relid = 'docs'::regclass").fetchone() == (64, True, 0)
    assert_chunks_exact(conn, "docs_chunks_wide", "wide")
    assert_searched_in(conn, "docs_chunks_wide", "wide", "topic 3", 4)
    if lexical:
        assert conn.execute("SELECT count(*) FROM docs_chunks_wide WHERE lexemes IS NULL").fetchone() == (0,)
        assert conn.execute("SELECT pgbert._index_on('docs_chunks_wide', 'lexemes', 'gin') IS NOT NULL").fetchone() \
            == (True,)
        hits = conn.execute("SELECT id, passage FROM search('topic sentence', 3, 'docs', 'lexical')").fetchall()
        assert len(hits) == 3 and all(passage for _, passage in hits)
    conn.execute("CALL pgbert.drop_old_vectors('docs')")
    assert registry(conn) == ("wide", "docs_chunks_wide", None, None, None)
    assert chunk_tables(conn) == ["docs_chunks_wide"]
    conn.execute("INSERT INTO docs VALUES (30, %s, 'after')", (LONG[:500],))
    conn.execute("UPDATE docs SET body = body || ' More.' WHERE id = 4")
    assert_chunks_exact(conn, "docs_chunks_wide", "wide")
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match="no old chunks are kept"):
        conn.execute("CALL pgbert.drop_old_vectors('docs')")


def test_search_and_writes_never_fail_across_the_switch(conn, wide):
    make_docs(conn)
    stop, errors, short = threading.Event(), [], []

    def write(n):
        with psycopg.connect(db_url(conn.info.dbname), autocommit=True) as c:
            i = 0
            while not stop.is_set():
                i += 1
                c.execute("INSERT INTO docs VALUES (%s, %s)", (1000 * n + i, f"written by {n}, row {i}. " + LONG[:200]))
                c.execute("UPDATE docs SET body = body || ' (edited)' WHERE id = %s", (i % 8 + 1,))
                c.execute("DELETE FROM docs WHERE id = %s", (1000 * n + i - 1,))

    def search(_):
        with psycopg.connect(db_url(conn.info.dbname), autocommit=True) as c:
            while not stop.is_set():
                if len(c.execute("SELECT id FROM search('topic 5', 5, 'docs')").fetchall()) < 5:
                    short.append(1)

    def guard(fn, n):
        try:
            fn(n)
        except Exception as exc:  # a thread's exception is otherwise lost
            errors.append(exc)

    threads = [threading.Thread(target=guard, args=(f, n)) for f, n in ((write, 1), (write, 2), (search, 0))]
    for t in threads:
        t.start()
    try:
        conn.execute("CALL pgbert.change_model('docs', 'wide', batch_size => 2)")
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert errors == [] and short == []
    assert registry(conn) == ("wide", "docs_chunks_wide", None, None, "docs_chunks")
    assert_chunks_exact(conn, "docs_chunks_wide", "wide")


def test_abort_leaves_the_table_as_it_was(conn, wide):
    make_docs(conn)
    triggers = "SELECT tgname FROM pg_trigger WHERE tgrelid = 'docs'::regclass ORDER BY 1"
    before = conn.execute(triggers).fetchall()
    begin(conn)
    conn.execute("INSERT INTO docs VALUES (20, %s, 'during')", (LONG[:300],))
    with pytest.raises(psycopg.errors.ObjectInUse, match="already moving to model wide"):
        conn.execute("CALL pgbert.change_model('docs', 'tiny-bert')")
    conn.execute("CALL pgbert.abort_model_change('docs')")
    assert registry(conn) == ("tiny-bert", "docs_chunks", None, None, None)
    assert chunk_tables(conn) == ["docs_chunks"]
    assert conn.execute(triggers).fetchall() == before
    conn.execute("INSERT INTO docs VALUES (21, %s, 'after')", (LONG[:500],))
    assert_chunks_exact(conn, "docs_chunks", "tiny-bert")
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match="no model change is in progress"):
        conn.execute("CALL pgbert.abort_model_change('docs')")
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match="have no chunks of model wide yet"):
        begin(conn)  # a switch before the backfill is refused: rows would have no chunks
        with conn.transaction():
            conn.execute("SELECT pgbert._prove_caller('docs', true)")
            conn.execute("SELECT pgbert.model_change_step('docs', 'switch', 'wide')")
    conn.execute("CALL pgbert.change_model('docs', 'wide')")  # the change goes on from where it was
    assert registry(conn) == ("wide", "docs_chunks_wide", None, None, "docs_chunks")
    with pytest.raises(psycopg.errors.ObjectInUse, match="still keeps the vectors of its previous model"):
        conn.execute("CALL pgbert.change_model('docs', 'tiny-bert')")


def test_only_the_owner_moves_a_chunked_table_and_its_chunk_tables_follow_the_owner(conn, wide, role):
    owner, other = role("mcc_owner", "pgbert_user"), role("mcc_other", "pgbert_user")
    conn.execute("CREATE TABLE docs (id int PRIMARY KEY, body text, tag text)")
    conn.execute(f"ALTER TABLE docs OWNER TO {owner}")
    conn.execute(f"GRANT CREATE ON SCHEMA public TO {owner}, {other}")  # its chunk tables' indexes are built as it
    conn.execute(f"GRANT SELECT, INSERT ON docs TO {other}")
    conn.execute(f"SET ROLE {owner}")  # a plain role: every step runs with the rights pgbert_user grants
    conn.execute("CALL pgbert.enable_embedding('docs', 'body', chunk_tokens => 24, overlap_tokens => 4)")
    conn.execute("INSERT INTO docs VALUES (1, %s), (2, 'two')", (LONG[:600],))
    begin(conn)
    conn.execute(f"SET ROLE {other}")
    conn.execute("INSERT INTO docs VALUES (3, %s)", (LONG[:300],))  # INSERT only: both chunk tables get its chunks
    for call in ("CALL pgbert.change_model('docs', 'wide')", "CALL pgbert.abort_model_change('docs')",
                 "CALL pgbert.drop_old_vectors('docs')"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(call)
    # the new chunks are readable where the text is, like the current ones (the same policy)
    assert conn.execute("SELECT count(DISTINCT row_key) FROM docs_chunks_wide").fetchone() == (1,)
    conn.execute(f"SET ROLE {owner}")
    conn.execute("CALL pgbert.change_model('docs', 'wide', batch_size => 1)")
    assert registry(conn) == ("wide", "docs_chunks_wide", None, None, "docs_chunks")
    assert_chunks_exact(conn, "docs_chunks_wide", "wide")
    conn.execute("RESET ROLE")
    conn.execute(f"ALTER TABLE docs OWNER TO {other}")  # the table changes hands: its chunk tables, old too, follow
    assert conn.execute("SELECT DISTINCT relowner::regrole::text FROM pg_class WHERE relname ~ '^docs_chunks'"
                        ).fetchall() == [(other,)]
    conn.execute(f"SET ROLE {owner}")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("CALL pgbert.drop_old_vectors('docs')")
    conn.execute(f"SET ROLE {other}")
    conn.execute("INSERT INTO docs VALUES (4, %s)", (LONG[:200],))  # written back as the new owner
    conn.execute("CALL pgbert.drop_old_vectors('docs')")
    conn.execute("RESET ROLE")
    assert chunk_tables(conn) == ["docs_chunks_wide"]
    assert_chunks_exact(conn, "docs_chunks_wide", "wide")


def test_drop_table_and_disable_leave_no_chunk_table(conn, wide):
    make_docs(conn)
    begin(conn)
    conn.execute("DROP TABLE docs")  # during the change
    assert chunk_tables(conn) == []
    make_docs(conn)
    conn.execute("CALL pgbert.change_model('docs', 'wide')")
    assert chunk_tables(conn) == ["docs_chunks", "docs_chunks_wide"]
    conn.execute("DROP TABLE docs")  # after it, the old chunks kept
    assert chunk_tables(conn) == []
    make_docs(conn)
    begin(conn)
    conn.execute("CALL pgbert.disable_embedding('docs')")
    assert chunk_tables(conn) == []
    assert conn.execute("SELECT count(*) FROM pgbert.embedded_tables WHERE relid::text = 'docs'").fetchone() == (0,)


def test_a_model_change_chunk_table_dropped_by_hand_is_forgotten(conn, wide):
    make_docs(conn)
    begin(conn)
    conn.execute("DROP TABLE docs_chunks_wide")  # the change is aborted
    assert registry(conn) == ("tiny-bert", "docs_chunks", None, None, None)
    conn.execute("INSERT INTO docs VALUES (20, %s)", (LONG[:300],))
    assert_chunks_exact(conn, "docs_chunks", "tiny-bert")
    conn.execute("CALL pgbert.change_model('docs', 'wide')")
    conn.execute("DROP TABLE docs_chunks")  # the old chunks, by hand
    assert registry(conn) == ("wide", "docs_chunks_wide", None, None, None)
    conn.execute("CALL pgbert.change_model('docs', 'tiny-bert')")  # and back: nothing old is kept any more
    assert registry(conn) == ("tiny-bert", "docs_chunks_tiny_bert", None, None, "docs_chunks_wide")


def test_refused_clearly_when_the_name_is_taken_or_the_new_model_reads_less(conn, wide):
    narrow = tiny_bundle_path("tiny-bert-narrow", max_seq_length=16)  # reads 14 tokens at once
    conn.execute("SELECT pgbert.add_model('narrow', %s)", (narrow,))
    make_docs(conn)
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="chunked in 24 tokens, more than model narrow"):
        conn.execute("CALL pgbert.change_model('docs', 'narrow')")
    conn.execute("CREATE TABLE docs_chunks_wide (x int)")
    with pytest.raises(psycopg.errors.DuplicateTable, match="docs_chunks_wide already exists"):
        conn.execute("CALL pgbert.change_model('docs', 'wide')")
    assert registry(conn) == ("tiny-bert", "docs_chunks", None, None, None)


def test_a_queued_chunked_table_moves_too(conn, wide):
    make_docs(conn, strategy="queue")
    assert_chunks_exact(conn, "docs_chunks", "tiny-bert")
    begin(conn)
    conn.execute("INSERT INTO docs VALUES (20, %s), (21, 'queued')", (LONG[:400],))
    conn.execute("UPDATE docs SET body = 'changed while moving' WHERE id = 2")
    assert_chunks_exact(conn, "docs_chunks_wide", "wide", keys={2, 20, 21})  # written at once, for the new model
    conn.execute("CALL pgbert.change_model('docs', 'wide', batch_size => 4)")  # the queue was not run meanwhile
    conn.execute("CALL pgbert.process_queue()")  # what was queued for the old chunk table needs nothing now
    assert conn.execute("SELECT count(*) FROM pgbert.embedding_queue WHERE relid = 'docs'::regclass").fetchone() == (0,)
    conn.execute("INSERT INTO docs VALUES (22, %s)", (LONG[:300],))  # after the switch: queued for the new model
    conn.execute("CALL pgbert.process_queue()")
    assert_chunks_exact(conn, "docs_chunks_wide", "wide")


def test_a_downgrade_refuses_while_a_change_keeps_chunk_tables(conn, wide):
    make_docs(conn)
    begin(conn)
    url = db_url(conn.info.dbname)
    refused = alembic(url, "downgrade", "0012", check=False)
    assert refused.returncode != 0 and "cannot downgrade below 0013" in refused.stderr
    conn.execute("CALL pgbert.abort_model_change('docs')")
    assert chunk_tables(conn) == ["docs_chunks"]


def test_an_odd_long_table_name_gets_a_valid_chunk_table_name(conn, wide):
    name = "Doc; DROP TABLE x --" + "y" * 45  # 65 characters: cut, quoted, never spliced
    conn.execute(f'CREATE TABLE "{name[:63]}" (id int PRIMARY KEY, body text)')
    table = conn.execute("SELECT oid::regclass::text FROM pg_class WHERE relname = %s", (name[:63],)).fetchone()[0]
    conn.execute("CALL pgbert.enable_embedding(%s, 'body', chunk_tokens => 24)", (table,))
    conn.execute(f"INSERT INTO {table} VALUES (1, %s)", (LONG[:300],))
    conn.execute("CALL pgbert.change_model(%s, 'wide')", (table,))
    chunks = conn.execute("SELECT c.relname::text FROM pgbert.enabled_tables e JOIN pg_class c "
                          "ON c.oid = e.chunk_relid WHERE e.relid = %s::regclass", (table,)).fetchone()[0]
    assert chunks.endswith("_chunks_wide") and chunks.startswith("Doc; DROP TABLE x") and len(chunks.encode()) <= 63
    assert conn.execute(f'SELECT count(*) FROM "{chunks}"').fetchone()[0] > 1


def make_parts(conn):
    """parts: RANGE (id) into parts_low [0, 100) and parts_high [100, 200), itself HASH (id) in two."""
    conn.execute("CREATE TABLE parts (id int PRIMARY KEY, body text, tag text) PARTITION BY RANGE (id)")
    conn.execute("CREATE TABLE parts_low PARTITION OF parts FOR VALUES FROM (0) TO (100)")
    conn.execute("CREATE TABLE parts_high PARTITION OF parts FOR VALUES FROM (100) TO (200) PARTITION BY HASH (id)")
    conn.execute("CREATE TABLE parts_high_0 PARTITION OF parts_high FOR VALUES WITH (MODULUS 2, REMAINDER 0)")
    conn.execute("CREATE TABLE parts_high_1 PARTITION OF parts_high FOR VALUES WITH (MODULUS 2, REMAINDER 1)")


def tree(conn, table) -> list[tuple]:
    return sorted(conn.execute(
        "SELECT t.level, coalesce(pg_get_expr(c.relpartbound, c.oid), '') FROM pg_partition_tree(%s) t "
        "JOIN pg_class c ON c.oid = t.relid", (table,)).fetchall())


def test_a_partitioned_chunked_table_moves_with_its_partitions(conn, wide):
    make_parts(conn)
    conn.execute("INSERT INTO parts SELECT g, left(%s, 100 * (g %% 7 + 1)) FROM generate_series(1, 5) g", (LONG,))
    conn.execute("INSERT INTO parts SELECT g, left(%s, 90 * (g %% 5 + 1)) FROM generate_series(150, 154) g", (LONG,))
    conn.execute("CALL pgbert.enable_embedding('parts', 'body', chunk_tokens => 24, overlap_tokens => 4)")
    begin(conn, "parts")
    assert tree(conn, "parts_chunks_wide") == tree(conn, "parts")  # partitioned as the table is
    conn.execute("INSERT INTO parts_low VALUES (6, %s)", (LONG[:350],))  # straight into a partition
    conn.execute("CREATE TABLE parts_late PARTITION OF parts FOR VALUES FROM (200) TO (300)")
    conn.execute("INSERT INTO parts VALUES (201, %s), (250, 'late and short')", (LONG[:250],))
    conn.execute("UPDATE parts SET id = 202 WHERE id = 2")  # moves to another partition: its chunks follow
    conn.execute("TRUNCATE parts_high_0")
    conn.execute("DROP TABLE parts_high_1")
    conn.execute("ALTER TABLE parts DETACH PARTITION parts_late")
    assert tree(conn, "parts_chunks") == tree(conn, "parts_chunks_wide") == tree(conn, "parts")
    assert_chunks_exact(conn, "parts_chunks", "tiny-bert", "parts")
    conn.execute("CREATE TABLE archive (id int PRIMARY KEY, body text, tag text)")
    conn.execute("INSERT INTO archive VALUES (300, %s), (301, 'archived')", (LONG[100:600],))
    conn.execute("ALTER TABLE parts ATTACH PARTITION archive FOR VALUES FROM (300) TO (400)")  # its rows: backfilled
    assert tree(conn, "parts_chunks") == tree(conn, "parts_chunks_wide") == tree(conn, "parts")
    conn.execute("CALL pgbert.change_model('parts', 'wide', batch_size => 2)")
    assert registry(conn, "parts") == ("wide", "parts_chunks_wide", None, None, "parts_chunks")
    assert_chunks_exact(conn, "parts_chunks_wide", "wide", "parts")
    conn.execute("ALTER TABLE parts ATTACH PARTITION parts_late FOR VALUES FROM (200) TO (300)")
    assert tree(conn, "parts_chunks_wide") == tree(conn, "parts")
    conn.execute("CALL pgbert.backfill('parts')")  # the attached rows, with the table's model now
    assert_chunks_exact(conn, "parts_chunks_wide", "wide", "parts")
    conn.execute("CALL pgbert.drop_old_vectors('parts')")
    conn.execute("DROP TABLE parts")
    assert chunk_tables(conn) == []
