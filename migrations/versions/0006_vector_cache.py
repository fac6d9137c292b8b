"""The vector cache of embed(): its memory limit per backend.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30

Frozen once released: never edit a revision that has shipped; add a new one (tests/unit/test_layout.py).
"""
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("INSERT INTO pgbert.settings (name, value, description) VALUES ('embed_cache_mb', '32', "
               "$$memory per backend for embed()'s cache of vectors by text, kind and model (0: off); a "
               "query such as ORDER BY v <=> embed('...') then costs one model call whatever the plan$$) "
               "ON CONFLICT (name) DO NOTHING")


def downgrade() -> None:
    op.execute("DELETE FROM pgbert.settings WHERE name = 'embed_cache_mb'")
