"""The memory guard: a backend refuses to load a model the server cannot hold, instead of letting the
kernel's OOM killer take a backend (after which PostgreSQL restarts every connection of the server).

Loading all-mpnet-base-v2 (436 MB of weights) took a backend 823 MB of private memory: about 1.9x the
ONNX file, so a load is taken to need LOAD_FACTOR x the model file, plus the reserve the memory_reserve_mb
setting keeps free for everything else. A backend that maps the prepared, shared model (prepared.py) needs
SHARED_LOAD_FACTOR x the file: the weights are page cache, counted in MemAvailable, not a private copy.
What is available is the smaller of MemAvailable and, inside a cgroup with a memory limit, that limit minus
the cgroup's current use.
"""
from __future__ import annotations

import os

LOAD_FACTOR = 2.0
SHARED_LOAD_FACTOR = 0.5
DEFAULT_RESERVE_MB = 256


class NotEnoughMemory(Exception):
    """The load was refused; the message says how much was needed and what to do."""


def _read_int(path: str) -> int | None:
    try:
        with open(path) as f:
            value = f.read().strip()
    except OSError:
        return None
    return int(value) if value.isdigit() else None  # 'max': no limit


def available_bytes(proc: str = "/proc", cgroup_root: str = "/sys/fs/cgroup") -> int | None:
    """Bytes this process may still allocate: min(MemAvailable, cgroup v2 limit - usage); None if unknown."""
    found = []
    try:
        with open(os.path.join(proc, "meminfo")) as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    found.append(int(line.split()[1]) * 1024)
    except OSError:
        pass
    try:
        with open(os.path.join(proc, "self", "cgroup")) as f:
            group = next((line.strip().split("::", 1)[1] for line in f if line.startswith("0::")), None)
    except OSError:
        group = None
    if group is not None:
        folder = os.path.join(cgroup_root, group.lstrip("/"))
        limit, used = _read_int(os.path.join(folder, "memory.max")), _read_int(os.path.join(folder, "memory.current"))
        if limit is not None and used is not None:
            found.append(max(0, limit - used))
    return min(found) if found else None


def reserve_bytes(reserve_mb) -> int:
    """The memory_reserve_mb setting in bytes: the default when unset, never below 0 (a negative reserve would
    let a load take memory that the server does not have)."""
    return max(0, DEFAULT_RESERVE_MB if reserve_mb in (None, "") else int(reserve_mb)) * 2**20


def check_can_load(model_bytes: int, reserve_mb: int | None, available: int | None = None,
                   shared: bool = False, held: int = 0) -> None:
    """Raise NotEnoughMemory when loading a model file of model_bytes would leave less than the reserve
    (shared: the load maps the prepared model instead of copying the weights; held: bytes that requests in
    progress may still allocate, the model host's)."""
    available = available_bytes() if available is None else available
    if available is None:
        return  # nothing to measure with (not Linux): load as before
    available -= held
    reserve = reserve_bytes(reserve_mb)
    need = int(model_bytes * (SHARED_LOAD_FACTOR if shared else LOAD_FACTOR))
    if available - need < reserve:
        raise NotEnoughMemory(
            f"not enough memory to load the model here: it needs about {need // 2**20} MB and "
            f"{available // 2**20} MB is available, with {reserve // 2**20} MB to keep free (memory_reserve_mb)")
