"""Applying sql/ (the replaceable objects) and the install-time data steps, over a DB-API connection."""
from __future__ import annotations

import glob
import os

from .paths import ROOT

SQL_DIR = os.path.join(ROOT, "sql")


def sql_files() -> list[str]:
    return sorted(glob.glob(os.path.join(SQL_DIR, "[0-9][0-9]_*.sql")))


def render(text: str, vector_schema: str) -> str:
    return text.replace("@vector_schema@", vector_schema)


def vector_schema(cursor) -> str:
    cursor.execute("SELECT quote_ident(n.nspname) FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
                   "WHERE e.extname = 'vector'")
    row = cursor.fetchone()
    if not row:
        raise RuntimeError("the pgvector extension is not installed in this database")
    return row[0]


def apply_sql_objects(cursor) -> list[str]:
    schema = vector_schema(cursor)
    applied = []
    for path in sql_files():
        with open(path, encoding="utf-8") as f:
            cursor.execute(render(f.read(), schema))
        applied.append(os.path.basename(path))
    return applied


def configure(cursor, python_path: str | None, bundle: str | None) -> None:
    """Point PL/Python at the runtime environment and activate a model bundle (both server-side paths)."""
    if python_path:
        cursor.execute("UPDATE pgbert.settings SET value = %s WHERE name = 'python_path'", (python_path,))
    if bundle:
        cursor.execute("SELECT bundle_path FROM pgbert.models WHERE active")
        row = cursor.fetchone()
        if not row or row[0] != bundle:
            cursor.execute("SELECT pgbert.use_model(%s)", (bundle,))
    # Registered tables get the triggers of the sql/ just applied (a new version may generate others).
    cursor.execute("SELECT pgbert.reinstall_triggers()")
    cursor.execute("CALL pgbert.install_text_embeddings()")
