"""The model host: one process per PostgreSQL server that holds each model once and embeds for every backend.

Why a process: with the model inside each backend, every new connection paid for importing ONNX Runtime and
building its session (0.45 s with the weights shared, 1 s without) and held its own working memory; here a
connection's first embed() costs a socket connect. The host runs the very code a backend would
(local.LocalModel), so vectors are the same bit for bit.

Lifecycle: the first backend that needs it starts it (host_client.py); it lives in the data directory (its
socket is pgbert_host/host.sock, readable by the server's OS user only), detaches from that backend, and
exits as soon as the postmaster that it serves does. If it dies, the next call starts another.
Concurrency: a thread per backend connection; at most thread_budget // threads model calls (and tokenizer
calls) run at once, the rest queue (Budget); a backend that goes away (cancel, statement_timeout, disconnect)
stops its work at the next model call.
Bounds, since every database's requests share the host: a request's thread_budget never exceeds the host's
own (the CPUs it may use), memory_reserve_mb is at least 0, at most MAX_MODELS models stay loaded (the least
recently used is unloaded), and the memory that requests hold counts against the memory guard (InFlight).
"""
from __future__ import annotations

import argparse
import contextlib
import os
import select
import signal
import socket
import socketserver
import sys
import threading
import time
import traceback
from collections import OrderedDict
from contextlib import contextmanager
from datetime import datetime

from . import memory, wire
from .bundle import file_key
from .encoder import default_threads
from .local import LocalModel, encoder_options, load_encoder
from .wire import FOLDER, address

WATCH_SECONDS = 1.0  # how soon after its server stops the host exits
WAIT_SECONDS = 0.05  # how often a queued model call looks whether its backend is still there
# Models loaded at once. Each distinct bundle and load settings (threads, batch_size, ...: any database's
# pgbert_admin may set them) is a model of its own, about 0.4 GB even with shared weights: past this the least
# recently used is unloaded (it reloads in about 0.5 s when asked for again).
MAX_MODELS = 3
# What a request holds, counted in bytes of its body: the body, then its texts as Python holds them (up to 4
# bytes a character). Tokenizing adds little more: texts are cut to what the model reads (bundle.py) and
# tokenized a bounded chunk at a time under the thread budget.
REQUEST_COPIES = 5


class ClientGone(Exception):
    """The backend closed its connection (cancel, timeout, disconnect): its work stops here."""


def log(message: str) -> None:
    """A line in the server's log, stamped like the server's own (log_line_prefix '%m [%p] ')."""
    now = datetime.now().astimezone()
    stamp = f"{now:%Y-%m-%d %H:%M:%S}.{now.microsecond // 1000:03d} {now:%Z}"
    print(f"{stamp} [{os.getpid()}] LOG:  pgbert model host: {message}", file=sys.stderr, flush=True)


class Budget:
    """At most n model calls at once (n given per call: thread_budget // threads); the others wait in turn."""

    def __init__(self):
        self.condition = threading.Condition()
        self.running = 0
        self.waited_seconds = 0.0

    @contextmanager
    def hold(self, n: int, check):
        with self.condition:
            started = time.perf_counter()
            while self.running >= n:
                self.condition.wait(WAIT_SECONDS)
                check()
            self.running += 1
            self.waited_seconds += time.perf_counter() - started
        try:
            yield
        finally:
            with self.condition:
                self.running -= 1
                self.condition.notify()


class InFlight:
    """The memory that the requests being answered hold. A request waits while, with what the others hold
    counted as not yet allocated (it may be counted twice: the guard errs on the safe side), it would leave less
    than its reserve (memory_reserve_mb) of the memory available; alone, it runs, as a backend's own call would
    (its size is bounded by max_input_chars)."""

    def __init__(self):
        self.condition = threading.Condition()
        self.held = 0

    @contextmanager
    def hold(self, need: int, reserve_mb, check):
        reserve = memory.reserve_bytes(reserve_mb)
        with self.condition:
            while self.held and not self._fits(need, reserve):
                self.condition.wait(WAIT_SECONDS)
                check()
            self.held += need
        try:
            yield
        finally:
            with self.condition:
                self.held -= need
                self.condition.notify_all()

    def _fits(self, need: int, reserve: int) -> bool:
        available = memory.available_bytes()
        return available is None or available - self.held - need >= reserve


class Host:
    """The models of one server, each (bundle files, load settings) loaded once; answers host_client's requests."""

    def __init__(self, thread_budget: int | None = None):
        # by bundle files and load settings, least recently used first
        self.models: OrderedDict[tuple, LocalModel] = OrderedDict()
        self.loading = threading.Lock()
        self.budget = Budget()
        self.thread_budget = thread_budget or default_threads()  # the CPUs this host may use, whoever asks
        self.in_flight = InFlight()
        self.started = time.time()
        self.requests = 0
        self.texts = 0
        self.address: str | None = None  # set by bind()
        self.connections = 0
        self.retired = False
        self.lock = threading.Lock()
        self.version = wire.code_version()
        self.postmaster: int | None = None  # the server's postmaster pid (None: serving a test, not a server)
        self.exit = lambda: os._exit(0)  # what a retired host does when its last backend has gone

    def model(self, bundle_path: str, settings: dict) -> LocalModel:
        """The bundle's model under these settings, loaded on first use (past the memory guard). Databases
        with other settings get their own; a bundle's re-exported files replace its older copies."""
        files = file_key(bundle_path)
        key = files + tuple(encoder_options(settings).values())
        with self.lock:
            model = self.models.get(key)
            if model is not None:
                self.models.move_to_end(key)
                return model
        with self.loading:
            with self.lock:
                if key in self.models:
                    return self.models[key]
                for old in [k for k in self.models if k[0] == bundle_path and k[:len(files)] != files]:
                    del self.models[old]  # stale files: free the old copy before loading the new
                cap = max(1, int(settings.get("max_loaded_models") or MAX_MODELS))  # the asking database's
                while len(self.models) >= cap:
                    unloaded = self.models.popitem(last=False)[1]  # requests running on it finish first
                    log(f"unloaded {unloaded.bundle.model_id} ({unloaded.bundle.path}): at most {cap} models")
            started = time.perf_counter()
            model = LocalModel(load_encoder(bundle_path, settings, cached=False, held=self.in_flight.held))
            with self.lock:
                self.models[key] = model
            log(f"loaded {model.bundle.model_id} from {bundle_path} in {time.perf_counter() - started:.2f} s "
                f"({model.encoder.engine.name}, {model.encoder.engine.weights})")
            return model

    def answer(self, request: dict, conn: socket.socket, body=b"") -> tuple[dict, bytes]:
        op = request.get("op")
        if op in ("ping", "hello"):
            return {"pid": os.getpid(), "version": self.version, "postmaster": self.postmaster}, b""
        if op == "retire":
            self.retire()
            return {"pid": os.getpid()}, b""
        settings = request["settings"]  # host_client sends wire.SENT_SETTINGS
        model = self.model(request["bundle"], settings)

        def check():
            if wire.peer_closed(conn):
                raise ClientGone()

        with self.in_flight.hold(REQUEST_COPIES * len(body), settings.get("memory_reserve_mb"), check):
            texts = wire.unpack_texts(request.get("text_sizes", []), body)
            if isinstance(body, bytearray):
                body.clear()  # freed now, though _serve still refers to it: a 20 MB text is not held twice
            return self._work(op, request, model, texts, check)

    def _work(self, op: str, request: dict, model: LocalModel, texts: list[str], check) -> tuple[dict, bytes]:
        if op == "encode":
            # A database's thread_budget may lower the host's, never raise it: the host's CPUs are every database's.
            asked = int(request["settings"]["thread_budget"] or 0) or self.thread_budget
            slots = max(1, min(asked, self.thread_budget) // model.encoder.threads)
            vectors = model.encode(texts, request["kind"], check, lambda: self.budget.hold(slots, check),
                                   record=request.get("stats", True))  # False: a benchmark's backend
            self.requests += 1
            self.texts += len(vectors)
            return {"n": len(vectors), "dimension": model.dimension}, vectors.astype("=f4", copy=False).tobytes()
        if op == "chunk":
            spans = model.chunk(texts, request["chunk_tokens"], request["overlap_tokens"],
                                request["limit"], check)
            return {"spans": spans}, b""
        if op == "describe":
            return {"info": model.info(), "chunk_window": model.chunk_window, "host": self.info()}, b""
        raise ValueError(f"unknown request {op!r}")

    def retire(self) -> None:
        """Another pgbert version was installed, or the server restarted: take no new backends (the next one
        starts a new host) and exit once the backends still connected, which run the old code too, have gone."""
        with self.lock:
            if not self.retired and self.address:
                self.retired = True
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.address)
                log("retiring: the next backend starts a new host; this one serves its backends until they leave")
            self._exit_if_done()

    def connected(self, delta: int) -> None:
        with self.lock:
            self.connections += delta
            self._exit_if_done()

    def _exit_if_done(self) -> None:
        if self.retired and self.connections == 0:
            log("retired and no backend is left; exiting")
            self.exit()

    def info(self) -> dict:
        return {
            "model_host_pid": os.getpid(),
            "model_host_uptime_seconds": round(time.time() - self.started),
            "model_host_models": len(self.models),
            # which, least recently used first, and the size of each one's weights on disk (what it maps or loads)
            "model_host_loaded": ", ".join(
                f"{m.bundle.model_id} ({m.encoder.engine.name}, {_weights_mb(m.bundle)} MB)"
                for m in list(self.models.values())),
            "model_host_rss_mb": _rss_mb(),
            "model_host_requests": self.requests,
            "model_host_texts": self.texts,
            "thread_budget_wait_seconds": round(self.budget.waited_seconds, 3),
        }


def _weights_mb(bundle) -> int:
    """The size of a bundle's weights file (model.onnx, or a static model's embeddings.npy)."""
    try:
        return round(os.path.getsize(bundle.weights_path) / 1024 / 1024)
    except OSError:
        return 0


def _rss_mb() -> int | None:
    """This process's resident memory (mapped model pages included: they are page cache, shared)."""
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) // 1024 for line in f if line.startswith("VmRSS:"))
    except (OSError, StopIteration):
        return None


class _Connection(socketserver.BaseRequestHandler):
    def handle(self):
        host: Host = self.server.host
        host.connected(+1)
        try:
            self._serve(host)
        finally:
            host.connected(-1)

    def _serve(self, host: Host) -> None:
        while True:
            try:
                request, body = wire.recv(self.request)
            except (EOFError, OSError):
                return
            try:
                reply, body = host.answer(request, self.request, body)
            except ClientGone:
                return
            except Exception as exc:  # one request's failure is reported to its backend; the host goes on
                reply, body = wire.error_reply(exc), b""
                if reply is None:
                    log(f"request {request.get('op')!r} failed:\n{traceback.format_exc()}")
                    reply = {"error": "internal", "message": f"{type(exc).__name__}: {exc}"}
            try:
                wire.send(self.request, reply, body)
            except OSError:
                return


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def __init__(self, address: str, host: Host):
        self.host = host
        super().__init__(address, _Connection)


def bind(datadir: str, host: Host) -> _Server:
    """The listening server on datadir's socket; raises FileExistsError when a host already answers there."""
    os.makedirs(os.path.join(datadir, FOLDER), mode=0o700, exist_ok=True)
    address_ = address(datadir)
    if os.path.islink(address_):
        os.unlink(address_)  # never a host's socket (a dangling one would block the bind)
    elif os.path.lexists(address_):
        probe = socket.socket(socket.AF_UNIX)
        try:
            probe.connect(address_)
            raise FileExistsError(f"a model host already answers on {address_}")
        except (ConnectionRefusedError, FileNotFoundError):
            os.unlink(address_)  # left by a host that died
        finally:
            probe.close()
    old = os.umask(0o077)
    try:
        server = _Server(address_, host)
        host.address = address_
        return server
    finally:
        os.umask(old)


def server_alive(datadir: str, postmaster: int) -> bool:
    """The postmaster is running and is still the one recorded in the data directory's postmaster.pid."""
    try:
        os.kill(postmaster, 0)
        with open(os.path.join(datadir, "postmaster.pid")) as f:
            return f.readline().strip() == str(postmaster)
    except (OSError, ValueError):
        return False


def _watch(datadir: str, postmaster: int) -> None:
    try:
        ended = os.pidfd_open(postmaster)  # readable the moment the postmaster exits (Linux 5.3)
    except (AttributeError, OSError):
        ended = None
    while server_alive(datadir, postmaster):
        if ended is None:
            time.sleep(WATCH_SECONDS)
        else:
            select.select([ended], [], [], WATCH_SECONDS)
    log("its server stopped; exiting")
    os._exit(0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datadir", required=True, help="the PostgreSQL data directory it serves")
    parser.add_argument("--postmaster", type=int, required=True, help="that server's postmaster pid")
    args = parser.parse_args(argv)
    datadir = os.path.abspath(args.datadir)
    os.chdir(datadir)  # where a backend runs: the prepared-model cache (engines.private_cache_dir) is found here
    # Detach from the backend that started it: that backend returns once the socket listens (the first line
    # on stdout: 'ready PID' or 'error: ...'), and the host outlives it.
    if os.fork():
        os._exit(0)
    os.setsid()
    if os.fork():
        os._exit(0)
    host = Host()
    host.postmaster = args.postmaster
    try:
        server = bind(datadir, host)
    except FileExistsError:
        print("ready (another host)", flush=True)
        return
    except Exception as exc:
        print(f"error: {exc}", flush=True)
        sys.exit(1)
    print(f"ready {os.getpid()}", flush=True)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)  # the backend reads stdout until it closes; stderr stays the server's log
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: os._exit(0))  # a plain exit: never a "crashed child" to a postmaster
    threading.Thread(target=_watch, args=(datadir, args.postmaster), daemon=True).start()
    log(f"serving {datadir}")
    server.serve_forever()


if __name__ == "__main__":
    main()
