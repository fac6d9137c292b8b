"""Hugging Face encoder -> pgbert bundle: model.onnx, tokenizer.json, manifest.json.

The export is validated end to end: the bundle is loaded with pgbert's own in-database runtime
(prompts + tokenizer + ONNX Runtime + pooling) and compared with PyTorch on varied sample texts.
"""
from __future__ import annotations

import datetime
import json
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass

import numpy as np

from pgbert_runtime.bundle import FORMAT_VERSION, MANIFEST, load_bundle, sha256_file
from pgbert_runtime.encoder import Encoder, default_threads

from .sources import ExportError, resolve_model

TOLERANCE = 1e-4  # max |onnx - torch| per vector component

# Varied on purpose: English, Japanese, code, one word, emoji, empty, and longer than any model's window.
SAMPLE_TEXTS = [
    "I love natural language processing",
    "PostgreSQL stores the vectors; the model runs next to the data.",
    "自然言語処理が大好きです。東京の天気は晴れです。",
    "def embed(text: str) -> list[float]:\n    return model(text)",
    "hello",
    "🚀🔥 emoji-only? ✨",
    "",
    " ".join(["Long documents are truncated to the model's window, exactly as its own library does."] * 120),
]


# Prompt names in a sentence-transformers config, for each kind of text pgbert embeds, in the order
# sentence-transformers' encode_query() / encode_document() look for them ("doc" is not one of its names: it
# comes last).
PROMPT_NAMES = {"query": ("query",), "document": ("document", "passage", "corpus", "doc")}
# Hub models trained with prompts that their sentence-transformers config does not record (their model cards
# tell users to write them in front): used only when the config names no prompt and no flag gives one.
KNOWN_PROMPTS = [
    (re.compile(r"intfloat/(multilingual-)?e5-(small|base|large)(-v2)?"),
     {"query": "query: ", "document": "passage: "}),
]


@dataclass
class ModelSettings:
    pooling: str
    normalize: bool
    max_tokens: int
    query_prompt: str = ""
    document_prompt: str = ""
    include_prompt: bool = True  # sentence-transformers' Pooling include_prompt: pool over the prompt's tokens too

    def prompt(self, kind: str) -> str:
        return self.query_prompt if kind == "query" else self.document_prompt


def _read_json(path: str) -> dict | list | None:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return None


def detect_settings(model_dir: str) -> ModelSettings:
    """Pooling/normalisation/prompts from the sentence-transformers config; [CLS], raw, no prompts for a
    plain model."""
    pooling, normalize, include_prompt = "cls", False, True
    modules = _read_json(os.path.join(model_dir, "modules.json"))
    if modules:
        pooling = None
        for module in modules:
            kind = module.get("type", "").rsplit(".", 1)[-1]
            if kind == "Pooling":
                cfg = _read_json(os.path.join(model_dir, module.get("path", ""), "config.json")) or {}
                modes = _pooling_modes(cfg)
                include_prompt = bool(cfg.get("include_prompt", True))
                if modes == ["mean"]:
                    pooling = "mean"
                elif modes == ["cls"]:
                    pooling = "cls"
                else:
                    raise ExportError(f"unsupported sentence-transformers pooling {modes}; pgbert supports "
                                      f"mean and cls (override with --pooling)")
            elif kind == "Normalize":
                normalize = True
            elif kind not in ("Transformer", "Pooling", "Normalize"):
                raise ExportError(f"unsupported sentence-transformers module {module.get('type')!r} in "
                                  f"{model_dir}/modules.json (pgbert exports Transformer + Pooling + Normalize)")
        pooling = pooling or "cls"
    prompts = detect_prompts(model_dir)
    return ModelSettings(pooling, normalize, detect_max_tokens(model_dir), query_prompt=prompts["query"],
                         document_prompt=prompts["document"], include_prompt=include_prompt)


def _pooling_modes(cfg: dict) -> list[str]:
    """A Pooling config's modes, short names: {"pooling_mode": "mean"} (sentence-transformers 5) or
    {"pooling_mode_mean_tokens": true, ...} (earlier versions, still the most common on the hub)."""
    if "pooling_mode" in cfg:
        mode = cfg["pooling_mode"]
        return [mode] if isinstance(mode, str) else list(mode or [])
    legacy = {"pooling_mode_mean_tokens": "mean", "pooling_mode_cls_token": "cls"}
    return [legacy.get(k, k) for k, v in cfg.items() if k.startswith("pooling_mode") and v]


def detect_prompts(model_dir: str) -> dict[str, str]:
    """{"query": ..., "document": ...} from config_sentence_transformers.json: for each kind, the first
    non-empty prompt among its names (PROMPT_NAMES), else the default_prompt_name's prompt (which
    sentence-transformers applies to any text encoded without a prompt name), else "".

    Empty entries are skipped because sentence-transformers 5 saves "query": "" and "document": "" placeholders
    into every model it writes: an E5 model saved by it reads {"query": "query: ", "document": "",
    "passage": "passage: "}, and its documents need "passage: " (sentence-transformers' own encode_document()
    picks the empty placeholder there; encode(prompt_name="passage") is what the model card asks for)."""
    config = _read_json(os.path.join(model_dir, "config_sentence_transformers.json"))
    config = config if isinstance(config, dict) else {}
    prompts = config.get("prompts") or {}
    if not isinstance(prompts, dict):
        raise ExportError(f"{model_dir}/config_sentence_transformers.json: prompts is not an object")
    default = config.get("default_prompt_name")
    found = {}
    for kind, names in PROMPT_NAMES.items():
        name = next((n for n in names if prompts.get(n)), default)
        value = prompts.get(name) if name is not None else None
        if value is not None and not isinstance(value, str):
            raise ExportError(f"{model_dir}/config_sentence_transformers.json: prompt {name!r} is not a string")
        found[kind] = value or ""
    return found


def detect_max_tokens(model_dir: str) -> int:
    config = _read_json(os.path.join(model_dir, "config.json")) or {}
    positions = int(config.get("max_position_embeddings", 512))
    # RoBERTa-style models (RoBERTa, XLM-R, MPNet) reserve padding_idx + 1 positions.
    if config.get("model_type") in ("roberta", "xlm-roberta", "mpnet", "camembert"):
        positions -= int(config.get("pad_token_id", 1)) + 1
    st = _read_json(os.path.join(model_dir, "sentence_bert_config.json")) or {}
    if st.get("max_seq_length"):
        return min(int(st["max_seq_length"]), positions)
    tok = _read_json(os.path.join(model_dir, "tokenizer_config.json")) or {}
    declared = tok.get("model_max_length")
    if isinstance(declared, (int, float)) and 0 < declared < 100_000:
        return min(int(declared), positions)
    return positions


class Progress:
    def __init__(self, total: int, echo=print):
        self.total, self.n, self.echo, self.started = total, 0, echo, time.perf_counter()

    def step(self, message: str) -> None:
        self.n += 1
        self.echo(f"[{self.n}/{self.total}] {message} (+{time.perf_counter() - self.started:.1f}s)")


def export_model(model: str, output: str, *, pooling: str | None = None, normalize: bool | None = None,
                 max_tokens: int | None = None, query_prompt: str | None = None, document_prompt: str | None = None,
                 opset: int = 18, echo=print) -> dict:
    """Export MODEL into the bundle folder OUTPUT (replaced atomically); returns the manifest.

    query_prompt / document_prompt: the text put in front of queries / documents before tokenizing; None
    takes the model's sentence-transformers config (detect_prompts), "" means no prompt."""
    progress = Progress(5, echo)
    progress.step(f"resolving {model}")
    model_dir, model_id = resolve_model(model, progress=lambda m: echo("      " + m))
    settings = detect_settings(model_dir)
    if pooling:
        settings.pooling = pooling
    if normalize is not None:
        settings.normalize = normalize
    if max_tokens:
        settings.max_tokens = max_tokens
    known = next((p for pattern, p in KNOWN_PROMPTS if pattern.fullmatch(model_id)), None)
    if known and not (settings.query_prompt or settings.document_prompt):
        echo(f"      {model_id} expects prompts that its config does not record: using its model card's")
        settings.query_prompt, settings.document_prompt = known["query"], known["document"]
    if query_prompt is not None:
        settings.query_prompt = query_prompt
    if document_prompt is not None:
        settings.document_prompt = document_prompt
    echo(f"      pooling={settings.pooling} normalize={settings.normalize} max_tokens={settings.max_tokens} "
         f"query_prompt={settings.query_prompt!r} document_prompt={settings.document_prompt!r}")
    if not settings.include_prompt and (settings.query_prompt or settings.document_prompt):
        raise ExportError("the model's sentence-transformers Pooling leaves the prompt's tokens out of the "
                          "pooling (include_prompt: false, as INSTRUCTOR-style models do); pgbert pools every "
                          "token, so its vectors would differ from the model's own library")

    parent = os.path.dirname(os.path.abspath(output)) or "."
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".export-", dir=parent)
    try:
        manifest = _build(model_dir, model_id, settings, staging, opset, progress, echo)
        progress.step(f"installing bundle at {output}")
        install_bundle(staging, output)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return manifest


def install_bundle(staging: str, output: str) -> None:
    """Put a finished bundle (a folder beside output) at output, replacing what is there, readable by the
    server's user (static.py's bundles are installed the same way)."""
    if os.path.isdir(output):
        old = output + ".old"
        shutil.rmtree(old, ignore_errors=True)
        os.rename(output, old)
        os.rename(staging, output)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(staging, output)
    os.chmod(output, 0o755)


def _build(model_dir, model_id, settings, staging, opset, progress, echo) -> dict:
    import torch
    import transformers
    from optimum.exporters.onnx import main_export

    progress.step("exporting to ONNX with optimum (feature-extraction)")
    onnx_dir = os.path.join(staging, "onnx")
    try:
        main_export(model_dir, onnx_dir, task="feature-extraction", library_name="transformers",
                    opset=opset, device="cpu", do_validation=False)
    except Exception as exc:
        raise ExportError(f"optimum could not export {model_id} to ONNX: {exc}") from exc
    if os.path.exists(os.path.join(onnx_dir, "model.onnx_data")):
        raise ExportError("the model is larger than 2 GB (external ONNX data); pgbert bundles hold one file")
    shutil.move(os.path.join(onnx_dir, "model.onnx"), os.path.join(staging, "model.onnx"))
    shutil.rmtree(onnx_dir)

    progress.step("writing tokenizer.json")
    tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir, use_fast=True)
    if not tokenizer.is_fast:
        raise ExportError(f"{model_id} has no fast tokenizer (tokenizer.json); pgbert needs one")
    tok_dir = os.path.join(staging, "tok")
    tokenizer.save_pretrained(tok_dir)
    shutil.move(os.path.join(tok_dir, "tokenizer.json"), os.path.join(staging, "tokenizer.json"))
    shutil.rmtree(tok_dir)

    config = transformers.AutoConfig.from_pretrained(model_dir)
    files = {name: {"size": os.path.getsize(os.path.join(staging, name)),
                    "sha256": sha256_file(os.path.join(staging, name))}
             for name in ("model.onnx", "tokenizer.json")}
    import onnx
    import onnxruntime
    import optimum.version
    import tokenizers

    # manifest.json (read by pgbert_runtime.bundle.load_bundle):
    #   model_id, model_type, dimension, pooling ("mean" | "cls"), normalize, max_tokens (special tokens and
    #   prompt included), pad_token_id, precision, opset;
    #   prompts: {"query": "...", "document": "..."}: put in front of each text of that kind before tokenizing
    #     ("" when none; absent in bundles exported before prompts, which means none): from the model's
    #     config_sentence_transformers.json (detect_prompts) or --query-prompt / --document-prompt;
    #   files: {name: {size, sha256}}; tools: versions that made the bundle; created_at;
    #   added after validation: validation {texts, kinds, max_abs_diff, min_cosine, tolerance} and precisions
    #     {engine: {min_cosine, accepted, ...}} (engines.choose() runs a faster engine only when accepted).
    manifest = {
        "format_version": FORMAT_VERSION,
        "model_id": model_id,
        "model_type": config.model_type,
        "dimension": int(config.hidden_size),
        "pooling": settings.pooling,
        "normalize": settings.normalize,
        "max_tokens": settings.max_tokens,
        "pad_token_id": tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0,
        "prompts": {"query": settings.query_prompt, "document": settings.document_prompt},
        "precision": "fp32",
        "opset": opset,
        "files": files,
        "tools": {"torch": torch.__version__, "transformers": transformers.__version__,
                  "optimum": optimum.version.__version__, "onnx": onnx.__version__,
                  "onnxruntime": onnxruntime.__version__, "tokenizers": tokenizers.__version__,
                  "pgbert": _pgbert_version()},
        "created_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    _write_manifest(staging, manifest)

    kinds = validation_kinds(settings)
    progress.step(f"validating ONNX against PyTorch on {len(SAMPLE_TEXTS)} sample texts "
                  f"({' and '.join(f'as {k}' for k in kinds)})")
    # PyTorch gets each text with the prompt written in front; pgbert's runtime is asked for the kind and
    # must put the manifest's prompt there itself.
    reference = torch_embeddings(model_dir, [settings.prompt(k) + t for k in kinds for t in SAMPLE_TEXTS], settings)
    ours = encode_kinds(Encoder(load_bundle(staging), threads=None), kinds)
    max_abs = float(np.abs(ours - reference).max())
    cosines = (ours * reference).sum(1) / (np.linalg.norm(ours, axis=1) * np.linalg.norm(reference, axis=1))
    echo(f"      max |onnx - torch| = {max_abs:.2e}, min cosine = {cosines.min():.7f}")
    if not max_abs <= TOLERANCE:
        raise ExportError(f"validation failed: ONNX differs from PyTorch by {max_abs:.2e} (> {TOLERANCE:g}); "
                          f"the bundle was not installed")
    manifest["validation"] = {"texts": len(ours), "kinds": list(kinds), "max_abs_diff": max_abs,
                              "min_cosine": float(cosines.min()), "tolerance": TOLERANCE}
    manifest["precisions"] = {"onnxruntime-fp32": {"min_cosine": float(cosines.min()), "accepted": True}}
    bf16 = measure_bf16(staging, reference, kinds)
    if bf16:
        manifest["precisions"]["openvino-bf16"] = bf16
        echo(f"      openvino bf16: min cosine to fp32 = {bf16['min_cosine']:.5f} -> "
             f"{'accepted' if bf16['accepted'] else 'refused: ' + bf16['why']}")
    _write_manifest(staging, manifest)
    return manifest


def validation_kinds(settings: ModelSettings) -> tuple[str, ...]:
    """The kinds of text the validation embeds the sample texts as: both when their prompts differ."""
    return ("document",) if settings.query_prompt == settings.document_prompt else ("document", "query")


def encode_kinds(encoder: Encoder, kinds: tuple[str, ...]) -> np.ndarray:
    """The sample texts embedded as each kind in turn (rows: kinds[0]'s texts, then kinds[1]'s)."""
    return np.concatenate([encoder.encode(SAMPLE_TEXTS, kind=kind) for kind in kinds])


def measure_bf16(bundle_dir: str, reference: np.ndarray, kinds: tuple[str, ...] = ("document",)) -> dict | None:
    """Fidelity of OpenVINO bf16 against PyTorch fp32 on the sample texts (as each kind, the rows of
    reference); accepted only when measured with native bf16 (otherwise OpenVINO silently computes in fp32
    and the figure would mean nothing)."""
    from pgbert_runtime import engines

    if not engines.openvino_available():
        return None
    import openvino

    bundle = load_bundle(bundle_dir)
    threads = default_threads()
    ours = encode_kinds(Encoder(bundle, threads=threads, runner=engines.OpenVinoEngine(bundle, threads)), kinds)
    cosines = (ours * reference).sum(1) / (np.linalg.norm(ours, axis=1) * np.linalg.norm(reference, axis=1))
    native = engines.cpu_has_native_bf16()
    minimum = float(cosines.min())
    why = "" if native and minimum >= engines.MIN_COSINE else (
        "no native bf16 on the exporting CPU" if not native else f"min cosine below {engines.MIN_COSINE}")
    return {"min_cosine": minimum, "mean_cosine": float(cosines.mean()), "native_bf16": native,
            "accepted": not why, "why": why, "openvino": openvino.__version__, "texts": len(ours)}


def _write_manifest(folder: str, manifest: dict) -> None:
    with open(os.path.join(folder, MANIFEST), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2, ensure_ascii=False)
        f.write("\n")


def _pgbert_version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("pgbert")
    except PackageNotFoundError:
        return "unknown"


def torch_embeddings(model_dir: str, texts: list[str], settings: ModelSettings) -> np.ndarray:
    """The reference: transformers + PyTorch, one text at a time, with the same pooling and truncation
    (texts as the model reads them: any prompt is already in front)."""
    import torch
    import transformers

    tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir, use_fast=True)
    model = transformers.AutoModel.from_pretrained(model_dir).eval()
    rows = []
    with torch.inference_mode():
        for text in texts:
            enc = tokenizer(text, truncation=True, max_length=settings.max_tokens, return_tensors="pt")
            hidden = model(**enc).last_hidden_state
            if settings.pooling == "mean":
                mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                vec = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            else:
                vec = hidden[:, 0]
            if settings.normalize:
                vec = torch.nn.functional.normalize(vec, p=2, dim=1)
            rows.append(vec[0].numpy())
    return np.stack(rows).astype(np.float32)
