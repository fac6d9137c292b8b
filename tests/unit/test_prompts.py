"""Query and document prompts (E5's "query: " / "passage: "), and the multilingual path: an XLM-RoBERTa with a
SentencePiece-style tokenizer, exported and compared with sentence-transformers' own vectors."""
import json
import os
import shutil

import numpy as np
import pytest

from pgbert_export import ExportError, export_model
from pgbert_export.export import detect_prompts, detect_settings
from pgbert_runtime import BundleError, load_bundle
from pgbert_runtime.encoder import Encoder, embed_texts
from tiny_bert import make_tiny_xlmr

TEXTS = [
    "how much protein should a female eat",
    "PostgreSQL stores the vectors; the model runs next to the data.",
    "自然言語処理が大好きです。東京の天気は晴れです。",
    "Ein Satz auf Deutsch, mit Umlauten: Größe, Übung, Äpfel.",
    "🚀🔥 emoji-only? ✨",
    "",
    "x",
    " ".join(["Long documents are truncated to the model's window, prompt included."] * 40),
]
QUIET = {"echo": lambda *_: None}


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.fixture(scope="module")
def xlmr(tmp_path_factory):
    """(model folder, bundle) for a tiny XLM-R whose sentence-transformers config has E5's prompts."""
    root = tmp_path_factory.mktemp("xlmr")
    folder = make_tiny_xlmr(str(root / "model"), seed=5)
    bundle = str(root / "bundle")
    export_model(folder, bundle, **QUIET)
    return folder, bundle


@pytest.fixture(scope="module")
def xlmr_encoder(xlmr):
    return Encoder(load_bundle(xlmr[1]), threads=1, batch_size=3)


@pytest.fixture(scope="module")
def sentence_transformer(xlmr):
    st = pytest.importorskip("sentence_transformers")
    return st.SentenceTransformer(xlmr[0], device="cpu")


def test_xlmr_manifest_records_prompts_padding_and_inputs(xlmr):
    import onnxruntime

    manifest = json.load(open(os.path.join(xlmr[1], "manifest.json")))
    assert manifest["model_type"] == "xlm-roberta"
    assert manifest["prompts"] == {"query": "query: ", "document": "passage: "}
    assert manifest["pad_token_id"] == 1  # XLM-R pads with <pad> = 1, and <s> = 0
    assert manifest["max_tokens"] == 64
    # The export validated both kinds, prompts applied (pgbert's runtime) and written in front (PyTorch).
    assert manifest["validation"]["kinds"] == ["document", "query"] and manifest["validation"]["texts"] == 16
    assert manifest["validation"]["max_abs_diff"] <= 1e-4
    # XLM-R's ONNX graph has no token_type_ids input: pgbert feeds only the inputs the graph declares.
    inputs = [i.name for i in onnxruntime.InferenceSession(os.path.join(xlmr[1], "model.onnx")).get_inputs()]
    assert set(inputs) == {"input_ids", "attention_mask"}
    bundle = load_bundle(xlmr[1])
    assert (bundle.query_prompt, bundle.document_prompt) == ("query: ", "passage: ")


@pytest.mark.parametrize("kind, prompt_name", [("query", "query"), ("document", "passage")])
def test_xlmr_vectors_match_sentence_transformers_with_prompts(xlmr_encoder, sentence_transformer, kind, prompt_name):
    ours = xlmr_encoder.encode(TEXTS, kind=kind)
    theirs = sentence_transformer.encode(TEXTS, prompt_name=prompt_name, normalize_embeddings=True,
                                         convert_to_numpy=True, batch_size=4)
    assert cosines(ours, theirs).min() >= 0.9999
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, rtol=1e-5)
    # embed_texts: same vectors, None stays None.
    rows = embed_texts(xlmr_encoder, [None, *TEXTS], kind=kind)
    assert rows[0] is None and np.allclose(np.stack(rows[1:]), ours, atol=1e-6)


def test_query_and_document_vectors_differ_by_their_prompt(xlmr_encoder, sentence_transformer):
    query, document = xlmr_encoder.encode(TEXTS, kind="query"), xlmr_encoder.encode(TEXTS, kind="document")
    unprompted = sentence_transformer.encode(TEXTS, prompt="", normalize_embeddings=True)
    # Every row changes with its prompt, the long text too (the prompt takes part of its window).
    assert np.abs(query - document).max(axis=1).min() > 1e-3
    assert np.abs(document - unprompted).max(axis=1).min() > 1e-3
    assert np.array_equal(xlmr_encoder.encode(TEXTS), document)  # the default kind is "document"


def test_prompt_is_tokenized_with_the_text_and_counts_toward_max_tokens(xlmr_encoder):
    tokenizer = xlmr_encoder.tokenizer
    ids = xlmr_encoder.tokenize(["hello"], kind="query")[0]
    assert ids == tokenizer.encode("query: hello").ids and ids[0] == 0 and ids[-1] == 2
    long_ids = xlmr_encoder.tokenize([TEXTS[-1]], kind="query")[0]
    assert len(long_ids) == 64 and long_ids[:5] == tokenizer.encode("query: x").ids[:5]


def test_prompted_texts_go_through_the_bounded_cancellable_path(xlmr_encoder):
    bounded, seen, checks = xlmr_encoder.bounded, [], []
    real = bounded.encode_batch

    def recording(texts, check=None, gate=None):
        seen.extend(texts)
        return real(texts, check, gate)

    bounded.encode_batch = recording
    try:
        text = "a" * 50_000  # one word: the prefix grows up to last_cut, check() between the tries
        xlmr_encoder.encode([text, "b"], check=lambda: checks.append(1), kind="query")
    finally:
        del bounded.encode_batch
    assert seen == ["query: " + text[:bounded.last_cut], "query: b"]  # cut before the prompt: no copy of it all
    assert len(checks) >= 3  # between the growing prefixes, then before the model call


def test_unknown_kind_raises_a_clear_error(xlmr_encoder):
    for call in (lambda: xlmr_encoder.encode(["a"], kind="passage"), lambda: xlmr_encoder.encode([], kind="q"),
                 lambda: embed_texts(xlmr_encoder, [None], kind="Query"),
                 lambda: xlmr_encoder.tokenize(["a"], kind="")):
        with pytest.raises(ValueError, match="unknown kind of text .* use 'query' .* or 'document'"):
            call()


def test_bundle_without_prompts_key_loads_with_no_prompts(tiny_bundle, tmp_path):
    """Bundles exported before prompts existed keep loading, and embed exactly as before."""
    old = tmp_path / "old"
    shutil.copytree(tiny_bundle, old)
    manifest = json.load(open(old / "manifest.json"))
    manifest.pop("prompts", None)
    json.dump(manifest, open(old / "manifest.json", "w"))
    bundle = load_bundle(str(old))
    assert (bundle.query_prompt, bundle.document_prompt) == ("", "")
    encoder = Encoder(bundle, threads=1)
    texts = ["I love natural language processing", "", "自然言語処理"]
    document = encoder.encode(texts)
    assert np.array_equal(encoder.encode(texts, kind="query"), document)
    assert np.array_equal(Encoder(load_bundle(tiny_bundle), threads=1).encode(texts, kind="query"), document)


@pytest.mark.parametrize("prompts", [[], "query: ", {"query": 3}])
def test_malformed_prompts_in_manifest_are_refused(tiny_bundle, tmp_path, prompts):
    bad = tmp_path / "bad"
    shutil.copytree(tiny_bundle, bad)
    manifest = json.load(open(bad / "manifest.json"))
    manifest["prompts"] = prompts
    json.dump(manifest, open(bad / "manifest.json", "w"))
    with pytest.raises(BundleError, match="incomplete"):
        load_bundle(str(bad))


def test_explicit_prompts_override_the_config(xlmr, sentence_transformer, tmp_path):
    manifest = export_model(xlmr[0], str(tmp_path / "bundle"), query_prompt="search_query: ", document_prompt="",
                            **QUIET)
    assert manifest["prompts"] == {"query": "search_query: ", "document": ""}
    assert manifest["validation"]["kinds"] == ["document", "query"]
    encoder = Encoder(load_bundle(str(tmp_path / "bundle")), threads=1)
    for kind, prompt in (("query", "search_query: "), ("document", "")):
        theirs = sentence_transformer.encode(TEXTS, prompt=prompt, normalize_embeddings=True)
        assert cosines(encoder.encode(TEXTS, kind=kind), theirs).min() >= 0.9999


def test_model_saved_by_sentence_transformers_5_exports(sentence_transformer, tmp_path):
    """sentence-transformers 5 writes {"pooling_mode": "mean"}, full module paths and empty "query" / "document"
    prompt placeholders beside E5's "passage"."""
    resaved = str(tmp_path / "resaved")
    sentence_transformer.save(resaved)
    config = json.load(open(os.path.join(resaved, "config_sentence_transformers.json")))
    assert json.load(open(os.path.join(resaved, "1_Pooling", "config.json")))["pooling_mode"] == "mean"
    manifest = export_model(resaved, str(tmp_path / "bundle"), **QUIET)
    assert (manifest["pooling"], manifest["normalize"], manifest["max_tokens"]) == ("mean", True, 64)
    assert manifest["prompts"] == {"query": "query: ", "document": "passage: "}, config["prompts"]
    encoder = Encoder(load_bundle(str(tmp_path / "bundle")), threads=1)
    for kind, prompt_name in (("query", "query"), ("document", "passage")):
        theirs = sentence_transformer.encode(TEXTS, prompt_name=prompt_name, normalize_embeddings=True)
        assert cosines(encoder.encode(TEXTS, kind=kind), theirs).min() >= 0.9999


def test_validation_fails_when_the_runtime_leaves_the_prompts_out(xlmr, tmp_path, monkeypatch):
    from pgbert_runtime.bundle import Bundle

    monkeypatch.setattr(Bundle, "prompt", lambda self, kind: "")
    with pytest.raises(ExportError, match="validation failed"):
        export_model(xlmr[0], str(tmp_path / "bundle"), **QUIET)
    assert not os.path.exists(tmp_path / "bundle")


def _st_config(folder, **config) -> str:
    os.makedirs(folder, exist_ok=True)
    json.dump(config, open(os.path.join(folder, "config_sentence_transformers.json"), "w"))
    return str(folder)


@pytest.mark.parametrize("config, expected", [
    ({}, ("", "")),
    ({"prompts": {}}, ("", "")),
    ({"prompts": {"query": "query: ", "passage": "passage: "}}, ("query: ", "passage: ")),
    ({"prompts": {"query": "q: ", "document": "d: ", "passage": "p: "}}, ("q: ", "d: ")),
    ({"prompts": {"corpus": "c: ", "doc": "x: "}}, ("", "c: ")),  # sentence-transformers' order, then "doc"
    ({"prompts": {"doc": "x: ", "classification": "k: "}}, ("", "x: ")),
    # sentence-transformers 5 saves empty "query" / "document" placeholders into every model: skipped.
    ({"prompts": {"document": "", "passage": "passage: ", "query": "query: "}}, ("query: ", "passage: ")),
    ({"prompts": {"query": None, "document": None, "passage": "p: "}, "default_prompt_name": None}, ("", "p: ")),
    # The default prompt fills a kind with no prompt of its own (sentence-transformers applies it unnamed).
    ({"prompts": {"retrieval": "r: ", "query": "q: "}, "default_prompt_name": "retrieval"}, ("q: ", "r: ")),
    ({"prompts": {"retrieval": "r: ", "query": "", "document": ""}, "default_prompt_name": "retrieval"},
     ("r: ", "r: ")),
    ({"prompts": {"query": "q: "}, "default_prompt_name": "missing"}, ("q: ", "")),
])
def test_prompts_are_read_from_the_sentence_transformers_config(tmp_path, config, expected):
    prompts = detect_prompts(_st_config(tmp_path / "m", **config))
    assert (prompts["query"], prompts["document"]) == expected


def test_no_sentence_transformers_config_means_no_prompts(tmp_path):
    assert detect_prompts(str(tmp_path)) == {"query": "", "document": ""}


def test_malformed_prompt_config_is_refused(tmp_path):
    with pytest.raises(ExportError, match="not a string"):
        detect_prompts(_st_config(tmp_path / "a", prompts={"query": ["q"]}))
    with pytest.raises(ExportError, match="not an object"):
        detect_prompts(_st_config(tmp_path / "b", prompts=["query: "]))


def test_prompts_left_out_of_the_pooling_are_refused(tmp_path):
    """INSTRUCTOR-style models pool without the prompt's tokens; pgbert pools them all: refuse, not diverge."""
    folder = make_tiny_xlmr(str(tmp_path / "m"))
    cfg_path = os.path.join(folder, "1_Pooling", "config.json")
    cfg = json.load(open(cfg_path))
    json.dump({**cfg, "include_prompt": False}, open(cfg_path, "w"))
    assert detect_settings(folder).include_prompt is False
    with pytest.raises(ExportError, match="include_prompt"):
        export_model(folder, str(tmp_path / "bundle"), **QUIET)


def test_known_e5_models_get_their_model_card_prompts(tmp_path, monkeypatch):
    """multilingual-e5's config records no prompts; its model card says to write "query: " / "passage: "."""
    from pgbert_export import export as export_module

    folder = make_tiny_xlmr(str(tmp_path / "m"), prompts=None)
    monkeypatch.setattr(export_module, "resolve_model", lambda model, progress: (folder, model))
    seen = {}

    def build(model_dir, model_id, settings, *rest):
        seen[model_id] = (settings.query_prompt, settings.document_prompt)
        raise ExportError("stop here")

    monkeypatch.setattr(export_module, "_build", build)
    for model_id, kwargs in [("intfloat/multilingual-e5-base", {}), ("intfloat/e5-small-v2", {}),
                             ("intfloat/multilingual-e5-large-instruct", {}), ("some/model", {}),
                             ("intfloat/e5-base", {"document_prompt": ""})]:
        with pytest.raises(ExportError, match="stop here"):
            export_model(model_id, str(tmp_path / "out"), **kwargs, **QUIET)
    assert seen == {"intfloat/multilingual-e5-base": ("query: ", "passage: "),
                    "intfloat/e5-small-v2": ("query: ", "passage: "),
                    "intfloat/multilingual-e5-large-instruct": ("", ""), "some/model": ("", ""),
                    "intfloat/e5-base": ("query: ", "")}


@pytest.mark.parametrize("argv, expected", [
    ([], (None, None)),
    (["--query-prompt", "query: ", "--document-prompt", "passage: "], ("query: ", "passage: ")),
    (["--query-prompt=", "--document-prompt", ""], ("", "")),
])
def test_cli_export_passes_prompts_through(tmp_path, monkeypatch, argv, expected):
    import pgbert_export
    from pgbert.cli import main

    calls = []

    def fake_export(model, output, **kwargs):
        calls.append(kwargs)
        return {"model_id": model, "dimension": 32, "pooling": "mean", "normalize": True, "max_tokens": 64}

    monkeypatch.setattr(pgbert_export, "export_model", fake_export)
    assert main(["export", "some/model", "-o", str(tmp_path / "b"), *argv]) == 0
    assert (calls[0]["query_prompt"], calls[0]["document_prompt"]) == expected
