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


def pin_session(connection) -> None:
    """An upgrade is usually run by a superuser: it must run no object another role planted. The search path
    is public alone (pg_catalog is searched first; no "$user" schema that a role with CREATE on the database
    could make), the version table is public.alembic_version, and one that a role other than this one (or a
    superuser) owns is refused."""
    connection.exec_driver_sql("SET search_path = public")
    owner = connection.exec_driver_sql(
        "SELECT r.rolname, r.rolname = current_user OR r.rolsuper FROM pg_catalog.pg_class c "
        "JOIN pg_catalog.pg_roles r ON r.oid = c.relowner "
        "WHERE c.oid = to_regclass('public.alembic_version')").fetchone()
    if owner and not owner[1]:
        raise SystemExit(f"pgbert: public.alembic_version belongs to {owner[0]}, not to the role migrating: refusing "
                         "to run (its triggers would run with this role's rights). Check that table, then "
                         "ALTER TABLE public.alembic_version OWNER TO the installing role.")
    connection.commit()  # the checks' own transaction (the SET stays for the session): alembic opens the next


def run_migrations_online() -> None:
    engine = create_engine(database_url(), poolclass=pool.NullPool)
    with engine.connect() as connection:
        pin_session(connection)
        context.configure(connection=connection, transaction_per_migration=False, version_table_schema="public")
        with context.begin_transaction():
            context.run_migrations()
            if is_upgrade():
                after_upgrade(connection)


if context.is_offline_mode():
    raise SystemExit("pgbert migrations need a live database (offline SQL generation is not supported)")
run_migrations_online()
