"""The queue follows pgbert's roles: it is pgbert's alone, its texts and errors are seen only where the table is
readable, a worker role needs no table privilege and writes vectors as each table's owner, and no queue row
or user code makes the worker act for another table or run as someone else."""
import psycopg
import pytest
from test_trust_round3 import app, as_role, loot  # noqa: F401  (the fixture and helpers of round 3)
from test_trust_round4 import HOSTILE_DOMAIN

from helpers import assert_embedded, is_superuser

DENIED = psycopg.errors.InsufficientPrivilege


def queued_table(conn, owner, name="docs", key="int"):
    as_role(conn, owner)
    conn.execute(f"CREATE TABLE {owner}.{name} (id {key} PRIMARY KEY, body text)")
    conn.execute(f"CALL pgbert.enable_embedding('{owner}.{name}', 'body', strategy => 'queue', build_index => false)")
    return f"{owner}.{name}"


@pytest.mark.parametrize("write", [
    "INSERT INTO pgbert.embedding_queue (relid, row_key) VALUES ('{a}.docs'::regclass, '1')",
    "UPDATE pgbert.embedding_queue SET relid = '{a}.docs'::regclass",
    "DELETE FROM pgbert.embedding_queue",
    "LOCK TABLE pgbert.embedding_queue IN ACCESS EXCLUSIVE MODE",
    "SELECT * FROM pgbert.embedding_queue",
    "SELECT pgbert.claim_batch(10)",
    "SELECT pgbert.release_claims()",
    "CALL pgbert.process_queue()",
])
def test_a_user_neither_writes_nor_runs_the_queue(conn, app, write):  # noqa: F811
    alice, mallory = app
    queued_table(conn, alice)
    as_role(conn, mallory)
    conn.execute("BEGIN")
    with pytest.raises(DENIED):
        conn.execute(write.format(a=alice))
    conn.execute("ROLLBACK")


def test_queue_status_and_errors_show_only_readable_tables(conn, app):  # noqa: F811
    alice, mallory = app
    docs = queued_table(conn, alice)
    conn.execute(f"INSERT INTO {docs} VALUES (1, 'alice private text')")
    conn.execute("RESET ROLE")
    conn.execute("UPDATE pgbert.embedding_queue SET failed_at = now(), attempts = 5, last_error = 'x'")
    as_role(conn, mallory)
    assert conn.execute("SELECT count(*) FROM pgbert.queue_status").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM pgbert.embedding_errors").fetchone()[0] == 0
    assert dict(conn.execute("SELECT * FROM pgbert.status()").fetchall())["queue_failed"] == "0"
    with pytest.raises(DENIED):
        conn.execute(f"CALL pgbert.retry_failed('{docs}')")
    with pytest.raises(DENIED):
        conn.execute(f"CALL pgbert.set_strategy('{docs}', 'batch')")
    as_role(conn, alice)
    assert conn.execute("SELECT failed FROM pgbert.queue_status").fetchone()[0] == 1
    assert conn.execute("SELECT row_key FROM pgbert.embedding_errors").fetchone()[0] == "1"
    conn.execute(f"GRANT SELECT ON {docs} TO {mallory}")
    as_role(conn, mallory)
    assert conn.execute("SELECT failed FROM pgbert.queue_status").fetchone()[0] == 1


def test_a_worker_role_embeds_as_each_tables_owner_without_reading_it(conn, app, role):  # noqa: F811
    alice, mallory = app
    worker = role("pgbert_tq_worker", "pgbert_worker")
    docs = queued_table(conn, alice)
    conn.execute(f"CREATE TABLE {alice}.writers (who name)")
    conn.execute(f"""CREATE FUNCTION {alice}.who_writes() RETURNS trigger LANGUAGE plpgsql AS $$
                     BEGIN INSERT INTO {alice}.writers VALUES (current_user); RETURN NEW; END $$""")
    conn.execute(f"CREATE TRIGGER who_writes AFTER UPDATE ON {docs} FOR EACH ROW EXECUTE FUNCTION {alice}.who_writes()")
    conn.execute(f"INSERT INTO {docs} SELECT g, 'text number ' || g FROM generate_series(1, 5) g")
    as_role(conn, worker)
    with pytest.raises(DENIED):
        conn.execute(f"SELECT body FROM {docs}")
    with pytest.raises(DENIED):  # the store function is pgbert's owner's to call, nobody else's
        conn.execute(f"SELECT pgbert.store_queued_{docs_oid(conn, docs)}('{{}}', '{{}}', '{{}}', '{{}}', false)")
    assert conn.execute("CALL pgbert.process_queue()").fetchone()[0] == 5
    as_role(conn, alice)
    assert {r[0] for r in conn.execute(f"SELECT who FROM {alice}.writers")} == {alice}
    assert_embedded(conn, docs)


def docs_oid(conn, table) -> int:
    return conn.execute("SELECT %s::regclass::oid", (table,)).fetchone()[0]


def test_the_store_step_acts_only_for_its_owner(conn, app):  # noqa: F811
    alice, mallory = app
    docs = queued_table(conn, alice)
    conn.execute(f"INSERT INTO {docs} VALUES (1, 'alice text')")
    oid = docs_oid(conn, docs)
    as_role(conn, mallory)
    with pytest.raises(DENIED):
        conn.execute(f"SELECT pgbert.store_queued_{oid}('{{1}}', '{{1}}', NULL, NULL, false)")
    with pytest.raises(DENIED, match="owner"):
        conn.execute("SELECT pgbert._store_queued(%s, '{1}', '{1}', NULL, NULL, false)", (oid,))
    conn.execute(f"CREATE TABLE {mallory}.mine (id int PRIMARY KEY, body text)")
    with pytest.raises(DENIED):  # pgbert's queue trigger is attached by pgbert alone
        conn.execute(f"CREATE TRIGGER q AFTER INSERT ON {mallory}.mine REFERENCING NEW TABLE AS pgbert_new_rows "
                     "FOR EACH STATEMENT EXECUTE FUNCTION pgbert.queue_trigger()")


def test_a_superuser_running_the_queue_runs_none_of_a_tenants_code(conn, app):  # noqa: F811
    alice, mallory = app
    as_role(conn, mallory)
    conn.execute(HOSTILE_DOMAIN.format(m=mallory))
    docs = queued_table(conn, mallory, key=f"{mallory}.k")
    conn.execute(f"""CREATE FUNCTION {mallory}.grab() RETURNS trigger LANGUAGE plpgsql AS $$
                     BEGIN
                       INSERT INTO {mallory}.loot VALUES (current_user, 'trigger ran as ' || current_user);
                       RETURN NEW;
                     END $$""")
    conn.execute(f"CREATE TRIGGER grab AFTER UPDATE ON {docs} FOR EACH ROW EXECUTE FUNCTION {mallory}.grab()")
    conn.execute(f"INSERT INTO {docs} VALUES ('a', 'hello'), ('b', 'world')")
    conn.execute("RESET ROLE")  # a DBA drains the queue as the superuser
    assert conn.execute("CALL pgbert.process_queue()").fetchone()[0] == 2
    assert {who for who, _ in loot(conn, mallory)} == {mallory}  # her trigger ran as her, her domain never
    assert not is_superuser(conn, mallory)


@pytest.mark.parametrize("key", ["{m}.pair", "int[]", "int4range"])
def test_a_key_whose_input_could_run_user_code_is_not_queued(conn, app, key):  # noqa: F811
    alice, mallory = app
    as_role(conn, mallory)
    conn.execute(f"CREATE TYPE {mallory}.pair AS (a int, b text)")
    conn.execute(f"CREATE TABLE {mallory}.t (id {key.format(m=mallory)} PRIMARY KEY, body text)")
    with pytest.raises(psycopg.errors.FeatureNotSupported, match="plain type"):
        conn.execute(f"CALL pgbert.enable_embedding('{mallory}.t', 'body', strategy => 'queue')")
    conn.execute(f"CALL pgbert.enable_embedding('{mallory}.t', 'body', build_index => false)")  # batch: as her
    with pytest.raises(psycopg.errors.FeatureNotSupported, match="plain type"):
        conn.execute(f"CALL pgbert.set_strategy('{mallory}.t', 'auto')")
