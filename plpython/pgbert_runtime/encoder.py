"""Tokenize, run the ONNX encoder in length-sorted batches, pool, normalise (static models: static.py)."""
from __future__ import annotations

import functools
import os
import threading
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from contextlib import nullcontext

import numpy as np

from . import engines
from .bundle import MAX_CHARS_PER_TOKEN, Bundle, BundleError, file_key, load_bundle
from .pooling import POOLERS, l2_normalize

DEFAULT_BATCH_SIZE = 32
# Padded tokens per model call. Measured on all-mpnet-base-v2 with 2 threads: batching many short texts
# doubles throughput, but big batches of long texts run slower than small ones (activations fall out of
# cache): 512 kept both at their best (bench/RESULTS-triggers.md).
DEFAULT_BATCH_TOKENS = 512

# Long texts are cut before tokenizing: the model keeps max_tokens tokens, and tokenizing a whole 4 MB text
# to keep 384 of them took 2 GB and 15 s, with no way to cancel it. The first prefix tried is max_tokens x 12
# characters: the window of all-mpnet-base-v2 needed at most 5.5 characters a token over 240 documents
# (licences, package descriptions, Python source, JSON, CSV, base64, URLs, German compounds), so texts
# whose window needs up to twice that settle at once; a text whose window needs more (very long words,
# long whitespace or control-character runs) is retried with a prefix twice as long, up to max_tokens x
# MAX_CHARS_PER_TOKEN characters (bundle.py), whose tokens are kept as they are: a 32 Mi-character text
# without word breaks, tokenized whole, took 9 GB and 2 minutes.
PREFIX_CHARS_PER_TOKEN = 12
# How far before the cut the word after the last kept token must start (plus the longest added token, such
# as <mask>, which a cut can split): what a cut changes stays next to it (a regex pre-tokenizer looks one
# character ahead, a Hangul syllable composes with the next character); combining marks, which Unicode
# normalization reorders and composes across any distance, are skipped separately (see _settled).
PREFIX_MARGIN_CHARS = 64
# Tokenizer calls between two check() calls: at most this many texts and characters. The slowest input
# measured (CJK, punctuation runs) tokenizes at ~3 us a character on a 2-core Xeon: ~0.2 s a call.
TOKENIZE_CHUNK_TEXTS = 64
TOKENIZE_CHUNK_CHARS = 65_536

Check = Callable[[], object]


class BoundedTokenizer:
    """Tokenizer.encode_batch with truncation to max_tokens, without tokenizing what truncation drops.

    Ids, type ids and special tokens are those of `tokenizer.encode_batch([t[:last_cut] for t in texts])` with
    `enable_truncation(max_length=max_tokens)` (the tokenizer given is that one), for every text: a shorter
    prefix is used only when the tokens it yields before its cut provably equal the longer text's (see
    _settled). last_cut is max_tokens x MAX_CHARS_PER_TOKEN characters: no text costs more than that.
    """

    def __init__(self, tokenizer, max_tokens: int):
        from tokenizers import Tokenizer

        self.tokenizer = tokenizer  # truncates; it adds the special tokens to the prefixes' content tokens
        self.raw = Tokenizer.from_str(tokenizer.to_str())  # same pipeline, content tokens only, all of them
        self.raw.no_truncation()
        self.raw.no_padding()
        # Truncation keeps max_tokens including the special tokens the post-processor adds after it.
        self.keep = max_tokens - tokenizer.num_special_tokens_to_add(False)
        longest_added = max((len(t.content) for t in tokenizer.get_added_tokens_decoder().values()), default=0)
        self.margin = PREFIX_MARGIN_CHARS + longest_added
        self.last_cut = max_tokens * MAX_CHARS_PER_TOKEN
        self.first_cut = min(max(max_tokens * PREFIX_CHARS_PER_TOKEN, 4 * self.margin), self.last_cut)

    def encode_batch(self, texts: Sequence[str], check: Check | None = None, gate=None) -> list:
        """Encodings of texts, in order; check() runs between tokenizer calls (never before the first), gate()
        (a context manager: the thread budget) is held around each: tokenizing is CPU and memory too."""
        texts = list(texts)
        result: list = [None] * len(texts)
        pending = {i: self.first_cut for i in range(len(texts))}  # text index -> prefix length to try
        first = True
        while pending:
            retry = {}
            for chunk in self._chunks(texts, pending):
                if check is not None and not first:
                    check()
                first = False
                probes = [texts[i][:pending[i]] for i in chunk]
                with gate() if gate is not None else nullcontext():
                    encodings = self.raw.encode_batch(probes, add_special_tokens=False)
                for i, probe, enc in zip(chunk, probes, encodings, strict=True):
                    if len(probe) == len(texts[i]) or len(probe) == self.last_cut or self._settled(enc, probe):
                        result[i] = self.tokenizer.post_process(enc)
                    else:
                        retry[i] = min(2 * pending[i], self.last_cut)
            pending = retry
        return result

    @staticmethod
    def _chunks(texts: list[str], pending: dict[int, int]):
        chunk, chars = [], 0
        for i, cut in pending.items():
            size = min(cut, len(texts[i]))
            if chunk and (len(chunk) >= TOKENIZE_CHUNK_TEXTS or chars + size > TOKENIZE_CHUNK_CHARS):
                yield chunk
                chunk, chars = [], 0
            chunk.append(i)
            chars += size
        if chunk:
            yield chunk

    def _settled(self, enc, probe: str) -> bool:
        """Whether the first `keep` tokens of a prefix are the whole text's.

        They are when the last kept token's word is followed, well before the cut, by the first token of
        another word, and what precedes that word cannot change with what follows the cut:
        - normalizers act locally, except that Unicode normalization reorders and composes a run of combining
          marks with the character before it, however long the run (Zalgo text): the word must start before
          the first character that is not a combining mark, and that character before the margin;
        - pre-tokenizers split into words by looking at most a character ahead;
        - the model splits each word on its own, but needs all of it (WordPiece turns a word longer than 100
          characters into [UNK]; the first part of a word cut in two would not be): hence another word.
        """
        if self.keep < 1 or len(enc) <= self.keep:
            return False
        words = enc.word_ids
        offsets = enc.offsets
        last = words[self.keep - 1]
        limit = len(probe) - self.margin
        for j in range(self.keep, len(words)):
            start = offsets[j][0]
            if start >= limit:
                return False
            if last is None or words[j] != last:
                while start < limit and unicodedata.combining(probe[start]):
                    start += 1
                return start < limit
        return False


class Encoder:
    """One loaded model: a tokenizer and an inference engine. encode() may run in several threads at once (the
    model host calls it from a thread per backend): tokenizers and both engines allow it."""

    def __init__(self, bundle: Bundle, threads: int | None = None, batch_size: int = DEFAULT_BATCH_SIZE,
                 batch_tokens: int = DEFAULT_BATCH_TOKENS, engine: str | None = None, runner=None,
                 shared_weights: bool = True):
        """engine: a name for engines.choose(); runner: an engine object already built (the export uses
        one to measure a precision before the manifest accepts it); shared_weights: map the model prepared
        once per server (prepared.py) rather than load a private copy, where the engine can."""
        self.bundle = bundle
        self.batch_size = max(1, int(batch_size))
        self.batch_tokens = max(1, int(batch_tokens))
        self.threads = int(threads) if threads else default_threads()
        self.tokenizer = load_tokenizer(bundle)
        # Truncate as the model's own library does: max_tokens counts the special tokens too.
        self.tokenizer.enable_truncation(max_length=bundle.max_tokens)
        self.tokenizer.no_padding()  # we pad per batch, after sorting by length
        self.bounded = BoundedTokenizer(self.tokenizer, bundle.max_tokens)
        if runner:
            self.engine = engines.check(runner, bundle)
        else:
            self.engine = engines.load(bundle, self.threads, engine, shared_weights)
        self.pad_id = self._pad_id()
        self.pool = POOLERS[bundle.pooling]
        self.calls = 0  # model invocations, for tests and statistics

    def _pad_id(self) -> int:
        padding = self.bundle.manifest.get("pad_token_id")
        return int(padding) if padding is not None else 0

    @property
    def dimension(self) -> int:
        return self.bundle.dimension

    @functools.cached_property
    def plain_tokenizer(self):
        """The tokenizer without truncation or padding: for chunking a whole text (chunker.py)."""
        from tokenizers import Tokenizer

        plain = Tokenizer.from_str(self.tokenizer.to_str())
        plain.no_truncation()
        plain.no_padding()
        return plain

    @functools.cached_property
    def chunk_window(self) -> int:
        """The most tokens of a document chunk the model reads whole: its window less the special tokens and
        the document prompt."""
        specials = len(self.tokenizer.encode("").ids)
        prompt = self.bundle.prompt("document")
        prompt_tokens = len(self.plain_tokenizer.encode(prompt, add_special_tokens=False).ids) if prompt else 0
        return self.bundle.max_tokens - specials - prompt_tokens

    def prompted(self, texts: Sequence[str], kind: str = "document") -> Sequence[str]:
        """texts as the model reads them when embedded as kind ("query" or "document", else ValueError): with
        the bundle's prompt for that kind in front (the model's own library puts it there the same way), or
        unchanged when the model has none. Past readable_chars nothing is ever tokenized: cut first, so that a
        huge text is not copied."""
        prompt = self.bundle.prompt(kind)
        return [prompt + text[:self.bundle.readable_chars] for text in texts] if prompt else texts

    def tokenize(self, texts: Sequence[str], check: Check | None = None, kind: str = "document") -> list[list[int]]:
        """Token ids as the model gets them: prompt included, truncated to max_tokens, special tokens included."""
        return [e.ids for e in self.bounded.encode_batch(self.prompted(texts, kind), check)]

    def encode(self, texts: Sequence[str], check: Check | None = None, kind: str = "document",
               gate=None, counts: dict | None = None) -> np.ndarray:
        """Embed texts; returns float32 (len(texts), dimension), rows in input order.

        check: called between tokenizer calls and before each model call, so that a caller can stop the work
        (in the database it lets PostgreSQL act on a cancel request or statement_timeout); whatever it raises
        propagates unchanged.
        kind: "document" (a text to be searched, the default) or "query" (a search query); the bundle's prompt
        for that kind goes in front of each text before the same bounded tokenizing (no prompt: texts as given).
        counts: a dict that gets "tokens", the tokens the model reads (padding excluded): for model_stats.py.
        """
        texts = self.prompted(texts, kind)  # first: an unknown kind fails even with no texts
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        encodings = self.bounded.encode_batch(texts, check, gate)
        ids = [e.ids for e in encodings]
        types = [e.type_ids for e in encodings]
        del encodings
        if counts is not None:
            counts["tokens"] = sum(map(len, ids))
        out = np.empty((len(ids), self.dimension), dtype=np.float32)
        for chunk in self.batches([len(x) for x in ids]):
            if check is not None:
                check()
            with gate() if gate is not None else nullcontext():  # the thread budget (slots.py), in the database
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
        for row, (tok, typ) in enumerate(zip(ids, types, strict=True)):
            input_ids[row, :len(tok)] = tok
            token_types[row, :len(typ)] = typ
            mask[row, :len(tok)] = 1
        feeds = {"input_ids": input_ids, "attention_mask": mask, "token_type_ids": token_types}
        hidden = self.engine.run(feeds)
        self.calls += 1
        pooled = self.pool(hidden.astype(np.float32, copy=False), mask)
        return l2_normalize(pooled) if self.bundle.normalize else pooled


def load_tokenizer(bundle: Bundle):
    """The bundle's tokenizer.json, without truncation or padding (callers set what they need)."""
    # Imported here so that `import pgbert_runtime` stays cheap for callers that only read manifests.
    from tokenizers import Tokenizer

    try:
        tokenizer = Tokenizer.from_file(bundle.tokenizer_path)
    except Exception as exc:  # tokenizers raises a bare Exception on a damaged file
        raise BundleError(f"model bundle {bundle.path}: cannot load tokenizer.json ({exc}); "
                          f"re-export it with `pgbert export {bundle.model_id}`") from None
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


def new_encoder(bundle: Bundle, **options) -> Encoder:
    """A new encoder of the bundle's model family: an ONNX transformer (Encoder), or a static model
    (static.StaticEncoder, which needs only numpy and tokenizers); options as for Encoder."""
    if bundle.is_static:
        from .static import StaticEncoder

        return StaticEncoder(bundle, **options)
    return Encoder(bundle, **options)


@functools.cache
def default_threads() -> int:
    """The CPUs this process may use (PGBERT_THREADS overrides), read once per process."""
    env = os.environ.get("PGBERT_THREADS")
    if env:
        return max(1, int(env))
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


_cache: dict[tuple, Encoder] = {}  # least recently used first
_lock = threading.Lock()
DEFAULT_MAX_MODELS = 3


def get_encoder(path: str, threads: int | None = None, batch_size: int = DEFAULT_BATCH_SIZE,
                batch_tokens: int = DEFAULT_BATCH_TOKENS, engine: str | None = None,
                before_load=None, shared_weights: bool = True, max_models: int = DEFAULT_MAX_MODELS) -> Encoder:
    """The cached Encoder for a bundle directory, loaded on first use (once per process); at most max_models
    stay loaded, the least recently used unloaded first. before_load(path): called only when the bundle is
    about to be loaded (the memory guard)."""
    key = file_key(path) + (threads, batch_size, batch_tokens, engine, shared_weights)
    with _lock:
        encoder = _cache.pop(key, None)
        if encoder is None:
            for old in [k for k in _cache if k[0] == path]:
                del _cache[old]  # the bundle's older files or settings: drop their memory first
            while _cache and len(_cache) >= max(1, max_models):
                del _cache[next(iter(_cache))]
            if before_load is not None:
                before_load(path)
            encoder = new_encoder(load_bundle(path), threads=threads, batch_size=batch_size,
                                  batch_tokens=batch_tokens, engine=engine, shared_weights=shared_weights)
        _cache[key] = encoder  # most recently used last
        return encoder


def loaded_encoders() -> list[Encoder]:
    """The models this process holds, least recently used first."""
    with _lock:
        return list(_cache.values())


def embed_texts(encoder: Encoder, texts: Iterable[str | None], check: Check | None = None,
                kind: str = "document", gate=None) -> list[np.ndarray | None]:
    """Embed texts where None stays None (SQL NULL in, NULL out); check, kind, gate as for Encoder.encode."""
    texts = list(texts)
    present = [i for i, t in enumerate(texts) if t is not None]
    vectors = encoder.encode([texts[i] for i in present], check=check, kind=kind, gate=gate)
    result: list[np.ndarray | None] = [None] * len(texts)
    for row, i in enumerate(present):
        result[i] = vectors[row]
    return result
