import numpy as np
import pytest

from pgbert_runtime import get_encoder
from pgbert_runtime.bundle import load_bundle
from pgbert_runtime.encoder import Encoder, embed_texts

TEXTS = ["I love natural language processing", "", "自然言語処理が大好きです 🚀",
         "def embed(text): return model(text)", "x", "postgres " * 500]


@pytest.fixture(scope="module")
def encoder(tiny_bundle):
    return Encoder(load_bundle(tiny_bundle), threads=1, batch_size=4)


def test_shapes_and_unit_norm(encoder):
    out = encoder.encode(TEXTS)
    assert out.shape == (len(TEXTS), 32) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)


def test_batched_equals_one_at_a_time_in_input_order(encoder):
    batched = encoder.encode(TEXTS)
    single = np.stack([encoder.encode([t])[0] for t in TEXTS])
    np.testing.assert_allclose(batched, single, atol=1e-5)


def test_long_text_is_truncated_to_max_tokens(encoder):
    ids = encoder.tokenize(["word " * 10_000])[0]
    assert len(ids) == encoder.bundle.max_tokens  # special tokens included, like the model's library
    # Everything past the window is ignored.
    a, b = encoder.encode(["alpha " * 200 + "omega", "alpha " * 200 + "different ending"])
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_none_stays_none(encoder):
    out = embed_texts(encoder, ["a", None, "b"])
    assert out[1] is None and out[0].shape == (32,)


def test_explicit_thread_count(tiny_bundle):
    encoder = Encoder(load_bundle(tiny_bundle), threads=1, engine="onnxruntime-fp32")
    assert encoder.engine.session.get_session_options().intra_op_num_threads == 1


def test_model_calls_are_batched(encoder):
    before = encoder.calls
    encoder.encode(["t"] * 10)
    assert encoder.calls - before == 3  # batch_size 4 -> 4 + 4 + 2


def test_cache_reloads_a_replaced_bundle(tiny_bundle, tmp_path):
    import os
    import shutil

    copy = tmp_path / "b"
    shutil.copytree(tiny_bundle, copy)
    first = get_encoder(str(copy))
    assert get_encoder(str(copy)) is first
    os.utime(copy / "manifest.json", ns=(1, 1))
    assert get_encoder(str(copy)) is not first


def test_batches_respect_size_and_token_budget(tiny_bundle):
    encoder = Encoder(load_bundle(tiny_bundle), threads=1, batch_size=4, batch_tokens=100)
    lengths = [10, 300, 10, 30, 10, 10, 10, 30, 30]
    batches = encoder.batches(lengths)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))  # every text once
    for batch in batches:
        widest = max(lengths[i] for i in batch)
        assert len(batch) <= 4 and (len(batch) == 1 or len(batch) * widest <= 100)
    assert [len(b) for b in batches] == [4, 3, 1, 1]  # 4 x 10; 10+30+30 (3 x 30 = 90); 30; 300 alone


class Stop(Exception):
    pass


class Checks:
    """A check() that records the model calls made so far each time it runs, and can raise on its nth call."""

    def __init__(self, encoder, raise_on: int | None = None):
        self.encoder, self.raise_on, self.seen = encoder, raise_on, []

    def __call__(self):
        self.seen.append(self.encoder.calls)
        if len(self.seen) == self.raise_on:
            raise Stop(len(self.seen))


def test_check_runs_between_tokenizer_calls_and_before_each_model_call(encoder):
    from pgbert_runtime.encoder import TOKENIZE_CHUNK_TEXTS

    texts = [f"text number {i}" for i in range(200)]
    check, before = Checks(encoder), encoder.calls
    encoder.encode(texts, check=check)
    tokenizer_calls = -(-len(texts) // TOKENIZE_CHUNK_TEXTS)  # 4: 64 texts a call
    model_calls = len(texts) // 4  # batch_size 4
    assert encoder.calls - before == model_calls
    # Between the tokenizer calls (none before the first), then before each model call.
    assert check.seen == [before] * (tokenizer_calls - 1) + list(range(before, before + model_calls))


def test_check_runs_between_the_tries_of_a_growing_prefix(encoder):
    text = "a" * 100_000  # one word: the prefix grows (doubling) up to last_cut
    tries, cut = 1, encoder.bounded.first_cut
    while cut < encoder.bounded.last_cut:
        tries, cut = tries + 1, min(2 * cut, encoder.bounded.last_cut)
    check = Checks(encoder)
    encoder.encode([text], check=check)
    assert len(check.seen) == (tries - 1) + 1  # between the tries, then before the model call


def test_tokenizer_calls_are_bounded_in_texts_and_characters(tiny_bundle):
    from pgbert_runtime.encoder import TOKENIZE_CHUNK_CHARS, TOKENIZE_CHUNK_TEXTS

    encoder = Encoder(load_bundle(tiny_bundle), threads=1, batch_size=4)
    raw, calls = encoder.bounded.raw, []

    class Recorder:
        def encode_batch(self, texts, **kwargs):
            calls.append((len(texts), sum(len(t) for t in texts)))
            return raw.encode_batch(texts, **kwargs)

    encoder.bounded.raw = Recorder()
    # Giant words grow their prefix (a few per call once it is long); 200 short texts, 64 a call.
    texts = ["a" * 10_000] * 40 + ["word " * 20_000] * 100 + ["short"] * 200
    check, before = Checks(encoder), encoder.calls
    encoder.encode(texts, check=check)
    assert all(n <= TOKENIZE_CHUNK_TEXTS and (chars <= TOKENIZE_CHUNK_CHARS or n == 1) for n, chars in calls)
    assert sum(chars > TOKENIZE_CHUNK_CHARS // 2 for n, chars in calls) >= 5  # the character budget cut these
    assert len(check.seen) == (len(calls) - 1) + (encoder.calls - before)


@pytest.mark.parametrize("raise_on, model_calls", [(1, 0), (2, 0), (3, 0), (4, 0), (10, 6)])
def test_an_exception_from_check_stops_the_work_and_propagates(encoder, raise_on, model_calls):
    check, before = Checks(encoder, raise_on=raise_on), encoder.calls
    with pytest.raises(Stop) as raised:
        embed_texts(encoder, [f"text {i}" for i in range(200)] + [None], check=check)
    assert raised.value.args == (raise_on,)  # the very exception check() raised
    # Calls 1-3 come between the 4 tokenizer calls, call n >= 4 before model call n - 3.
    assert encoder.calls - before == model_calls
    assert len(check.seen) == raise_on


def test_embed_texts_passes_check_on(encoder):
    check = Checks(encoder)
    out = embed_texts(encoder, ["a", None, "b"], check=check)
    assert out[1] is None and len(check.seen) == 1  # one tokenizer call, one model call
    assert embed_texts(encoder, [None], check=check) == [None] and len(check.seen) == 1
