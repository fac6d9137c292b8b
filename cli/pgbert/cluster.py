"""The project-local PostgreSQL cluster: data in .pgbert/data, socket in .pgbert/run, its own port.

PostgreSQL refuses to run as root, so when we are root every server command runs as `postgres`.
The cluster listens on its Unix socket only (no TCP), with trust authentication for local users
who can reach the socket directory (mode 0700: its owner, and root).

The port lives with the cluster: initdb's postgresql.auto.conf records it, and every later command
reads it from there, so `PGBERT_PORT=55434 make demo` is followed by a `pgbert db url` on 55434
without PGBERT_PORT. PGBERT_PORT picks the port of a new cluster; given for an existing cluster on
another port, `start` moves a stopped cluster to it and refuses (saying what to do) while it runs;
the other commands keep to the cluster's port and say that PGBERT_PORT was ignored.

pg_cron (one way to run the embedding queue) is preloaded while its library is installed: `start` writes
the settings into postgresql.auto.conf and restarts a running cluster once when they change.
"""
from __future__ import annotations

import os
import pwd
import re
import subprocess
from urllib.parse import quote

from .paths import DATABASE, DEFAULT_PORT, Paths


class ClusterError(Exception):
    pass


_PORT_LINE = re.compile(r"^\s*port\s*=?\s*'?(\d+)'?\s*(?:#.*)?$")
_SETTING_LINE = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*=?\s*('(?:[^']|'')*'|[^\s#']+)\s*(?:#.*)?$")

# pg_cron keeps its jobs in the `postgres` database and runs them in background workers: no connection, so no
# TCP or password (the cluster listens on its socket only). Each running job holds a worker from the pool
# that parallel query and replication share (PostgreSQL's default: 8).
CRON_SETTINGS = {"cron.database_name": "postgres", "cron.use_background_workers": "on"}
MIN_WORKER_PROCESSES = 16
_TRUE = {"on", "true", "yes", "1"}


def _port_number(value: str | int, source: str) -> int:
    try:
        port = int(value)
    except ValueError:
        port = 0
    if not 0 < port < 65536:
        raise ClusterError(f"{source} must be a port number (1-65535), not {value!r}")
    return port


class Cluster:
    def __init__(self, paths: Paths | None = None, port: int | None = None):
        self.paths = paths or Paths.default()
        env = self.paths.env()
        self.bin = env.get("PG_BIN") or self._find_bin()
        # requested: what the caller asked for (the port argument, else PGBERT_PORT); None: nothing asked
        self.requested_from = "port" if port else ("PGBERT_PORT" if os.environ.get("PGBERT_PORT") else None)
        self.requested = _port_number(port or os.environ["PGBERT_PORT"], self.requested_from) \
            if self.requested_from else None
        # the cluster's own port (None while there is no cluster) wins over what was asked for
        self.configured = self.configured_port()
        self.port = self.configured or self.requested or _port_number(env.get("PORT") or DEFAULT_PORT, "PORT")
        self.owner = "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name

    @staticmethod
    def _find_bin() -> str:
        base = "/usr/lib/postgresql"
        versions = sorted((v for v in os.listdir(base) if v.isdigit()), key=int) if os.path.isdir(base) else []
        if not versions:
            raise ClusterError("no PostgreSQL server found; run `make setup` (scripts/bootstrap.sh) first")
        return os.path.join(base, versions[-1], "bin")

    # -- running server commands as the cluster owner -------------------------------------------------
    def _cmd(self, *args: str) -> list[str]:
        tool = [os.path.join(self.bin, args[0]), *args[1:]]
        return ["runuser", "-u", self.owner, "--", *tool] if os.geteuid() == 0 else tool

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(self._cmd(*args), capture_output=True, text=True)
        if check and proc.returncode != 0:
            raise ClusterError(f"{args[0]} failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}"
                               f"\n  log: {self.paths.log}")
        return proc

    # -- facts ---------------------------------------------------------------------------------------
    def url(self, database: str = DATABASE) -> str:
        return f"postgresql://{quote(self.owner)}@/{database}?host={quote(self.paths.run, safe='/')}&port={self.port}"

    def sqlalchemy_url(self, database: str = DATABASE) -> str:
        return "postgresql+psycopg2" + self.url(database)[len("postgresql"):]

    def initialized(self) -> bool:
        return os.path.exists(os.path.join(self.paths.data, "PG_VERSION"))

    def _conf_files(self) -> list[str]:
        # postgresql.auto.conf (initdb's settings, ALTER SYSTEM) overrides postgresql.conf
        return [os.path.join(self.paths.data, name) for name in ("postgresql.conf", "postgresql.auto.conf")]

    def configured_port(self) -> int | None:
        """The port the cluster's configuration gives the server; None without a (readable) cluster."""
        if not self.initialized():
            return None
        port = None
        for path in self._conf_files():
            try:
                with open(path) as f:
                    for line in f:
                        match = _PORT_LINE.match(line)
                        if match:
                            port = int(match.group(1))
            except OSError:
                pass
        return port

    def settings(self) -> dict[str, str]:
        """The settings the configuration files give (names in lower case, values unquoted; the last wins)."""
        values: dict[str, str] = {}
        for path in self._conf_files():
            try:
                with open(path) as f:
                    for line in f:
                        match = _SETTING_LINE.match(line)
                        if match:
                            value = match.group(2)
                            if value.startswith("'"):
                                value = value[1:-1].replace("''", "'")
                            values[match.group(1).lower()] = value
            except OSError:
                pass
        return values

    def cron_library(self) -> str:
        return os.path.join(os.path.dirname(self.bin), "lib", "pg_cron.so")

    def wanted_settings(self) -> dict[str, str]:
        """What postgresql.auto.conf must change for pg_cron ({}: nothing). With the library installed: preload
        it with CRON_SETTINGS; without it, no preload (the server would not start)."""
        current = self.settings()
        libraries = [name.strip().strip('"') for name in current.get("shared_preload_libraries", "").split(",")]
        libraries = [name for name in libraries if name]
        if not os.path.exists(self.cron_library()):
            if "pg_cron" not in libraries:
                return {}
            return {"shared_preload_libraries": ",".join(name for name in libraries if name != "pg_cron")}
        wanted = {} if "pg_cron" in libraries else {"shared_preload_libraries": ",".join([*libraries, "pg_cron"])}
        for name, value in CRON_SETTINGS.items():
            now = current.get(name, "")
            if now != value and not (value == "on" and now.lower() in _TRUE):
                wanted[name] = value
        try:
            workers = int(current.get("max_worker_processes", "8"))
        except ValueError:
            workers = 0
        if workers < MIN_WORKER_PROCESSES:
            wanted["max_worker_processes"] = str(MIN_WORKER_PROCESSES)
        return wanted

    def configure(self, echo=print) -> bool:
        """Write wanted_settings() into postgresql.auto.conf (it keeps its owner and mode); True when it changed.
        The server reads them when it starts."""
        wanted = self.wanted_settings()
        if not wanted:
            return False
        path = self._conf_files()[-1]
        with open(path) as f:
            lines = [line for line in f
                     if not ((match := _SETTING_LINE.match(line)) and match.group(1).lower() in wanted)]
        with open(path, "w") as f:
            quoted = (value.replace("'", "''") for value in wanted.values())
            f.writelines([*lines, *(f"{name} = '{value}'\n" for name, value in zip(wanted, quoted))])
        echo("pg_cron " + ("installed" if os.path.exists(self.cron_library()) else "not installed") + ": "
             + ", ".join(f"{name} = '{value}'" for name, value in wanted.items()))
        return True

    def port_mismatch(self) -> str | None:
        """What to tell the user when PGBERT_PORT (or the port argument) differs from the cluster's port."""
        if not (self.requested and self.configured and self.requested != self.configured):
            return None
        return (f"{self.requested_from}={self.requested} is ignored: the cluster in {self.paths.data} is on port "
                f"{self.configured}. To move it: .venv/bin/pgbert db stop, then "
                f"PGBERT_PORT={self.requested} .venv/bin/pgbert db start; or unset PGBERT_PORT.")

    def running(self) -> bool:
        if not self.initialized():
            return False
        return self._run("pg_ctl", "status", "-D", self.paths.data, check=False).returncode == 0

    # -- lifecycle -----------------------------------------------------------------------------------
    def init(self, echo=print) -> bool:
        if self.initialized():
            return False
        for folder in (self.paths.data, self.paths.run, os.path.dirname(self.paths.log)):
            os.makedirs(folder, exist_ok=True)
            if os.geteuid() == 0:
                os.chown(folder, pwd.getpwnam(self.owner).pw_uid, pwd.getpwnam(self.owner).pw_gid)
        os.chmod(self.paths.data, 0o700)
        os.chmod(self.paths.run, 0o700)
        echo(f"initdb {self.paths.data} (owner {self.owner})")
        self._run("initdb", "-D", self.paths.data, "-U", self.owner, "--auth=trust", "-E", "UTF8",
                  "--locale=C.UTF-8", "--no-instructions")
        with open(os.path.join(self.paths.data, "postgresql.auto.conf"), "a") as f:
            f.write(f"port = {self.port}\n"
                    "listen_addresses = ''\n"
                    f"unix_socket_directories = '{self.paths.run}'\n"
                    "unix_socket_permissions = 0700\n"
                    "shared_buffers = 256MB\n"
                    "maintenance_work_mem = 512MB\n")
        return True

    def move(self, port: int, echo=print) -> None:
        """Set the (stopped) cluster's port in postgresql.auto.conf: the file keeps its owner and mode."""
        if self.running():
            raise ClusterError(f"the cluster is running on port {self.port}; stop it before moving it")
        path = self._conf_files()[-1]
        with open(path) as f:
            lines = [line for line in f if not _PORT_LINE.match(line)]
        echo(f"moving the cluster from port {self.port} to port {port} ({self.requested_from}={port})")
        with open(path, "w") as f:
            f.writelines([*lines, f"port = {port}\n"])
        self.configured = self.port = port

    def start(self, echo=print) -> bool:
        """Start the cluster (initdb first if there is none); True when it (re)started. PGBERT_PORT other than the
        cluster's port moves a stopped cluster to it; while the cluster runs on another port, that is an error
        saying what to do. A running cluster whose pg_cron settings change is restarted (once: then they hold)."""
        if self.running():
            if self.port_mismatch():
                raise ClusterError(f"the cluster in {self.paths.data} is running on port {self.port}, not "
                                   f"{self.requested_from}={self.requested}. To move it: .venv/bin/pgbert db stop, "
                                   f"then run this again; to keep port {self.port}: unset PGBERT_PORT.")
            if not self.configure(echo):
                return False
            echo("restarting PostgreSQL: the server reads these settings when it starts (connections are closed)")
            self._server("restart", "-m", "fast")
            return True
        if self.port_mismatch():
            self.move(self.requested, echo)
        self.init(echo)
        self.configure(echo)
        echo(f"starting PostgreSQL on port {self.port} (socket {self.paths.run}, log {self.paths.log})")
        self._server("start")
        return True

    def _server(self, action: str, *options: str) -> None:
        proc = self._run("pg_ctl", action, *options, "-w", "-t", "60", "-D", self.paths.data, "-l", self.paths.log,
                         check=False)
        if proc.returncode != 0:
            tail = ""
            try:
                with open(self.paths.log) as f:
                    tail = "".join(f.readlines()[-5:])
            except OSError:
                pass
            raise ClusterError(f"PostgreSQL did not start:\n{tail}\nIs port {self.port} in use? "
                               f"Set PGBERT_PORT to use another port.")

    def stop(self, echo=print) -> bool:
        if not self.running():
            return False
        echo("stopping PostgreSQL")
        self._run("pg_ctl", "stop", "-w", "-m", "fast", "-D", self.paths.data)
        return True

    def ensure_database(self, database: str = DATABASE) -> None:
        psql = self._cmd("psql", "-X", "-q", "-h", self.paths.run, "-p", str(self.port), "-d", "postgres", "-tAc",
                         "SELECT 1 FROM pg_database WHERE datname = '%s'" % database.replace("'", "''"))
        out = subprocess.run(psql, capture_output=True, text=True, check=True).stdout.strip()
        if out != "1":
            self._run("createdb", "-h", self.paths.run, "-p", str(self.port), database)


def main_status(cluster: Cluster) -> int:
    state = "running" if cluster.running() else ("stopped" if cluster.initialized() else "not initialized")
    print(f"cluster: {state}\n  data: {cluster.paths.data}\n  port: {cluster.port}\n  url:  {cluster.url()}")
    return 0 if state == "running" else 3
