"""Hybrid search: a lexical side per table, fusion settings, search() with a mode.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30

- pgbert.embedded_tables gains lexical_config ('japanese', 'auto', or a PostgreSQL text search
  configuration) and lexical_column (its tsvector column); NULL: no lexical side.
- pgbert.settings gains the fusion settings of hybrid search (reciprocal rank fusion).
- public.search(text, integer, regclass) is replaced by search(text, integer, regclass, mode) (sql/).

Frozen once released: never edit a revision that has shipped; add a new one (tests/unit/test_layout.py).
"""
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# Defaults measured on Debian's package descriptions (bench/lexical_study.py; `make bench`, "languages"):
# with an English-only model the vector side barely helps Japanese queries, so their lexical ranking
# weighs more; for English queries equal weights beat a heavier lexical side.
SETTINGS = [
    ("hybrid_rrf_k", "10", "reciprocal rank fusion constant k: a row's fused score is the sum over both "
                           "rankings of weight / (k + rank)"),
    ("hybrid_vector_weight", "1", "weight of the vector ranking in hybrid search"),
    ("hybrid_lexical_weight", "1", "weight of the lexical (BM25) ranking in hybrid search"),
    ("hybrid_lexical_weight_japanese", "3", "weight of the lexical ranking for a query written in Japanese "
                                            "(lower it to hybrid_lexical_weight with a multilingual model)"),
    ("hybrid_candidates", "100", "rows each side of a hybrid search ranks before fusion (at least k)"),
]


def upgrade() -> None:
    op.execute("ALTER TABLE pgbert.embedded_tables ADD COLUMN lexical_config text, ADD COLUMN lexical_column name")
    for name, value, description in SETTINGS:
        op.execute(f"INSERT INTO pgbert.settings (name, value, description) VALUES ('{name}', '{value}', "
                   f"$${description}$$) ON CONFLICT (name) DO NOTHING")
    # Replaced in sql/ by versions with more parameters (an overload would make calls ambiguous).
    op.execute("DROP FUNCTION IF EXISTS public.search(text, integer, regclass)")
    op.execute("DROP PROCEDURE IF EXISTS "
               "pgbert.enable_embedding(regclass, name, name, text, boolean, boolean, integer)")
    op.execute("DROP FUNCTION IF EXISTS pgbert._register(regclass, name, name, text)")


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS public.search(text, integer, regclass, text)")
    op.execute("DELETE FROM pgbert.settings WHERE name LIKE 'hybrid\\_%'")
    op.execute("ALTER TABLE pgbert.embedded_tables DROP COLUMN lexical_config, DROP COLUMN lexical_column")
