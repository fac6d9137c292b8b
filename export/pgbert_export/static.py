"""Static bundles (run in the database by pgbert_runtime/static.py): `pgbert export --static MODEL` distils a
transformer with model2vec, and the bundle writer and check that `pgbert import-vectors` (word_vectors.py) share.

A static bundle is manifest.json + tokenizer.json + embeddings.npy (float32, vocabulary x dimension).
"""
from __future__ import annotations

import datetime
import os
import shutil
import tempfile
from contextlib import contextmanager

import numpy as np

from pgbert_runtime.bundle import MODEL_KINDS, STATIC, STATIC_FORMAT_VERSION, load_bundle, sha256_file

from .export import SAMPLE_TEXTS, Progress, _pgbert_version, _write_manifest, install_bundle
from .sources import ExportError, resolve_model

DEFAULT_DIMS = 256  # PCA dimensions: model2vec's default
DEFAULT_MAX_TOKENS = 512  # the tokens of a text StaticModel.encode averages by default (its max_length)
MIN_COSINE = 0.999  # a written bundle against the vectors it was made from, or it is not installed
EMBEDDINGS = MODEL_KINDS[STATIC]


@contextmanager
def staging_folder(output: str):
    """A scratch folder beside output (so that installing it is a rename), removed whatever happens."""
    parent = os.path.dirname(os.path.abspath(output)) or "."
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".export-", dir=parent)
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def write_static_bundle(folder: str, vectors: np.ndarray, tokenizer_json: str, *, model_id: str, normalize: bool,
                        max_tokens: int, unk_token_ids: list[int], **extra) -> dict:
    """Write embeddings.npy, tokenizer.json and manifest.json into folder; returns the manifest.

    manifest.json of a static bundle (read by pgbert_runtime.bundle.load_bundle):
      format_version 2 and model_kind "static" (bundle.py says why a static bundle bumps the version), model_id,
      dimension, pooling "mean", normalize, max_tokens (the known tokens of a text averaged), optional max_chars
      (a text's characters ever tokenized), unk_token_ids (ids left out of the mean), vocab_size, no prompts,
      files {name: {size, sha256}}, tools, created_at, and what extra adds (source, validation, ...)."""
    table = np.ascontiguousarray(vectors, dtype=np.float32)
    if table.ndim != 2 or not table.shape[0] or not table.shape[1]:
        raise ExportError(f"token vectors must be a non-empty table (vocabulary x dimension), not {table.shape}")
    if not np.isfinite(table).all():
        raise ExportError("the token vectors hold NaN or infinite numbers: the model they come from is damaged")
    np.save(os.path.join(folder, EMBEDDINGS), table, allow_pickle=False)
    with open(os.path.join(folder, "tokenizer.json"), "w", encoding="utf-8") as f:
        f.write(tokenizer_json)
    import tokenizers

    tools = {"numpy": np.__version__, "tokenizers": tokenizers.__version__, "pgbert": _pgbert_version(),
             **extra.pop("tools", {})}
    manifest = {
        "format_version": STATIC_FORMAT_VERSION,
        "model_kind": STATIC,
        "model_id": model_id,
        "dimension": int(table.shape[1]),
        "pooling": "mean",
        "normalize": bool(normalize),
        "max_tokens": int(max_tokens),
        "unk_token_ids": [int(i) for i in unk_token_ids],
        "vocab_size": int(table.shape[0]),
        "prompts": {"query": "", "document": ""},
        "files": {name: {"size": os.path.getsize(os.path.join(folder, name)),
                         "sha256": sha256_file(os.path.join(folder, name))} for name in ("tokenizer.json", EMBEDDINGS)},
        "tools": tools,
        "created_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        **extra,
    }
    _write_manifest(folder, manifest)
    return manifest


def cosines(ours: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Row by row; two zero rows (a text without a known token, on both sides) agree: 1; one alone: 0."""
    norms = np.linalg.norm(ours, axis=1) * np.linalg.norm(reference, axis=1)
    both_zero = (np.linalg.norm(ours, axis=1) == 0) & (np.linalg.norm(reference, axis=1) == 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        values = (ours * reference).sum(1) / norms
    return np.where(both_zero, 1.0, np.nan_to_num(values, nan=0.0))


def check_bundle(folder: str, texts: list[str], reference: np.ndarray, what: str, echo) -> dict:
    """Embed texts with pgbert's own static engine from the written bundle and compare with reference (the
    vectors the source library gives); refuses (ExportError) below MIN_COSINE. Returns the validation record."""
    from pgbert_runtime.static import StaticEncoder

    ours = StaticEncoder(load_bundle(folder)).encode(texts)
    found = cosines(ours, np.asarray(reference, dtype=np.float32))
    echo(f"      min cosine to {what} = {found.min():.7f} over {len(texts)} texts")
    if not found.min() >= MIN_COSINE:
        worst = int(found.argmin())
        raise ExportError(f"validation failed: pgbert's static engine and {what} disagree on {texts[worst][:60]!r} "
                          f"(cosine {found.min():.5f} < {MIN_COSINE}); the bundle was not installed")
    return {"texts": len(texts), "reference": what, "min_cosine": float(found.min()), "threshold": MIN_COSINE}


def export_static(model: str, output: str, *, dims: int = DEFAULT_DIMS, normalize: bool | None = None,
                  max_tokens: int | None = None, echo=print) -> dict:
    """Distil MODEL (anything `pgbert export` takes) into a static bundle at OUTPUT (replaced atomically) with
    model2vec: every token of its vocabulary through the transformer, PCA to dims dimensions, the vectors
    weighted by token frequency (SIF), as model2vec.distill does by default, kept in float32. Returns the manifest.
    normalize: override the distilled model's setting; max_tokens: the known tokens of a text averaged (512)."""
    progress = Progress(5, echo)
    progress.step(f"resolving {model}")
    model_dir, model_id = resolve_model(model, progress=lambda m: echo("      " + m))
    progress.step(f"distilling {model_id} with model2vec (each vocabulary token through the model, PCA to {dims} "
                  f"dimensions; minutes on a CPU for a base-size model)")
    static = distill(model_dir, model_id, dims)
    if normalize is not None:
        static.normalize = normalize
    max_tokens = max_tokens or DEFAULT_MAX_TOKENS
    echo(f"      {static.embedding.shape[0]} tokens x {static.embedding.shape[1]} dimensions, "
         f"normalize={static.normalize}, max_tokens={max_tokens}")
    with staging_folder(output) as staging:
        progress.step("writing embeddings.npy, tokenizer.json and manifest.json")
        import model2vec

        manifest = write_static_bundle(
            staging, static.embedding, static.tokenizer.to_str(), model_id=f"{model_id} (static, model2vec)",
            normalize=static.normalize, max_tokens=max_tokens,
            unk_token_ids=[] if static.unk_token_id is None else [static.unk_token_id],
            # model2vec cuts a text at max_length x its median token length before tokenizing: read as much.
            max_chars=max_tokens * static.median_token_length,
            source={"model": model_id, "method": "model2vec.distill", "pca_dims": dims},
            tools={"model2vec": model2vec.__version__})
        progress.step(f"checking pgbert's static engine against model2vec's StaticModel.encode on "
                      f"{len(SAMPLE_TEXTS)} sample texts")
        reference = static.encode(SAMPLE_TEXTS, max_length=max_tokens)
        manifest["validation"] = check_bundle(staging, SAMPLE_TEXTS, reference, "model2vec", echo)
        _write_manifest(staging, manifest)
        progress.step(f"installing bundle at {output}")
        install_bundle(staging, output)
    return manifest


def distill(model_dir: str, model_id: str, dims: int):
    """model2vec's StaticModel for the model in model_dir, its vectors in float32 (model2vec's default float16
    would only lose precision: the bundle stores float32)."""
    try:
        from model2vec.distill import distill as model2vec_distill
    except ImportError as exc:
        raise ExportError(f"`pgbert export --static` needs model2vec ({exc}): "
                          f"pip install 'model2vec[distill]' (pgbert's export extra has it)") from None
    try:
        static = model2vec_distill(model_dir, pca_dims=dims, device="cpu", quantize_to="float32")
    except Exception as exc:  # model2vec and transformers raise many types: all mean "this model cannot be distilled"
        raise ExportError(f"model2vec could not distil {model_id}: {type(exc).__name__}: {exc}") from None
    if static.token_mapping is not None or static.weights is not None:
        raise ExportError(f"model2vec distilled {model_id} with a quantized vocabulary, which pgbert's static "
                          f"engine does not run")
    static.embedding = np.asarray(static.embedding, dtype=np.float32)
    # model2vec keeps the source tokenizer's padding and truncation (all-mpnet-base-v2's pads every text to 128
    # tokens and cuts it there): its encode() would then average 128 - n <pad> rows into every vector (an empty
    # text would get the <pad> row's direction, not zeros) and read 128 tokens whatever max_length says. Neither
    # is what a static model means: the bundle's tokenizer has neither, and the reference that checks the bundle
    # is StaticModel.encode with this same tokenizer.
    static.tokenizer.no_padding()
    static.tokenizer.no_truncation()
    return static

