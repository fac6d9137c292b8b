import numpy as np
import pytest

from pgbert_runtime import get_encoder
from pgbert_runtime.encoder import Encoder, embed_texts
from pgbert_runtime.bundle import load_bundle

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
