"""Trust, round 3 (issue 19): each attack of the third review, run with real non-superuser roles, then the
assertion that it no longer works. Findings 8, 10, 11, 14, 15 and the host socket are in
test_trust_round3_runtime.py, finding 9 in test_trust_round3_triggers.py; hostile names and the privilege
audit in test_hostile_names.py and test_privileges.py."""
import os

import psycopg
import pytest

from helpers import CLUSTER, ROOT, alembic, db_url, is_superuser

HEAD = max(f[:4] for f in os.listdir(os.path.join(ROOT, "migrations", "versions")) if f[:4].isdigit())


def as_role(conn, role):
    conn.execute(f"SET ROLE {role}")


@pytest.fixture()
def app(conn, role):
    """alice (an application owner) and mallory (a plain pgbert_user), each with a schema of her own;
    alice's app.payroll holds a row mallory may not read; mallory.loot records code that ran as someone else."""
    alice, mallory = role("pgbert_t3_alice", "pgbert_user"), role("pgbert_t3_mallory", "pgbert_user")
    for name in (alice, mallory):
        conn.execute(f"CREATE SCHEMA {name} AUTHORIZATION {name}")
        conn.execute(f"GRANT USAGE ON SCHEMA {name} TO PUBLIC")
    conn.execute(f"CREATE TABLE {alice}.payroll (id int PRIMARY KEY, name text, salary int)")
    conn.execute(f"ALTER TABLE {alice}.payroll OWNER TO {alice}")
    conn.execute(f"INSERT INTO {alice}.payroll VALUES (1, 'bob', 250000)")
    conn.execute(f"CREATE TABLE {mallory}.loot (who name, what text)")
    conn.execute(f"ALTER TABLE {mallory}.loot OWNER TO {mallory}")
    conn.execute(f"GRANT INSERT ON {mallory}.loot TO PUBLIC")
    yield alice, mallory
    conn.execute("RESET ROLE")
    for name in (alice, mallory):
        conn.execute(f"DROP SCHEMA {name} CASCADE")


def loot(conn, mallory):
    conn.execute("RESET ROLE")
    return conn.execute(f"SELECT who, what FROM {mallory}.loot").fetchall()


# ---- 1, 2, 7, 16: the registry is pgbert's alone -----------------------------------------------------------
@pytest.mark.parametrize("write", [
    "INSERT INTO pgbert.embedded_tables (relid, source_column, vector_column, key_column, strategy, metric, "
    "dimension, model_name, chunk_tokens, overlap_tokens, chunk_relid, source_attnum) VALUES ('{m}.t', 'body', "
    "'embedding', 'id', 'batch', 'cosine', 32, 'x', 64, 8, '{a}.payroll'::regclass, 2)",
    "UPDATE pgbert.embedded_tables SET chunk_relid = '{a}.payroll'::regclass WHERE relid = '{m}.t'::regclass",
    "UPDATE pgbert.embedded_tables SET lexical_config = 'x$body$; ALTER ROLE {m} SUPERUSER; SELECT $body$'",
    "DELETE FROM pgbert.embedded_tables",
    "LOCK TABLE pgbert.embedded_tables IN ACCESS EXCLUSIVE MODE",
    "LOCK TABLE pgbert.enabled_tables IN ACCESS EXCLUSIVE MODE",
    "SELECT * FROM pgbert.embedded_tables",
    "SELECT pgbert._install_writer('{m}.t')",
    "SELECT pgbert._drop_writers('{m}.t'::regclass)",
    "SELECT pgbert._install_triggers('{m}.t')",
    "SELECT pgbert._reinstall('{m}.t')",
    "SELECT pgbert._create_chunk_table('{m}.t', 't_chunks', 'id', 'body', 32, false)",
    "SELECT pgbert.reinstall_triggers()",
])
def test_a_pgbert_user_cannot_write_lock_or_drive_the_registry(conn, app, write):
    alice, mallory = app
    as_role(conn, mallory)
    conn.execute(f"CREATE TABLE {mallory}.t (id int PRIMARY KEY, body text)")
    conn.execute(f"CALL pgbert.enable_embedding('{mallory}.t', 'body', build_index => false)")
    conn.execute("BEGIN")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute(write.format(m=mallory, a=alice))
    conn.execute("ROLLBACK")
    # The review's follow-ups of a forged row (ALTER and DROP of her own table) touch nothing of alice's.
    conn.execute(f"ALTER TABLE {mallory}.t ADD COLUMN x int")
    conn.execute(f"DROP TABLE {mallory}.t")
    conn.execute("RESET ROLE")
    assert conn.execute(f"SELECT relowner::regrole::text FROM pg_class WHERE oid = '{alice}.payroll'::regclass"
                        ).fetchone() == (alice,)
    assert conn.execute("SELECT relowner::regrole::text FROM pg_class WHERE oid = 'pgbert.settings'::regclass"
                        ).fetchone()[0] != mallory
    assert not is_superuser(conn, mallory)


def test_a_pgbert_user_sees_the_registry_rows_of_its_own_and_readable_tables_only(conn, app):
    alice, mallory = app
    as_role(conn, alice)
    conn.execute(f"CREATE TABLE {alice}.private (id int PRIMARY KEY, body text)")
    conn.execute(f"CREATE TABLE {alice}.shared (id int PRIMARY KEY, body text)")
    for tbl in ("private", "shared"):
        conn.execute(f"CALL pgbert.enable_embedding('{alice}.{tbl}', 'body', build_index => false)")
    conn.execute(f"GRANT SELECT ON {alice}.shared TO {mallory}")
    mine = ("SELECT c.relname::text, e.enabled_by FROM pgbert.enabled_tables e JOIN pg_class c ON c.oid = e.relid "
            f"WHERE c.relnamespace = '{alice}'::regnamespace ORDER BY 1")
    assert conn.execute(mine).fetchall() == [("private", alice), ("shared", alice)]
    as_role(conn, mallory)
    assert conn.execute(mine).fetchall() == [("shared", alice)]


def test_only_the_owner_enables_or_disables_through_the_definer_entry_points(conn, app):
    alice, mallory = app
    as_role(conn, alice)
    conn.execute(f"CREATE TABLE {alice}.docs (id int PRIMARY KEY, body text)")
    as_role(conn, mallory)
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="must be the owner"):
        conn.execute(f"SELECT pgbert.setup_embedding('{alice}.docs', 'body', NULL, 'batch', NULL, NULL, NULL, NULL, "
                     "NULL)")
    as_role(conn, alice)
    conn.execute(f"CALL pgbert.enable_embedding('{alice}.docs', 'body', build_index => false)")
    as_role(conn, mallory)
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="must be the owner"):
        conn.execute(f"CALL pgbert.disable_embedding('{alice}.docs')")
    conn.execute("RESET ROLE")
    assert conn.execute("SELECT enabled_by FROM pgbert.embedded_tables WHERE relid = %s::regclass",
                        (f"{alice}.docs",)).fetchone() == (alice,)


def test_a_dropped_table_takes_only_its_own_chunk_table(conn, app):
    alice, mallory = app
    as_role(conn, mallory)
    conn.execute(f"CREATE TABLE {mallory}.kb (id int PRIMARY KEY, body text)")
    conn.execute(f"CALL pgbert.enable_embedding('{mallory}.kb', 'body', chunk_tokens => 16, build_index => false)")
    conn.execute(f"INSERT INTO {mallory}.kb VALUES (1, 'some text to chunk')")
    conn.execute(f"DROP TABLE {mallory}.kb")
    conn.execute("RESET ROLE")
    assert conn.execute(f"SELECT to_regclass('{mallory}.kb_chunks'), to_regclass('{alice}.payroll') IS NOT NULL"
                        ).fetchone() == (None, True)


def test_event_triggers_wait_on_pgberts_tables_for_a_bounded_time(conn):
    for fn in ("forget_dropped", "follow_altered_tables"):
        config = conn.execute("SELECT proconfig FROM pg_proc WHERE oid = %s::regprocedure",
                              (f"pgbert.{fn}()",)).fetchone()[0]
        assert "lock_timeout=10s" in config and "check_function_bodies=on" in config


# ---- 3: nothing a user names is spliced into generated code ------------------------------------------------
BODY_BREAKER = "$body$;ALTER ROLE {m} SUPERUSER;SELECT $body$"


@pytest.mark.parametrize("options", ["", ", strategy => 'row'", ", chunk_tokens => 16",
                                     ", chunk_tokens => 16, lexical => 'english'", ", lexical => 'simple'"])
def test_a_table_named_to_close_a_dollar_quote_gives_nothing(conn, app, options):
    _, mallory = app
    as_role(conn, mallory)
    conn.execute("SET check_function_bodies = off")
    name = BODY_BREAKER.format(m=mallory)
    conn.execute(f'CREATE TABLE {mallory}."{name}" ("{name}" int PRIMARY KEY, body text)')
    table = f'{mallory}."{name}"'
    conn.execute(f"CALL pgbert.enable_embedding(%s, 'body', build_index => false{options})", (table,))
    conn.execute(f'INSERT INTO {table} ("{name}", body) VALUES (1, %s), (2, %s)', ("first text", "second"))
    assert conn.execute("SELECT pgbert.pending_rows(%s)", (table,)).fetchone() == (0,)
    conn.execute("RESET ROLE")
    conn.execute("SET check_function_bodies = off")  # as pg_restore scripts do
    conn.execute("SELECT pgbert.reinstall_triggers()")  # what every upgrade runs
    assert not is_superuser(conn, mallory)
    # No function body holds a name: write-back functions hold fixed text and an oid.
    assert conn.execute("SELECT count(*) FROM pg_proc WHERE pronamespace = 'pgbert'::regnamespace "
                        "AND prosrc LIKE '%%' || %s || '%%'", (mallory,)).fetchone() == (0,)


# ---- 4: the key's equality comes from its type's default btree operator class ----------------------------
@pytest.fixture()
def citext(conn):
    conn.execute("CREATE SCHEMA ext")
    conn.execute("GRANT USAGE ON SCHEMA ext TO PUBLIC")
    conn.execute("CREATE EXTENSION citext SCHEMA ext")
    yield
    conn.execute("RESET ROLE")
    conn.execute("DROP SCHEMA ext CASCADE")


PLANTED_EQ = """
CREATE FUNCTION {m}.eq(a ext.citext, b ext.citext) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  IF current_user <> '{m}' THEN
    INSERT INTO {m}.loot VALUES (current_user, 'ran as ' || current_user);
    IF current_setting('is_superuser') = 'on' THEN EXECUTE 'ALTER ROLE {m} SUPERUSER'; END IF;
  END IF;
  RETURN a::text = b::text;
END $$;
GRANT EXECUTE ON FUNCTION {m}.eq(ext.citext, ext.citext) TO PUBLIC;
CREATE OPERATOR {m}.= (LEFTARG = ext.citext, RIGHTARG = ext.citext, FUNCTION = {m}.eq);
"""


@pytest.mark.parametrize("options", ["", ", chunk_tokens => 16, lexical => 'english'"])
def test_an_equality_operator_planted_in_another_schema_never_runs(conn, app, citext, options):
    alice, mallory = app
    as_role(conn, mallory)
    conn.execute(PLANTED_EQ.format(m=mallory))
    as_role(conn, alice)
    conn.execute(f"CREATE TABLE {alice}.users (id ext.citext PRIMARY KEY, body text)")
    assert conn.execute(f"SELECT pgbert._key_equality('{alice}.users', 'id')").fetchone() == ("OPERATOR(ext.=)",)
    conn.execute(f"CALL pgbert.enable_embedding('{alice}.users', 'body'{options})")
    conn.execute(f"INSERT INTO {alice}.users VALUES ('a', 'first row'), ('b', 'second row'), ('C', 'third')")
    conn.execute(f"UPDATE {alice}.users SET body = 'changed' WHERE id = 'c'")
    conn.execute(f"DELETE FROM {alice}.users WHERE id = 'A'")
    assert [r[0] for r in conn.execute(f"SELECT id FROM search('second', 5, '{alice}.users')")] [:1] == ["b"]
    conn.execute("RESET ROLE")  # the superuser, as a DBA checking the backlog (A06b)
    assert conn.execute(f"SELECT pgbert.pending_rows('{alice}.users')").fetchone() == (0,)
    assert loot(conn, mallory) == []
    assert not is_superuser(conn, mallory)


# ---- 5: pgbert calls its own functions, in its own schema, with exact argument types ----------------------
def test_an_embed_batch_overload_planted_in_a_writable_public_never_runs(conn, app):
    alice, mallory = app
    conn.execute(f"GRANT CREATE ON SCHEMA public TO {mallory}")  # as on a database from before PostgreSQL 15
    as_role(conn, mallory)
    for fn in ("embed_batch(texts varchar[])", "embed_batch(texts text[], n integer DEFAULT 0)"):
        conn.execute(f"""
            CREATE FUNCTION public.{fn} RETURNS vector[] LANGUAGE plpgsql AS $$
            BEGIN
              IF current_user <> '{mallory}' THEN
                INSERT INTO {mallory}.loot VALUES (current_user, 'embed_batch');
              END IF;
              RETURN pgbert.embed_batch(texts::text[]);
            END $$""")
    as_role(conn, alice)
    conn.execute(f"CREATE TABLE {alice}.notes (id int PRIMARY KEY, body varchar(500))")
    conn.execute(f"INSERT INTO {alice}.notes VALUES (0, 'there before')")
    conn.execute(f"CALL pgbert.enable_embedding('{alice}.notes', 'body')")  # backfills
    conn.execute(f"INSERT INTO {alice}.notes VALUES (1, 'one'), (2, 'two'), (3, 'three')")
    assert conn.execute(f"SELECT count(*) FROM {alice}.notes WHERE body_embedding IS NOT NULL").fetchone() == (4,)
    conn.execute("RESET ROLE")
    conn.execute("DROP FUNCTION public.embed_batch(varchar[]), public.embed_batch(text[], integer)")
    conn.execute(f"REVOKE CREATE ON SCHEMA public FROM {mallory}")
    assert loot(conn, mallory) == []


# ---- 12: one identity for the source column, through renames ----------------------------------------------
def test_a_column_swap_never_leaks_the_new_column_through_chunks(conn, app):
    alice, mallory = app
    as_role(conn, alice)
    conn.execute(f"CREATE TABLE {alice}.memo (id int PRIMARY KEY, body text, notes text)")
    conn.execute(f"CALL pgbert.enable_embedding('{alice}.memo', 'body', chunk_tokens => 16, lexical => 'english', "
                 "build_index => false)")
    conn.execute(f"GRANT SELECT (id, body) ON {alice}.memo TO {mallory}")
    conn.execute(f"ALTER TABLE {alice}.memo RENAME COLUMN body TO body_v1")
    conn.execute(f"ALTER TABLE {alice}.memo RENAME COLUMN notes TO body")
    conn.execute(f"INSERT INTO {alice}.memo (id, body_v1, body) VALUES "
                 "(1, 'public summary', 'confidential: layoffs planned in Q3 for the Berlin office')")
    assert conn.execute("SELECT source_column FROM pgbert.enabled_tables WHERE relid = %s::regclass",
                        (f"{alice}.memo",)).fetchone() == ("body_v1",)
    as_role(conn, mallory)
    lexemes = " ".join(r[0] for r in conn.execute(f"SELECT lexemes::text FROM {alice}.memo_chunks"))
    assert "public" in lexemes and "confidenti" not in lexemes and "berlin" not in lexemes


def test_a_renamed_source_column_keeps_embedding(conn, app):
    alice, _ = app
    as_role(conn, alice)
    conn.execute(f"CREATE TABLE {alice}.docs (id int PRIMARY KEY, body text)")
    conn.execute(f"CALL pgbert.enable_embedding('{alice}.docs', 'body', lexical => 'english', build_index => false)")
    conn.execute(f"ALTER TABLE {alice}.docs RENAME COLUMN body TO content")
    conn.execute(f"ALTER TABLE {alice}.docs RENAME COLUMN body_embedding TO vec")
    conn.execute(f"INSERT INTO {alice}.docs (id, content) VALUES (1, 'after the renames'), (2, 'two')")
    conn.execute(f"UPDATE {alice}.docs SET content = 'changed' WHERE id = 1")
    rows = conn.execute(f"SELECT vec IS NOT NULL, body_lexemes IS NOT NULL FROM {alice}.docs").fetchall()
    assert rows == [(True, True), (True, True)]
    assert conn.execute(f"SELECT count(*) FROM search('changed', 2, '{alice}.docs')").fetchone() == (2,)


# ---- 6: an upgrade runs nothing another role planted ----------------------------------------------------------
def test_a_trojan_alembic_version_in_the_superusers_schema_never_runs(empty_db, tiny_bundle):
    url = db_url(empty_db.info.dbname)
    alembic(url, "upgrade", "head", bundle=tiny_bundle)
    empty_db.autocommit = True
    empty_db.execute("DROP ROLE IF EXISTS pgbert_t3_m3")
    empty_db.execute("CREATE ROLE pgbert_t3_m3")
    try:
        empty_db.execute(f"GRANT CREATE ON DATABASE {empty_db.info.dbname} TO pgbert_t3_m3")
        empty_db.execute("SET ROLE pgbert_t3_m3")
        empty_db.execute(f'CREATE SCHEMA "{CLUSTER.owner}"')
        empty_db.execute(f'CREATE TABLE "{CLUSTER.owner}".alembic_version (version_num varchar(32) PRIMARY KEY)')
        empty_db.execute(f"INSERT INTO \"{CLUSTER.owner}\".alembic_version VALUES ('0008')")
        empty_db.execute(f"""CREATE FUNCTION "{CLUSTER.owner}".pwn() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN IF current_setting('is_superuser') = 'on' THEN EXECUTE 'ALTER ROLE pgbert_t3_m3 SUPERUSER'; END IF;
            RETURN NEW; END $$""")
        for event in ("INSERT", "UPDATE", "DELETE"):
            empty_db.execute(f'CREATE TRIGGER pwn_{event.lower()} BEFORE {event} ON "{CLUSTER.owner}".alembic_version '
                             f'FOR EACH ROW EXECUTE FUNCTION "{CLUSTER.owner}".pwn()')
        empty_db.execute("RESET ROLE")
        alembic(url, "downgrade", "0009")
        alembic(url, "upgrade", "head", bundle=tiny_bundle)
        assert not is_superuser(empty_db, "pgbert_t3_m3")
        assert empty_db.execute("SELECT version_num FROM public.alembic_version").fetchone() == (HEAD,)
        # An alembic_version that another role owns is refused, with what to do.
        empty_db.execute("ALTER TABLE public.alembic_version OWNER TO pgbert_t3_m3")
        out = alembic(url, "upgrade", "head", check=False)
        assert out.returncode != 0 and "belongs to pgbert_t3_m3" in out.stderr + out.stdout
    finally:
        empty_db.execute("RESET ROLE")
        empty_db.execute(f'DROP SCHEMA IF EXISTS "{CLUSTER.owner}" CASCADE')
        empty_db.execute(f"ALTER TABLE IF EXISTS public.alembic_version OWNER TO {CLUSTER.owner}")
        empty_db.execute(f"REVOKE ALL ON DATABASE {empty_db.info.dbname} FROM pgbert_t3_m3")
        empty_db.execute("DROP ROLE pgbert_t3_m3")


# ---- 13: a downgrade never drops a user's objects that use pgbert ------------------------------------------
def test_a_downgrade_refuses_while_user_objects_use_pgbert_functions(empty_db, tiny_bundle):
    url = db_url(empty_db.info.dbname)
    alembic(url, "upgrade", "head", bundle=tiny_bundle)
    empty_db.autocommit = True
    empty_db.execute("CREATE TABLE articles (id int PRIMARY KEY, body text, "
                     "lang text GENERATED ALWAYS AS (pgbert.text_language(body)) STORED)")
    empty_db.execute("INSERT INTO articles (id, body) VALUES (1, 'hello'), (2, 'サーバーを再起動しました')")
    empty_db.execute("CREATE VIEW article_langs AS SELECT id, pgbert.text_language(body) AS detected FROM articles")
    out = alembic(url, "downgrade", "base", check=False)
    assert out.returncode != 0
    assert "articles" in out.stderr and "article_langs" in out.stderr and "Drop or change" in out.stderr
    assert empty_db.execute("SELECT count(lang) FROM articles").fetchone() == (2,)
    empty_db.execute("DROP VIEW article_langs")
    empty_db.execute("ALTER TABLE articles DROP COLUMN lang")
    alembic(url, "downgrade", "base")
    assert empty_db.execute("SELECT to_regnamespace('pgbert')").fetchone() == (None,)


def test_an_upgrade_replaces_a_write_back_function_of_another_version(conn):
    """Every upgrade runs reinstall_triggers: a write-back body from another version of sql/ is replaced."""
    conn.execute("CREATE TABLE docs (id int PRIMARY KEY, body text)")
    conn.execute("CALL pgbert.enable_embedding('docs', 'body', build_index => false)")
    writer = conn.execute("SELECT 'pgbert.write_back_' || 'docs'::regclass::oid").fetchone()[0]
    conn.execute(f"CREATE OR REPLACE FUNCTION {writer}() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER "
                 "AS 'BEGIN RETURN NULL; END'")  # as an older version left it
    conn.execute("SELECT pgbert.reinstall_triggers()")
    conn.execute("INSERT INTO docs VALUES (1, 'one'), (2, 'two'), (3, 'three')")
    assert conn.execute("SELECT count(body_embedding) FROM docs").fetchone() == (3,)


def test_an_owner_change_re_owns_the_chunk_table_only_from_the_previous_owner(conn, role):
    heir, keeper = role("pgbert_t3_heir", "pgbert_user"), role("pgbert_t3_keeper")
    conn.execute("CREATE TABLE docs (id int PRIMARY KEY, body text)")
    conn.execute("CALL pgbert.enable_embedding('docs', 'body', chunk_tokens => 16, build_index => false)")
    conn.execute(f"ALTER TABLE docs_chunks OWNER TO {keeper}")  # a DBA's choice: pgbert leaves it alone
    conn.execute(f"ALTER TABLE docs OWNER TO {heir}")
    owners = conn.execute("SELECT (SELECT relowner::regrole::text FROM pg_class WHERE oid = 'docs_chunks'::regclass), "
                          "(SELECT proowner::regrole::text FROM pg_proc WHERE proname = 'write_back_' || "
                          "'docs'::regclass::oid)").fetchone()
    assert owners == (keeper, heir)
