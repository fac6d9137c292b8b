import json
import os

import numpy as np
import pytest

from pgbert_export import ExportError, export_model
from pgbert_export import export as export_module
from pgbert_export.export import detect_settings
from tiny_bert import make_tiny_bert


def test_export_writes_a_validated_bundle(tiny_bundle):
    manifest = json.load(open(os.path.join(tiny_bundle, "manifest.json")))
    assert set(manifest["files"]) == {"model.onnx", "tokenizer.json"}
    assert manifest["dimension"] == 32 and manifest["pooling"] == "mean" and manifest["normalize"] is True
    assert manifest["validation"]["max_abs_diff"] <= 1e-4
    assert {"torch", "transformers", "optimum", "onnxruntime"} <= set(manifest["tools"])


def test_plain_bert_uses_cls_without_normalisation(tmp_path):
    folder = make_tiny_bert(str(tmp_path / "plain"), sentence_transformers=False)
    settings = detect_settings(folder)
    assert (settings.pooling, settings.normalize, settings.max_tokens) == ("cls", False, 128)


def test_plain_bert_export_matches_torch_cls(tmp_path):
    folder = make_tiny_bert(str(tmp_path / "plain"), sentence_transformers=False, seed=3)
    manifest = export_model(folder, str(tmp_path / "bundle"), echo=lambda *_: None)
    assert manifest["pooling"] == "cls" and manifest["validation"]["max_abs_diff"] <= 1e-4


def test_validation_failure_is_loud_and_installs_nothing(tmp_path, monkeypatch):
    folder = make_tiny_bert(str(tmp_path / "m"))
    real = export_module.torch_embeddings
    monkeypatch.setattr(export_module, "torch_embeddings", lambda *a: real(*a) + np.float32(1e-3))
    with pytest.raises(ExportError, match="validation failed"):
        export_model(folder, str(tmp_path / "bundle"), echo=lambda *_: None)
    assert not os.path.exists(tmp_path / "bundle")
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".export-")]


def test_unreachable_hub_names_offline_alternatives(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ExportError, match="all-mpnet-base-v2"):
        export_model("BAAI/bge-base-en-v1.5", str(tmp_path / "b"), echo=lambda *_: None)


def test_unsupported_pooling_is_refused(tmp_path):
    folder = make_tiny_bert(str(tmp_path / "m"))
    cfg = os.path.join(folder, "1_Pooling", "config.json")
    json.dump({"pooling_mode_max_tokens": True}, open(cfg, "w"))
    with pytest.raises(ExportError, match="unsupported"):
        detect_settings(folder)


def test_export_without_prompts_records_empty_ones_and_validates_once(tiny_bundle):
    manifest = json.load(open(os.path.join(tiny_bundle, "manifest.json")))
    assert manifest["prompts"] == {"query": "", "document": ""}
    assert manifest["validation"]["kinds"] == ["document"] and manifest["validation"]["texts"] == 8


@pytest.mark.parametrize("config, pooling", [
    ({"embedding_dimension": 32, "pooling_mode": "mean", "include_prompt": True}, "mean"),
    ({"embedding_dimension": 32, "pooling_mode": "cls"}, "cls"),
    ({"embedding_dimension": 32, "pooling_mode": ["mean"]}, "mean"),
    ({"word_embedding_dimension": 32, "pooling_mode_cls_token": True, "include_prompt": True}, "cls"),
])
def test_sentence_transformers_5_pooling_config_is_read(tmp_path, config, pooling):
    """sentence-transformers 5 saves {"pooling_mode": "mean"}; earlier versions pooling_mode_*_tokens flags."""
    folder = make_tiny_bert(str(tmp_path / "m"))
    json.dump(config, open(os.path.join(folder, "1_Pooling", "config.json"), "w"))
    assert detect_settings(folder).pooling == pooling


def test_sentence_transformers_5_unsupported_pooling_is_refused(tmp_path):
    folder = make_tiny_bert(str(tmp_path / "m"))
    json.dump({"pooling_mode": ["mean", "max"]}, open(os.path.join(folder, "1_Pooling", "config.json"), "w"))
    with pytest.raises(ExportError, match="unsupported sentence-transformers pooling"):
        detect_settings(folder)
