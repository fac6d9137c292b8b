import json
import os
import shutil

import pytest

from pgbert_runtime import BundleError, load_bundle


@pytest.fixture()
def bundle_copy(tiny_bundle, tmp_path):
    target = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, target)
    return target


def test_loads_manifest(tiny_bundle):
    bundle = load_bundle(tiny_bundle)
    assert bundle.dimension == 32 and bundle.pooling == "mean" and bundle.normalize
    assert bundle.max_tokens == 64
    bundle.verify(checksums=True)


def test_missing_bundle_says_how_to_fix(tmp_path):
    with pytest.raises(BundleError, match="pgbert export"):
        load_bundle(str(tmp_path / "nope"))


def test_truncated_model_is_detected(bundle_copy):
    with open(bundle_copy / "model.onnx", "r+b") as f:
        f.truncate(1000)
    with pytest.raises(BundleError, match="truncated or replaced"):
        load_bundle(str(bundle_copy))


def test_missing_file_is_detected(bundle_copy):
    os.remove(bundle_copy / "tokenizer.json")
    with pytest.raises(BundleError, match="tokenizer.json is missing"):
        load_bundle(str(bundle_copy))


def test_checksum_mismatch_is_detected(bundle_copy):
    data = bytearray((bundle_copy / "tokenizer.json").read_bytes())
    data[10] ^= 1
    (bundle_copy / "tokenizer.json").write_bytes(bytes(data))
    load_bundle(str(bundle_copy))  # same size: the cheap check passes
    with pytest.raises(BundleError, match="sha256"):
        load_bundle(str(bundle_copy)).verify(checksums=True)


def test_incomplete_or_newer_manifest(bundle_copy):
    manifest = json.loads((bundle_copy / "manifest.json").read_text())
    (bundle_copy / "manifest.json").write_text(json.dumps({**manifest, "format_version": 99}))
    with pytest.raises(BundleError, match="format_version"):
        load_bundle(str(bundle_copy))
    del manifest["dimension"]
    (bundle_copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="incomplete"):
        load_bundle(str(bundle_copy))
