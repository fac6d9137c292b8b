"""Trust, round 3, finding 9: a failed INSERT's batch state must never apply to another statement.

A batch table's statement triggers mark its INSERT as in progress (plpython/pgbert_runtime/triggers.py);
a statement that fails never runs its AFTER trigger. A row inserted straight into a partition used to fire only
the row trigger, so a state left behind made it wait for a write-back that never ran: the row was committed
without its vector, in the same session or in another role's on a pooled connection. (Partitions now have copies
of the table's statement triggers: such a statement is batched as its own, and must still find no stale state.)"""
import psycopg
import pytest

from helpers import assert_embedded, model_calls

FAILING = {
    # after its first row was handled: the state says 'other rows'
    "duplicate key": "INSERT INTO events VALUES (1, 'first row'), (1, 'duplicate')",
    # before any row: the state says 'first row', so a direct insert's second row would have been left out
    "error before any row": "INSERT INTO events SELECT 1 / (g - 1), 'never' FROM generate_series(1, 1) g",
}


@pytest.fixture()
def events(conn):
    conn.execute("CREATE TABLE events (id int PRIMARY KEY, body text) PARTITION BY RANGE (id)")
    conn.execute("CREATE TABLE events_a PARTITION OF events FOR VALUES FROM (0) TO (1000)")
    conn.execute("CALL pgbert.enable_embedding('events', 'body', build_index => false)")
    return conn.execute("SELECT 'events'::regclass::oid").fetchone()[0]


def insert_straight_into_the_partition(conn, *ids):
    rows = ", ".join(f"({i}, 'direct into the partition {i}')" for i in ids)
    got = conn.execute(f"INSERT INTO events_a VALUES {rows} RETURNING id, body_embedding IS NOT NULL").fetchall()
    assert got[0] == (ids[0], True)  # a statement of its own: its first row inline, the others written back after it
    conn.execute("RESET ROLE")  # the checks call embed(): pgbert_user's
    assert_embedded(conn, "events")
    assert conn.execute("SELECT pgbert.pending_rows('events')").fetchone() == (0,)


@pytest.mark.parametrize("failing", FAILING.values(), ids=FAILING.keys())
def test_a_failed_insert_leaves_nothing_for_a_later_direct_partition_insert(conn, events, failing):
    with pytest.raises((psycopg.errors.UniqueViolation, psycopg.errors.DivisionByZero)):
        conn.execute(failing)
    insert_straight_into_the_partition(conn, 2, 3, 4)


@pytest.mark.parametrize("how", ["savepoint", "exception block"])
def test_a_failed_insert_inside_a_transaction_that_goes_on(conn, events, how):
    """The same transaction and the same top-level statement (a PL/pgSQL exception block): still stale."""
    conn.execute("INSERT INTO events VALUES (10, 'an earlier statement'), (11, 'that succeeded')")
    conn.execute("BEGIN")
    if how == "savepoint":
        conn.execute("SAVEPOINT s")
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(FAILING["duplicate key"])
        conn.execute("ROLLBACK TO s")
        conn.execute("INSERT INTO events_a VALUES (2, 'direct'), (3, 'direct too')")
    else:
        conn.execute(f"""DO $$ BEGIN
            BEGIN {FAILING["duplicate key"]}; EXCEPTION WHEN unique_violation THEN NULL; END;
            INSERT INTO events_a VALUES (2, 'direct'), (3, 'direct too');
        END $$""")
    conn.execute("COMMIT")
    assert_embedded(conn, "events")


def test_another_role_on_a_pooled_connection_gets_its_vectors(conn, events, role):
    mallory, alice = role("pgbert_test_mallory"), role("pgbert_test_alice")
    conn.execute(f"GRANT INSERT, SELECT ON events, events_a TO {mallory}, {alice}")
    conn.execute(f"SET ROLE {mallory}")
    with pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute(FAILING["duplicate key"])
    conn.execute("RESET ROLE")
    conn.execute("DISCARD ALL")  # what a pooler runs between clients
    conn.execute(f"SET ROLE {alice}")
    insert_straight_into_the_partition(conn, 2)


def test_a_forged_statement_token_does_not_carry_into_another_transaction(conn, events, role):
    """The token is a per-backend counter that a session can read, and set itself for the next statement;
    a pooler that does not reset settings hands it to the next role. The transaction id still differs."""
    mallory, alice = role("pgbert_test_mallory"), role("pgbert_test_alice")
    conn.execute(f"GRANT INSERT, SELECT ON events, events_a TO {mallory}, {alice}")
    conn.execute(f"SET ROLE {mallory}")
    conn.execute("BEGIN")
    conn.execute("INSERT INTO events VALUES (100, 'mallory learns the counter')")
    token = int(conn.execute(f"SELECT current_setting('pgbert.batch_{events}')").fetchone()[0])
    conn.execute("COMMIT")
    conn.execute(f"SET pgbert.batch_{events} = '{token + 1}'")  # what the failing statement sets: kept after it
    with pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute(FAILING["duplicate key"])
    assert conn.execute(f"SELECT current_setting('pgbert.batch_{events}')").fetchone() == (str(token + 1),)
    conn.execute(f"SET ROLE {alice}")
    insert_straight_into_the_partition(conn, 2)


def test_a_direct_partition_insert_run_by_the_statement_itself_is_embedded(conn, events):
    """A trigger fired by an INSERT on the parent inserts straight into the partition: those rows are not
    in the statement's transition table, so its write-back would not embed them."""
    conn.execute("""CREATE FUNCTION copy_row() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
        IF NEW.id < 500 THEN INSERT INTO events_a VALUES (NEW.id + 500, 'copy of ' || NEW.body); END IF;
        RETURN NEW; END $$""")
    conn.execute("CREATE TRIGGER a_copy BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION copy_row()")
    conn.execute("INSERT INTO events SELECT g, 'row ' || g FROM generate_series(1, 5) g")
    assert conn.execute("SELECT count(*) FROM events").fetchone() == (10,)
    assert_embedded(conn, "events")


def test_a_registered_table_attached_as_a_partition_embeds_rows_inserted_through_its_new_parent(conn):
    """Its own statement triggers do not fire for those rows either."""
    conn.execute("CREATE TABLE docs (id int PRIMARY KEY, body text)")
    conn.execute("CALL pgbert.enable_embedding('docs', 'body', build_index => false)")
    with pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute("INSERT INTO docs VALUES (1, 'first row'), (1, 'duplicate')")
    conn.execute("CREATE TABLE archive (id int PRIMARY KEY, body text, body_embedding vector(32)) "
                 "PARTITION BY RANGE (id)")
    conn.execute("ALTER TABLE archive ATTACH PARTITION docs FOR VALUES FROM (0) TO (1000)")
    got = conn.execute("INSERT INTO archive VALUES (2, 'through the new parent'), (3, 'and another') "
                       "RETURNING body_embedding IS NOT NULL").fetchall()
    assert got == [(True,), (True,)]
    assert_embedded(conn, "docs")


def test_rows_routed_through_the_parent_are_still_batched(conn, events):
    before = model_calls(conn)
    conn.execute("INSERT INTO events SELECT g, 'text number ' || g FROM generate_series(1, 100) g")
    assert model_calls(conn) - before == 1 + 4  # the first row inline, then 99 rows in batches of 32
    before = model_calls(conn)
    with conn.cursor().copy("COPY events (id, body) FROM STDIN") as copy:
        for i in range(200, 300):
            copy.write_row((i, f"copied {i}"))
    assert model_calls(conn) - before == 1 + 4
    assert_embedded(conn, "events")
