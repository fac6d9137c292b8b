"""Shared weights: the model is prepared once (optimised, weights pre-packed, saved) and later loads map it."""
import fcntl
import os
import threading

import numpy as np
import onnxruntime as ort
import pytest

from pgbert_runtime import engines, memory, prepared
from pgbert_runtime.bundle import load_bundle
from pgbert_runtime.encoder import Encoder

TEXTS = ["I love natural language processing", "自然言語処理", "a", "long " * 300]


@pytest.fixture()
def bundle(tiny_bundle):
    return load_bundle(tiny_bundle)


@pytest.fixture()
def shared_encoder(bundle, tmp_path, monkeypatch):
    """An ONNX Runtime Encoder (on a CPU with native bf16, 'auto' picks OpenVINO) whose engine uses tmp_path as
    the server's cache folder."""
    monkeypatch.setattr(engines, "private_cache_dir", lambda _bundle: str(tmp_path))
    return lambda: Encoder(bundle, threads=1, engine="onnxruntime-fp32")


def folder(tmp_path) -> str:
    return prepared.folder_for(str(tmp_path), ort.__version__)


def test_the_first_load_prepares_and_the_next_ones_map_the_same_files(shared_encoder, bundle, tmp_path):
    private = Encoder(bundle, threads=1, engine="onnxruntime-fp32", shared_weights=False)
    assert private.engine.weights.startswith("private copy (shared_weights is off")
    first = shared_encoder()
    assert first.engine.weights == f"shared, memory-mapped from {folder(tmp_path)}"
    assert prepared.ready(folder(tmp_path))
    data = os.path.join(folder(tmp_path), prepared.DATA_FILE)
    written = os.stat(data).st_mtime_ns
    second = shared_encoder()
    assert os.stat(data).st_mtime_ns == written  # loaded, not prepared again
    with open("/proc/self/maps") as f:
        assert data in f.read()  # the weights are a mapping of the file, not a private copy
    expected = private.encode(TEXTS)
    for encoder in (first, second):
        got = encoder.encode(TEXTS)
        assert np.min(np.sum(got * expected, axis=1)) >= 0.9999


def test_a_failure_is_recorded_the_backend_loads_privately_and_deleting_the_note_retries(
        shared_encoder, bundle, tmp_path, monkeypatch):
    monkeypatch.setattr(prepared, "KEEP_FREE_BYTES", 1 << 60)  # no disk is ever big enough
    encoder = shared_encoder()
    assert encoder.engine.weights.startswith("private copy: not enough disk to prepare the shared model")
    assert f"delete {folder(tmp_path)}.failed to try again" in encoder.engine.weights
    assert encoder.encode(["still embeds"]).shape == (1, bundle.dimension)
    monkeypatch.setattr(prepared, "KEEP_FREE_BYTES", 0)
    assert shared_encoder().engine.weights.startswith("private copy: not enough disk")  # the note holds
    os.remove(folder(tmp_path) + ".failed")
    assert shared_encoder().engine.weights.startswith("shared")
    assert not [name for name in os.listdir(tmp_path) if ".tmp-" in name]  # no scratch left behind


def test_a_damaged_folder_is_prepared_again(shared_encoder, tmp_path):
    shared_encoder()
    data = os.path.join(folder(tmp_path), prepared.DATA_FILE)
    with open(data, "r+b") as f:
        f.truncate(os.path.getsize(data) // 2)
    assert not prepared.ready(folder(tmp_path))
    assert shared_encoder().engine.weights.startswith("shared")
    assert prepared.ready(folder(tmp_path))


def test_a_backend_waits_for_the_one_preparing_and_gives_up_after_a_while(bundle, tmp_path):
    target = folder(tmp_path)
    with open(target + ".lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # another backend is preparing
        with pytest.raises(prepared.Unshared, match="another backend has been preparing"):
            prepared.open_shared(ort, bundle.onnx_path, target, 1, wait_seconds=0.2)
        preparer = threading.Timer(0.3, prepared.prepare, (ort, bundle.onnx_path, target, 1))
        preparer.start()
        session = prepared.open_shared(ort, bundle.onnx_path, target, 1, wait_seconds=30)
        preparer.join()
    assert session.get_inputs()  # mapped what the other one prepared
    assert prepared.ready(target)


def test_the_folder_names_the_cpu_and_the_onnxruntime_version(tmp_path):
    here = prepared.folder_for(str(tmp_path), "1.32.0")
    assert prepared.cpu_tag() in here and "onnxruntime-1.32.0" in here
    assert prepared.folder_for(str(tmp_path), "1.32.0", cpu="other") != here
    assert prepared.folder_for(str(tmp_path), "1.33.0") != here


def test_the_cpu_tag_changes_with_the_instruction_set(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("model name\t: Some CPU\nflags\t\t: sse2 avx2 fma\n")
    avx2 = prepared.cpu_tag(str(info))
    info.write_text("model name\t: Some CPU\nflags\t\t: sse2 avx2 fma avx512f\n")
    assert prepared.cpu_tag(str(info)) != avx2


def test_the_memory_guard_needs_less_for_a_mapped_model():
    model = 400 << 20
    available = 500 << 20
    with pytest.raises(memory.NotEnoughMemory):
        memory.check_can_load(model, 64, available=available)
    memory.check_can_load(model, 64, available=available, shared=True)
