"""Token-aware chunking of long texts: the model sees a whole text, window by window, instead of its first
window only.

A text is tokenized with the bundle's own tokenizer (no special tokens); chunks are runs of at most
chunk_tokens tokens, the next starting overlap_tokens before the previous one ended (moved a few tokens to
the nearest start of a word). A chunk's end moves
back to a sentence end (. ! ? 。 ！ ？ or a line break) or, failing that, to a space, when one lies in the
last quarter of its window. Boundaries are character offsets into the text: every chunk is an exact
substring. A text that fits one window is one chunk, the whole text.

Long texts are tokenized piece by piece (PIECE_CHARS, cut at a space), so memory stays bounded and a text
that would make more than max_chunks chunks is refused before all of it is tokenized.
"""
from __future__ import annotations

from collections.abc import Callable

SENTENCE_ENDS = frozenset(".!?")  # ... when a space follows
FULL_STOPS = frozenset("。！？")  # always (Japanese puts no space after them); so does a line break
LOOKBACK = 0.25  # the share of a window searched backwards for a sentence end or a space
PIECE_CHARS = 100_000
WORD_TOKENS = 8  # how far a chunk's start may move to the start of a word


class TooManyChunks(Exception):
    """The text makes more chunks than allowed; the message says which limit and how to change it."""


def _offsets(tokenizer, text: str, limit: int, check: Callable[[], None] | None) -> list[tuple[int, int]]:
    """(start, end) character offsets of the text's tokens, tokenized in pieces cut at a space or a sentence
    end; raises TooManyChunks past limit tokens (so a huge text costs one piece of work, not all of it)."""
    offsets: list[tuple[int, int]] = []
    start = 0
    while start < len(text):
        end = min(len(text), start + PIECE_CHARS)
        if end < len(text):
            cut = max(text.rfind(mark, start + PIECE_CHARS // 2, end) for mark in (" ", "\n", "。"))
            end = cut + 1 if cut > start else end
        if check:
            check()
        encoding = tokenizer.encode(text[start:end], add_special_tokens=False)
        offsets.extend((start + a, start + b) for a, b in encoding.offsets if b > a)
        if len(offsets) > limit:
            raise TooManyChunks(f"a text of {len(text)} characters has more than {limit} tokens: more chunks "
                                f"than max_chunks_per_row allows")
        start = end
    return offsets


def _cut(offsets: list[tuple[int, int]], text: str, first: int, last: int) -> int:
    """Where a chunk of tokens first..last-1 should end (exclusive token index): the latest sentence end,
    else the latest space, in the window's last quarter; else last."""
    lowest = max(first + 1, last - int((last - first) * LOOKBACK))
    space = None
    for i in range(last, lowest - 1, -1):  # cut before token i
        if i >= len(offsets):
            return i
        previous_end = offsets[i - 1][1]
        gap = text[previous_end:offsets[i][0]]
        if "\n" in gap or text[previous_end - 1] in FULL_STOPS or (gap and text[previous_end - 1] in SENTENCE_ENDS):
            return i
        if space is None and gap:
            space = i
    return space or last


def chunk_spans(tokenizer, text: str, chunk_tokens: int, overlap_tokens: int, max_chunks: int,
                check: Callable[[], None] | None = None) -> list[tuple[int, int]]:
    """[start, end) character spans of a text's chunks, in order."""
    if chunk_tokens < 1 or not 0 <= overlap_tokens < chunk_tokens:
        raise ValueError(f"need chunk_tokens >= 1 and 0 <= overlap_tokens < chunk_tokens, got "
                         f"{chunk_tokens} and {overlap_tokens}")
    offsets = _offsets(tokenizer, text, max_chunks * (chunk_tokens - overlap_tokens) + overlap_tokens, check)
    if len(offsets) <= chunk_tokens:
        return [(0, len(text))]
    spans, first = [], 0
    while True:
        last = min(first + chunk_tokens, len(offsets))
        cut = _cut(offsets, text, first, last) if last < len(offsets) else last
        spans.append((offsets[first][0] if spans else 0, offsets[cut - 1][1] if cut < len(offsets) else len(text)))
        if cut >= len(offsets):
            return spans
        if len(spans) >= max_chunks:
            raise TooManyChunks(f"a text of {len(text)} characters makes more than {max_chunks} chunks "
                                f"(max_chunks_per_row)")
        previous, first = first, max(first + 1, cut - overlap_tokens)
        # Start on a word, not inside one: the nearest word start a few tokens back (more overlap), else
        # a few tokens on (less). Text without spaces, such as Japanese, has none: the start stays.
        back = range(first, max(previous, first - WORD_TOKENS), -1)
        on = range(first + 1, min(cut, first + WORD_TOKENS))
        first = next((i for i in (*back, *on) if offsets[i][0] > offsets[i - 1][1]), first)
