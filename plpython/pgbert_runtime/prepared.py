"""Shared weights for ONNX Runtime: the model is prepared once per server, and every backend maps it.

Loading model.onnx costs each backend its own graph optimisation and its own pre-packed copy of the weights
(all-mpnet-base-v2: about 0.9 s and 600 MB of private memory, per connection). Preparing does that work
once, with ONNX Runtime's own options: the optimised graph is saved with its weights, pre-packed ones
included (session.save_external_prepacked_constant_initializers), in an external data file. A backend then
loads the saved graph with optimisation off and ONNX Runtime memory-maps the data file: the weights are page
cache, in memory once however many backends embed, and a new connection's load takes a fraction of a second.

The saved graph is specific to this CPU (kernels and packed layouts are chosen for its instruction set) and
to the ONNX Runtime version, so both name the folder: another CPU or version prepares its own, never reads a
wrong one. A folder is written under a temporary name, checked against the model it came from (one probe
batch, cosine >= MIN_COSINE) and renamed: readers see a whole folder or none. A failure writes a .failed
note beside it (backends then load privately, as before, and pgbert.status() shows why); delete it to retry.
"""
from __future__ import annotations

import fcntl
import functools
import glob
import hashlib
import json
import os
import shutil
import time

import numpy as np

FORMAT = 1
MIN_COSINE = 0.9999
WAIT_SECONDS = 120  # how long a backend waits for another one that is preparing, before loading privately
POLL_SECONDS = 0.05
# Room that must stay free on the data directory's disk after preparing: PostgreSQL stops when it cannot
# write WAL, so a cache must never take the last of the disk.
KEEP_FREE_BYTES = 1 << 30
KEEP_FREE_FRACTION = 0.05
DATA_FILE = "model.data"


class Unshared(Exception):
    """The model cannot be shared here; the message says why (the backend loads its own copy)."""


def cpu_tag(cpuinfo: str = "/proc/cpuinfo") -> str:
    """A short name for this CPU's instruction set: the hash of its model name and feature flags."""
    try:
        with open(cpuinfo) as f:
            lines = f.read().splitlines()
    except OSError:
        return "unknown-cpu"
    model = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "")
    flags = next((line.split(":", 1)[1] for line in lines if line.startswith("flags")), "")
    return hashlib.sha256(f"{model}|{' '.join(sorted(flags.split()))}".encode()).hexdigest()[:12]


@functools.cache
def this_cpu() -> str:
    """cpu_tag() of the CPU this process runs on, read once per process (every load names its folder)."""
    return cpu_tag()


def folder_for(cache_dir: str, ort_version: str, cpu: str | None = None) -> str:
    """cache_dir is already per model file (engines.private_cache_dir names it by the model's sha256)."""
    return os.path.join(cache_dir, f"onnxruntime-{ort_version}-cpu-{cpu or this_cpu()}-v{FORMAT}")


def ready(folder: str) -> bool:
    """A folder is ready when its record exists and every file it lists has the recorded size."""
    try:
        with open(os.path.join(folder, "prepared.json")) as f:
            record = json.load(f)
        return all(os.path.getsize(os.path.join(folder, name)) == size for name, size in record["sizes"].items())
    except (OSError, ValueError, KeyError, AttributeError):
        return False


def failure(folder: str) -> str | None:
    try:
        with open(folder + ".failed") as f:
            return f.read().strip() or "unknown reason"
    except OSError:
        return None


def _fail(folder: str, reason: str) -> Unshared:
    try:
        with open(folder + ".failed", "w") as f:
            f.write(reason + "\n")
    except OSError:
        pass
    return Unshared(f"{reason} (delete {folder}.failed to try again)")


def session_options(ort, threads: int):
    options = ort.SessionOptions()
    # ORT's default thread count was erratic on a busy machine: set it explicitly.
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return options


def load_shared(ort, folder: str, threads: int):
    """A session on a prepared folder: no optimisation (it was done), weights mapped from the data file."""
    options = session_options(ort, threads)
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(os.path.join(folder, "model.onnx"), options, providers=["CPUExecutionProvider"])


def _check_disk(folder: str, model_bytes: int) -> None:
    """Preparing writes about twice the model (original and pre-packed weights): refuse if that would
    leave the disk nearly full."""
    stat = os.statvfs(os.path.dirname(folder))
    free, total = stat.f_bavail * stat.f_frsize, stat.f_blocks * stat.f_frsize
    need = 2 * model_bytes
    keep = max(KEEP_FREE_BYTES, int(total * KEEP_FREE_FRACTION))
    if free - need < keep:
        raise _fail(folder, f"not enough disk to prepare the shared model: it needs about {need >> 20} MB, "
                            f"{free >> 20} MB is free and {keep >> 20} MB must stay free")


def _probe_feeds(session) -> dict:
    """A small fixed batch (token ids 1..7, all attended) for comparing two sessions of one model."""
    ids = (np.arange(2 * 16, dtype=np.int64).reshape(2, 16) % 7) + 1
    values = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
    return {i.name: values[i.name] for i in session.get_inputs() if i.name in values}


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.reshape(-1).astype(np.float64), b.reshape(-1).astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) or 1.0))


def prepare(ort, onnx_path: str, folder: str, threads: int):
    """Write the prepared folder (the caller holds the lock) and return a session that maps it."""
    _check_disk(folder, os.path.getsize(onnx_path))
    for stale in glob.glob(glob.escape(folder) + ".tmp-*"):  # left by a backend killed while preparing
        shutil.rmtree(stale, ignore_errors=True)
    scratch = f"{folder}.tmp-{os.getpid()}"
    os.makedirs(scratch, mode=0o700)
    started = time.perf_counter()
    try:
        options = session_options(ort, threads)
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.optimized_model_filepath = os.path.join(scratch, "model.onnx")
        for key, value in (("session.optimized_model_external_initializers_file_name", DATA_FILE),
                           ("session.optimized_model_external_initializers_min_size_in_bytes", "1024"),
                           ("session.save_external_prepacked_constant_initializers", "1")):
            options.add_session_config_entry(key, value)
        original = ort.InferenceSession(onnx_path, options, providers=["CPUExecutionProvider"])
        shared = load_shared(ort, scratch, threads)
        feeds = _probe_feeds(original)
        cosine = _cosine(original.run(None, feeds)[0], shared.run(None, feeds)[0])
        del original  # its private copy of the weights
        if not cosine >= MIN_COSINE:
            raise _fail(folder, f"the prepared model disagrees with model.onnx (cosine {cosine:.6f} < "
                                f"{MIN_COSINE}) with ONNX Runtime {ort.__version__}")
        sizes = {name: os.path.getsize(os.path.join(scratch, name)) for name in ("model.onnx", DATA_FILE)}
        record = {"format": FORMAT, "onnxruntime": ort.__version__, "cpu": this_cpu(), "probe_cosine": cosine,
                  "seconds": round(time.perf_counter() - started, 2), "sizes": sizes}
        with open(os.path.join(scratch, "prepared.json"), "w") as f:
            json.dump(record, f, indent=1)
        shutil.rmtree(folder, ignore_errors=True)  # a damaged one (not ready); backends mapping it keep their pages
        os.rename(scratch, folder)
        return shared
    except Unshared:
        raise
    except Exception as exc:  # disk full, permissions, an ORT that cannot save: load privately
        raise _fail(folder, f"preparing the shared model failed: {exc}") from None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def open_shared(ort, onnx_path: str, folder: str, threads: int, wait_seconds: float = WAIT_SECONDS):
    """A session that maps the prepared model in folder, preparing it first if no backend has.
    Raises Unshared (with the reason) when this backend must load its own copy instead."""
    deadline = time.monotonic() + wait_seconds
    while True:
        if ready(folder):
            return load_shared(ort, folder, threads)
        reason = failure(folder)
        if reason:
            raise Unshared(f"{reason} (delete {folder}.failed to try again)")
        with open(folder + ".lock", "a") as lock:  # closing it releases the lock
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pass  # another backend is preparing it: wait for its folder
            else:
                if ready(folder):  # finished between our check and the lock
                    return load_shared(ort, folder, threads)
                return prepare(ort, onnx_path, folder, threads)
        if time.monotonic() > deadline:
            raise Unshared(f"another backend has been preparing the shared model for over {wait_seconds:.0f} s")
        time.sleep(POLL_SECONDS)
