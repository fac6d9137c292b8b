"""A stand-in for PL/Python's `plpy` module: enough for pgbert_runtime's SQL-facing functions."""
from __future__ import annotations


class Error(Exception):
    def __init__(self, message, sqlstate=None, hint=None):
        super().__init__(message)
        self.sqlstate, self.hint = sqlstate, hint


class FakePlpy:
    """Answers the queries sql_api runs from a dict of settings and one active model row."""

    Error = Error

    def __init__(self, bundle_path: str | None, files_json: str = "{}", **settings):
        self.bundle_path, self.files_json = bundle_path, files_json
        self.settings = {"threads": "1", "batch_size": None, "batch_tokens": None, "engine": None,
                         "max_input_chars": None, **settings}
        self.executed: list[str] = []
        self.on_ping = None  # called for every "SELECT 1": a test raises from it to simulate a cancel
        self.role = "alice"  # current_user
        self.admin = True  # whether current_user is a member of pgbert_admin

    def prepare(self, query, types=None):
        return query

    def execute(self, query, args=None):
        self.executed.append(query)
        if query == "SELECT 1":
            if self.on_ping:
                self.on_ping()
            return [{"?column?": 1}]
        if "FROM pgbert.models m" in query:
            if self.bundle_path is None:
                return []
            return [{"name": "tiny", "bundle_path": self.bundle_path, "dimension": 32, "files": self.files_json,
                     "role": self.role, **self.settings}]
        if "pg_has_role(current_user, 'pgbert_admin'" in query:
            return [{"admin": self.admin}]
        if "to_regclass('pgbert.embedding_queue')" in query:
            return [{"queue": True}]
        if "FROM pgbert._queue_counts()" in query:
            return [{"queue_pending": 0, "queue_in_progress": 0, "queue_failed": 0}]
        raise AssertionError(f"unexpected query: {query}")

    def error(self, message, sqlstate=None, hint=None):
        raise Error(message, sqlstate, hint)
