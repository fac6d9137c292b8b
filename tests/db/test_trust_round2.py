"""Trust, round 2 (issue 14): each attack of the review, then the assertion that it no longer works."""
import os
import threading
import time

import psycopg
import pytest

from helpers import CLUSTER, alembic, assert_embedded, db_url, is_superuser, tiny_bundle_path


@pytest.fixture()
def docs(conn):
    conn.execute("CREATE TABLE docs (id serial PRIMARY KEY, body text)")
    conn.execute("CALL pgbert.enable_embedding('docs', 'body')")


def as_role(conn, role):
    conn.execute(f"SET ROLE {role}")


# ---- 1. plain roles can DROP again ------------------------------------------------------------------------
def test_a_role_without_pgbert_privileges_can_drop_anything_it_owns(conn, role):
    app = role("pgbert_test_app")
    conn.execute(f"GRANT CREATE ON SCHEMA public TO {app}")
    as_role(conn, app)
    conn.execute("CREATE TEMP TABLE t (x int)")
    conn.execute("DROP TABLE t")
    conn.execute("CREATE TABLE mine (x int, y int)")
    conn.execute("ALTER TABLE mine DROP COLUMN x")
    conn.execute("CREATE VIEW v AS SELECT y FROM mine")
    conn.execute("DROP VIEW v")
    conn.execute("CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'")
    conn.execute("DROP FUNCTION f()")
    assert conn.execute("SELECT count(*) FROM pg_attribute WHERE attrelid = 'mine'::regclass AND attname = 'x' "
                        "AND NOT attisdropped").fetchone() == (0,)
    conn.execute("DROP TABLE mine")
    assert conn.execute("SELECT to_regclass('mine'), to_regclass('v'), to_regprocedure('f()'), "
                        "to_regclass('pg_temp.t')").fetchone() == (None, None, None, None)


# ---- 2. a dropped table leaves nothing behind ---------------------------------------------------------
def test_a_table_dropped_by_its_non_superuser_owner_is_forgotten(conn, role, tiny_bundle):
    owner = role("pgbert_test_owner", "pgbert_user")
    conn.execute(f"GRANT CREATE ON SCHEMA public TO {owner}")
    as_role(conn, owner)
    conn.execute("CREATE TABLE mine (id int PRIMARY KEY, body text)")
    conn.execute("CALL pgbert.enable_embedding('mine', 'body')")
    relid = conn.execute("SELECT 'mine'::regclass::oid").fetchone()[0]
    conn.execute("DROP TABLE mine")
    conn.execute("RESET ROLE")
    registered = conn.execute("SELECT count(*) FROM pgbert.embedded_tables WHERE relid::oid = %s", (relid,))
    assert registered.fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM pg_proc WHERE proname = %s", (f"write_back_{relid}",)).fetchone() == (0,)
    # Nothing stale blocks switching models (it did: "embedding tables use another dimension: 21832.body_embedding").
    conn.execute("DROP TABLE text_embeddings")
    conn.execute("SELECT pgbert.use_model(%s)", (tiny_bundle_path("tiny-bert-64", hidden=64),))


def test_ownership_check_fails_closed_for_a_table_that_is_gone(conn):
    conn.execute("CREATE TABLE gone (id int)")
    relid = conn.execute("SELECT 'gone'::regclass::oid").fetchone()[0]
    conn.execute("DROP TABLE gone")
    with pytest.raises(psycopg.errors.UndefinedTable):
        conn.execute("SELECT pgbert._require_owner(%s::oid::regclass, 'enable')", (relid,))


def test_not_even_pgbert_admin_writes_the_registry(conn, role):
    """(Round 2 let pgbert_admin delete rows of tables that are gone; round 3 makes the registry pgbert's
    alone: forget_dropped removes such rows as their table goes.)"""
    admin = role("pgbert_test_admin", "pgbert_admin")
    as_role(conn, admin)
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("DELETE FROM pgbert.embedded_tables")


# ---- 3. the pgbert_user gate ---------------------------------------------------------------------------
def test_a_role_without_pgbert_user_cannot_attach_the_embedding_trigger(conn, role):
    outsider = role("pgbert_test_outsider")
    as_role(conn, outsider)
    conn.execute("CREATE TEMP TABLE e (t text, v vector)")
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied for function pgbert.embed_row"):
        conn.execute("CREATE TRIGGER e BEFORE INSERT ON e FOR EACH ROW "
                     "EXECUTE FUNCTION pgbert.embed_row('t', 'v', 'row', '0')")
    for fn in ("pgbert.batch_start()", "pgbert.batch_end()"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied for function pgbert.batch_"):
            conn.execute(f"CREATE TRIGGER s BEFORE INSERT ON e FOR EACH STATEMENT EXECUTE FUNCTION {fn}")


def test_public_may_execute_nothing_of_pgbert_but_the_import(conn):
    public = conn.execute("""
        SELECT p.oid::regprocedure::text FROM pg_proc p
         WHERE (p.pronamespace = 'pgbert'::regnamespace
                OR (p.pronamespace = 'public'::regnamespace
                    AND p.proname IN ('embed', 'embed_batch', 'search', 'search_rows')))
           AND EXISTS (SELECT 1 FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
                        WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE')""").fetchall()
    # the import, and the public functions a user calls, whose first step refuses a role without pgbert_user
    assert sorted(r[0] for r in public) == [
        "embed(text)", "embed(text,name,text)", "embed(text,text)", "embed_batch(text[])",
        "embed_batch(text[],name,text)", "embed_batch(text[],text)", "pgbert._boot()",
        "pgbert._require_user()", "search(text,integer)", "search(text,integer,regclass,text,jsonb)",
        "search_rows(text,integer,anyelement,text,jsonb)"]


# ---- 4. write-back function and index names cannot be claimed; the write-back checks its table -------
def test_the_write_back_function_cannot_be_pre_created_or_turned_on_another_table(conn, role):
    attacker = role("pgbert_test_attacker", "pgbert_user")
    conn.execute(f"GRANT CREATE ON SCHEMA public TO {attacker}")
    relid = conn.execute("SELECT 'text_embeddings'::regclass::oid").fetchone()[0]
    as_role(conn, attacker)
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied for schema pgbert"):
        conn.execute(f"CREATE FUNCTION pgbert.write_back_{relid}() RETURNS trigger LANGUAGE plpgsql "
                     "AS 'BEGIN RETURN NULL; END'")
    conn.execute("RESET ROLE")
    conn.execute("INSERT INTO text_embeddings (text) VALUES ('victim one'), ('victim two')")
    before = conn.execute("SELECT id, embedding::text FROM text_embeddings ORDER BY id").fetchall()
    # Even if the owner granted EXECUTE on it (the squatter's old trick kept the ACL), it refuses any
    # table but its own.
    conn.execute(f"GRANT EXECUTE ON FUNCTION pgbert.write_back_{relid}() TO {attacker}")
    as_role(conn, attacker)
    conn.execute("CREATE TEMP TABLE fake (id bigint, text text, embedding vector)")
    conn.execute(f"CREATE TRIGGER w AFTER INSERT ON fake REFERENCING NEW TABLE AS pgbert_new_rows "
                 f"FOR EACH STATEMENT EXECUTE FUNCTION pgbert.write_back_{relid}()")
    ids = [r[0] for r in before]
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="writes back after statements on the table of oid"):
        conn.execute("INSERT INTO fake SELECT i, 'attacker text', NULL FROM unnest(%s::bigint[]) i", (ids,))
    conn.execute("RESET ROLE")
    assert conn.execute("SELECT id, embedding::text FROM text_embeddings ORDER BY id").fetchall() == before


def test_a_relation_named_like_the_index_does_not_skip_the_index(conn):
    conn.execute("CREATE TABLE docs (id serial PRIMARY KEY, body text)")
    conn.execute("CREATE TABLE docs_body_embedding_hnsw (x int)")  # the 0.1 index name, taken
    conn.execute("CREATE TABLE docs_body_embedding_idx (x int)")   # PostgreSQL's first choice, taken too
    conn.execute("CALL pgbert.enable_embedding('docs', 'body')")
    index = conn.execute("""
        SELECT ic.relname FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_am am ON am.oid = ic.relam
         WHERE i.indrelid = 'docs'::regclass AND am.amname = 'hnsw'""").fetchall()
    assert len(index) == 1
    assert conn.execute("SELECT index_name FROM pgbert.enabled_tables WHERE relid = 'docs'::regclass"
                        ).fetchone() == index[0]


# ---- 5. superuser through a table handed to an application -------------------------------------------
def test_a_table_handed_to_an_application_never_runs_its_triggers_as_superuser(conn, role):
    app = role("pgbert_test_app", "pgbert_user")
    conn.execute(f"ALTER TABLE public.text_embeddings OWNER TO {app}")
    relid = conn.execute("SELECT 'text_embeddings'::regclass::oid").fetchone()[0]
    assert conn.execute("SELECT proowner::regrole::text FROM pg_proc WHERE proname = %s",
                        (f"write_back_{relid}",)).fetchone() == (app,)
    as_role(conn, app)
    conn.execute(f"""CREATE FUNCTION pg_temp.escalate() RETURNS trigger LANGUAGE plpgsql AS $$
                     BEGIN ALTER ROLE {app} SUPERUSER; RETURN NEW; END $$""")
    conn.execute("CREATE TRIGGER escalate BEFORE UPDATE ON public.text_embeddings FOR EACH ROW "
                 "EXECUTE FUNCTION pg_temp.escalate()")
    # The write-back's UPDATE fires the trigger as the application role, which may not do that: the INSERT
    # fails there (as the superuser it would have succeeded, and the role would be superuser).
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="must be superuser to alter superuser roles"):
        conn.execute("INSERT INTO public.text_embeddings (text) VALUES ('one'), ('two')")
    conn.execute("RESET ROLE")
    assert not is_superuser(conn, app)


def test_a_table_whose_owner_changed_behind_pgbert_refuses_to_write_back(conn, role, docs):
    """If the write-back function was not re-owned (event triggers off, say), it stops instead of running
    as the old owner."""
    app = role("pgbert_test_app", "pgbert_user")
    conn.execute("ALTER EVENT TRIGGER pgbert_follow_altered_tables DISABLE")
    try:
        conn.execute(f"ALTER TABLE docs OWNER TO {app}")
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="owner of public.docs changed"):
            conn.execute("INSERT INTO docs (body) VALUES ('one'), ('two')")
    finally:
        conn.execute("ALTER EVENT TRIGGER pgbert_follow_altered_tables ENABLE")


# ---- 6. superuser through objects planted in public ---------------------------------------------------
def test_objects_planted_in_public_never_run_as_the_superuser(conn, role, tiny_bundle):
    planter = role("pgbert_test_planter", "pgbert_user")
    conn.execute(f"GRANT CREATE ON SCHEMA public TO {planter}")
    as_role(conn, planter)
    conn.execute(f"""CREATE FUNCTION public.evil_step(bigint[], bigint) RETURNS bigint[] LANGUAGE plpgsql AS $$
                     BEGIN ALTER ROLE {planter} SUPERUSER; RETURN $1 || $2; END $$""")
    conn.execute("CREATE AGGREGATE public.array_agg(bigint) (SFUNC = public.evil_step, STYPE = bigint[])")
    conn.execute(f"""CREATE FUNCTION public.evil_eq(regclass, regclass) RETURNS boolean LANGUAGE plpgsql AS $$
                     BEGIN ALTER ROLE {planter} SUPERUSER; RETURN $1::oid = $2::oid; END $$""")
    conn.execute("CREATE OPERATOR public.= (LEFTARG = regclass, RIGHTARG = regclass, FUNCTION = public.evil_eq)")
    # The traps are live: with public on the path they are what PostgreSQL picks (here as the planter, who
    # may not make itself superuser).
    conn.execute("SET search_path = public, pg_catalog")
    for trap in ("SELECT array_agg(x) FROM (VALUES (1::bigint)) v(x)", "SELECT 'pg_class'::regclass = 'pg_class'"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(trap)
    conn.execute("RESET search_path")
    conn.execute("RESET ROLE")
    conn.execute("INSERT INTO text_embeddings (text) VALUES ('one'), ('two'), ('three')")  # the batch write-back
    conn.execute("SET search_path = public, pg_catalog")  # as a careless superuser's session might
    conn.execute("CALL pgbert.install_text_embeddings()")
    conn.execute("SELECT pgbert.reinstall_triggers()")
    conn.execute("RESET search_path")
    alembic(db_url(conn.info.dbname), "upgrade", "head", bundle=tiny_bundle)  # as every upgrade: the superuser
    assert not is_superuser(conn, planter)
    assert_embedded(conn, "text_embeddings", "text", "embedding")


# ---- 7. bounded, cancellable embedding ---------------------------------------------------------------
@pytest.fixture()
def slow_db(conn, default_bundle):
    """This test's database on the real default model (seconds per thousand texts: long enough to cancel)."""
    conn.execute("DROP TABLE text_embeddings")
    conn.execute("SELECT pgbert.use_model(%s)", (default_bundle,))
    conn.execute("SELECT embed('warm up')")
    return conn


LONG_TEXTS = "SELECT array_agg(repeat('word' || g || ' ', 400)) FROM generate_series(1, 2000) g"


@pytest.mark.slow
@pytest.mark.parametrize("statement", [
    f"SELECT embed_batch(({LONG_TEXTS}))",
    "SELECT count(embed(repeat('word' || g || ' ', 400))) FROM generate_series(1, 2000) g",
    "INSERT INTO docs (body) SELECT repeat('word' || g || ' ', 400) FROM generate_series(1, 2000) g",
], ids=["embed_batch", "embed", "insert"])
def test_statement_timeout_stops_embedding_work_promptly(slow_db, statement):
    slow_db.execute("CREATE TABLE docs (id serial PRIMARY KEY, body text)")
    slow_db.execute("CALL pgbert.enable_embedding('docs', 'body')")
    slow_db.execute("SET statement_timeout = '1s'")
    started = time.perf_counter()
    with pytest.raises(psycopg.errors.QueryCanceled):
        slow_db.execute(statement)
    # Before the fix the model ran to the end (minutes); a bound far above the measured p95 keeps this
    # test about behaviour, not speed (bench/cancel.py measures it).
    assert time.perf_counter() - started < 6
    slow_db.execute("RESET statement_timeout")
    assert slow_db.execute("SELECT count(*) FROM docs").fetchone() == (0,)


@pytest.mark.slow
def test_pg_cancel_backend_stops_embed_batch(slow_db):
    worker = psycopg.connect(CLUSTER.url(slow_db.info.dbname), autocommit=True)
    pid, errors = worker.info.backend_pid, []

    def run():
        try:
            worker.execute(f"SELECT embed_batch(({LONG_TEXTS}))")
        except psycopg.Error as exc:
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    time.sleep(2)
    cancelled = time.perf_counter()
    slow_db.execute("SELECT pg_cancel_backend(%s)", (pid,))
    thread.join(30)
    assert not thread.is_alive() and isinstance(errors[0], psycopg.errors.QueryCanceled)
    assert time.perf_counter() - cancelled < 5
    assert worker.execute("SELECT 1").fetchone() == (1,)  # the backend lives on
    worker.close()


def peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024


def test_a_huge_text_costs_little_memory_and_is_cut_not_refused(conn):
    pid = conn.info.backend_pid
    if not os.path.exists(f"/proc/{pid}/status"):
        pytest.skip("the server's /proc is not visible")
    conn.execute("SELECT embed('warm up'), embed_batch(ARRAY['warm', 'up'])")
    before = peak_rss_mb(pid)
    # 4 MB of one punctuation character: every character a token. Tokenizing it all took +2.1 GB.
    text = "!" * 4_000_000
    got = conn.execute("SELECT embed(%s) = embed(repeat('!', 1000))", (text,)).fetchone()
    assert got == (True,)  # only the window counts
    assert peak_rss_mb(pid) - before < 100


def test_more_input_than_max_input_chars_is_refused_with_54000(conn, docs):
    conn.execute("UPDATE pgbert.settings SET value = '1000' WHERE name = 'max_input_chars'")
    conn.execute("SELECT embed(repeat('x', 1000))")
    with pytest.raises(psycopg.errors.ProgramLimitExceeded, match="max_input_chars") as info:
        conn.execute("SELECT embed(repeat('x', 1001))")
    assert info.value.diag.message_hint
    with pytest.raises(psycopg.errors.ProgramLimitExceeded):
        conn.execute("SELECT embed_batch(ARRAY[repeat('x', 600), repeat('y', 600)])")
    with pytest.raises(psycopg.errors.ProgramLimitExceeded):
        conn.execute("INSERT INTO docs (body) VALUES (repeat('x', 2000))")
    assert conn.execute("SELECT count(*) FROM docs").fetchone() == (0,)  # nothing stored without its vector


# ---- 8. partitions, and a downgrade blocked by the user's objects --------------------------------------
@pytest.mark.parametrize("strategy", ["batch", "row"])
def test_rows_inserted_straight_into_a_partition_are_embedded(conn, strategy):
    conn.execute("CREATE TABLE parts (id int PRIMARY KEY, body text) PARTITION BY RANGE (id)")
    conn.execute("CREATE TABLE parts_low PARTITION OF parts FOR VALUES FROM (0) TO (100)")
    conn.execute("CREATE TABLE parts_high PARTITION OF parts FOR VALUES FROM (100) TO (200)")
    conn.execute("CALL pgbert.enable_embedding('parts', 'body', strategy => %s)", (strategy,))
    conn.execute("INSERT INTO parts VALUES (1, 'through the parent'), (150, 'also through the parent'), (2, 'x')")
    conn.execute("INSERT INTO parts_low VALUES (3, 'straight into a partition'), (4, 'and another')")
    conn.execute("INSERT INTO parts_high VALUES (160, 'the other partition')")
    with conn.cursor().copy("COPY parts_low (id, body) FROM STDIN") as copy:
        copy.write_row((5, "copied into a partition"))
    assert_embedded(conn, "parts")
    assert conn.execute("SELECT count(*) FROM parts").fetchone() == (7,)


def test_a_downgrade_blocked_by_a_users_view_says_which_and_what_to_do(empty_db, tiny_bundle):
    empty_db.autocommit = True
    url = db_url(empty_db.info.dbname)
    alembic(url, "upgrade", "head", bundle=tiny_bundle)
    empty_db.execute("CREATE VIEW my_embeddings AS SELECT embed('x') AS v")
    out = alembic(url, "downgrade", "base", check=False)
    assert out.returncode != 0
    assert "cannot remove public.embed(text): objects of yours use it" in out.stderr
    assert "my_embeddings" in out.stderr and "Drop or change those objects first" in out.stderr
    assert empty_db.execute("SELECT to_regclass('pgbert.models') IS NOT NULL").fetchone() == (True,)  # untouched
    empty_db.execute("DROP VIEW my_embeddings")
    alembic(url, "downgrade", "base")
