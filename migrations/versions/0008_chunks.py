"""Long documents: token-aware chunks, stored and searched per chunk.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30

- pgbert.embedded_tables gains chunk_tokens, overlap_tokens and chunk_relid (the table that holds a chunked
  table's chunks, in its schema, named <table>_chunks); NULL: not chunked.
- pgbert.settings gains max_chunks_per_row.
- search(text, integer, regclass, text) returns the best passage and its character offsets too, and
  enable_embedding takes chunk_tokens and overlap_tokens (sql/ creates both anew).

Frozen once released: never edit a revision that has shipped; add a new one (tests/unit/test_layout.py).
"""
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

MAX_CHUNKS = ("a text of a chunked table that would make more chunks than this is refused (SQLSTATE 54000): "
              "about 1.8 MB of English with chunks of 256 tokens")


def upgrade() -> None:
    op.execute("ALTER TABLE pgbert.embedded_tables ADD COLUMN chunk_tokens integer, "
               "ADD COLUMN overlap_tokens integer, ADD COLUMN chunk_relid oid")
    op.execute("INSERT INTO pgbert.settings (name, value, description) "
               f"VALUES ('max_chunks_per_row', '2000', $${MAX_CHUNKS}$$) ON CONFLICT (name) DO NOTHING")
    # New result columns and parameters: CREATE OR REPLACE cannot change them (sql/ creates them anew).
    op.execute("DROP FUNCTION IF EXISTS public.search(text, integer, regclass, text)")
    op.execute("DROP PROCEDURE IF EXISTS "
               "pgbert.enable_embedding(regclass, name, name, text, boolean, boolean, integer, text)")
    op.execute("DROP FUNCTION IF EXISTS pgbert._register(regclass, name, name, text, text)")


def downgrade() -> None:
    op.execute("""
        DO $$
        DECLARE
            chunked text := (SELECT string_agg(relid::text, ', ') FROM pgbert.embedded_tables
                              WHERE chunk_tokens IS NOT NULL);
        BEGIN
            IF chunked IS NOT NULL THEN
                RAISE EXCEPTION 'pgbert: cannot downgrade below 0008 while tables are chunked: %', chunked
                      USING HINT = 'Disable embedding on each of them first (that drops their chunks).';
            END IF;
        END $$""")
    op.execute("DROP FUNCTION IF EXISTS public.search(text, integer, regclass, text)")
    op.execute("DROP PROCEDURE IF EXISTS pgbert.enable_embedding(regclass, name, name, text, boolean, boolean, "
               "integer, text, integer, integer)")
    op.execute("DROP FUNCTION IF EXISTS pgbert._register(regclass, name, name, text, text, integer, integer)")
    op.execute("DELETE FROM pgbert.settings WHERE name = 'max_chunks_per_row'")
    op.execute("ALTER TABLE pgbert.embedded_tables DROP COLUMN chunk_tokens, DROP COLUMN overlap_tokens, "
               "DROP COLUMN chunk_relid")
