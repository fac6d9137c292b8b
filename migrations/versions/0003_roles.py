"""Roles: pgbert_admin (changes models and runtime settings) and pgbert_user (embeds and searches).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29

Roles belong to the whole cluster, so they are created only when missing and dropped only when no
other database still uses them. Frozen once released: never edit a revision that has shipped.
"""
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

ROLES = ("pgbert_user", "pgbert_admin")


def upgrade() -> None:
    for role in ROLES:
        op.execute(f"""
            DO $$ BEGIN
                IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') THEN
                    CREATE ROLE {role} NOLOGIN;
                END IF;
            END $$""")
    op.execute("GRANT pgbert_user TO pgbert_admin")  # an admin can do everything a user can
    # pgbert_admin tunes the runtime (threads, batch sizes) but never python_path: what backends import
    # stays the installing superuser's decision.
    op.execute("ALTER TABLE pgbert.settings ENABLE ROW LEVEL SECURITY")
    op.execute("CREATE POLICY readable ON pgbert.settings FOR SELECT USING (true)")
    op.execute("CREATE POLICY admin_tunes ON pgbert.settings FOR UPDATE TO pgbert_admin "
               "USING (name <> 'python_path') WITH CHECK (name <> 'python_path')")


def downgrade() -> None:
    op.execute("DROP POLICY admin_tunes ON pgbert.settings")
    op.execute("DROP POLICY readable ON pgbert.settings")
    op.execute("ALTER TABLE pgbert.settings DISABLE ROW LEVEL SECURITY")
    for role in reversed(ROLES):
        op.execute(f"""
            DO $$ BEGIN
                IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') THEN
                    RETURN;
                END IF;
                -- With nothing owned by the role, DROP OWNED only revokes this database's grants to it.
                IF EXISTS (SELECT 1 FROM pg_class WHERE relowner = '{role}'::regrole
                           UNION ALL SELECT 1 FROM pg_proc WHERE proowner = '{role}'::regrole
                           UNION ALL SELECT 1 FROM pg_namespace WHERE nspowner = '{role}'::regrole) THEN
                    RAISE NOTICE 'pgbert: keeping role {role}: it owns objects';
                    RETURN;
                END IF;
                DROP OWNED BY {role};
                DROP ROLE {role};
            EXCEPTION WHEN dependent_objects_still_exist THEN
                RAISE NOTICE 'pgbert: keeping role {role}: other databases still use it';
            END $$""")
