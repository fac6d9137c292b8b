"""The thread budget: at most N model calls run at once across all backends of a server.

Every backend's ONNX Runtime pool is as wide as its `threads` setting; several backends embedding at
the same moment would oversubscribe the cores (measured: 8 clients at once gave 0.72x the throughput of
one). So a model call first takes one of N = thread_budget // threads slots. A slot is an flock() on one
of N files in the data directory (a backend's working directory), so the kernel frees the slot of a
backend that dies; a backend waiting for a slot keeps checking for cancel.
"""
from __future__ import annotations

import fcntl
import os
import time
from contextlib import contextmanager

FOLDER = "pgbert_slots"
# How often a waiting backend tries again (and checks for cancel). Measured with 8 clients on 2 cores:
# 0.5 ms lost throughput to spinning waiters (0.73x of one client), 2 ms to idle gaps between calls (0.91x),
# 5 ms kept 0.97x.
POLL_SECONDS = 0.005


class ModelSlots:
    def __init__(self, folder: str | None = None):
        self.folder = folder  # None: <the data directory>/pgbert_slots, found at first use
        self.fds: dict[int, int] = {}
        self.waited_seconds = 0.0
        self._in_server: bool | None = None

    def gate(self, budget: int, threads: int, check=None):
        """What Encoder.encode's gate wants: a context-manager factory holding one of budget // threads
        slots, or None outside a server. A PostgreSQL backend runs in its data directory (looked at once
        per process); elsewhere (tests, tools) there is no budget."""
        if self._in_server is None:
            self._in_server = os.path.exists("PG_VERSION")
        if not self._in_server:
            return None
        n = max(1, budget // threads)
        return lambda: self.hold(n, check)

    def _fd(self, i: int) -> int:
        if i not in self.fds:
            self.folder = self.folder or os.path.join(os.getcwd(), FOLDER)
            os.makedirs(self.folder, mode=0o700, exist_ok=True)
            self.fds[i] = os.open(os.path.join(self.folder, f"slot-{i}"), os.O_RDWR | os.O_CREAT, 0o600)
        return self.fds[i]

    def _try(self, n: int) -> int | None:
        start = os.getpid() % n  # backends start at different slots: fewer collisions
        for k in range(n):
            fd = self._fd((start + k) % n)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd
            except BlockingIOError:
                continue
        return None

    @contextmanager
    def hold(self, n: int, check=None):
        """One of n slots for the duration of the block; check() runs while waiting (it may raise)."""
        fd = self._try(n)
        if fd is None:
            started = time.perf_counter()
            while fd is None:
                if check is not None:
                    check()
                time.sleep(POLL_SECONDS)
                fd = self._try(n)
            self.waited_seconds += time.perf_counter() - started
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
