"""Runtime settings: embed()'s vector cache, the memory guard, the thread budget.

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

SETTINGS = [
    ("embed_cache_mb", "32", "memory per backend for embed()'s cache of vectors by text, kind and model (0: off); "
                             "a query such as ORDER BY v <=> embed('...') then costs one model call whatever the plan"),
    ("memory_reserve_mb", "256", "a backend refuses to load a model (SQLSTATE 53200) when that would leave less than "
                                 "this much memory available (MemAvailable, or the cgroup limit), instead of risking "
                                 "the OOM killer"),
    ("thread_budget", None, "cores that all backends' model calls share: at most thread_budget / threads calls run "
                            "at once, the others wait (NULL: the CPUs this server may use)"),
]


def upgrade() -> None:
    for name, value, description in SETTINGS:
        op.execute(f"INSERT INTO pgbert.settings (name, value, description) VALUES ('{name}', "
                   f"{'NULL' if value is None else repr(value)}, $${description}$$) ON CONFLICT (name) DO NOTHING")


def downgrade() -> None:
    names = ", ".join(f"'{name}'" for name, _, _ in SETTINGS)
    op.execute(f"DELETE FROM pgbert.settings WHERE name IN ({names})")
