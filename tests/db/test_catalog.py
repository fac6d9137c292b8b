"""What a DBA sees in the catalog: a comment on every routine, table and view; the DDL enable_embedding
generates, held as a golden file so that any change to it shows as a diff."""
import os
import re

from helpers import ROOT

GOLDEN = os.path.join(ROOT, "tests", "golden", "enable_embedding.sql")


def test_every_routine_table_and_view_a_dba_sees_has_a_comment(conn):
    conn.execute("CREATE TABLE docs (id int PRIMARY KEY, body text)")
    conn.execute("CALL pgbert.enable_embedding('docs', 'body')")  # generates a write-back function too
    missing = conn.execute("""
        SELECT p.oid::regprocedure::text FROM pg_proc p
         WHERE (p.pronamespace = 'pgbert'::regnamespace
                OR (p.pronamespace = 'public'::regnamespace
                    AND p.proname IN ('embed', 'embed_batch', 'search', 'search_rows')))
           AND obj_description(p.oid, 'pg_proc') IS NULL
        UNION ALL
        SELECT c.oid::regclass::text FROM pg_class c
         WHERE c.relnamespace = 'pgbert'::regnamespace AND c.relkind IN ('r', 'v')
           AND obj_description(c.oid, 'pg_class') IS NULL""").fetchall()
    assert missing == []


def generated_ddl(conn) -> str:
    """The functions, triggers and index that enable_embedding created for a sample table, oid-free."""
    relid = conn.execute("SELECT 'golden_docs'::regclass::oid").fetchone()[0]
    parts = [conn.execute("SELECT pg_get_functiondef(%s::regprocedure)",
                          (f"pgbert.write_back_{relid}()",)).fetchone()[0]]
    parts += [r[0] + ";" for r in conn.execute(
        "SELECT pg_get_triggerdef(oid) FROM pg_trigger WHERE tgrelid = 'golden_docs'::regclass "
        "AND NOT tgisinternal ORDER BY tgname")]
    parts += [r[0] + ";" for r in conn.execute(
        "SELECT indexdef FROM pg_indexes WHERE tablename = 'golden_docs' ORDER BY indexname")]
    parts += [str(r) for r in conn.execute(
        "SELECT source_column, vector_column, key_column, strategy, metric, dimension, index_name "
        "FROM pgbert.embedded_tables WHERE relid = 'golden_docs'::regclass")]
    return re.sub(rf"(?<!\d){relid}(?!\d)", "<oid>", "\n".join(parts)) + "\n"


def test_generated_ddl_matches_the_golden_file(conn):
    conn.execute("CREATE TABLE golden_docs (id bigint PRIMARY KEY, body text)")
    conn.execute("CALL pgbert.enable_embedding('golden_docs', 'body')")
    ddl = generated_ddl(conn)
    if os.environ.get("PGBERT_UPDATE_GOLDEN") or not os.path.exists(GOLDEN):
        with open(GOLDEN, "w", encoding="utf-8") as f:
            f.write(ddl)
    with open(GOLDEN, encoding="utf-8") as f:
        expected = f.read()
    assert ddl == expected, "enable_embedding generates other DDL: review it, then PGBERT_UPDATE_GOLDEN=1"
