"""Hostile names everywhere (issue 19): a non-superuser, with check_function_bodies off, enables embedding on a
schema, table, source, vector and key column named to break quoting, then inserts, copies, updates, renames,
hands the table to another owner, backfills, searches, migrates, disables and drops. Nothing but the intended
objects changes, and no role gains anything."""
import pytest
from psycopg import sql

from helpers import is_superuser

NAME_SETS = {
    "dollar quotes": dict(schema="$body$;ALTER ROLE {r} SUPERUSER;SELECT $body$", table="$$ it's \"q\" $$",
                          source="new\nline", vector="back\\slash;", key="semi;colon -- x"),
    "non-ASCII, 63 bytes": dict(schema="日本語 schema", table="あ" * 21, source="x" * 63,
                                vector="with space $$", key="$body$"),
}
OPTIONS = {
    "batch": dict(strategy="batch"),
    "row": dict(strategy="row"),
    "chunks": dict(chunk_tokens=16, lexical="english"),
    "lexical": dict(lexical="japanese"),
}

SNAPSHOT = """
    SELECT 'class', c.oid::text, c.relname::text, c.relowner::text, coalesce(c.relacl::text, '') FROM pg_class c
     WHERE c.relnamespace NOT IN (SELECT oid FROM pg_namespace WHERE nspname LIKE 'pg\\_t%%' OR nspname = %(schema)s)
    UNION ALL
    SELECT 'proc', p.oid::text, p.proname::text, p.proowner::text, coalesce(p.proacl::text, '') FROM pg_proc p
     WHERE p.proname !~ '^write_back_[0-9]+$'
    UNION ALL
    SELECT 'role', r.oid::text, r.rolname::text, (r.rolsuper, r.rolcreaterole, r.rolcreatedb, r.rolbypassrls)::text,
           coalesce((SELECT string_agg(m.roleid::text, ',' ORDER BY m.roleid) FROM pg_auth_members m
                      WHERE m.member = r.oid), '')
      FROM pg_roles r
    UNION ALL
    SELECT 'namespace', n.oid::text, n.nspname::text, n.nspowner::text, coalesce(n.nspacl::text, '')
      FROM pg_namespace n WHERE n.nspname <> %(schema)s"""


def ident(*parts):
    return sql.Identifier(*parts)


@pytest.mark.parametrize("options", OPTIONS.values(), ids=OPTIONS.keys())
@pytest.mark.parametrize("names", NAME_SETS.values(), ids=NAME_SETS.keys())
def test_hostile_names_change_nothing_but_their_own_table(conn, role, names, options):
    owner, heir = role("pgbert_hostile_owner", "pgbert_user"), role("pgbert_hostile_heir", "pgbert_user")
    n = {k: v.format(r=owner) for k, v in names.items()}
    conn.execute(sql.SQL("GRANT CREATE ON DATABASE {} TO {}").format(ident(conn.info.dbname), ident(owner)))
    before = set(conn.execute(SNAPSHOT, {"schema": n["schema"]}).fetchall())
    tbl, src = ident(n["schema"], n["table"]), ident(n["source"])
    qualified = conn.execute("SELECT format('%%I.%%I', %s::text, %s::text)", (n["schema"], n["table"])).fetchone()[0]
    chunked = "chunk_tokens" in options

    conn.execute(sql.SQL("SET ROLE {}").format(ident(owner)))
    conn.execute("SET check_function_bodies = off")
    conn.execute(sql.SQL("CREATE SCHEMA {}").format(ident(n["schema"])))
    conn.execute(sql.SQL("CREATE TABLE {} ({} int PRIMARY KEY, {} text, other text)").format(
        tbl, ident(n["key"]), src))
    conn.execute(sql.SQL("INSERT INTO {} VALUES (1, 'there before pgbert', 'x')").format(tbl))
    vector = {} if chunked else {"vector_column": n["vector"]}
    args = {**options, **vector}
    conn.execute(sql.SQL("CALL pgbert.enable_embedding(%s, %s, {})").format(sql.SQL(", ").join(
        sql.SQL("{} => %s").format(sql.Identifier(k)) for k in args)), (qualified, n["source"], *args.values()))
    conn.execute(sql.SQL("INSERT INTO {} ({}, {}, other) VALUES (2, 'a note about compression tools', 'x'), "
                         "(3, '圧縮ツールについてのメモ', 'x')").format(tbl, ident(n["key"]), src))
    with conn.cursor().copy(sql.SQL("COPY {} ({}, {}, other) FROM STDIN").format(tbl, ident(n["key"]), src)) as copy:
        copy.write_row((4, "copied row about databases", "y"))
        copy.write_row((5, None, "no text"))
    conn.execute(sql.SQL("UPDATE {} SET {} = 'updated text about archives' WHERE {} = 1").format(
        tbl, src, ident(n["key"])))
    conn.execute(sql.SQL("UPDATE {} SET other = 'z'").format(tbl))
    assert conn.execute("SELECT pgbert.pending_rows(%s)", (qualified,)).fetchone() == (0,)
    found = conn.execute("SELECT array_agg(id ORDER BY id) FROM search('compression tools', 10, %s)", (qualified,))
    assert found.fetchone() == (["1", "2", "3", "4"],)  # every row with text, by its key

    renamed = n["source"][:60] + "_v2"
    conn.execute(sql.SQL("ALTER TABLE {} RENAME COLUMN {} TO {}").format(tbl, src, ident(renamed)))
    conn.execute(sql.SQL("INSERT INTO {} ({}, {}, other) VALUES (6, 'after the rename', 'x'), (7, 'seven', 'x')")
                 .format(tbl, ident(n["key"]), ident(renamed)))
    assert conn.execute("SELECT pgbert.pending_rows(%s)", (qualified,)).fetchone() == (0,)

    conn.execute("RESET ROLE")  # a new owner, as a DBA would hand a table to an application
    conn.execute(sql.SQL("GRANT USAGE, CREATE ON SCHEMA {} TO {}").format(ident(n["schema"]), ident(heir)))
    conn.execute(sql.SQL("ALTER TABLE {} OWNER TO {}").format(tbl, ident(heir)))
    conn.execute("SET check_function_bodies = off")  # as pg_restore scripts do
    conn.execute("SELECT pgbert.reinstall_triggers()")  # what every upgrade runs
    conn.execute(sql.SQL("SET ROLE {}").format(ident(heir)))
    conn.execute("SET check_function_bodies = off")
    conn.execute(sql.SQL("INSERT INTO {} ({}, {}, other) VALUES (8, 'the heir writes', 'x'), (9, 'nine', 'x')")
                 .format(tbl, ident(n["key"]), ident(renamed)))
    conn.execute(sql.SQL("ALTER TABLE {} DISABLE TRIGGER USER").format(tbl))  # a bulk load without triggers
    conn.execute(sql.SQL("INSERT INTO {} ({}, {}) VALUES (10, 'loaded without triggers')")
                 .format(tbl, ident(n["key"]), ident(renamed)))
    conn.execute(sql.SQL("ALTER TABLE {} ENABLE TRIGGER USER").format(tbl))
    assert conn.execute("SELECT pgbert.pending_rows(%s)", (qualified,)).fetchone() == (1,)
    conn.execute("CALL pgbert.backfill(%s)", (qualified,))
    assert conn.execute("SELECT pgbert.pending_rows(%s)", (qualified,)).fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM search('the heir writes', 3, %s)", (qualified,)).fetchone() == (3,)
    conn.execute("CALL pgbert.disable_embedding(%s, drop_column => true)", (qualified,))
    conn.execute(sql.SQL("DROP TABLE {}").format(tbl))

    conn.execute("RESET ROLE")
    conn.execute(sql.SQL("DROP SCHEMA {}").format(ident(n["schema"])))
    conn.execute(sql.SQL("REVOKE CREATE ON DATABASE {} FROM {}").format(ident(conn.info.dbname), ident(owner)))
    assert not is_superuser(conn, owner) and not is_superuser(conn, heir)
    after = set(conn.execute(SNAPSHOT, {"schema": n["schema"]}).fetchall())
    assert after ^ before == set()
    assert conn.execute("SELECT count(*) FROM pgbert.embedded_tables").fetchone() == (1,)  # text_embeddings
