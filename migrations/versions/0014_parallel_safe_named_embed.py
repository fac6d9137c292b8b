"""embed(text, model) and embed_batch(texts, model) become PARALLEL SAFE.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06

No table changes: sql/12_models.sql (re-applied at head) declares them PARALLEL SAFE over two new functions,
pgbert._embed_named (SECURITY DEFINER: reads the registry row and the settings in PL/pgSQL) and
pgbert._embed_with (PL/Python that runs no query, which parallel mode requires; its owner alone runs it).
The downgrade drops those two; the release downgraded to replaces embed() and embed_batch() as it had them.

Frozen once released: never edit a revision that has shipped; add a new one (tests/unit/test_layout.py).
"""
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass  # functions only: sql/ makes them


def downgrade() -> None:
    # not embed() and embed_batch(): generated columns may use them; the older sql/ replaces them as it had them
    for name in ("pgbert._embed_named(text[], text, text)", "pgbert._embed_with(text[], text, jsonb)"):
        op.execute(f"DROP FUNCTION IF EXISTS {name}")
