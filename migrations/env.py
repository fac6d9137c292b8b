"""Alembic environment for pgbert.

Revisions (migrations/versions) hold the stateful objects: extensions, schema, tables. After an
upgrade that reaches head, this file re-applies sql/ (functions, triggers, grants; idempotent) and the
install-time configuration (runtime path, active model), all in the same transaction.
"""
from __future__ import annotations

import os

from alembic import context
from sqlalchemy import create_engine, pool

config = context.config
xargs = context.get_x_argument(as_dictionary=True)


def setting(name: str, env: str) -> str | None:
    return xargs.get(name) or os.environ.get(env) or None


def database_url() -> str:
    url = setting("url", "PGBERT_DATABASE_URL")
    if url:
        return url if "+" in url.split("://")[0] else url.replace("postgresql://", "postgresql+psycopg2://", 1)
    from pgbert.cluster import Cluster
    return Cluster().sqlalchemy_url()


def after_upgrade(connection) -> None:
    from pgbert import schema
    from pgbert.paths import Paths

    script = context.script
    heads = set(script.get_heads())
    current = set(context.get_context().get_current_heads())
    if current != heads:
        print("pgbert: not at head; sql/ objects are applied only at head")
        return
    raw = connection.connection.dbapi_connection
    with raw.cursor() as cursor:
        applied = schema.apply_sql_objects(cursor)
        print(f"pgbert: applied {', '.join(applied)}")
        python_path = setting("python_path", "PGBERT_PYTHON_PATH")
        bundle = setting("bundle", "PGBERT_BUNDLE")
        local = Paths.default()
        if local.run in database_url():
            # The project-local cluster: its runtime environment and default bundle are on this machine.
            python_path = python_path or local.env().get("RUNTIME_SITE")
            if bundle is None and os.path.exists(os.path.join(local.bundle(), "manifest.json")):
                bundle = local.bundle()
        schema.configure(cursor, python_path, bundle)
        if bundle:
            print(f"pgbert: active model bundle {bundle}")


def is_upgrade() -> bool:
    """True for `alembic upgrade` (alembic names the command's callback after the command)."""
    fn = context.get_context().opts.get("fn")
    return getattr(fn, "__name__", "") == "upgrade"


def run_migrations_online() -> None:
    engine = create_engine(database_url(), poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, transaction_per_migration=False)
        with context.begin_transaction():
            context.run_migrations()
            if is_upgrade():
                after_upgrade(connection)


if context.is_offline_mode():
    raise SystemExit("pgbert migrations need a live database (offline SQL generation is not supported)")
run_migrations_online()
