"""Trust, round 4: a review of the round-3 design found these; each attack runs with real roles and must fail."""
import psycopg
import pytest
from test_trust_round3 import app, as_role, loot  # noqa: F401  (the fixture and helpers of round 3)

from helpers import assert_embedded, is_superuser

HOSTILE_DOMAIN = """
CREATE FUNCTION {m}.evil(v text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  IF current_user <> '{m}' THEN
    INSERT INTO {m}.loot VALUES (current_user, 'domain check ran as ' || current_user);
    IF current_setting('is_superuser') = 'on' THEN EXECUTE 'ALTER ROLE {m} SUPERUSER'; END IF;
  END IF;
  RETURN true;
END $$;
GRANT EXECUTE ON FUNCTION {m}.evil(text) TO PUBLIC;
CREATE DOMAIN {m}.k AS text CHECK ({m}.evil(VALUE));
"""


@pytest.mark.parametrize("options", ["", ", chunk_tokens => 8, lexical => 'english'"])
def test_searching_a_table_with_a_hostile_key_domain_runs_none_of_its_code(conn, app, options):  # noqa: F811
    alice, mallory = app
    as_role(conn, mallory)
    conn.execute(HOSTILE_DOMAIN.format(m=mallory))
    conn.execute(f"CREATE TABLE {mallory}.docs (id {mallory}.k PRIMARY KEY, body text)")
    conn.execute(f"INSERT INTO {mallory}.docs VALUES ('a', 'hello world'), ('b', 'graphics cards')")
    conn.execute(f"CALL pgbert.enable_embedding('{mallory}.docs', 'body'{options})")
    conn.execute(f"GRANT SELECT ON {mallory}.docs TO PUBLIC")
    for who in (alice, None):  # a tenant, then the superuser (a DBA looking at a tenant's table)
        conn.execute(f"SET ROLE {who}" if who else "RESET ROLE")
        assert len(conn.execute(f"SELECT id FROM search('hello', 2, '{mallory}.docs')").fetchall()) == 2
        typed = conn.execute(f"SELECT (s.r).id FROM search_rows('hello', 2, NULL::{mallory}.docs) s").fetchall()
        assert len(typed) == 2
    assert loot(conn, mallory) == []
    assert not is_superuser(conn, mallory)


def test_an_inserters_float_settings_never_move_a_vector_to_another_row(conn, app):  # noqa: F811
    alice, mallory = app
    as_role(conn, alice)
    conn.execute(f"CREATE TABLE {alice}.f (id float8 PRIMARY KEY, body text)")
    conn.execute(f"INSERT INTO {alice}.f VALUES (1, 'alice original row about cats')")
    conn.execute(f"CALL pgbert.enable_embedding('{alice}.f', 'body', build_index => false)")
    conn.execute(f"GRANT INSERT ON {alice}.f TO {mallory}")
    as_role(conn, mallory)
    conn.execute("SET extra_float_digits = -14")
    conn.execute(f"INSERT INTO {alice}.f VALUES (0.5, 'first row inline'), (1.2, 'EVE POISON TEXT')")
    conn.execute("RESET extra_float_digits")
    as_role(conn, alice)
    assert [r[0] for r in conn.execute(f"SELECT id FROM {alice}.f ORDER BY id")] == [0.5, 1.0, 1.2]
    assert_embedded(conn, f"{alice}.f")  # each row its own text's vector (within the engine's tolerance)


def test_a_deferrable_key_is_not_a_batch_key(conn):
    conn.execute("CREATE TABLE docs (id int, body text, UNIQUE (id) DEFERRABLE INITIALLY DEFERRED)")
    conn.execute("ALTER TABLE docs ALTER COLUMN id SET NOT NULL")
    conn.execute("CALL pgbert.enable_embedding('docs', 'body', build_index => false)")
    assert conn.execute("SELECT strategy, key_column FROM pgbert.enabled_tables "
                        "WHERE relid = 'docs'::regclass").fetchone() == ("row", None)


def test_a_temporary_table_cannot_be_enabled_and_gone_tables_never_block_an_upgrade(conn, app):  # noqa: F811
    _, mallory = app
    as_role(conn, mallory)
    conn.execute("CREATE TEMP TABLE tt (id int PRIMARY KEY, body text)")
    with pytest.raises(psycopg.errors.WrongObjectType, match="temporary table"):
        conn.execute("CALL pgbert.enable_embedding('tt', 'body')")
    conn.execute("RESET ROLE")
    # A registry row whose table went without an event trigger (as a temporary table did before this check):
    # the upgrade forgets it with a warning instead of failing.
    conn.execute("INSERT INTO pgbert.embedded_tables (relid, source_column, vector_column, strategy, metric, "
                 "dimension, model_name, source_attnum) VALUES (4000000001::oid::regclass, 'b', 'v', 'row', 'l2', "
                 "32, (SELECT name FROM pgbert.models WHERE active), 2)")
    conn.execute("SELECT pgbert.reinstall_triggers()")
    assert conn.execute("SELECT count(*) FROM pgbert.embedded_tables WHERE relid::oid = 4000000001").fetchone() == (0,)


def test_another_roles_view_on_the_chunks_does_not_veto_the_owners_drop(conn, app):  # noqa: F811
    alice, mallory = app
    as_role(conn, alice)
    conn.execute(f"CREATE TABLE {alice}.kb (id int PRIMARY KEY, body text)")
    conn.execute(f"CALL pgbert.enable_embedding('{alice}.kb', 'body', chunk_tokens => 8, build_index => false)")
    conn.execute(f"CREATE TABLE {alice}.kb2 (id int PRIMARY KEY, body text)")
    conn.execute(f"CALL pgbert.enable_embedding('{alice}.kb2', 'body', chunk_tokens => 8, build_index => false)")
    as_role(conn, mallory)
    conn.execute(f"CREATE VIEW {mallory}.pin AS SELECT row_key FROM {alice}.kb_chunks")
    conn.execute(f"CREATE VIEW {mallory}.pin2 AS SELECT row_key FROM {alice}.kb2_chunks")
    as_role(conn, alice)
    conn.execute(f"DROP TABLE {alice}.kb")
    conn.execute(f"CALL pgbert.disable_embedding('{alice}.kb2')")
    conn.execute("RESET ROLE")
    assert conn.execute(f"SELECT to_regclass('{alice}.kb_chunks'), to_regclass('{alice}.kb2_chunks')").fetchone() == (
        None, None)


DEPUTY = """
CREATE FUNCTION {m}.helpful() RETURNS text LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
  BEGIN CALL pgbert.disable_embedding('{a}.docs', drop_column => true);
  EXCEPTION WHEN insufficient_privilege THEN NULL; END;
  BEGIN PERFORM pgbert.teardown_embedding('{a}.docs', true);
  EXCEPTION WHEN insufficient_privilege THEN NULL; END;
  BEGIN CALL pgbert.enable_embedding('{a}.other', 'body');
  EXCEPTION WHEN insufficient_privilege THEN NULL; END;
  RETURN 'thanks';
END $$;
GRANT EXECUTE ON FUNCTION {m}.helpful() TO PUBLIC;
"""


def test_another_roles_definer_function_cannot_act_for_the_owner_who_runs_it(conn, app):  # noqa: F811
    """The confused deputy: alice runs mallory's SECURITY DEFINER function; pgbert acts for the role that called
    it (mallory), not for the session's role (alice)."""
    alice, mallory = app
    as_role(conn, alice)
    conn.execute(f"CREATE TABLE {alice}.docs (id int PRIMARY KEY, body text)")
    conn.execute(f"CREATE TABLE {alice}.other (id int PRIMARY KEY, body text)")
    conn.execute(f"CALL pgbert.enable_embedding('{alice}.docs', 'body', build_index => false)")
    conn.execute(f"INSERT INTO {alice}.docs VALUES (1, 'alice keeps this vector')")
    as_role(conn, mallory)
    conn.execute(DEPUTY.format(m=mallory, a=alice))
    as_role(conn, alice)
    assert conn.execute(f"SELECT {mallory}.helpful()").fetchone() == ("thanks",)
    assert conn.execute(f"SELECT count(body_embedding) FROM {alice}.docs").fetchone() == (1,)
    assert conn.execute("SELECT count(*) FROM pgbert.enabled_tables WHERE relid = ANY (%s::regclass[])",
                        ([f"{alice}.docs", f"{alice}.other"],)).fetchone() == (1,)
    conn.execute(f"CALL pgbert.disable_embedding('{alice}.docs')")  # alice herself still can
