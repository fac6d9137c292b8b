"""Where the project keeps its state. scripts/bootstrap.sh creates these; the CLI only reads them.

.pgbert/ holds everything the PostgreSQL server reads (runtime environment, model bundles) and the
local cluster. When the project folder is not reachable for the `postgres` user (e.g. under /root),
bootstrap.sh makes .pgbert a symlink to a reachable place; we always hand the server real paths.
"""
from __future__ import annotations

import os
import shlex
from dataclasses import dataclass

ROOT = os.environ.get("PGBERT_ROOT") or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_MODEL = "all-mpnet-base-v2"
DEFAULT_PORT = 54329
DATABASE = "pgbert"


@dataclass(frozen=True)
class Paths:
    state: str

    @classmethod
    def default(cls) -> Paths:
        return cls(os.path.realpath(os.environ.get("PGBERT_HOME") or os.path.join(ROOT, ".pgbert")))

    @property
    def data(self) -> str: return os.path.join(self.state, "data")
    @property
    def run(self) -> str: return os.path.join(self.state, "run")
    @property
    def log(self) -> str: return os.path.join(self.state, "log", "postgres.log")
    @property
    def models(self) -> str: return os.path.join(self.state, "models")
    @property
    def runtime(self) -> str: return os.path.join(self.state, "runtime")

    def bundle(self, name: str = DEFAULT_MODEL) -> str:
        return os.path.join(self.models, name.split("/")[-1])

    def env(self) -> dict[str, str]:
        """Facts bootstrap.sh recorded (PG_BIN, PG_MAJOR, RUNTIME_SITE)."""
        values: dict[str, str] = {}
        try:
            with open(os.path.join(self.state, "env")) as f:
                for line in f:
                    if "=" in line:
                        key, _, value = line.strip().partition("=")
                        values[key] = shlex.split(value)[0] if value else ""
        except FileNotFoundError:
            pass
        return values
