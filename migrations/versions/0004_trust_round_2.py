"""Trust, round 2: the per-call input cap, registry rows of tables already gone, the 0.1 trigger objects.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30

- pgbert.settings gains max_input_chars (SQLSTATE 54000 beyond it).
- Registry rows whose table is gone (left by a DROP that the 0.1 event trigger could not clean up) are
  deleted, and pgbert_admin may delete such rows from now on.
- The 0.1 write-back functions (`<table's schema>.pgbert_embed_<oid>`, a name anyone with CREATE on that
  schema could claim first) and the 0.1 trigger functions are dropped with their triggers; the upgrade to
  head re-creates every registered table's triggers from sql/ (sql/30_triggers.sql, reinstall_triggers).

Frozen once released: never edit a revision that has shipped; add a new one (tests/unit/test_layout.py).
"""
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

MAX_INPUT_CHARS = 32 * 1024 * 1024


def upgrade() -> None:
    op.execute(f"""
        INSERT INTO pgbert.settings (name, value, description) VALUES
          ('max_input_chars', '{MAX_INPUT_CHARS}', 'most characters one embed()/embed_batch() call accepts, all '
                                         'texts together (SQLSTATE 54000 beyond); text past the model window is '
                                         'never tokenized')
        ON CONFLICT (name) DO NOTHING""")
    op.execute("""
        CREATE POLICY admin_forgets_missing ON pgbert.embedded_tables FOR DELETE TO pgbert_admin
            USING (NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid = relid::oid))""")
    op.execute("DELETE FROM pgbert.embedded_tables e "
               "WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid = e.relid::oid)")
    op.execute("""
        DO $$
        DECLARE
            fn regprocedure;
        BEGIN
            FOR fn IN
                SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
                 WHERE p.prorettype = 'trigger'::regtype AND p.proname ~ '^pgbert_embed_[0-9]+$'
            LOOP
                EXECUTE format('DROP FUNCTION %s CASCADE', fn);
            END LOOP;
        END
        $$""")
    op.execute("DROP FUNCTION IF EXISTS pgbert.embed_statement_start() CASCADE")
    op.execute("DROP EVENT TRIGGER IF EXISTS pgbert_forget_dropped_tables")
    # Gone, or re-created by sql/ with another return type (which CREATE OR REPLACE cannot change).
    for obsolete in ("pgbert.forget_dropped_tables()", "pgbert._batch_function_name(regclass)",
                     "pgbert._enable_embedding(regclass, name, name, text, boolean)", "pgbert._build_index(regclass)"):
        op.execute(f"DROP FUNCTION IF EXISTS {obsolete}")


def downgrade() -> None:
    op.execute("DELETE FROM pgbert.settings WHERE name = 'max_input_chars'")
    op.execute("DROP POLICY admin_forgets_missing ON pgbert.embedded_tables")
