"""The memory guard: what a backend keeps free when it loads a model.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30

Frozen once released: never edit a revision that has shipped; add a new one (tests/unit/test_layout.py).
"""
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("INSERT INTO pgbert.settings (name, value, description) VALUES ('memory_reserve_mb', '256', "
               "$$a backend refuses to load a model (SQLSTATE 53200) when that would leave less than this much "
               "memory available (MemAvailable, or the cgroup limit), instead of risking the OOM killer$$) "
               "ON CONFLICT (name) DO NOTHING")


def downgrade() -> None:
    op.execute("DELETE FROM pgbert.settings WHERE name = 'memory_reserve_mb'")
