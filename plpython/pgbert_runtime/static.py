"""Static models: every token of the vocabulary has a vector (embeddings.npy, vocabulary x dimension), and a
text's vector is the mean of its known tokens' vectors, L2-normalised when the manifest says so. No transformer
runs: tokenizing, a gather and a sum, thousands of texts a second on one core. Made by `pgbert export --static`
(a model2vec distillation of a transformer) or `pgbert import-vectors` (Word2Vec, fastText, GloVe).

Computed as model2vec's StaticModel.encode does: a text is cut at the bundle's readable_chars, tokenized without
special tokens, its unknown tokens (the manifest's unk_token_ids) are dropped, the first max_tokens of the rest
are averaged. Imports only numpy and tokenizers (never onnxruntime or openvino).

A text with no known token (empty, or only words the vocabulary lacks):
- as a document, the zero vector (model2vec's answer too). It is stored, so the row is not left pending, and no
  vector search finds it: pgvector's HNSW index leaves zero vectors out under cosine, and the cosine distance
  to one is NaN, which sorts after every number.
- as a query, NoKnownWords (see StaticEncoder.encode).
"""
from __future__ import annotations

import itertools
from collections.abc import Sequence
from contextlib import nullcontext

import numpy as np

from .bundle import Bundle, BundleError, NoKnownWords
from .encoder import DEFAULT_BATCH_SIZE, DEFAULT_BATCH_TOKENS, TOKENIZE_CHUNK_CHARS, Check, Encoder, load_tokenizer
from .pooling import l2_normalize

ENGINE = "static"
# Texts per tokenizer call; a call also stops at TOKENIZE_CHUNK_CHARS characters (about 0.2 s of the slowest
# text measured), so check() (cancel) runs at least that often. Short texts go many to a call: a call costs
# tens of microseconds beyond its texts.
CHUNK_TEXTS = 1024
# Bytes of token vectors gathered at once before they are summed: a call's memory stays bounded whatever the
# dimension (65,536 tokens of 1,024-d vectors would be 256 MB).
GATHER_BYTES = 8 << 20


class StaticEngine:
    """What callers read of an Encoder's engine (status(), model_stats, the model host's log)."""

    name = ENGINE
    reason = "a static model: token vectors averaged with numpy (the engine setting applies to transformers only)"
    weights = "memory-mapped from embeddings.npy: one copy in the page cache, whatever the processes"


def load_embeddings(bundle: Bundle, vocabulary: int) -> np.ndarray:
    """The bundle's token vectors, memory-mapped: every process that loads the bundle shares its pages, and
    loading reads nothing until rows are used. allow_pickle=False: a file holding Python objects is refused,
    never unpickled (the server loads only bundles an admin registered, and loads no code from them)."""
    try:
        table = np.load(bundle.weights_path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise BundleError(f"model bundle {bundle.path}: cannot read embeddings.npy ({exc}); re-export it") from None
    if not isinstance(table, np.ndarray) or table.dtype != np.float32 or table.ndim != 2 \
            or table.shape[1] != bundle.dimension:
        found = f"{table.dtype} {tuple(table.shape)}" if isinstance(table, np.ndarray) else type(table).__name__
        raise BundleError(f"model bundle {bundle.path}: embeddings.npy holds {found}, the manifest promises float32 "
                          f"rows of {bundle.dimension}; re-export it")
    if vocabulary > table.shape[0]:
        raise BundleError(f"model bundle {bundle.path}: tokenizer.json has {vocabulary} tokens but embeddings.npy "
                          f"only {table.shape[0]} rows; re-export it")
    return table


class StaticEncoder(Encoder):
    """A static model behind Encoder's interface, as local.py, the model host, the chunker and the exports use it
    (encode, tokenize, prompted, dimension, chunk_window, plain_tokenizer, engine, threads, calls)."""

    def __init__(self, bundle: Bundle, threads: int | None = None, batch_size: int = DEFAULT_BATCH_SIZE,
                 batch_tokens: int = DEFAULT_BATCH_TOKENS, engine: str | None = None, runner=None,
                 shared_weights: bool = True):
        """Arguments as for Encoder; engine, runner and shared_weights choose how a transformer runs and do not
        apply (the table is always memory-mapped). threads is 1: numpy gathers and sums on one core, so a call
        takes one slot of the server's thread budget."""
        self.bundle = bundle
        self.batch_size = max(1, int(batch_size))
        self.batch_tokens = max(1, int(batch_tokens))
        self.threads = 1
        self.tokenizer = load_tokenizer(bundle)
        self.embeddings = load_embeddings(bundle, self.tokenizer.get_vocab_size(with_added_tokens=True))
        self.unknown = np.array(sorted(set(bundle.manifest.get("unk_token_ids", []))), dtype=np.int64)
        self.engine = StaticEngine()
        self.calls = 0  # tokenize-and-average passes, as Encoder counts model calls
        self._encode_batch = getattr(self.tokenizer, "encode_batch_fast", self.tokenizer.encode_batch)

    @property
    def chunk_window(self) -> int:
        """A chunk's most tokens: the tokens a text is averaged over (no special tokens, no prompt)."""
        return self.bundle.max_tokens

    def tokenize(self, texts: Sequence[str], check: Check | None = None, kind: str = "document") -> list[list[int]]:
        """The token ids each text is averaged over: its known tokens, the first max_tokens of them."""
        texts = self.prompted(texts, kind)
        result: list[list[int]] = []
        for chunk in self._chunks(texts, check):
            ids, counts = self._ids([texts[i] for i in chunk])
            result += [part.tolist() for part in np.split(ids, np.cumsum(counts)[:-1])]
        return result

    def encode(self, texts: Sequence[str], check: Check | None = None, kind: str = "document",
               gate=None, counts: dict | None = None) -> np.ndarray:
        """Vectors of texts: float32 (len(texts), dimension), in order; the mean of each text's known tokens'
        vectors (a document without any: the zero vector), L2-normalised when the manifest says so.

        A query without any known token raises NoKnownWords. Its zero vector has a NaN cosine distance to every
        row, so `ORDER BY v <=> q LIMIT k` would return k arbitrary rows, and no value embed() could return
        instead (NULL sorts arbitrarily too) makes such an ORDER BY return no rows: an error is the one answer
        that keeps search() and hand-written SQL alike from showing rows that look like results, and it says why
        (sql_api names the model). check, kind, gate, counts: as for Encoder.encode."""
        texts = self.prompted(texts, kind)  # an unknown kind fails even with no texts; no prompts here
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        tokens = 0
        for chunk in self._chunks(texts, check):
            with gate() if gate is not None else nullcontext():  # the thread budget (slots.py), in the database
                ids, found = self._ids([texts[i] for i in chunk])
                if kind == "query" and not found.all():
                    raise NoKnownWords(f"no word of the query is in the vocabulary of {self.bundle.model_id}, a "
                                       f"static model: its vector would be zero, nearest to nothing")
                out[chunk] = self._mean(ids, found)
            self.calls += 1
            tokens += len(ids)
        if counts is not None:
            counts["tokens"] = tokens
        return l2_normalize(out) if self.bundle.normalize else out

    def _chunks(self, texts: Sequence[str], check: Check | None):
        """Lists of text indices, one tokenizer call each; check() runs between them (never before the first)."""
        readable = self.bundle.readable_chars
        chunk: list[int] = []
        chars = 0
        for i, text in enumerate(texts):
            size = min(len(text), readable)
            if chunk and (len(chunk) >= CHUNK_TEXTS or chars + size > TOKENIZE_CHUNK_CHARS):
                yield chunk
                if check is not None:
                    check()
                chunk, chars = [], 0
            chunk.append(i)
            chars += size
        if chunk:
            yield chunk

    def _ids(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(the kept token ids of all texts, one after the other; how many each text has). Only the first
        readable_chars of a text are tokenized: the rest is never read."""
        readable = self.bundle.readable_chars
        encoded = [e.ids for e in self._encode_batch([t[:readable] for t in texts], add_special_tokens=False)]
        lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
        ids = np.fromiter(itertools.chain.from_iterable(encoded), dtype=np.int64, count=int(lengths.sum()))
        owner = np.repeat(np.arange(len(texts)), lengths)
        if self.unknown.size:
            known = ~np.isin(ids, self.unknown)
            ids, owner = ids[known], owner[known]
        # The first max_tokens known tokens of each text (model2vec drops unknown tokens, then truncates):
        # a token's rank in its text is its position less that of its text's first token.
        rank = np.arange(len(owner)) - np.searchsorted(owner, owner, side="left")
        keep = rank < self.bundle.max_tokens
        return ids[keep], np.bincount(owner[keep], minlength=len(texts))

    def _mean(self, ids: np.ndarray, counts: np.ndarray) -> np.ndarray:
        """Each text's mean row (counts[i] consecutive ids per text; a zero row where counts[i] is 0), gathering
        at most GATHER_BYTES of rows at a time (at least one text's)."""
        out = np.zeros((len(counts), self.dimension), dtype=np.float32)
        ends = np.cumsum(counts)
        starts = ends - counts
        step = max(1, GATHER_BYTES // (4 * self.dimension))
        first = 0
        while first < len(counts):
            last = max(first + 1, int(np.searchsorted(ends, starts[first] + step, side="right")))
            texts = np.arange(first, last)[counts[first:last] > 0]
            if texts.size:
                rows = self.embeddings[ids[starts[first]:ends[last - 1]]]
                # One sum a text, as model2vec's np.mean does (pairwise, contiguous): measured 7x faster than
                # np.add.reduceat over the same segments (1,024 texts of 20-160 rows of 256-d).
                for i, (start, end) in zip(texts.tolist(), zip((starts[texts] - starts[first]).tolist(),
                                                               (ends[texts] - starts[first]).tolist())):
                    out[i] = rows[start:end].sum(axis=0)
                out[texts] /= counts[texts, None]
            first = last
        return out
