"""The static engine (pgbert_runtime/static.py) and static bundles: the maths against numpy by hand, unknown words,
empty texts, bounded work, cancel, and the bundle's checks."""
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

from pgbert_export.static import write_static_bundle
from pgbert_runtime import BundleError, get_encoder, load_bundle
from pgbert_runtime.bundle import NoKnownWords, file_key
from pgbert_runtime.chunker import chunk_spans
from pgbert_runtime.static import CHUNK_TEXTS, StaticEncoder

WORDS = ["the", "cat", "sat", "on", "mat", ",", ".", "dog", "a", "database"]
DIM = 6


def make_bundle(folder, normalize=True, max_tokens=512, **extra) -> tuple[str, np.ndarray]:
    """A static bundle by hand: a word-level tokenizer over WORDS (+ [UNK], id 10) and random token vectors."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

    vocabulary = {w: i for i, w in enumerate(WORDS)} | {"[UNK]": len(WORDS)}
    tokenizer = Tokenizer(models.WordLevel(vocabulary, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    table = np.random.default_rng(7).normal(size=(len(vocabulary), DIM)).astype(np.float32)
    os.makedirs(folder, exist_ok=True)
    write_static_bundle(str(folder), table, tokenizer.to_str(), model_id="hand-made", normalize=normalize,
                        max_tokens=max_tokens, unk_token_ids=[len(WORDS)], **extra)
    return str(folder), table


def by_hand(table, words, normalize=True):
    """The mean of the words' rows (WORDS order), normalised: what the engine must give."""
    mean = table[[WORDS.index(w) for w in words]].astype(np.float64).mean(axis=0)
    return mean / np.linalg.norm(mean) if normalize else mean


@pytest.fixture()
def bundle(tmp_path):
    return make_bundle(tmp_path / "static")


@pytest.fixture()
def encoder(bundle):
    return StaticEncoder(load_bundle(bundle[0]))


def test_the_vector_is_the_normalised_mean_of_the_tokens_rows(bundle, encoder):
    path, table = bundle
    out = encoder.encode(["The cat sat on the mat.", "dog", "a database, a dog"])
    assert out.shape == (3, DIM) and out.dtype == np.float32
    expected = [by_hand(table, ["the", "cat", "sat", "on", "the", "mat", "."]), by_hand(table, ["dog"]),
                by_hand(table, ["a", "database", ",", "a", "dog"])]
    np.testing.assert_allclose(out, np.stack(expected), atol=1e-6)
    raw = StaticEncoder(load_bundle(make_bundle(os.path.join(path, "raw"), normalize=False)[0]))
    np.testing.assert_allclose(raw.encode(["cat dog dog"])[0], by_hand(table, ["cat", "dog", "dog"], False), atol=1e-6)


def test_unknown_words_are_left_out(encoder):
    a, b, c = encoder.encode(["the cat", "the zebra cat", "qwerty the cat xyzzy"])
    np.testing.assert_allclose(a, b, atol=1e-7)
    np.testing.assert_allclose(a, c, atol=1e-7)
    assert encoder.tokenize(["zebra cat qq dog"]) == [[1, 7]]


def test_a_document_without_a_known_word_is_the_zero_vector_and_a_query_is_refused(encoder):
    out = encoder.encode(["", "zebra giraffe", "   ", "cat"])
    assert not out[:3].any() and np.linalg.norm(out[3]) == pytest.approx(1, abs=1e-6)
    assert encoder.encode(["cat"], kind="query").shape == (1, DIM)  # a query with a known word is fine
    for query in ("", "zebra giraffe"):
        with pytest.raises(NoKnownWords, match="no word of the query is in the vocabulary of hand-made"):
            encoder.encode(["cat", query], kind="query")
    assert encoder.encode([]).shape == (0, DIM)
    with pytest.raises(ValueError, match="unknown kind"):
        encoder.encode([], kind="passage")


def test_the_first_max_tokens_known_tokens_are_averaged(tmp_path):
    path, table = make_bundle(tmp_path / "short", max_tokens=3)
    encoder = StaticEncoder(load_bundle(path))
    # Unknown words are dropped before the cut, as model2vec does: cat sat dog are the first 3 known tokens.
    out = encoder.encode(["zebra cat yak sat dog mat mat mat"])[0]
    np.testing.assert_allclose(out, by_hand(table, ["cat", "sat", "dog"]), atol=1e-6)
    assert encoder.chunk_window == 3


def test_a_huge_text_is_cut_before_tokenizing(encoder):
    readable = encoder.bundle.readable_chars
    assert readable == 512 * 64
    seen = []
    real = encoder._encode_batch
    encoder._encode_batch = lambda texts, **kw: seen.append(max(map(len, texts))) or real(texts, **kw)
    huge = "cat " * 2_500_000 + "dog"  # 10 MB; its last word is never read
    started = time.perf_counter()
    out = encoder.encode([huge])
    assert time.perf_counter() - started < 2 and seen == [readable]
    np.testing.assert_array_equal(out, encoder.encode([huge[:readable]]))
    assert encoder.tokenize([huge]) == [[1] * 512]


def test_max_chars_bounds_what_is_read(tmp_path):
    path, _ = make_bundle(tmp_path / "chars", max_chars=12)
    encoder = StaticEncoder(load_bundle(path))
    assert encoder.bundle.readable_chars == 12
    np.testing.assert_array_equal(encoder.encode(["cat dog the database mat"]), encoder.encode(["cat dog the"]))


def test_many_texts_equal_one_at_a_time(encoder):
    texts = [" ".join(WORDS[i % 7:i % 7 + 1 + i % 4]) for i in range(3 * CHUNK_TEXTS + 5)] + ["", "zebra"]
    batched = encoder.encode(texts)
    single = np.stack([encoder.encode([t])[0] for t in texts])
    np.testing.assert_allclose(batched, single, atol=1e-6)
    counts = {}
    encoder.encode(texts, counts=counts)
    assert counts["tokens"] == sum(len(ids) for ids in encoder.tokenize(texts))


def test_sums_are_gathered_a_bounded_block_at_a_time(encoder, monkeypatch):
    from pgbert_runtime import static

    texts = ["the cat", "", "dog dog mat", "zebra", "a database on the mat"] * 40
    expected = encoder.encode(texts)
    monkeypatch.setattr(static, "GATHER_BYTES", 4 * DIM * 3)  # three tokens' rows at a time, at least one text
    np.testing.assert_allclose(encoder.encode(texts), expected, atol=1e-6)


class Stop(Exception):
    pass


def test_check_runs_between_chunks_and_stops_the_work(encoder):
    texts = ["the cat sat"] * (3 * CHUNK_TEXTS)
    seen = []
    encoder.encode(texts, check=lambda: seen.append(encoder.calls))
    assert seen == [1, 2]  # between the three chunks, never before the first

    def stop():
        raise Stop()

    before = encoder.calls
    with pytest.raises(Stop):
        encoder.encode(texts, check=stop)
    assert encoder.calls - before == 1  # the first chunk only


def test_each_chunk_holds_the_gate(encoder):
    held = []

    class Gate:
        def __enter__(self):
            held.append("in")

        def __exit__(self, *exc):
            held.append("out")

    encoder.encode(["cat"] * (CHUNK_TEXTS + 1), gate=Gate)
    assert held == ["in", "out"] * 2
    with pytest.raises(NoKnownWords):
        encoder.encode(["zebra"], kind="query", gate=Gate)
    assert held[-1] == "out"  # released on the error


def test_chunks_use_the_plain_tokenizer(encoder):
    text = "the cat sat on the mat. " * 50
    spans = chunk_spans(encoder.plain_tokenizer, text, 16, 2, 100)
    assert len(spans) > 5 and spans[0][0] == 0 and spans[-1][1] == len(text)


def test_get_encoder_picks_the_family_and_imports_no_inference_engine(bundle):
    code = (f"import sys; from pgbert_runtime import get_encoder; e = get_encoder({bundle[0]!r}); "
            "v = e.encode(['the cat']); "
            "from pgbert_runtime.local import LocalModel; info = LocalModel(e).info(); "
            "assert type(e).__name__ == 'StaticEncoder' and e.engine.name == 'static' and info['engine'] == 'static'; "
            "assert 'onnxruntime' not in info, info; "
            "assert not {'onnxruntime', 'openvino'} & set(sys.modules), sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_replaced_embeddings_file_is_noticed(bundle):
    path, table = bundle
    first = get_encoder(path)
    key = file_key(path)
    np.save(os.path.join(path, "embeddings.npy"), table * 2)  # same size, other content
    assert file_key(path) != key
    assert get_encoder(path) is not first
    with pytest.raises(BundleError, match="sha256"):
        load_bundle(path).verify(checksums=True)
    with open(os.path.join(path, "embeddings.npy"), "r+b") as f:
        f.truncate(100)
    with pytest.raises(BundleError, match="embeddings.npy is 100 bytes.*truncated or replaced"):
        get_encoder(path)


def rewrite(path, change):
    manifest = json.loads(open(os.path.join(path, "manifest.json")).read())
    change(manifest)
    with open(os.path.join(path, "manifest.json"), "w") as f:
        json.dump(manifest, f)


@pytest.mark.parametrize("change, message", [
    (lambda m: m.update(model_kind="sparse"), "unknown model_kind 'sparse'.*upgrade pgbert"),
    (lambda m: m.update(format_version=1), "static bundle needs format_version 2"),
    (lambda m: m.update(format_version=3), "format_version 3, this pgbert reads 1 and 2"),
    (lambda m: m.update(pooling="cls"), "pooling must be 'mean'"),
    (lambda m: m.update(unk_token_ids="10"), "unk_token_ids"),
    (lambda m: m.update(max_chars=0), "max_chars"),
    (lambda m: m["files"].pop("embeddings.npy"), "files lacks embeddings.npy"),
])
def test_a_bad_static_manifest_says_what_to_do(bundle, change, message):
    rewrite(bundle[0], change)
    with pytest.raises(BundleError, match=message):
        load_bundle(bundle[0])


def test_embeddings_of_another_shape_or_pickled_objects_are_refused(bundle):
    path, table = bundle
    np.save(os.path.join(path, "embeddings.npy"), table.reshape(-1, DIM // 2))  # same bytes, another shape
    with pytest.raises(BundleError, match=r"float32 \(22, 3\), the manifest promises float32 rows of 6"):
        StaticEncoder(load_bundle(path))
    np.save(os.path.join(path, "embeddings.npy"), np.array([{"a": 1}] * 3, dtype=object), allow_pickle=True)
    size = os.path.getsize(os.path.join(path, "embeddings.npy"))
    rewrite(path, lambda m: m["files"]["embeddings.npy"].update(size=size))
    with pytest.raises(BundleError, match="cannot read embeddings.npy"):
        StaticEncoder(load_bundle(path))  # never unpickled
    np.save(os.path.join(path, "embeddings.npy"), table[:5])
    size = os.path.getsize(os.path.join(path, "embeddings.npy"))
    rewrite(path, lambda m: m["files"]["embeddings.npy"].update(size=size))
    with pytest.raises(BundleError, match="tokenizer.json has 11 tokens but embeddings.npy only 5 rows"):
        StaticEncoder(load_bundle(path))


def test_a_transformer_bundle_still_loads_as_before(tiny_bundle):
    bundle = load_bundle(tiny_bundle)
    assert bundle.model_kind == "transformer" and not bundle.is_static and bundle.manifest["format_version"] == 1
    assert bundle.weights_path == bundle.onnx_path


def test_a_pgbert_from_before_static_models_refuses_a_static_bundle_clearly(bundle, tmp_path):
    """bundle.py as it was before static models, from git: it must refuse, not look for model.onnx."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    old = subprocess.run(["git", "-C", root, "show", "7d51876:plpython/pgbert_runtime/bundle.py"],
                         capture_output=True, text=True)
    if old.returncode:
        pytest.skip(f"no git history here: {old.stderr.strip()}")
    package = tmp_path / "old" / "pgbert_runtime"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "bundle.py").write_text(old.stdout)
    code = (f"from pgbert_runtime.bundle import load_bundle, BundleError\n"
            f"try:\n    load_bundle({bundle[0]!r})\nexcept BundleError as exc:\n    print(exc)\n")
    said = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={**os.environ, "PYTHONPATH": str(tmp_path / "old")}).stdout
    assert "format_version 2, this pgbert reads 1" in said


def test_the_bundle_copies_and_verifies_every_file(bundle, tmp_path):
    copy = shutil.copytree(bundle[0], tmp_path / "copy")
    loaded = load_bundle(str(copy))
    loaded.verify(checksums=True)
    assert set(loaded.files) == {"tokenizer.json", "embeddings.npy"} and loaded.weights_path.endswith("embeddings.npy")


def test_a_distilled_bundle_leaves_out_the_source_tokenizers_padding_and_truncation(tmp_path):
    """all-mpnet-base-v2's tokenizer.json pads to 128 tokens and cuts there; model2vec keeps both, and its encode()
    would average <pad> rows into every vector. The bundle's tokenizer has neither, and still matches model2vec."""
    from pgbert_export.static import export_static
    from tiny_bert import make_tiny_bert

    source = make_tiny_bert(str(tmp_path / "src"))
    config = json.loads(open(os.path.join(source, "tokenizer.json")).read())
    config["padding"] = {"strategy": {"Fixed": 16}, "direction": "Right", "pad_to_multiple_of": None, "pad_id": 0,
                         "pad_type_id": 0, "pad_token": "[PAD]"}
    config["truncation"] = {"direction": "Right", "max_length": 16, "strategy": "LongestFirst", "stride": 0}
    with open(os.path.join(source, "tokenizer.json"), "w") as f:
        json.dump(config, f)
    manifest = export_static(source, str(tmp_path / "static"), echo=lambda *_: None)
    written = json.loads(open(tmp_path / "static" / "tokenizer.json").read())
    assert written["padding"] is None and written["truncation"] is None
    assert manifest["validation"]["min_cosine"] >= 0.999 and manifest["model_id"] == "src (static, model2vec)"
    encoder = StaticEncoder(load_bundle(str(tmp_path / "static")))
    long = "semantic search finds documents by meaning " * 10
    assert not encoder.encode([""]).any() and len(encoder.tokenize([long])[0]) > 16
