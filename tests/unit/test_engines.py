"""Engine choice: a faster precision runs only when its fidelity passed at export; else the reference."""
import dataclasses

import numpy as np
import pytest

from pgbert_runtime import BundleError, engines
from pgbert_runtime.bundle import load_bundle
from pgbert_runtime.encoder import Encoder

TEXTS = ["I love natural language processing", "自然言語処理", "def f(x): return x", "a", "", "long " * 300]


def with_precisions(bundle, precisions):
    return dataclasses.replace(bundle, manifest={**bundle.manifest, "precisions": precisions})


@pytest.fixture()
def bundle(tiny_bundle):
    return load_bundle(tiny_bundle)


def test_auto_uses_bf16_only_when_measured_faithful_and_native(bundle, monkeypatch):
    monkeypatch.setattr(engines, "openvino_available", lambda: True)
    monkeypatch.setattr(engines, "cpu_has_native_bf16", lambda: True)
    good = with_precisions(bundle, {"openvino-bf16": {"min_cosine": 0.9995, "accepted": True}})
    assert engines.choose(good, "auto")[0] == "openvino-bf16"
    bad = with_precisions(bundle, {"openvino-bf16": {"min_cosine": 0.98, "accepted": False}})
    engine, why = engines.choose(bad, "auto")
    assert engine == "onnxruntime-fp32" and "0.98" in why
    assert engines.choose(with_precisions(bundle, {}), "auto") == ("onnxruntime-fp32",
                                                                   "bf16 fidelity not measured at export")
    monkeypatch.setattr(engines, "cpu_has_native_bf16", lambda: False)
    assert engines.choose(good, "auto")[0] == "onnxruntime-fp32"


def test_an_unfaithful_precision_is_refused_not_used(bundle, monkeypatch):
    monkeypatch.setattr(engines, "openvino_available", lambda: True)
    bad = with_precisions(bundle, {"openvino-bf16": {"min_cosine": 0.99, "accepted": False}})
    with pytest.raises(BundleError, match="refused"):
        engines.choose(bad, "openvino-bf16")
    with pytest.raises(BundleError, match="unknown engine"):
        engines.choose(bundle, "tensorflow")


@pytest.mark.skipif(not engines.openvino_available(), reason="openvino not installed")
def test_openvino_bf16_stays_faithful_to_fp32(bundle):
    reference = Encoder(bundle, engine="onnxruntime-fp32").encode(TEXTS)
    ours = Encoder(bundle, threads=2, runner=engines.OpenVinoEngine(bundle, 2)).encode(TEXTS)
    assert ((ours * reference).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(reference, axis=1)).min() >= 0.999


def test_a_faithful_precision_refused_at_export_says_why(bundle, monkeypatch):
    monkeypatch.setattr(engines, "cpu_has_native_bf16", lambda: True)
    refused = with_precisions(bundle, {"openvino-bf16": {"min_cosine": 0.99994, "accepted": False,
                                                          "why": "no native bf16 on the exporting CPU"}})
    assert engines.choose(refused, "auto") == ("onnxruntime-fp32",
                                               "bf16 refused at export: no native bf16 on the exporting CPU")
