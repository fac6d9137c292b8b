"""The model_host setting: one model host process per server embeds for every backend
(plpython/pgbert_runtime/host.py).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30

Frozen once released: never edit a revision that has shipped; add a new one (tests/unit/test_layout.py).
"""
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

DESCRIPTION = ("on: one model host process per server (started by the first backend that embeds, in the data "
               "directory's pgbert_host, ending with the server) holds each model once and embeds for every "
               "backend, so a new connection's first embed() costs a socket connect; if it cannot start, a "
               "backend loads the model itself and pgbert.status() says why; off: every backend loads its own")


def upgrade() -> None:
    op.execute("INSERT INTO pgbert.settings (name, value, description) "
               f"VALUES ('model_host', 'on', $${DESCRIPTION}$$) ON CONFLICT (name) DO NOTHING")


def downgrade() -> None:
    op.execute("DELETE FROM pgbert.settings WHERE name = 'model_host'")
