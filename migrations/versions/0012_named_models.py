"""Named models: several models per database, each name bound to its bundle's content; each table keeps its own.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06

- pgbert.models: a name is unique, and sha256 (of the manifest's file list, which holds every file's sha256)
  says which weights it is bound to. Before 0012 names could repeat: later duplicates get a suffix.
- pgbert.embedded_tables.model_name refers to pgbert.models(name) (a model in use cannot be dropped); a row
  naming no registered model gets the default model's name (what it embedded with). next_model_name,
  next_vector_attnum (the shadow column) and change_started_at record a model change in progress
  (pgbert.change_model); old_vector_attnum the previous model's column, kept until pgbert.drop_old_vectors.
- Setting max_loaded_models (3): models a process keeps loaded, least recently used unloaded first.

Frozen once released: never edit a revision that has shipped; add a new one (tests/unit/test_layout.py).
"""
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

MAX_LOADED = ("models the model host (and, with model_host = off, each backend) keeps loaded; the least "
              "recently used is unloaded first")


def upgrade() -> None:
    op.execute("""
        UPDATE pgbert.models m SET name = m.name || '-' || d.n
          FROM (SELECT bundle_path, row_number() OVER (PARTITION BY name ORDER BY active DESC, registered_at) - 1 AS n
                  FROM pgbert.models) d
         WHERE d.bundle_path = m.bundle_path AND d.n > 0""")
    op.execute("ALTER TABLE pgbert.models ADD CONSTRAINT models_name_key UNIQUE (name)")
    op.execute("ALTER TABLE pgbert.models ADD COLUMN sha256 text")  # written with every registration
    op.execute("UPDATE pgbert.models "
               "SET sha256 = encode(sha256(convert_to((manifest -> 'files')::text, 'UTF8')), 'hex')")
    op.execute("""
        UPDATE pgbert.embedded_tables e SET model_name = (SELECT m.name FROM pgbert.models m WHERE m.active)
         WHERE NOT EXISTS (SELECT 1 FROM pgbert.models m WHERE m.name = e.model_name)""")
    op.execute("ALTER TABLE pgbert.embedded_tables ADD CONSTRAINT embedded_tables_model_fkey "
               "FOREIGN KEY (model_name) REFERENCES pgbert.models (name)")
    op.execute("ALTER TABLE pgbert.embedded_tables ADD COLUMN next_model_name text REFERENCES pgbert.models (name), "
               "ADD COLUMN next_vector_attnum smallint, ADD COLUMN change_started_at timestamptz, "
               "ADD COLUMN old_vector_attnum smallint")
    op.execute("INSERT INTO pgbert.settings (name, value, description) "
               f"VALUES ('max_loaded_models', '3', $${MAX_LOADED}$$) ON CONFLICT (name) DO NOTHING")


def downgrade() -> None:
    op.execute("""
        DO $$ BEGIN
            IF EXISTS (SELECT 1 FROM pgbert.embedded_tables WHERE next_model_name IS NOT NULL) THEN
                RAISE EXCEPTION 'pgbert: cannot downgrade below 0012: a model change is in progress on %',
                      (SELECT string_agg(relid::regclass::text, ', ') FROM pgbert.embedded_tables
                        WHERE next_model_name IS NOT NULL)
                      USING HINT = 'Finish it or abort it (pgbert.abort_model_change(table)), then downgrade again.';
            END IF;
        END $$""")
    for obj in ("FUNCTION public.embed(text, name, text)", "FUNCTION public.embed_batch(text[], name, text)",
                "FUNCTION pgbert.add_model(text, text)", "FUNCTION pgbert.drop_model(text)"):
        kind, name = obj.split(" ", 1)
        op.execute(f"DROP {kind} IF EXISTS {name}")
    op.execute("DELETE FROM pgbert.settings WHERE name = 'max_loaded_models'")
    # sql/ (20_registry.sql, 47_queue_run.sql) made these on the registry's columns; the release that is
    # downgraded to re-creates them with its own sql/ at its head
    op.execute("DROP VIEW IF EXISTS pgbert.queue_status, pgbert.embedding_errors, pgbert.enabled_tables")
    op.execute("ALTER TABLE pgbert.embedded_tables DROP COLUMN next_model_name, DROP COLUMN next_vector_attnum, "
               "DROP COLUMN change_started_at, DROP COLUMN old_vector_attnum, "
               "DROP CONSTRAINT embedded_tables_model_fkey")
    op.execute("ALTER TABLE pgbert.models DROP COLUMN sha256, DROP CONSTRAINT models_name_key")
