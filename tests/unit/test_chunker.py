"""Token-aware chunking: exact substrings that cover the text, windows the model reads whole, boundaries at
sentence ends or spaces, bounded work on huge texts."""
import random

import pytest

from pgbert_runtime.bundle import load_bundle
from pgbert_runtime.chunker import TooManyChunks, chunk_spans
from pgbert_runtime.encoder import Encoder

WORDS = ["the", "database", "stores", "rows", "in", "tables", "and", "finds", "them", "by", "meaning", "not",
         "only", "by", "words"]


@pytest.fixture(scope="module")
def tokenizer(tiny_bundle):
    return Encoder(load_bundle(tiny_bundle), threads=1, shared_weights=False).plain_tokenizer


def prose(n_sentences: int, seed: int = 0, words: tuple[int, int] = (5, 15)) -> str:
    rng = random.Random(seed)
    return " ".join(" ".join(rng.choice(WORDS) for _ in range(rng.randint(*words))).capitalize() + "."
                    for _ in range(n_sentences))


def tokens(tokenizer, text: str) -> int:
    return len(tokenizer.encode(text, add_special_tokens=False).ids)


@pytest.mark.parametrize("chunk_tokens,overlap", [(16, 0), (32, 4), (48, 16)])
def test_chunks_are_exact_overlapping_substrings_that_cover_the_text(tokenizer, chunk_tokens, overlap):
    text = prose(60)
    spans = chunk_spans(tokenizer, text, chunk_tokens, overlap, 1000)
    assert len(spans) > 3
    assert spans[0][0] == 0 and spans[-1][1] == len(text)
    for (start, end), (next_start, _) in zip(spans, spans[1:]):
        assert start < next_start
        assert text[end:next_start].strip() == ""  # nothing but the space between two chunks is left out
        assert text[next_start - 1] == " "  # a chunk starts on a word
        if overlap:
            assert next_start < end
    for start, end in spans:
        # <= chunk_tokens, but for the piece of a word the window's hard end cut, which may re-tokenize
        # into one more token on its own
        assert tokens(tokenizer, text[start:end]) <= chunk_tokens + 1


def test_a_chunk_ends_at_a_sentence_end_when_one_is_near(tokenizer):
    text = prose(60, seed=1, words=(2, 4))
    spans = chunk_spans(tokenizer, text, 40, 0, 1000)
    assert len(spans) > 3
    assert all(text[end - 1] == "." for _, end in spans)  # sentences of 2..4 words: one ends in every last quarter


def test_japanese_is_cut_after_its_full_stop(tokenizer):
    text = "東京は日本の首都です。" * 40
    spans = chunk_spans(tokenizer, text, 25, 3, 1000)
    assert len(spans) > 3 and all(text[end - 1] == "。" for _, end in spans)


def test_a_text_that_fits_is_one_chunk_the_whole_text(tokenizer):
    assert chunk_spans(tokenizer, "  a short text  ", 16, 2, 10) == [(0, 16)]
    assert chunk_spans(tokenizer, "", 16, 2, 10) == [(0, 0)]


def test_a_huge_text_is_refused_after_a_bounded_amount_of_work(tokenizer):
    calls = []
    with pytest.raises(TooManyChunks, match="max_chunks_per_row"):
        chunk_spans(tokenizer, "word " * 4_000_000, 32, 4, 10, check=lambda: calls.append(1))  # 20 MB
    assert len(calls) == 1  # the first piece already has too many tokens
    with pytest.raises(TooManyChunks):
        chunk_spans(tokenizer, prose(200), 16, 0, 5)


def test_bad_sizes_are_refused(tokenizer):
    for chunk_tokens, overlap in ((0, 0), (8, 8), (8, -1)):
        with pytest.raises(ValueError):
            chunk_spans(tokenizer, "text", chunk_tokens, overlap, 10)
