"""Long texts are cut before tokenizing, with the same token ids and vectors as tokenizing them whole (up to
last_cut characters: what lies past it never counts, so no text costs more)."""
from __future__ import annotations

import json
import os
import random
import subprocess
import sys

import numpy as np
import pytest
from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

from pgbert.paths import Paths
from pgbert_runtime.bundle import load_bundle
from pgbert_runtime.encoder import BoundedTokenizer, Encoder

MPNET = os.path.join(Paths.default().bundle("all-mpnet-base-v2"), "tokenizer.json")
PROSE = ("PostgreSQL is a powerful, open source object-relational database system with over 35 years of active "
         "development that has earned it a strong reputation for reliability, feature robustness, and performance. ")


def battery(first_cut: int) -> dict[str, str]:
    """Texts far longer than the window, and texts whose cut falls in awkward places."""
    texts = {
        "prose": PROSE * 300,
        "japanese": "自然言語処理が大好きです。東京の天気は晴れ、明日は雨でしょう。" * 3000,
        "bangs": "!" * 200_000,
        "words": "word " * 100_000,
        "leading whitespace": " " * 50_000 + "text",
        "whitespace runs": ("\n\t  " * 2_000 + "word ") * 30,
        "giant word": "a" * 100_000,
        "giant word then prose": "a" * 100_000 + " " + PROSE * 50,
        "prose then giant word": PROSE * 10 + "a" * 100_000,
        "words of 99 to 102 letters": " ".join("b" * (99 + i % 4) for i in range(2_000)),
        "emoji": "🚀👍🏽👨‍👩‍👧 naïve " * 5_000,
        "mixed scripts": "Ελληνικά русский 中文 العربية हिन्दी café ﬁ① Ⅻ İstanbul " * 2_000,
        "control characters": "\x00\x01\x07\x1b\x1c\x7f\ufffd" * 10_000 + " after the noise",
        "combining marks": "e\u0301\u0302\u0303\u0323 o\u0308 " * 10_000,
        "special tokens in the text": "[MASK] <mask> [SEP] </s> " * 5_000,
        "empty": "",
        "one character": "x",
        "short": "I love natural language processing",
    }
    for n in (first_cut - 1, first_cut, first_cut + 1, 2 * first_cut - 1, 2 * first_cut + 1):
        texts[f"{n} characters of words"] = (PROSE * (n // len(PROSE) + 1))[:n]
        texts[f"{n} characters then a long word"] = "go " * (n // 3) + "z" * 500
    return texts


def awkward_cuts(bounded: BoundedTokenizer) -> dict[str, str]:
    """Texts whose last kept token sits where a cut before the end of the text could change it (each one fails
    if _settled drops one of its conditions: another word, the margin, combining marks)."""
    # A filler that ends just before token keep-1: whatever comes next is the last token kept.
    probe = ("a " * (2 * bounded.keep))
    filler = probe[:bounded.raw.encode(probe, add_special_tokens=False).offsets[bounded.keep - 1][0]]
    texts = {}
    for before_cut in (75, 85, 95, 100, 101):
        # A word cut in two at the first prefix: under 100 characters WordPiece splits it into pieces,
        # the whole word (1000 characters) is [UNK].
        padding = " " * (bounded.first_cut - before_cut - len(filler))
        texts[f"a long word starting {before_cut} characters before the cut"] = filler + padding + "z" * 1000
    # <mask> takes the spaces before it (lstrip) when it is whole; cut in two, it leaves them as a token.
    padding = " " * (bounded.first_cut - 3 - len(filler.rstrip()))
    texts["spaces before a <mask> that the cut splits"] = filler.rstrip() + padding + "<mask> tail"
    # NFC composes the a with the acute accent 5000 marks further on (U+0334 has a lower combining class, so
    # it does not block), but a byte-level pre-tokenizer splits the a from the marks.
    texts["a letter composing with a mark past the cut"] = filler + "a" + "\u0334" * 5000 + "\u0301 tail"
    return texts


def fuzz(first_cut: int, count: int = 200, seed: int = 7) -> list[str]:
    """Random texts of runs of awkward characters, about as long as the first prefix tried."""
    pieces = [" ", "  ", "\n", "a", "word ", "!", "é", "e\u0301", "\u0301", "\u0334", "東", "ひらがな", "🚀", "\x00",
              "\u3000", "<mask>", "[MASK]", "İ", "ß", "-", "'s ", "1234", "한", "\u1161", "\u11a8"]
    rng = random.Random(seed)
    texts = []
    for _ in range(count):
        parts, size, target = [], 0, rng.randint(first_cut // 2, 3 * first_cut)
        while size < target:
            piece = rng.choice(pieces) * rng.choice([1, 1, 1, 3, 30, 300])
            parts.append(piece)
            size += len(piece)
        texts.append("".join(parts))
    return texts


def reference_tokenizer(tokenizer: Tokenizer, max_tokens: int) -> Tokenizer:
    """What Encoder did before: the whole text through the tokenizer, truncated afterwards."""
    full = Tokenizer.from_str(tokenizer.to_str())
    full.no_padding()
    full.enable_truncation(max_length=max_tokens)
    return full


def assert_same_tokens(tokenizer: Tokenizer, max_tokens: int, texts: dict[str, str]):
    full = reference_tokenizer(tokenizer, max_tokens)
    bounded = BoundedTokenizer(reference_tokenizer(tokenizer, max_tokens), max_tokens)
    names = list(texts)
    expected = full.encode_batch([texts[n][:bounded.last_cut] for n in names])
    got = bounded.encode_batch([texts[n] for n in names])
    for name, want, have in zip(names, expected, got, strict=True):
        assert have.ids == want.ids, name
        assert have.type_ids == want.type_ids and have.attention_mask == want.attention_mask, name
        assert len(have.ids) <= max_tokens, name


def xlmr_like() -> Tokenizer:
    """A SentencePiece-style tokenizer (NFKC, collapsed spaces, Metaspace, Unigram), trained here."""
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Replace(" {2,}", " ")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    trainer = trainers.UnigramTrainer(vocab_size=300, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
                                      unk_token="<unk>")
    tok.train_from_iterator(training_corpus(), trainer)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)])
    return tok


def roberta_like() -> Tokenizer:
    """A byte-level BPE tokenizer (NFC as GPT-NeoX's, GPT-2 pre-tokenizer regex, RobertaProcessing), trained here."""
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<s>", "<pad>", "</s>", "<unk>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(training_corpus(), trainer)
    tok.add_special_tokens([AddedToken("<mask>", lstrip=True, special=True)])  # as RoBERTa's and MPNet's
    tok.post_processor = processors.RobertaProcessing(sep=("</s>", 2), cls=("<s>", 0), trim_offsets=True)
    return tok


def training_corpus() -> list[str]:
    return [PROSE, "自然言語処理が大好きです 東京 天気", "word word words wording", "café naïve ﬁ", "aaaa bbbb !!"] * 20


CASES = ["tiny-bert", "unigram-metaspace", "bytelevel-bpe", "all-mpnet-base-v2"]


def load_case(name: str, tiny_bundle: str) -> tuple[Tokenizer, int]:
    """(tokenizer, max_tokens): the tiny test model's WordPiece, two trained here, the real mpnet one."""
    if name == "tiny-bert":
        bundle = load_bundle(tiny_bundle)
        return Tokenizer.from_file(bundle.tokenizer_path), bundle.max_tokens
    if name == "unigram-metaspace":
        return xlmr_like(), 48
    if name == "bytelevel-bpe":
        return roberta_like(), 40
    if not os.path.exists(MPNET):
        pytest.skip(f"{MPNET} is absent (`pgbert setup` exports it)")
    return Tokenizer.from_file(MPNET), 384


@pytest.mark.parametrize("name", CASES)
def test_token_ids_equal_whole_text_tokenization(name, tiny_bundle):
    tokenizer, max_tokens = load_case(name, tiny_bundle)
    bounded = BoundedTokenizer(reference_tokenizer(tokenizer, max_tokens), max_tokens)
    assert_same_tokens(tokenizer, max_tokens, {**battery(bounded.first_cut), **awkward_cuts(bounded)})


@pytest.mark.parametrize("name", CASES)
def test_token_ids_equal_whole_text_tokenization_random_texts(name, tiny_bundle):
    tokenizer, max_tokens = load_case(name, tiny_bundle)
    first_cut = BoundedTokenizer(reference_tokenizer(tokenizer, max_tokens), max_tokens).first_cut
    texts = fuzz(first_cut)
    assert_same_tokens(tokenizer, max_tokens, {f"random text {i}: {t[:40]!r}": t for i, t in enumerate(texts)})


class Recorder:
    """Stands in for the raw tokenizer: records how many characters each call is handed."""

    def __init__(self, tokenizer):
        self.tokenizer, self.sizes = tokenizer, []

    def encode_batch(self, texts, **kwargs):
        self.sizes.append(sum(len(t) for t in texts))
        return self.tokenizer.encode_batch(texts, **kwargs)


@pytest.fixture()
def encoder(tiny_bundle):
    return Encoder(load_bundle(tiny_bundle), threads=1, batch_size=4)


def test_long_texts_are_cut_before_tokenizing(encoder):
    bounded = encoder.bounded
    bounded.raw = Recorder(bounded.raw)
    encoder.tokenize(["!" * 1_000_000, PROSE * 10_000])
    assert bounded.raw.sizes == [2 * bounded.first_cut]  # one call, each text cut to the first prefix


def test_a_giant_word_grows_the_prefix_up_to_the_last_cut(encoder):
    bounded = encoder.bounded
    bounded.raw = Recorder(bounded.raw)
    text = "a" * 100_000
    assert len(encoder.tokenize([text])[0]) == 3  # [CLS] [UNK] [SEP]: a word cut at 100 letters would not be [UNK]
    assert bounded.raw.sizes[0] == bounded.first_cut and bounded.raw.sizes[-1] == bounded.last_cut < len(text)
    assert all(b == 2 * a for a, b in zip(bounded.raw.sizes[:-2], bounded.raw.sizes[1:-1], strict=True))  # doubling


@pytest.mark.parametrize("shape", ["😀", "a", "あ", "\n", "e\u0301"])
def test_no_text_costs_more_than_the_last_cut(encoder, shape):
    """Round 3, finding 8: one embed() of 32 Mi emoji doubled its prefix up to the whole text (9 GB, 2 minutes)."""
    bounded = encoder.bounded
    bounded.raw = Recorder(bounded.raw)
    text = shape * 1_048_576
    ids = encoder.tokenize([text, text + " tail"])
    assert sum(bounded.raw.sizes) < 2 * 3 * bounded.last_cut  # each text: a doubling series up to last_cut
    assert ids[0] == ids[1] == encoder.tokenize([text[:bounded.last_cut]])[0]


def old_encode(encoder: Encoder, texts: list[str]) -> np.ndarray:
    """Encoder.encode as it was: whole texts (up to last_cut) through the truncating tokenizer."""
    encodings = encoder.tokenizer.encode_batch([t[:encoder.bounded.last_cut] for t in texts])
    ids = [e.ids for e in encodings]
    types = [e.type_ids for e in encodings]
    out = np.empty((len(texts), encoder.dimension), dtype=np.float32)
    for chunk in encoder.batches([len(x) for x in ids]):
        out[chunk] = encoder._run([ids[i] for i in chunk], [types[i] for i in chunk])
    return out


def test_vectors_equal_whole_text_tokenization(encoder):
    bounded = encoder.bounded
    texts = [*battery(bounded.first_cut).values(), *awkward_cuts(bounded).values(), *fuzz(bounded.first_cut, count=20)]
    np.testing.assert_allclose(encoder.encode(texts), old_encode(encoder, texts), atol=1e-6)


MEMORY_CHILD = r"""
import json, resource, sys, time
from pgbert_runtime.bundle import load_bundle
from pgbert_runtime.encoder import Encoder

def kib(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))

bundle, kind, prose = sys.argv[1:4]
encoder = Encoder(load_bundle(bundle), threads=1)
encoder.encode([prose * 40, "warm up"])  # thread pools, the engine's buffers for a full window
text = "!" * 20_000_000 if kind == "bangs" else (prose * (20_000_000 // len(prose) + 1))[:20_000_000]
# A cap on address space, so that a regression fails here at once instead of taking gigabytes from the
# machine (the whole 20 MB of '!' through the tokenizer took ~10 GB).
limit = kib("VmSize") * 1024 + (1 << 30)
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
before = kib("VmHWM")
started = time.perf_counter()
vector = encoder.encode([text])[0]
seconds = time.perf_counter() - started
print(json.dumps({"peak_mb": (kib("VmHWM") - before) / 1024, "seconds": seconds, "norm": float((vector ** 2).sum())}))
"""


@pytest.mark.parametrize("kind", ["bangs", "prose"])
def test_a_20_mb_text_takes_little_memory(tiny_bundle, kind):
    out = subprocess.run([sys.executable, "-c", MEMORY_CHILD, tiny_bundle, kind, PROSE], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["peak_mb"] < 25, result  # beyond the 20 MB text itself, which exists before the measurement
    assert abs(result["norm"] - 1.0) < 1e-4
