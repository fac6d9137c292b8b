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
    monkeypatch.setattr(engines, "cpu_has_amx", lambda: True)
    good = with_precisions(bundle, {"openvino-bf16": {"min_cosine": 0.9995, "accepted": True}})
    assert engines.choose(good, "auto")[0] == "openvino-bf16"
    bad = with_precisions(bundle, {"openvino-bf16": {"min_cosine": 0.98, "accepted": False}})
    engine, why = engines.choose(bad, "auto")
    assert engine == "onnxruntime-fp32" and "0.98" in why
    assert engines.choose(with_precisions(bundle, {}), "auto") == ("onnxruntime-fp32",
                                                                   "bf16 fidelity not measured at export")
    monkeypatch.setattr(engines, "cpu_has_amx", lambda: False)  # AVX512-BF16 alone: bf16 is slower there
    assert engines.choose(good, "auto") == ("onnxruntime-fp32",
                                            "this CPU has bf16 without AMX, where bf16 runs slower than fp32")
    assert engines.choose(good, "openvino-bf16")[0] == "openvino-bf16"  # named by the setting, it runs
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


def test_bf16_named_by_the_setting_says_so_on_a_cpu_without_it(bundle, monkeypatch):
    monkeypatch.setattr(engines, "openvino_available", lambda: True)
    monkeypatch.setattr(engines, "cpu_has_native_bf16", lambda: False)
    good = with_precisions(bundle, {"openvino-bf16": {"min_cosine": 0.9995, "accepted": True}})
    assert engines.choose(good, "openvino-bf16") == (
        "openvino-bf16", "faithful (min cosine 0.99950), chosen by setting on a CPU without native bf16")
    monkeypatch.setattr(engines, "cpu_has_native_bf16", lambda: True)
    monkeypatch.setattr(engines, "cpu_has_amx", lambda: True)
    assert engines.choose(good, "auto") == ("openvino-bf16", "faithful (min cosine 0.99950), native bf16")


def test_the_openvino_engine_on_fake_bf16_batches_within_its_tolerance(bundle, tmp_path):
    """tests/fake_openvino rounds to bf16 as the real engine does on a CPU that has it: a text batched with
    others differs in its last bits from the same text alone, never by more than the measured fidelity allows."""
    from helpers import fake_openvino

    reference = Encoder(bundle, engine="onnxruntime-fp32", shared_weights=False).encode(TEXTS)
    with fake_openvino():
        runner = engines.OpenVinoEngine(bundle, 1, str(tmp_path))
    encoder = Encoder(bundle, threads=1, runner=runner)
    batched = encoder.encode(TEXTS).astype(np.float64)
    alone = np.stack([encoder.encode([t])[0] for t in TEXTS]).astype(np.float64)

    def cosine(a, b):
        return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)

    fidelity = cosine(batched, reference).min()
    assert 0.999 <= fidelity < 1  # rounded to bf16: faithful, not exact
    assert (batched != alone).any()
    assert (1 - cosine(batched, alone)).max() <= 2 * (1 - fidelity ** 2)
    assert runner.weights.startswith("one copy per process that runs the model")
