"""change_model of a queued table: the queue's workers backfill the new model's column, new and updated rows
are queued for both models, nothing computed with the old model is stored after the switch."""
import threading

import psycopg
import pytest

from helpers import assert_same_vectors, db_url, tiny_bundle_path


@pytest.fixture()
def queued(conn):
    """docs (id, body) with strategy 'queue' and all of its rows embedded; a second model 'wide' (64-d)."""
    conn.execute("SELECT pgbert.add_model('wide', %s)", (tiny_bundle_path("tiny-bert-64", hidden=64),))
    conn.execute("CREATE TABLE docs (id int PRIMARY KEY, body text)")
    conn.execute("CALL pgbert.enable_embedding('docs', 'body', strategy => 'queue', build_index => false)")
    conn.execute("INSERT INTO docs SELECT g, 'queued document ' || g FROM generate_series(1, 60) g")
    conn.execute("CALL pgbert.process_queue()")
    return conn


def other(conn) -> psycopg.Connection:
    return psycopg.connect(db_url(conn.info.dbname), autocommit=True)


def next_rows(conn) -> int:
    return conn.execute("SELECT count(*) FROM pgbert.embedding_queue WHERE next_model").fetchone()[0]


def assert_all_wide(conn):
    rows = conn.execute("SELECT body, body_embedding_wide::text, embed(body, model => 'wide')::text FROM docs"
                        ).fetchall()
    assert rows and all(vector and len(vector.split(",")) == 64 for _, vector, _ in rows)
    assert_same_vectors(conn, rows)


def test_the_workers_backfill_the_new_model_and_the_procedure_waits_for_them(queued):
    with other(queued) as c:
        c.execute("SET statement_timeout = '1500ms'")
        with pytest.raises(psycopg.errors.QueryCanceled):  # no worker runs: it waits, it does not embed
            c.execute("CALL pgbert.change_model('docs', 'wide')")
    assert queued.execute("SELECT count(*) FROM docs WHERE body_embedding_wide IS NULL").fetchone() == (60,)
    assert next_rows(queued) == 60
    stop, errors = threading.Event(), []

    def work():
        try:
            with other(queued) as w:
                while not stop.is_set():
                    w.execute("CALL pgbert.process_queue(max_seconds => 1)")
                    w.execute("INSERT INTO docs VALUES ((SELECT max(id) + 1 FROM docs), 'written while it moves')")
                    w.execute("UPDATE docs SET body = body || ' (edited)' WHERE id = 3")
        except Exception as exc:  # a thread's exception is otherwise lost
            errors.append(exc)

    worker = threading.Thread(target=work)
    worker.start()
    try:
        notices = []
        queued.add_notice_handler(lambda d: notices.append(d.message_primary))
        queued.execute("SET statement_timeout = '120s'")  # (a worker that died would leave it waiting)
        queued.execute("CALL pgbert.change_model('docs', 'wide')")  # resumes: the workers embed
    finally:
        stop.set()
        worker.join()
    assert errors == [] and any("the queue's workers embed" in n for n in notices)
    queued.execute("CALL pgbert.process_queue()")  # rows written after the switch
    assert next_rows(queued) == 0
    assert queued.execute("SELECT model_name, next_model_name, vector_column FROM pgbert.enabled_tables "
                          "WHERE relid = 'docs'::regclass").fetchone() == ("wide", None, "body_embedding_wide")
    assert queued.execute("SELECT count(*) FROM docs").fetchone()[0] > 60
    assert_all_wide(queued)


def test_an_update_during_the_change_is_queued_again_for_the_new_model(queued):
    with queued.transaction():  # change_model's first step, as it runs it
        queued.execute("SELECT pgbert._prove_caller('docs', true)")
        queued.execute("SELECT pgbert.model_change_step('docs', 'begin', 'wide')")
    queued.execute("CALL pgbert.process_queue()")
    assert queued.execute("SELECT count(*) FROM docs WHERE body_embedding_wide IS NULL").fetchone() == (0,)
    queued.execute("UPDATE docs SET body = 'a new text' WHERE id = 7")
    queued.execute("INSERT INTO docs VALUES (100, 'a new row')")
    assert queued.execute("SELECT count(*) FROM docs WHERE body_embedding_wide IS NULL").fetchone() == (2,)
    assert next_rows(queued) == 2  # the stale vector is cleared, the row queued for both models
    queued.execute("CALL pgbert.process_queue()")
    assert_all_wide(queued)
    queued.execute("CALL pgbert.change_model('docs', 'wide')")
    assert queued.execute("SELECT vector_column FROM pgbert.enabled_tables WHERE relid = 'docs'::regclass"
                          ).fetchone() == ("body_embedding_wide",)


def test_an_abort_forgets_the_new_model_rows_and_a_switch_hands_them_over(queued):
    with queued.transaction():
        queued.execute("SELECT pgbert._prove_caller('docs', true)")
        queued.execute("SELECT pgbert.model_change_step('docs', 'begin', 'wide')")
    assert next_rows(queued) == 60
    queued.execute("CALL pgbert.abort_model_change('docs')")
    assert next_rows(queued) == 0
    assert queued.execute("SELECT count(*) FROM pgbert.embedding_queue").fetchone() == (0,)
    # switched while rows still wait (as a switch after the backfill, with rows written since): they become
    # ordinary queue rows of the table's new column and model
    with queued.transaction():
        queued.execute("SELECT pgbert._prove_caller('docs', true)")
        queued.execute("SELECT pgbert.model_change_step('docs', 'begin', 'wide')")
    with queued.transaction():
        queued.execute("SELECT pgbert._prove_caller('docs', true)")
        queued.execute("SELECT pgbert.model_change_step('docs', 'switch', 'wide')")
    assert queued.execute("SELECT count(*) FILTER (WHERE next_model), count(*) FROM pgbert.embedding_queue"
                          ).fetchone() == (0, 60)
    queued.execute("CALL pgbert.process_queue()")
    assert_all_wide(queued)


def test_a_row_that_fails_with_the_new_model_stops_the_change_with_what_to_do(queued):
    queued.execute("UPDATE pgbert.settings SET value = '0' WHERE name = 'queue_retry_seconds'")
    queued.execute("UPDATE pgbert.settings SET value = '1' WHERE name = 'queue_max_attempts'")
    queued.execute("""CREATE FUNCTION public.refuse() RETURNS trigger LANGUAGE plpgsql AS $$
                      BEGIN RAISE EXCEPTION 'row % refused by its table', NEW.id; END $$""")
    with queued.transaction():
        queued.execute("SELECT pgbert._prove_caller('docs', true)")
        queued.execute("SELECT pgbert.model_change_step('docs', 'begin', 'wide')")
    queued.execute("CREATE TRIGGER refuse BEFORE UPDATE ON docs FOR EACH ROW "
                   "WHEN (NEW.id = 5 AND NEW.body_embedding_wide IS NOT NULL) EXECUTE FUNCTION public.refuse()")
    queued.execute("CALL pgbert.process_queue()")
    failed = "1 rows of public.docs could not be embedded with wide"
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match=failed) as e:
        queued.execute("CALL pgbert.change_model('docs', 'wide')")
    assert "CALL pgbert.retry_failed('public.docs')" in e.value.diag.message_hint
    assert queued.execute("SELECT row_key, error FROM pgbert.embedding_errors").fetchone() == \
        ("5", "row 5 refused by its table")
    queued.execute("DROP TRIGGER refuse ON docs")
    queued.execute("CALL pgbert.retry_failed('docs')")
    queued.execute("CALL pgbert.process_queue()")
    queued.execute("CALL pgbert.change_model('docs', 'wide')")
    assert_all_wide(queued)


def test_a_plain_owner_changes_its_queued_table_and_nobody_else_sees_its_backlog(conn, role):
    conn.execute("SELECT pgbert.add_model('wide', %s)", (tiny_bundle_path("tiny-bert-64", hidden=64),))
    owner, other_role = role("pgbert_mcq_owner", "pgbert_user"), role("pgbert_mcq_other", "pgbert_user")
    conn.execute(f"CREATE SCHEMA {owner} AUTHORIZATION {owner}")
    conn.execute(f"GRANT USAGE ON SCHEMA {owner} TO {other_role}")
    conn.execute(f"SET ROLE {owner}")
    conn.execute(f"CREATE TABLE {owner}.docs (id int PRIMARY KEY, body text)")
    conn.execute(f"CALL pgbert.enable_embedding('{owner}.docs', 'body', strategy => 'queue', build_index => false)")
    conn.execute(f"INSERT INTO {owner}.docs SELECT g, 'owned text ' || g FROM generate_series(1, 10) g")
    with conn.transaction():
        conn.execute(f"SELECT pgbert._prove_caller('{owner}.docs', true)")
        conn.execute(f"SELECT pgbert.model_change_step('{owner}.docs', 'begin', 'wide')")
    conn.execute(f"UPDATE {owner}.docs SET body = 'changed' WHERE id = 1")  # _write_next, as the owner
    assert conn.execute(f"SELECT * FROM pgbert._next_backlog('{owner}.docs', now())").fetchone() == (10, 0)
    conn.execute(f"SET ROLE {other_role}")
    assert conn.execute(f"SELECT * FROM pgbert._next_backlog('{owner}.docs', now())").fetchone() == (0, 0)
    conn.execute("RESET ROLE")
    conn.execute("CALL pgbert.process_queue()")  # a DBA's worker stores as the owner
    conn.execute(f"SET ROLE {owner}")
    conn.execute(f"CALL pgbert.change_model('{owner}.docs', 'wide')")
    rows = conn.execute(f"SELECT body, body_embedding_wide::text, embed(body, model => 'wide')::text FROM {owner}.docs"
                        ).fetchall()
    assert len(rows) == 10 and all(v for _, v, _ in rows)
    assert_same_vectors(conn, rows)
    conn.execute("RESET ROLE")
