"""The shared_weights setting: backends map one prepared copy of the model (plpython/pgbert_runtime/prepared.py).

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

DESCRIPTION = ("on: the model is prepared once per server (optimised, weights pre-packed, saved under the data "
               "directory's pgbert_cache, about twice the model file) and every backend memory-maps it, so its "
               "weights are in memory once and a new connection loads it in a fraction of a second; off: each "
               "backend loads its own copy (ONNX Runtime; OpenVINO always does)")


def upgrade() -> None:
    op.execute("INSERT INTO pgbert.settings (name, value, description) "
               f"VALUES ('shared_weights', 'on', $${DESCRIPTION}$$) ON CONFLICT (name) DO NOTHING")


def downgrade() -> None:
    op.execute("DELETE FROM pgbert.settings WHERE name = 'shared_weights'")
