"""Runtime: extensions, the pgbert schema, settings and the model registry.

Revision ID: 0001
Revises:
Create Date: 2026-11-29

Frozen once released: never edit a revision that has shipped; add a new one.
"""
import os

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS vector")
    op.execute("CREATE EXTENSION IF NOT EXISTS plpython3u")
    op.execute("CREATE SCHEMA pgbert")
    op.execute("""
        CREATE TABLE pgbert.settings (
            name        text PRIMARY KEY,
            value       text,
            description text NOT NULL
        )""")
    op.execute("""
        INSERT INTO pgbert.settings (name, value, description) VALUES
          ('python_path', NULL, 'server-side site-packages holding pgbert_runtime, onnxruntime, tokenizers, numpy'),
          ('threads', NULL, 'ONNX Runtime intra-op threads per backend (NULL: the CPUs this server may use)'),
          ('batch_size', '32', 'at most this many texts per model call when embedding many rows'),
          ('batch_tokens', '512', 'at most this many padded tokens per model call (long texts: smaller batches)'),
          ('engine', 'auto', 'auto (the fastest engine whose precision passed the fidelity check), '
                             'onnxruntime-fp32 or openvino-bf16')""")
    op.execute("""
        CREATE TABLE pgbert.models (
            name          text NOT NULL,
            bundle_path   text PRIMARY KEY CHECK (bundle_path LIKE '/%'),
            model_id      text NOT NULL,
            dimension     integer NOT NULL CHECK (dimension BETWEEN 1 AND 16000),
            pooling       text NOT NULL CHECK (pooling IN ('mean', 'cls')),
            normalize     boolean NOT NULL,
            max_tokens    integer NOT NULL CHECK (max_tokens > 0),
            manifest      jsonb NOT NULL,
            active        boolean NOT NULL DEFAULT false,
            registered_at timestamptz NOT NULL DEFAULT now()
        )""")
    op.execute("CREATE UNIQUE INDEX models_one_active ON pgbert.models (active) WHERE active")


def downgrade() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "..", "..", "sql", "uninstall.sql"), encoding="utf-8") as f:
        op.execute(f.read())
