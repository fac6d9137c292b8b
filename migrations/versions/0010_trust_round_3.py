"""Trust, round 3: only pgbert's own code writes the registry, which names columns by attribute number.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06

- pgbert.embedded_tables gains source_attnum, vector_attnum, key_attnum and lexical_attnum: a column is
  the same column through renames (its name is refreshed from its number after every ALTER TABLE).
- The registry's metric may also be 'inner_product' (enable_embedding's distance => ...).
- search(text, integer, regclass, text) takes a filter too (sql/ creates it anew: CREATE OR REPLACE cannot).
- Row-level security on the registry and its write policies go: no role but the installer writes it (the
  entry points in sql/ are SECURITY DEFINER and check the caller); sql/99_privileges.sql revokes the
  table-level INSERT, UPDATE and DELETE that pgbert_user had (and with them LOCK ... EXCLUSIVE).

Frozen once released: never edit a revision that has shipped; add a new one (tests/unit/test_layout.py).
"""
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

ATTNUM = ("(SELECT a.attnum FROM pg_catalog.pg_attribute a WHERE a.attrelid = e.relid::oid "
          "AND a.attname = e.{} AND a.attnum > 0 AND NOT a.attisdropped)")


def upgrade() -> None:
    op.execute("ALTER TABLE pgbert.embedded_tables ADD COLUMN source_attnum smallint, "
               "ADD COLUMN vector_attnum smallint, ADD COLUMN key_attnum smallint, ADD COLUMN lexical_attnum smallint")
    # A chunked table's vector and lexemes live in its chunk table: no column of the table itself.
    unchunked = "CASE WHEN e.chunk_relid IS NULL THEN {} END"
    op.execute(f"""UPDATE pgbert.embedded_tables e SET source_attnum = {ATTNUM.format('source_column')},
                          vector_attnum = {unchunked.format(ATTNUM.format('vector_column'))},
                          key_attnum = {ATTNUM.format('key_column')},
                          lexical_attnum = {unchunked.format(ATTNUM.format('lexical_column'))}""")
    op.execute("DELETE FROM pgbert.embedded_tables WHERE source_attnum IS NULL")  # a column gone: embedding was off
    op.execute("ALTER TABLE pgbert.embedded_tables ALTER COLUMN source_attnum SET NOT NULL")
    op.execute("ALTER TABLE pgbert.embedded_tables DROP CONSTRAINT embedded_tables_metric_check, ADD CONSTRAINT "
               "embedded_tables_metric_check CHECK (metric IN ('cosine', 'l2', 'inner_product'))")
    op.execute("DROP FUNCTION IF EXISTS public.search(text, integer, regclass, text)")
    op.execute("DROP POLICY owner_writes ON pgbert.embedded_tables")
    op.execute("DROP POLICY admin_forgets_missing ON pgbert.embedded_tables")
    op.execute("DROP POLICY readable ON pgbert.embedded_tables")
    op.execute("ALTER TABLE pgbert.embedded_tables DISABLE ROW LEVEL SECURITY")


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS public.search(text, integer, regclass, text, jsonb)")
    op.execute("DROP VIEW IF EXISTS pgbert.enabled_tables")  # sql/ (20_registry.sql) made it, on these columns
    op.execute("ALTER TABLE pgbert.embedded_tables ENABLE ROW LEVEL SECURITY")
    op.execute("CREATE POLICY readable ON pgbert.embedded_tables FOR SELECT USING (true)")
    op.execute("""
        CREATE POLICY owner_writes ON pgbert.embedded_tables FOR ALL
            USING (pg_has_role(current_user, (SELECT relowner FROM pg_class WHERE oid = relid), 'USAGE'))
            WITH CHECK (pg_has_role(current_user, (SELECT relowner FROM pg_class WHERE oid = relid), 'USAGE'))""")
    op.execute("""
        CREATE POLICY admin_forgets_missing ON pgbert.embedded_tables FOR DELETE TO pgbert_admin
            USING (NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid = relid::oid))""")
    op.execute("ALTER TABLE pgbert.embedded_tables DROP CONSTRAINT embedded_tables_metric_check, ADD CONSTRAINT "
               "embedded_tables_metric_check CHECK (metric IN ('cosine', 'l2'))")
    op.execute("ALTER TABLE pgbert.embedded_tables DROP COLUMN source_attnum, DROP COLUMN vector_attnum, "
               "DROP COLUMN key_attnum, DROP COLUMN lexical_attnum")
