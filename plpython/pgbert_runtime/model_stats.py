"""Statistics of model calls per model (bundle path) and engine, across every process of a server: pgbert.model_stats.

Whatever process runs a model (the model host, or a backend with model_host = off) records its calls in memory
(Recorder) and, after each one, writes its totals to a file of its own, <data directory>/pgbert_stats/<pid>-<start>
.stats, with one pwrite() on a descriptor it keeps open (a few microseconds: no open, rename or fsync). Why files and
at each call: a backend cannot run code between statements (PL/Python's threads do not run while the backend
idles), so counters published "every N seconds" would leave an idle backend's last calls out; PostgreSQL's shared
memory is out of PL/Python's reach, and a table would be written in the caller's transaction (rolled back with it,
refused on a standby).
The reader (collect) sums the files of live processes; a dead process's file (its pid gone, or reused: the name
holds the process's start time) is added to retired.json and removed, so the files stay one per live process.
A reset writes the live totals to baseline.json and empties retired.json: what is shown is retired + live - baseline,
so a reset never has to reach the processes, whose counters only grow.
Latencies go into a histogram of BUCKETS_PER_DOUBLING logarithmic buckets per doubling: it merges across processes
by adding counts, and a percentile read from it is within 2.2% of the exact one.
"""
from __future__ import annotations

import json
import math
import os
import struct
import threading
import time
import zlib
from array import array
from contextlib import contextmanager

FOLDER = "pgbert_stats"  # in the data directory, the server's OS user's alone
# PGBERT_MODEL_STATS=off in the server's environment, or `enabled = False` in a process (bench/model_stats.py
# sets it in a backend, whose requests then tell the model host), turns recording off: for measuring its cost.
enabled = os.environ.get("PGBERT_MODEL_STATS", "on").strip().lower() not in ("off", "false", "no", "0")
BUCKETS_PER_DOUBLING = 16
LOWEST_LOG2, HIGHEST_LOG2 = -20, 14  # latencies from 1 microsecond to 4.5 hours (the rest in the end buckets)
BUCKETS = (HIGHEST_LOG2 - LOWEST_LOG2) * BUCKETS_PER_DOUBLING
# A process's file: the format's mark, payload bytes and crc32 (a reader never takes a half-written file for
# counts), then the payload: the size of a JSON header (paths, engines, counters), the header, each entry's
# histogram (int64s). Another mark (a retiring model host runs the code installed before) is skipped.
MARK = b"pgs1"
FRAME = struct.Struct("!4sII")
HEAD = struct.Struct("!I")
COMPACT_OVER = 64  # files in the folder: past this, a process creating its own merges the dead ones first
FIELDS = ("calls", "texts", "tokens", "seconds", "wait_seconds", "loads", "load_seconds")


def bucket(seconds: float) -> int:
    """The histogram index of a latency."""
    b = math.floor((math.log2(max(seconds, 1e-9)) - LOWEST_LOG2) * BUCKETS_PER_DOUBLING)
    return 0 if b < 0 else BUCKETS - 1 if b >= BUCKETS else b


def bucket_value(b: int) -> float:
    """The geometric middle of a bucket: within half a bucket (2.2%) of any latency that falls in it."""
    return 2 ** ((b + 0.5) / BUCKETS_PER_DOUBLING + LOWEST_LOG2)


def percentile(histogram, q: float) -> float | None:
    """The q-quantile (0..1) of the latencies counted in a histogram (a sequence of BUCKETS counts); None when
    it is empty. Nearest rank, as the middle of its bucket."""
    total = sum(histogram)
    if total <= 0:
        return None
    rank, seen = max(1, math.ceil(q * total)), 0
    for b, n in enumerate(histogram):
        seen += n
        if seen >= rank:
            return bucket_value(b)
    return bucket_value(BUCKETS - 1)


class Entry:
    """The totals of one (bundle path, engine)."""

    __slots__ = (*FIELDS, "histogram")

    def __init__(self, values=(0, 0, 0, 0.0, 0.0, 0, 0.0), histogram: array | None = None):
        for name, value in zip(FIELDS, values, strict=True):
            setattr(self, name, value)
        self.histogram = histogram if histogram is not None else array("q", bytes(8 * BUCKETS))

    def counters(self) -> list:
        return [getattr(self, name) for name in FIELDS]

    def to_json(self) -> list:
        return [*self.counters(), [[b, n] for b, n in enumerate(self.histogram) if n]]

    @classmethod
    def from_json(cls, row: list) -> Entry:
        entry = cls(row[:len(FIELDS)])
        for b, n in row[len(FIELDS)]:
            entry.histogram[b] = n
        return entry

    def add(self, other: Entry, sign: int = 1) -> None:
        for name in FIELDS:
            setattr(self, name, getattr(self, name) + sign * getattr(other, name))
        for b, n in enumerate(other.histogram):
            if n:
                self.histogram[b] += sign * n


def dump(entries: dict[tuple, Entry]) -> bytes:
    """A process's totals as its file holds them (without the frame): about 10 microseconds."""
    head = json.dumps([[path, engine, *entry.counters()] for (path, engine), entry in entries.items()]).encode()
    return b"".join([HEAD.pack(len(head)), head, *(entry.histogram.tobytes() for entry in entries.values())])


def undump(payload: bytes) -> dict[tuple, Entry]:
    (size,) = HEAD.unpack_from(payload)
    head = json.loads(payload[HEAD.size:HEAD.size + size])
    entries, at = {}, HEAD.size + size
    for row in head:
        histogram = array("q")
        histogram.frombytes(payload[at:at + 8 * BUCKETS])
        at += 8 * BUCKETS
        entries[(row[0], row[1])] = Entry(row[2:], histogram)
    return entries


def to_json(entries: dict[tuple, Entry]) -> list:
    return [[path, engine, *entry.to_json()] for (path, engine), entry in entries.items()]


def from_json(rows: list) -> dict[tuple, Entry]:
    return {(row[0], row[1]): Entry.from_json(row[2:]) for row in rows}


def _start_time(pid: int | str) -> str | None:
    """A process's start time (clock ticks since boot, /proc/PID/stat field 22): with the pid, its identity."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return None


def alive(name: str) -> bool:
    """Whether the process that writes the file <pid>-<start>.stats is still running."""
    pid, _, start = name.removesuffix(".stats").partition("-")
    if os.path.isdir("/proc/self"):
        return _start_time(pid) == start
    try:
        os.kill(int(pid), 0)
        return True
    except (OSError, ValueError):
        return False


class Recorder:
    """This process's totals, written to its file after each change (thread-safe: the host runs a thread per
    backend). A failure to write (a full disk, a missing data directory) never fails a model call."""

    def __init__(self, folder: str | None = None, name: str | None = None):
        self.folder = folder  # None: <the working directory (a server's data directory)>/FOLDER, if it is one
        self.name = name  # the file's; None: this process's <pid>-<start time>.stats
        self.entries: dict[tuple, Entry] = {}
        self.lock = threading.Lock()
        self.fd: int | None = None
        self.retry_at = 0.0  # after a failed open, when to try again

    def call(self, bundle_path: str, engine: str, texts: int, tokens: int, seconds: float, wait_seconds: float):
        with self.lock:
            entry = self.entries.get((bundle_path, engine))
            if entry is None:
                entry = self.entries[(bundle_path, engine)] = Entry()
            entry.calls += 1
            entry.texts += texts
            entry.tokens += tokens
            entry.seconds += seconds
            entry.wait_seconds += wait_seconds
            entry.histogram[bucket(seconds)] += 1
            self._publish()

    def load(self, bundle_path: str, engine: str, seconds: float) -> None:
        if not enabled:
            return
        with self.lock:
            entry = self.entries.setdefault((bundle_path, engine), Entry())
            entry.loads += 1
            entry.load_seconds += seconds
            self._publish()

    def _publish(self) -> None:
        fd = self.fd if self.fd is not None else self._open()
        if fd is None:
            return
        try:
            payload = dump(self.entries)
            os.pwrite(fd, FRAME.pack(MARK, len(payload), zlib.crc32(payload)) + payload, 0)
        except Exception:  # statistics never fail a model call
            os.close(fd)
            self.fd = None  # reopened (and the totals written whole) on the next call

    def _open(self) -> int | None:
        if time.monotonic() < self.retry_at:
            return None
        if self.folder is None:
            if not os.path.exists("PG_VERSION"):
                self.retry_at = float("inf")  # not a server's process (tests, tools): counted in memory only
                return None
            self.folder = os.path.join(os.getcwd(), FOLDER)
        try:
            os.makedirs(self.folder, mode=0o700, exist_ok=True)
            names = os.listdir(self.folder)
            if len(names) > COMPACT_OVER or "retired.json" not in names:
                collect(self.folder)  # dead processes' files merged first; the first ever: stats_since is now
            name = self.name or f"{os.getpid()}-{_start_time(os.getpid()) or 0}.stats"
            self.fd = os.open(os.path.join(self.folder, name), os.O_WRONLY | os.O_CREAT, 0o600)
        except Exception:  # a full disk, a folder in the way, a damaged retired.json: never fails a model call
            self.retry_at = time.monotonic() + 10
            return None
        return self.fd


recorder = Recorder()


class TimedGate:
    """A model call's gate (the thread budget: slots.py, host.Budget) that adds the time spent entering it, the
    wait for a slot, to .waited. One call at a time: it is not shared between threads."""

    __slots__ = ("inner", "held", "waited")

    def __init__(self, inner):
        self.inner = inner
        self.held = None
        self.waited = 0.0

    def __call__(self):
        return self

    def __enter__(self):
        started = time.perf_counter()
        self.held = self.inner()
        self.held.__enter__()
        self.waited += time.perf_counter() - started

    def __exit__(self, *exc):
        return self.held.__exit__(*exc)


# ---- the reader: pgbert.model_stats and pgbert.reset_model_stats ----------------------------------------------

def _read_frame(path: str) -> dict[tuple, Entry] | None:
    """A process's totals; None for a file that stays half-written (a process that died while writing)."""
    for _ in range(3):
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError:
            return None
        if len(data) >= FRAME.size:
            mark, size, crc = FRAME.unpack_from(data)
            if mark != MARK:
                return None
            payload = data[FRAME.size:FRAME.size + size]
            if len(payload) == size and zlib.crc32(payload) == crc:
                try:
                    return undump(payload)
                except (ValueError, TypeError, IndexError, struct.error):
                    return None
        time.sleep(0.001)  # caught in the middle of a write: read again
    return None


def _read_json(path: str) -> dict:
    """retired.json or baseline.json; {} when missing or damaged (its counts are lost, never the reader)."""
    try:
        with open(path, encoding="utf-8") as f:
            value = json.load(f)
        from_json(value["entries"])
        return value
    except (OSError, ValueError, TypeError, KeyError, IndexError):
        return {}


def _write_json(path: str, value: dict) -> None:
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(value, f)
    os.replace(path + ".tmp", path)


def _sum(into: dict[tuple, Entry], entries: dict[tuple, Entry], sign: int = 1) -> None:
    for key, entry in entries.items():
        into.setdefault(key, Entry()).add(entry, sign)


@contextmanager
def _locked(folder: str):
    import fcntl

    os.makedirs(folder, mode=0o700, exist_ok=True)
    with open(os.path.join(folder, "lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # readers and resets, one at a time; writers never wait on it
        yield


def collect(folder: str, reset: bool = False) -> tuple[dict[tuple, Entry], float]:
    """The totals since the last reset (or since statistics began), summed over every process, and when that
    was (a Unix time). Dead processes' files are merged into retired.json. reset: start again from zero."""
    with _locked(folder):
        retired_path, baseline_path = os.path.join(folder, "retired.json"), os.path.join(folder, "baseline.json")
        retired_file, baseline_file = _read_json(retired_path), _read_json(baseline_path)
        retired = from_json(retired_file.get("entries", []))
        live: dict[tuple, Entry] = {}
        dead = []
        for name in os.listdir(folder):
            if not name.endswith(".stats"):
                continue
            path = os.path.join(folder, name)
            is_alive = alive(name)
            entries = _read_frame(path)
            if entries is not None:
                _sum(live if is_alive else retired, entries)
            if not is_alive:
                dead.append(path)
        since = baseline_file.get("since") or retired_file.get("since") or time.time()
        if reset:
            since = time.time()
            _write_json(baseline_path, {"since": since, "entries": to_json(live)})
            retired = {}
        if dead or reset or not retired_file:
            _write_json(retired_path, {"since": since, "entries": to_json(retired)})
        for path in dead:  # after retired.json holds their counts
            os.unlink(path)
        totals = retired
        _sum(totals, live)
        if not reset:
            _sum(totals, from_json(baseline_file.get("entries", [])), -1)
        else:
            totals = {}
    return totals, since


def rows(folder: str, reset: bool = False) -> list[tuple]:
    """pgbert._model_stats()'s rows: (bundle_path, engine, calls, texts, tokens, total_time_ms, p50_call_ms,
    p95_call_ms, queue_wait_ms, loads, load_time_ms, since (Unix time)), latencies rounded to 0.1 microsecond."""
    totals, since = collect(folder, reset)
    result = []
    for (path, engine), e in sorted(totals.items()):
        histogram = [max(n, 0) for n in e.histogram]
        if e.calls <= 0 and e.loads <= 0:
            continue
        p50, p95 = percentile(histogram, 0.5), percentile(histogram, 0.95)
        result.append((path, engine, e.calls, max(e.texts, 0), max(e.tokens, 0), _ms(e.seconds), _ms(p50), _ms(p95),
                       _ms(e.wait_seconds), max(e.loads, 0), _ms(e.load_seconds), since))
    return result


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(max(seconds, 0.0) * 1000, 4)
