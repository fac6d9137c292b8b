"""The embedding queue (strategies 'queue' and 'auto'): writes commit without the model, workers embed soon,
nothing is lost, nothing is embedded twice, nothing stale is written, failures are kept and retried."""
import threading

import psycopg
import pytest

from helpers import alembic, assert_embedded, assert_same_vectors, db_url, model_calls


@pytest.fixture()
def queued(conn):
    """docs (id, body) with strategy 'queue', no index (the tests read vectors, not search)."""
    conn.execute("CREATE TABLE docs (id int PRIMARY KEY, body text, tag text)")
    conn.execute("CALL pgbert.enable_embedding('docs', 'body', strategy => 'queue', build_index => false)")
    return conn


def other(conn) -> psycopg.Connection:
    return psycopg.connect(db_url(conn.info.dbname), autocommit=True)


def nulls(conn, table="docs") -> int:
    return conn.execute(f"SELECT count(*) FROM {table} WHERE body IS NOT NULL AND body_embedding IS NULL").fetchone()[0]


def queue_counts(conn) -> tuple:
    return conn.execute("SELECT pending, in_progress, failed FROM pgbert.queue_status "
                        "WHERE relid = 'docs'::regclass").fetchone()


def drain(conn, **limits) -> int:
    args = ", ".join(f"{k} => {v}" for k, v in limits.items())
    return conn.execute(f"CALL pgbert.process_queue({args})").fetchone()[0]


def test_writes_commit_without_the_model_and_the_queue_embeds_them(queued):
    before = model_calls(queued)
    queued.execute("INSERT INTO docs (id, body) SELECT g, 'queued text ' || g FROM generate_series(1, 30) g")
    queued.execute("INSERT INTO docs (id, body) VALUES (31, NULL)")
    assert model_calls(queued) == before  # the writers never waited for the model
    assert nulls(queued) == 30
    assert queue_counts(queued) == (30, 0, 0)  # the view agrees with a direct count
    assert queued.execute("SELECT pgbert.pending_rows('docs')").fetchone()[0] == 30
    first = drain(queued, max_rows=10, batch_rows=4)
    assert first == 10  # batches of 4, 4 and 2
    assert queue_counts(queued) == (nulls(queued), 0, 0) == (20, 0, 0)
    assert drain(queued) == 20
    assert nulls(queued) == 0 and queue_counts(queued) == (0, 0, 0)
    assert_embedded(queued)
    status = dict(queued.execute("SELECT * FROM pgbert.status()").fetchall())
    assert (status["queue_pending"], status["queue_failed"]) == ("0", "0")


def test_updates_queue_only_a_changed_text_and_keep_a_sent_vector(queued):
    queued.execute("INSERT INTO docs (id, body) VALUES (1, 'first text'), (2, 'second text')")
    drain(queued)
    queued.execute("UPDATE docs SET tag = 'unrelated' WHERE id = 1")
    assert queue_counts(queued)[0] == 0 and nulls(queued) == 0
    queued.execute("UPDATE docs SET body = 'a new first text' WHERE id = 1")
    assert queue_counts(queued)[0] == 1 and nulls(queued) == 1  # the old text's vector is gone with it
    sent = queued.execute("SELECT embed('client side')::text").fetchone()[0]
    queued.execute("UPDATE docs SET body = 'client side', body_embedding = %s WHERE id = 2", (sent,))
    assert queued.execute("SELECT body_embedding::text FROM docs WHERE id = 2").fetchone()[0] == sent
    assert queue_counts(queued)[0] == 1
    drain(queued)
    assert_embedded(queued)


def test_deleted_and_truncated_rows_leave_the_queue(queued):
    queued.execute("INSERT INTO docs (id, body) SELECT g, 'text ' || g FROM generate_series(1, 5) g")
    queued.execute("DELETE FROM docs WHERE id <= 2")
    assert queue_counts(queued)[0] == 3
    queued.execute("TRUNCATE docs")
    assert queue_counts(queued)[0] == 0
    assert drain(queued) == 0


def test_a_text_changed_while_it_is_embedded_keeps_its_place_in_the_queue(queued):
    queued.execute("INSERT INTO docs (id, body) VALUES (1, 'the old text')")
    with other(queued) as worker:
        worker.execute("SELECT pgbert.claim_batch(10)")
        computed = worker.execute("SELECT id, version, embedding, chunks FROM pgbert.compute_claimed("
                                  "(SELECT array_agg(id) FROM pgbert.embedding_queue))").fetchall()
        queued.execute("UPDATE docs SET body = 'the new text' WHERE id = 1")  # commits meanwhile
        stored = worker.execute("SELECT pgbert.store_claimed(%s, %s::xid[], %s::vector[], %s::jsonb[])",
                                [list(c) for c in zip(*computed)]).fetchone()[0]
    assert stored == 0 and nulls(queued) == 1 and queue_counts(queued)[0] == 1
    drain(queued)
    assert_embedded(queued)  # the new text's vector


def test_a_worker_never_waits_on_a_writer_and_never_overwrites_its_change(queued):
    queued.execute("INSERT INTO docs (id, body) VALUES (1, 'before'), (2, 'another row')")
    with other(queued) as writer:
        writer.autocommit = False
        writer.execute("UPDATE docs SET body = 'after' WHERE id = 1")  # holds the row, not committed
        queued.execute("SET lock_timeout = '2s'")
        drain(queued)  # does not block on the writer: row 1 is left for later
        assert nulls(queued) == 1
        writer.commit()
    drain(queued)
    assert_embedded(queued)


def test_two_callers_never_embed_the_same_row_twice(queued):
    queued.execute("CREATE TABLE writes (id int, n int DEFAULT 1)")
    queued.execute("""CREATE FUNCTION count_writes() RETURNS trigger LANGUAGE plpgsql AS $$
                      BEGIN INSERT INTO public.writes (id) VALUES (NEW.id); RETURN NEW; END $$""")
    queued.execute("CREATE TRIGGER count_writes AFTER UPDATE OF body_embedding ON docs FOR EACH ROW "
                   "WHEN (NEW.body_embedding IS NOT NULL) EXECUTE FUNCTION count_writes()")
    queued.execute("INSERT INTO docs (id, body) SELECT g, 'row number ' || g FROM generate_series(1, 120) g")
    results, errors = [], []

    def work():
        try:
            with other(queued) as c:
                results.append(drain(c, batch_rows=8))
        except Exception as exc:  # reported below: a thread's exception is otherwise lost
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sum(results) == 120
    assert queued.execute("SELECT count(*), count(DISTINCT id) FROM writes").fetchone() == (120, 120)
    assert nulls(queued) == 0


def test_claims_of_a_backend_that_is_gone_are_taken_over(queued):
    queued.execute("INSERT INTO docs (id, body) SELECT g, 'text ' || g FROM generate_series(1, 6) g")
    dead = other(queued)
    ids = dead.execute("SELECT ids FROM pgbert.claim_batch(10)").fetchone()[0]
    assert len(ids) == 6 and queue_counts(queued)[1] == 6  # in progress
    with other(queued) as live:
        assert live.execute("SELECT ids FROM pgbert.claim_batch(10)").fetchone()[0] == []  # held by a live worker
    queued.execute("SELECT pg_terminate_backend(%s, 10000)", (dead.info.backend_pid,))  # waits until it is gone
    dead.close()
    assert drain(queued) == 6
    assert nulls(queued) == 0


def test_a_failing_row_fails_alone_lands_in_errors_and_comes_back(queued):
    queued.execute("UPDATE pgbert.settings SET value = '0' WHERE name = 'queue_retry_seconds'")
    queued.execute("UPDATE pgbert.settings SET value = '2' WHERE name = 'queue_max_attempts'")
    queued.execute("UPDATE pgbert.settings SET value = '200' WHERE name = 'max_input_chars'")
    try:
        queued.execute("INSERT INTO docs (id, body) VALUES (1, 'fine'), (2, %s), (3, 'also fine')", ("x" * 500,))
        drain(queued)
        assert nulls(queued) == 1 and queue_counts(queued) == (0, 0, 1)
        key, attempts, error = queued.execute("SELECT row_key, attempts, error FROM pgbert.embedding_errors").fetchone()
        assert (key, attempts) == ("2", 2) and "max_input_chars" in error
        assert drain(queued) == 0  # a failed row waits for retry_failed
        queued.execute("UPDATE pgbert.settings SET value = NULL WHERE name = 'max_input_chars'")
        queued.execute("CALL pgbert.retry_failed('docs')")
        assert queue_counts(queued) == (1, 0, 0)
        assert drain(queued) == 1
        assert_embedded(queued)
    finally:
        queued.execute("UPDATE pgbert.settings SET value = NULL WHERE name = 'max_input_chars'")


def test_auto_embeds_a_small_statement_inline_and_queues_a_bulk_load(conn):
    conn.execute("CREATE TABLE docs (id int PRIMARY KEY, body text)")
    conn.execute("CALL pgbert.enable_embedding('docs', 'body', strategy => 'auto', build_index => false)")
    conn.execute("UPDATE pgbert.settings SET value = '64' WHERE name = 'auto_inline_tokens'")
    row = conn.execute("INSERT INTO docs VALUES (1, 'one row keeps its vector') RETURNING body_embedding").fetchone()
    assert row[0] is not None
    conn.execute("INSERT INTO docs SELECT g, repeat('a bulk load of long texts ', 8) FROM generate_series(2, 21) g")
    inline = conn.execute("SELECT count(*) FROM docs WHERE id > 1 AND body_embedding IS NOT NULL").fetchone()[0]
    assert 0 < inline < 20 and queue_counts(conn)[0] == 20 - inline
    conn.execute("UPDATE docs SET body = 'an update inline' WHERE id = 1")
    assert conn.execute("SELECT body_embedding IS NOT NULL FROM docs WHERE id = 1").fetchone()[0]
    drain(conn)
    assert_embedded(conn)


def test_chunked_and_lexical_tables_are_queued_the_same_way(conn):
    conn.execute("CREATE TABLE notes (id int PRIMARY KEY, body text)")
    conn.execute("CALL pgbert.enable_embedding('notes', 'body', strategy => 'queue', chunk_tokens => 8, "
                 "lexical => 'english', build_index => false)")
    conn.execute("INSERT INTO notes SELECT g, repeat('words about the chunked queue ', 6) || g "
                 "FROM generate_series(1, 4) g")
    assert conn.execute("SELECT count(*) FROM notes_chunks").fetchone()[0] == 0
    assert conn.execute("SELECT pgbert.pending_rows('notes')").fetchone()[0] == 4
    assert drain(conn) == 4
    assert conn.execute("SELECT count(DISTINCT row_key), bool_and(lexemes IS NOT NULL) FROM notes_chunks").fetchone() \
        == (4, True)
    conn.execute("UPDATE notes SET body = 'short new text' WHERE id = 1")
    assert conn.execute("SELECT count(*) FROM notes_chunks WHERE row_key = 1").fetchone()[0] == 0
    assert drain(conn) == 1
    passages = conn.execute("SELECT substr(n.body, c.start_char + 1, c.end_char - c.start_char), c.embedding::text, "
                            "embed(substr(n.body, c.start_char + 1, c.end_char - c.start_char))::text "
                            "FROM notes n JOIN notes_chunks c ON c.row_key = n.id").fetchall()
    assert_same_vectors(conn, passages)


def test_a_lexical_side_stays_synchronous(conn):
    conn.execute("CREATE TABLE docs (id int PRIMARY KEY, body text)")
    conn.execute("CALL pgbert.enable_embedding('docs', 'body', strategy => 'queue', lexical => 'english', "
                 "build_index => false)")
    conn.execute("INSERT INTO docs VALUES (1, 'graphics drivers for linux')")
    assert conn.execute("SELECT body_embedding IS NULL, body_lexemes IS NOT NULL FROM docs").fetchone() == (True, True)
    assert [r[0] for r in conn.execute("SELECT id FROM search('graphics', 5, 'docs', 'hybrid')")] == ["1"]


def test_switching_strategies(conn):
    conn.execute("CREATE TABLE docs (id int PRIMARY KEY, body text)")
    conn.execute("CALL pgbert.enable_embedding('docs', 'body', build_index => false)")
    conn.execute("ALTER TABLE docs DISABLE TRIGGER USER")
    conn.execute("INSERT INTO docs VALUES (1, 'loaded with triggers off')")
    conn.execute("ALTER TABLE docs ENABLE TRIGGER USER")
    conn.execute("CALL pgbert.set_strategy('docs', 'queue')")  # the backlog goes to the queue
    assert queue_counts(conn)[0] == 1
    conn.execute("INSERT INTO docs VALUES (2, 'queued')")
    conn.execute("CALL pgbert.set_strategy('docs', 'batch')")
    conn.execute("INSERT INTO docs VALUES (3, 'embedded in its statement')")
    assert conn.execute("SELECT body_embedding IS NOT NULL FROM docs WHERE id = 3").fetchone()[0]
    assert drain(conn) == 2  # what was queued is still embedded
    assert_embedded(conn)
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="strategy must be"):
        conn.execute("CALL pgbert.set_strategy('docs', 'later')")
    conn.execute("CREATE TABLE keyless (body text)")
    conn.execute("CALL pgbert.enable_embedding('keyless', 'body', build_index => false)")
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match="primary key"):
        conn.execute("CALL pgbert.set_strategy('keyless', 'queue')")


def test_turning_embedding_off_or_dropping_the_table_empties_its_queue(queued):
    queued.execute("INSERT INTO docs (id, body) VALUES (1, 'a'), (2, 'b')")
    queued.execute("CALL pgbert.disable_embedding('docs')")
    assert queued.execute("SELECT count(*) FROM pgbert.embedding_queue").fetchone()[0] == 0
    queued.execute("CALL pgbert.enable_embedding('docs', 'body', strategy => 'queue', build_index => false)")
    assert queued.execute("SELECT count(*) FROM pgbert.embedding_queue").fetchone()[0] == 2
    queued.execute("DROP TABLE docs")
    assert queued.execute("SELECT count(*) FROM pgbert.embedding_queue").fetchone()[0] == 0


def test_a_downgrade_refuses_while_a_table_uses_the_queue(empty_db, tiny_bundle):
    empty_db.autocommit = True
    url = db_url(empty_db.info.dbname)
    alembic(url, "upgrade", "head", bundle=tiny_bundle)
    empty_db.execute("CREATE TABLE docs (id int PRIMARY KEY, body text)")
    empty_db.execute("CALL pgbert.enable_embedding('docs', 'body', strategy => 'queue', build_index => false)")
    empty_db.execute("INSERT INTO docs VALUES (1, 'waiting for a worker')")
    out = alembic(url, "downgrade", "0010", check=False)
    assert out.returncode != 0 and "docs" in out.stderr and "set_strategy" in out.stderr
    drain(empty_db)
    empty_db.execute("CALL pgbert.set_strategy('docs', 'batch')")
    alembic(url, "downgrade", "0010")
    assert empty_db.execute("SELECT to_regclass('pgbert.embedding_queue'), to_regclass('pgbert.queue_status'), "
                            "(SELECT count(*) FROM pg_proc WHERE proname LIKE 'store_queued%')").fetchone() \
        == (None, None, 0)
    alembic(url, "upgrade", "head", bundle=tiny_bundle)
    assert empty_db.execute("SELECT count(*) FROM pgbert.queue_status").fetchone() == (0,)
    empty_db.execute("INSERT INTO docs VALUES (2, 'embedded in its statement after the downgrade and upgrade')")
    assert_embedded(empty_db)


def test_an_idle_worker_knows_how_long_to_sleep(queued):
    wait = lambda: queued.execute("SELECT pgbert.queue_wait_seconds()").fetchone()[0]  # noqa: E731
    assert wait() is None  # nothing queued: sleep until a NOTIFY
    queued.execute("INSERT INTO docs (id, body) VALUES (1, 'due now')")
    assert wait() == 0
    queued.execute("UPDATE pgbert.settings SET value = '30' WHERE name = 'queue_retry_seconds'")
    queued.execute("SELECT pgbert.claim_batch(1)")
    queued.execute("SELECT pgbert.fail_claimed((SELECT array_agg(id) FROM pgbert.embedding_queue), 'boom')")
    assert 20 < wait() <= 30  # the first retry waits queue_retry_seconds


def test_a_row_the_table_itself_refuses_fails_alone(queued):
    queued.execute("UPDATE pgbert.settings SET value = '0' WHERE name = 'queue_retry_seconds'")
    queued.execute("UPDATE pgbert.settings SET value = '2' WHERE name = 'queue_max_attempts'")
    queued.execute("""CREATE FUNCTION public.refuse() RETURNS trigger LANGUAGE plpgsql AS $$
                      BEGIN RAISE EXCEPTION 'row % refused by its table', NEW.id; END $$""")
    queued.execute("CREATE TRIGGER refuse BEFORE UPDATE OF body_embedding ON docs FOR EACH ROW "
                   "WHEN (NEW.id = 2) EXECUTE FUNCTION public.refuse()")
    queued.execute("INSERT INTO docs (id, body) VALUES (1, 'fine'), (2, 'refused'), (3, 'also fine')")
    assert drain(queued) == 2
    drain(queued)  # its second and last attempt
    assert queued.execute("SELECT row_key, attempts, error FROM pgbert.embedding_errors").fetchone() \
        == ("2", 2, "row 2 refused by its table")
    assert nulls(queued) == 1 and queue_counts(queued) == (0, 0, 1)
