"""Tokenize, run the ONNX encoder in length-sorted batches, pool, normalise."""
from __future__ import annotations

import os
import threading
from typing import Iterable, Sequence

import numpy as np

from . import engines
from .bundle import Bundle, BundleError, load_bundle
from .pooling import POOLERS, l2_normalize

DEFAULT_BATCH_SIZE = 32
# Padded tokens per model call. Measured on all-mpnet-base-v2 with 2 threads: batching many short texts
# doubles throughput, but big batches of long texts run slower than small ones (activations fall out of
# cache): 512 kept both at their best (bench/RESULTS-triggers.md).
DEFAULT_BATCH_TOKENS = 512


class Encoder:
    """One loaded model: a tokenizer and an inference engine. Not thread-safe (one per backend)."""

    def __init__(self, bundle: Bundle, threads: int | None = None, batch_size: int = DEFAULT_BATCH_SIZE,
                 batch_tokens: int = DEFAULT_BATCH_TOKENS, engine: str | None = None, runner=None):
        """engine: a name for engines.choose(); runner: an engine object already built (the export uses
        one to measure a precision before the manifest accepts it)."""
        # Imported here so that `import pgbert_runtime` stays cheap for callers that only read manifests.
        from tokenizers import Tokenizer

        self.bundle = bundle
        self.batch_size = max(1, int(batch_size))
        self.batch_tokens = max(1, int(batch_tokens))
        self.threads = int(threads) if threads else default_threads()
        try:
            self.tokenizer = Tokenizer.from_file(bundle.tokenizer_path)
        except Exception as exc:  # tokenizers raises a bare Exception on a damaged file
            raise BundleError(f"model bundle {bundle.path}: cannot load tokenizer.json ({exc}); "
                              f"re-export it with `pgbert export {bundle.model_id}`") from None
        # Truncate as the model's own library does: max_tokens counts the special tokens too.
        self.tokenizer.enable_truncation(max_length=bundle.max_tokens)
        self.tokenizer.no_padding()  # we pad per batch, after sorting by length
        self.engine = engines.check(runner, bundle) if runner else engines.load(bundle, self.threads, engine)
        self.pad_id = self._pad_id()
        self.pool = POOLERS[bundle.pooling]
        self.calls = 0  # model invocations, for tests and statistics

    def _pad_id(self) -> int:
        padding = self.bundle.manifest.get("pad_token_id")
        return int(padding) if padding is not None else 0

    @property
    def dimension(self) -> int:
        return self.bundle.dimension

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        return [e.ids for e in self.tokenizer.encode_batch(list(texts))]

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts; returns float32 (len(texts), dimension), rows in input order."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        encodings = self.tokenizer.encode_batch(list(texts))
        ids = [e.ids for e in encodings]
        types = [e.type_ids for e in encodings]
        out = np.empty((len(ids), self.dimension), dtype=np.float32)
        for chunk in self.batches([len(x) for x in ids]):
            out[chunk] = self._run([ids[i] for i in chunk], [types[i] for i in chunk])
        return out

    def batches(self, lengths: Sequence[int]) -> list[list[int]]:
        """Indices grouped into model calls: sorted by length (little padding), at most batch_size texts
        and batch_tokens padded tokens per call (a single longer text still gets a call of its own)."""
        order = sorted(range(len(lengths)), key=lambda i: lengths[i])
        batches, current = [], []
        for i in order:
            # Sorted ascending, so this text is the longest of the batch: it sets the padded width.
            if current and (len(current) >= self.batch_size or (len(current) + 1) * lengths[i] > self.batch_tokens):
                batches.append(current)
                current = []
            current.append(i)
        if current:
            batches.append(current)
        return batches

    def _run(self, ids: list[list[int]], types: list[list[int]]) -> np.ndarray:
        width = max(len(x) for x in ids)
        input_ids = np.full((len(ids), width), self.pad_id, dtype=np.int64)
        token_types = np.zeros((len(ids), width), dtype=np.int64)
        mask = np.zeros((len(ids), width), dtype=np.int64)
        for row, (tok, typ) in enumerate(zip(ids, types)):
            input_ids[row, :len(tok)] = tok
            token_types[row, :len(typ)] = typ
            mask[row, :len(tok)] = 1
        feeds = {"input_ids": input_ids, "attention_mask": mask, "token_type_ids": token_types}
        hidden = self.engine.run(feeds)
        self.calls += 1
        pooled = self.pool(hidden.astype(np.float32, copy=False), mask)
        return l2_normalize(pooled) if self.bundle.normalize else pooled


def default_threads() -> int:
    env = os.environ.get("PGBERT_THREADS")
    if env:
        return max(1, int(env))
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


_cache: dict[tuple, Encoder] = {}
_lock = threading.Lock()


def _bundle_key(path: str) -> tuple:
    # Re-exported, replaced, truncated or deleted files change these stats, which invalidates the cache:
    # the next call reloads (or fails with a clear error), and a repaired bundle is picked up without
    # restarting the server. Three stat() calls cost microseconds; this runs on every embed() call, so
    # nothing more (the path is the absolute one registered in pgbert.models).
    stats = []
    for name in ("manifest.json", "model.onnx", "tokenizer.json"):
        try:
            st = os.stat(os.path.join(path, name))
            stats.append((st.st_size, st.st_mtime_ns, st.st_ino))
        except OSError:
            stats.append(None)
    return (path, *stats)


def get_encoder(path: str, threads: int | None = None, batch_size: int = DEFAULT_BATCH_SIZE,
                batch_tokens: int = DEFAULT_BATCH_TOKENS, engine: str | None = None) -> Encoder:
    """The cached Encoder for a bundle directory, loaded on first use (once per process)."""
    key = _bundle_key(path) + (threads, batch_size, batch_tokens, engine)
    with _lock:
        encoder = _cache.get(key)
        if encoder is None:
            encoder = Encoder(load_bundle(path), threads=threads, batch_size=batch_size, batch_tokens=batch_tokens,
                              engine=engine)
            _cache.clear()  # one model per backend: drop the old one's memory
            _cache[key] = encoder
        return encoder


def embed_texts(encoder: Encoder, texts: Iterable[str | None]) -> list[np.ndarray | None]:
    """Embed texts where None stays None (SQL NULL in, NULL out)."""
    texts = list(texts)
    present = [i for i, t in enumerate(texts) if t is not None]
    vectors = encoder.encode([texts[i] for i in present])
    result: list[np.ndarray | None] = [None] * len(texts)
    for row, i in enumerate(present):
        result[i] = vectors[row]
    return result
