"""The thread budget: how many cores all backends' model calls may use at once.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30

Frozen once released: never edit a revision that has shipped; add a new one (tests/unit/test_layout.py).
"""
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("INSERT INTO pgbert.settings (name, value, description) VALUES ('thread_budget', NULL, "
               "$$cores that all backends' model calls share: at most thread_budget / threads calls run at once, "
               "the others wait (NULL: the CPUs this server may use)$$) ON CONFLICT (name) DO NOTHING")


def downgrade() -> None:
    op.execute("DELETE FROM pgbert.settings WHERE name = 'thread_budget'")
