"""Auto-embedding: the registry of tables whose rows embed themselves.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29

Frozen once released: never edit a revision that has shipped; add a new one.
"""
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        CREATE TABLE pgbert.embedded_tables (
            relid         regclass PRIMARY KEY,
            source_column name NOT NULL,
            vector_column name NOT NULL,
            key_column    name,
            strategy      text NOT NULL CHECK (strategy IN ('batch', 'row')),
            metric        text NOT NULL CHECK (metric IN ('cosine', 'l2')),
            dimension     integer NOT NULL,
            model_name    text NOT NULL,
            index_name    name,
            enabled_by    name NOT NULL DEFAULT current_user,
            enabled_at    timestamptz NOT NULL DEFAULT now()
        )""")
    # Table owners register and unregister their own tables (enable_embedding runs as the caller);
    # everyone may read the registry, which search() needs.
    op.execute("ALTER TABLE pgbert.embedded_tables ENABLE ROW LEVEL SECURITY")
    op.execute("CREATE POLICY readable ON pgbert.embedded_tables FOR SELECT USING (true)")
    op.execute("""
        CREATE POLICY owner_writes ON pgbert.embedded_tables FOR ALL
            USING (pg_has_role(current_user, (SELECT relowner FROM pg_class WHERE oid = relid), 'USAGE'))
            WITH CHECK (pg_has_role(current_user, (SELECT relowner FROM pg_class WHERE oid = relid), 'USAGE'))""")


def downgrade() -> None:
    # Plain SQL only: a revision never calls the re-applied sql/ functions, which change under it.
    # Every pgbert trigger of a registered table goes (its function is in schema pgbert, or is a table's
    # own write-back function), then the write-back functions themselves.
    op.execute("""
        DO $$
        DECLARE
            t record;
        BEGIN
            FOR t IN
                SELECT tg.tgname, tg.tgrelid::regclass AS tbl
                  FROM pg_catalog.pg_trigger tg
                  JOIN pgbert.embedded_tables e ON e.relid::oid = tg.tgrelid
                  JOIN pg_catalog.pg_proc p ON p.oid = tg.tgfoid
                 WHERE tg.tgparentid = 0 AND NOT tg.tgisinternal
                   AND (p.pronamespace = 'pgbert'::regnamespace OR p.proname ~ '^pgbert_embed_[0-9]+$')
            LOOP
                EXECUTE format('DROP TRIGGER %I ON %s', t.tgname, t.tbl);
            END LOOP;
            FOR t IN
                SELECT p.oid::regprocedure AS fn FROM pg_catalog.pg_proc p
                 WHERE p.prorettype = 'trigger'::regtype
                   AND (p.proname ~ '^pgbert_embed_[0-9]+$'
                        OR (p.pronamespace = 'pgbert'::regnamespace AND p.proname ~ '^batch_write_[0-9]+$'))
            LOOP
                EXECUTE format('DROP FUNCTION %s', t.fn);
            END LOOP;
        END
        $$""")
    op.execute("DROP EVENT TRIGGER IF EXISTS pgbert_forget_dropped_tables")
    op.execute("DROP EVENT TRIGGER IF EXISTS pgbert_forget_dropped")
    op.execute("DROP EVENT TRIGGER IF EXISTS pgbert_follow_altered_tables")
    op.execute("DROP TABLE pgbert.embedded_tables CASCADE")  # with the sql/ functions typed on its rows
