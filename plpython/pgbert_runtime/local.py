"""The model loaded in this process, behind the interface sql_api calls; host_client.RemoteModel has the same
one for the model host (host.py), which itself runs a LocalModel for every backend.

Settings are a row of sql_api.SETTINGS_SQL (a dict of text values, None meaning the default).
"""
from __future__ import annotations

import os
import time

from . import engines, memory, model_stats
from .bundle import BundleError, load_bundle
from .chunker import chunk_spans
from .encoder import DEFAULT_BATCH_SIZE, DEFAULT_BATCH_TOKENS, Encoder, default_threads, get_encoder, new_encoder
from .slots import ModelSlots
from .wire import is_on

slots = ModelSlots()


def encoder_options(settings: dict) -> dict:
    return {
        "threads": int(settings["threads"]) if settings.get("threads") else None,
        "batch_size": int(settings.get("batch_size") or DEFAULT_BATCH_SIZE),
        "batch_tokens": int(settings.get("batch_tokens") or DEFAULT_BATCH_TOKENS),
        "engine": settings.get("engine"),
        "shared_weights": is_on(settings.get("shared_weights")),
    }


def guard(bundle_path: str, settings: dict, held: int = 0) -> None:
    """The memory guard (memory.py) for loading this bundle under these settings: raises NotEnoughMemory.
    held: bytes that requests in progress hold (the model host's)."""
    try:
        bundle = load_bundle(bundle_path)
        size = os.path.getsize(bundle.weights_path)
        # A static model's table is always memory-mapped: page cache, like a prepared transformer's weights.
        shared = bundle.is_static or (is_on(settings.get("shared_weights")) and engines.shared_weights_ready(bundle))
    except (OSError, BundleError):
        return  # a missing or damaged file: the load itself reports it
    memory.check_can_load(size, settings.get("memory_reserve_mb"), shared=shared, held=held)


def load_encoder(bundle_path: str, settings: dict, cached: bool = True, held: int = 0) -> Encoder:
    """The Encoder for a bundle under the settings, past the memory guard. cached: the one cached per process
    (at most max_loaded_models); else a new one (the model host keeps its own, as many)."""
    options = encoder_options(settings)
    if cached:
        loading: list[float] = []  # when get_encoder began a load (it does only on a cache miss): model_stats

        def before_load(path):
            loading.append(time.perf_counter())
            guard(path, settings)

        encoder = get_encoder(bundle_path, before_load=before_load,
                              max_models=int(settings.get("max_loaded_models") or 3), **options)
        if loading:
            model_stats.recorder.load(encoder.bundle.path, encoder.engine.name, time.perf_counter() - loading[0])
        return encoder
    started = time.perf_counter()
    guard(bundle_path, settings, held)
    encoder = new_encoder(load_bundle(bundle_path), **options)
    model_stats.recorder.load(encoder.bundle.path, encoder.engine.name, time.perf_counter() - started)
    return encoder


class LocalModel:
    """An Encoder of this process; model calls take a slot of the server's thread budget (slots.py)."""

    where = "in this backend"

    def __init__(self, encoder: Encoder, thread_budget: int | None = None):
        self.encoder = encoder
        self.bundle = encoder.bundle
        self.dimension = encoder.dimension
        self.budget = thread_budget or default_threads()

    @property
    def chunk_window(self) -> int:
        return self.encoder.chunk_window

    def encode(self, texts: list[str], kind: str = "document", check=None, gate=None, record: bool = True):
        """Vectors of texts (no None), in order: rows with .tolist(). gate: a context-manager factory held
        around each model call (the model host's budget); by default a slot of the server's. A call that
        returns is counted in model_stats.py (record=False: not, for the benchmark of that counting)."""
        if gate is None:
            gate = slots.gate(self.budget, self.encoder.threads, check)
        if not (record and texts and model_stats.enabled):
            return self.encoder.encode(texts, check=check, kind=kind, gate=gate)
        timed = model_stats.TimedGate(gate) if gate is not None else None
        counts: dict = {}
        started = time.perf_counter()
        vectors = self.encoder.encode(texts, check=check, kind=kind, gate=timed, counts=counts)
        model_stats.recorder.call(self.bundle.path, self.encoder.engine.name, len(texts), counts.get("tokens", 0),
                                  time.perf_counter() - started, timed.waited if timed is not None else 0.0)
        return vectors

    def chunk(self, texts: list[str], chunk_tokens: int, overlap_tokens: int, limit: int, check=None):
        """(start, end) spans of every text's chunks (chunker.py); raises TooManyChunks past limit per text."""
        tokenizer = self.encoder.plain_tokenizer
        return [chunk_spans(tokenizer, text, chunk_tokens, overlap_tokens, limit, check) for text in texts]

    def info(self) -> dict:
        import tokenizers

        encoder = self.encoder
        info = {
            "model": encoder.bundle.model_id,
            "bundle_path": encoder.bundle.path,
            "dimension": encoder.dimension,
            "pooling": encoder.bundle.pooling,
            "normalize": encoder.bundle.normalize,
            "max_tokens": encoder.bundle.max_tokens,
            "threads": encoder.threads,
            "batch_size": encoder.batch_size,
            "batch_tokens": encoder.batch_tokens,
            "engine": encoder.engine.name,
            "engine_reason": encoder.engine.reason,
            "weights": encoder.engine.weights,
            "tokenizers": tokenizers.__version__,
            "model_calls": encoder.calls,
        }
        if not encoder.bundle.is_static:  # a static model runs without it: not even imported
            import onnxruntime

            info["onnxruntime"] = onnxruntime.__version__
        return info
