"""Model changes of queued and of chunked tables.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06

- pgbert.embedding_queue.next_model: a queue row for the model a table is moving to (pgbert.change_model of a
  table with strategy 'queue' or 'auto': its workers backfill the shadow column). A row may wait for both
  models at once, so the queue's key becomes (relid, row_key, next_model).
- pgbert.embedded_tables.next_chunk_relid: the chunk table that a chunked table's model change fills (its
  chunks depend on the model's tokenizer, so they are made anew); old_chunk_relid: the previous model's,
  kept until pgbert.drop_old_vectors.

Frozen once released: never edit a revision that has shipped; add a new one (tests/unit/test_layout.py).
"""
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE pgbert.embedding_queue ADD COLUMN next_model boolean NOT NULL DEFAULT false")
    op.execute("ALTER TABLE pgbert.embedding_queue DROP CONSTRAINT embedding_queue_relid_row_key_key, "
               "ADD CONSTRAINT embedding_queue_row_model_key UNIQUE (relid, row_key, next_model)")
    op.execute("ALTER TABLE pgbert.embedded_tables ADD COLUMN next_chunk_relid oid, ADD COLUMN old_chunk_relid oid")


def downgrade() -> None:
    op.execute("""
        DO $$ BEGIN
            IF EXISTS (SELECT 1 FROM pgbert.embedded_tables
                        WHERE next_chunk_relid IS NOT NULL OR old_chunk_relid IS NOT NULL)
               OR EXISTS (SELECT 1 FROM pgbert.embedding_queue WHERE next_model) THEN
                RAISE EXCEPTION 'pgbert: cannot downgrade below 0013: a model change of a queued or chunked table '
                                'is in progress, or its old chunks are kept'
                      USING HINT = 'Finish or abort the change (pgbert.abort_model_change(table)) and drop the old '
                                   'vectors (pgbert.drop_old_vectors(table)), then downgrade again.';
            END IF;
        END $$""")
    # sql/ made these on the registry's columns; the release downgraded to re-creates them at its head
    op.execute("DROP VIEW IF EXISTS pgbert.queue_status, pgbert.embedding_errors, pgbert.enabled_tables")
    op.execute("ALTER TABLE pgbert.embedded_tables DROP COLUMN next_chunk_relid, DROP COLUMN old_chunk_relid")
    op.execute("ALTER TABLE pgbert.embedding_queue DROP CONSTRAINT embedding_queue_row_model_key, "
               "ADD CONSTRAINT embedding_queue_relid_row_key_key UNIQUE (relid, row_key), DROP COLUMN next_model")
