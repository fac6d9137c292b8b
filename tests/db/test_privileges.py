"""The privilege audit: every pgbert routine with its SECURITY DEFINER flag, owner, pinned settings and
EXECUTE grantees, every pgbert table and view with its grants, against tests/golden/privileges.txt. Any
change shows as a diff; update the golden file (PGBERT_UPDATE_GOLDEN=1) only for a change made on purpose,
and keep SECURITY.md true with it."""
import os

from helpers import ROOT

GOLDEN = os.path.join(ROOT, "tests", "golden", "privileges.txt")

# The installer (the role that ran the migrations, owner of schema pgbert) shows as "installer".
ROUTINES = """
    SELECT p.oid::regprocedure::text AS routine,
           CASE WHEN p.prosecdef THEN 'SECURITY DEFINER' ELSE 'invoker' END AS rights,
           CASE WHEN p.proowner = (SELECT nspowner FROM pg_namespace WHERE nspname = 'pgbert') THEN 'installer'
                ELSE p.proowner::regrole::text END AS owner,
           coalesce(array_to_string(ARRAY(SELECT c FROM unnest(p.proconfig) c ORDER BY c), ' '), '-') AS settings,
           coalesce((SELECT string_agg(CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END, ' '
                                       ORDER BY 1)
                       FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
                      WHERE a.privilege_type = 'EXECUTE' AND a.grantee <> p.proowner), '-') AS execute
      FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
     WHERE (n.nspname = 'pgbert' AND p.proname !~ '^write_back_[0-9]+$')
        OR (n.nspname = 'public' AND p.proname IN ('embed', 'embed_batch', 'search', 'search_rows'))
     ORDER BY 1"""

RELATIONS = """
    SELECT c.oid::regclass::text, c.relkind::text,
           coalesce((SELECT string_agg(CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END
                                       || ':' || a.privilege_type, ' ' ORDER BY 1)
                       FROM aclexplode(c.relacl) a WHERE a.grantee <> c.relowner), '-') AS grants,
           coalesce((SELECT string_agg(at.attname || ':' || CASE WHEN a.grantee = 0 THEN 'PUBLIC'
                                                               ELSE a.grantee::regrole::text END
                                       || ':' || a.privilege_type, ' ' ORDER BY 1)
                       FROM pg_attribute at, aclexplode(at.attacl) a
                      WHERE at.attrelid = c.oid AND at.attacl IS NOT NULL), '-') AS column_grants,
           c.relrowsecurity AS row_security
      FROM pg_class c WHERE c.relnamespace = 'pgbert'::regnamespace AND c.relkind IN ('r', 'v', 'p')
     ORDER BY 1"""


def audit(conn) -> str:
    conn.execute("SET search_path = pg_catalog")  # every name schema-qualified
    lines = ["# routine | rights | owner | pinned settings | EXECUTE (besides the owner)"]
    lines += [" | ".join(row) for row in conn.execute(ROUTINES)]
    lines += ["", "# relation | kind | grants (besides the owner) | column grants | row-level security"]
    lines += [" | ".join(str(v) for v in row) for row in conn.execute(RELATIONS)]
    return "\n".join(lines) + "\n"


def test_privileges_match_the_golden_file(conn):
    conn.execute("CREATE TABLE docs (id int PRIMARY KEY, body text)")
    conn.execute("CALL pgbert.enable_embedding('docs', 'body')")
    got = audit(conn)
    if os.environ.get("PGBERT_UPDATE_GOLDEN") or not os.path.exists(GOLDEN):
        with open(GOLDEN, "w", encoding="utf-8") as f:
            f.write(got)
    with open(GOLDEN, encoding="utf-8") as f:
        assert got == f.read(), "privileges changed: review the diff, then PGBERT_UPDATE_GOLDEN=1 and SECURITY.md"


def test_every_security_definer_routine_pins_its_settings_and_only_entry_points_have_one(conn):
    conn.execute("CREATE TABLE docs (id int PRIMARY KEY, body text)")
    conn.execute("CALL pgbert.enable_embedding('docs', 'body', chunk_tokens => 16)")
    conn.execute("CREATE TABLE qdocs (id int PRIMARY KEY, body text)")
    conn.execute("CALL pgbert.enable_embedding('qdocs', 'body', strategy => 'queue')")
    definers = conn.execute("""
        SELECT p.proname, p.proconfig FROM pg_proc p
         WHERE p.pronamespace = 'pgbert'::regnamespace AND p.prosecdef ORDER BY 1""").fetchall()
    for name, config in definers:
        assert any(c.startswith("search_path=pg_catalog") for c in config), name
        if not name.startswith(("write_back_", "store_queued_")):
            assert "check_function_bodies=on" in config, name
    assert [n for n, _ in definers if not n.startswith(("write_back_", "store_queued_"))] == [
        "_embed_named", "_next_backlog", "_queue_counts", "_work_claimed", "change_strategy", "claim_batch",
        "compute_claimed", "fail_claimed", "follow_altered_tables", "forget_dropped", "model_change_step",
        "queue_trigger", "queue_wait_seconds", "release_claims", "requeue_failed", "setup_embedding",
        "store_claimed", "teardown_embedding"]
    # A table's write-back function holds fixed text and its table's oid: the same for every table.
    bodies = conn.execute("""
        SELECT DISTINCT regexp_replace(p.prosrc, '[0-9]+', 'N', 'g') FROM pg_proc p
         WHERE p.pronamespace = 'pgbert'::regnamespace AND p.proname ~ '^write_back_[0-9]+$'""").fetchall()
    assert len(bodies) == 1 and "docs" not in bodies[0][0] and "body" not in bodies[0][0].replace("$body$", "")
    # So does its store function (the queue's): the oid and fixed text, executable by nobody but pgbert's owner.
    stores = conn.execute("""
        SELECT DISTINCT regexp_replace(p.prosrc, '[0-9]+', 'N', 'g'), p.proacl::text FROM pg_proc p
         WHERE p.pronamespace = 'pgbert'::regnamespace AND p.proname ~ '^store_queued_[0-9]+$'""").fetchall()
    assert len(stores) == 1 and "qdocs" not in stores[0][0]
    assert not any(item.startswith("=") for item in stores[0][1].strip("{}").split(","))  # no grant to PUBLIC
