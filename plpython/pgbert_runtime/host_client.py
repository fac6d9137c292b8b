"""A backend's side of the model host (host.py): one connection per backend, the host started when none answers.

Imports nothing heavy (no numpy, tokenizers or onnxruntime), so a connection's first embed() costs a socket
connect, not a model load. Vectors come back as array('f') rows.
"""
from __future__ import annotations

import fcntl
import functools
import os
import socket
import subprocess
import sys
import time
from array import array

from . import model_stats, wire
from .bundle import Bundle, file_key, load_bundle
from .wire import FOLDER, SENT_SETTINGS, address

START_SECONDS = 60  # importing and binding takes about 0.2 s; a start that takes this long has failed
RETRY_SECONDS = 30  # after a failed start, this backend runs the model itself for this long before trying again
HELLO_SECONDS = 10  # a host that does not say hello in this time is hung
POLL_SECONDS = 0.02  # how often a backend waiting for vectors checks for cancel (a trivial SPI statement)


class HostUnavailable(Exception):
    """No host answers and none could be started: the message says why (the caller runs the model itself)."""


@functools.cache
def in_server() -> bool:
    """Whether this process runs in a PostgreSQL data directory (as every backend does); looked at once."""
    return os.path.exists("postmaster.pid")


class Connection:
    """This backend's connection to its server's model host."""

    def __init__(self, datadir: str | None = None, postmaster: int | None = None):
        self.datadir = datadir  # None: the working directory (a backend's data directory)
        self.postmaster = postmaster  # None: this backend's parent
        self.sock: socket.socket | None = None
        self.python_path = ""
        self.failed: tuple[float, str] | None = None  # (when, why) the last start failed

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def ensure(self) -> None:
        """Connected to a host, starting one if none answers; raises HostUnavailable."""
        if self.sock is not None and not wire.peer_closed(self.sock):
            return
        self.close()
        if self.failed and time.monotonic() - self.failed[0] < RETRY_SECONDS:
            raise HostUnavailable(self.failed[1])
        datadir = self.datadir or os.getcwd()
        try:
            self.sock = self._same_version(datadir)
        except HostUnavailable as exc:
            self.failed = (time.monotonic(), str(exc))
            raise
        self.failed = None

    def _same_version(self, datadir: str) -> socket.socket:
        """A connection to a host of this server that runs this backend's pgbert code: one that runs other
        code (installed before an upgrade), or serves a server that has since restarted, is asked to retire,
        and a new one started. A host that accepts but closes at once is exiting: it is given a moment."""
        postmaster = self.postmaster or os.getppid()
        for attempt in range(1, 4):
            try:
                sock = self._connect(datadir)
            except OSError:
                sock = self._start(datadir)
            try:
                sock.settimeout(HELLO_SECONDS)
                wire.send(sock, {"op": "hello"})
                hello = wire.recv(sock)[0]
                if hello["version"] == wire.code_version() and hello["postmaster"] in (None, postmaster):
                    return sock
                wire.send(sock, {"op": "retire"})
                wire.recv(sock)
            except TimeoutError:
                sock.close()
                raise HostUnavailable(f"the model host does not answer within {HELLO_SECONDS} s") from None
            except (EOFError, OSError):
                time.sleep(0.05 * attempt)
            sock.close()
        raise HostUnavailable("no model host of this server with this backend's pgbert code answers")

    @staticmethod
    def _connect(datadir: str) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX)
        try:
            sock.connect(address(datadir))
        except OSError:
            sock.close()
            raise
        return sock

    def _start(self, datadir: str) -> socket.socket:
        """Start the host (one backend at a time: the others wait on the lock, then connect to it)."""
        try:
            os.makedirs(os.path.join(datadir, FOLDER), mode=0o700, exist_ok=True)
            with open(os.path.join(datadir, FOLDER, "start.lock"), "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                try:
                    return self._connect(datadir)  # another backend started it while this one waited
                except OSError:
                    return self._launch(datadir)
        except OSError as exc:
            raise HostUnavailable(f"cannot start the model host: {exc}") from None

    def _launch(self, datadir: str) -> socket.socket:
        package_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env = dict(os.environ, PYTHONPATH=":".join(p for p in (package_parent, self.python_path) if p))
        command = [sys.executable or "/usr/bin/python3", "-m", "pgbert_runtime.host", "--datadir", datadir,
                   "--postmaster", str(self.postmaster or os.getppid())]
        try:
            done = subprocess.run(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, env=env,
                                  cwd=datadir, timeout=START_SECONDS, text=True)
        except subprocess.SubprocessError as exc:
            raise HostUnavailable(f"the model host did not start: {exc}") from None
        said = done.stdout.strip()
        if not said.startswith("ready"):
            raise HostUnavailable(f"the model host did not start: {said or 'it said nothing'} (exit code "
                                  f"{done.returncode}; its errors are in the server's log)")
        try:
            return self._connect(datadir)
        except OSError as exc:
            raise HostUnavailable(f"the model host started but does not answer: {exc}") from None

    def request(self, header: dict, check=None, body=b"") -> tuple[dict, bytes]:
        """Send one request and wait for its answer, running check() every POLL_SECONDS meanwhile (whatever it
        raises, a cancel, ends the wait and drops the connection, which stops the host's work for it).
        Requests change nothing in the host, so one that the host did not answer (it was killed, or ended with
        its server) is sent once more, to a new host; a second failure is an error."""
        for attempt in (1, 2):
            self.ensure()
            sock = self.sock
            try:
                sock.settimeout(None)  # a big request is sent whole, however busy the host is
                wire.send(sock, header, body)
                sock.settimeout(POLL_SECONDS)
                reply, body = wire.recv(sock, check or (lambda: None))
                break
            except (EOFError, OSError) as exc:
                self.close()
                if attempt == 2:
                    raise wire.HostError(f"the model host stopped twice while answering ({exc}). If it stops "
                                         "on the same texts again, see the server's log.") from None
            except BaseException:
                self.close()
                raise
        if "error" in reply:
            wire.raise_error(reply)
        return reply, body


class RemoteModel:
    """The model as the host runs it, with LocalModel's interface (what sql_api calls)."""

    where = "model host"

    def __init__(self, connection: Connection, bundle: Bundle, settings: dict):
        self.connection = connection
        self.bundle = bundle
        self.dimension = bundle.dimension
        self.settings = {k: settings.get(k) for k in SENT_SETTINGS}
        self._window: int | None = None

    def _ask(self, op: str, check=None, texts=(), **fields) -> tuple[dict, bytes]:
        sizes, body = wire.pack_texts(texts)
        return self.connection.request({"op": op, "bundle": self.bundle.path, "settings": self.settings,
                                        "text_sizes": sizes, **fields}, check, body)

    def encode(self, texts: list[str], kind: str = "document", check=None) -> list[array]:
        if not texts:
            return []
        limit = self.bundle.readable_chars  # the rest is never tokenized: the host need not hold it
        off = {} if model_stats.enabled else {"stats": False}  # statistics off in this backend: in the host too
        reply, body = self._ask("encode", check, [text[:limit] for text in texts], kind=kind, **off)
        flat = array("f")
        flat.frombytes(body)
        d = reply["dimension"]
        return [flat[i * d:(i + 1) * d] for i in range(reply["n"])]

    def chunk(self, texts: list[str], chunk_tokens: int, overlap_tokens: int, limit: int, check=None):
        reply, _ = self._ask("chunk", check, texts, chunk_tokens=chunk_tokens,
                             overlap_tokens=overlap_tokens, limit=limit)
        return [[tuple(span) for span in spans] for spans in reply["spans"]]

    def describe(self) -> dict:
        """Loads the model in the host if it is not there yet: what the engine, host and bundle say."""
        reply, _ = self._ask("describe")
        self._window = reply["chunk_window"]
        return reply

    @property
    def chunk_window(self) -> int:
        if self._window is None:
            self.describe()
        return self._window

    def info(self) -> dict:
        reply = self.describe()
        return {**reply["info"], **reply["host"]}


connection = Connection()
_models: dict[tuple, RemoteModel] = {}


def model_for(bundle_path: str, settings: dict) -> RemoteModel:
    """The model of a bundle through this backend's connection to the host (started if need be; raises
    HostUnavailable). Cached per bundle files and settings, so the vector cache keeps its owner."""
    connection.python_path = settings.get("python_path") or ""
    connection.ensure()
    key = file_key(bundle_path) + tuple(settings.get(k) for k in SENT_SETTINGS)
    model = _models.pop(key, None)
    if model is None:
        model = RemoteModel(connection, load_bundle(bundle_path), settings)
        while len(_models) >= 8:  # a handle per model used lately (the host holds the models themselves)
            del _models[next(iter(_models))]
    _models[key] = model
    return model
