"""A model bundle, as written by `pgbert export`: manifest.json + tokenizer.json + the weights of its model
family (model_kind): model.onnx for a transformer, embeddings.npy (token vectors, vocabulary x dimension) for a
static model."""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field

MANIFEST = "manifest.json"
# The format a transformer bundle is written with, unchanged since the first pgbert: every release reads it.
FORMAT_VERSION = 1
# A static bundle has no model.onnx. A pgbert from before static models checks only the manifest's common fields,
# which a static bundle has, and would then fail on the missing model.onnx with a misleading "re-export it"; the
# format_version it refuses up front ("format_version 2, this pgbert reads 1") makes it refuse a static bundle
# clearly instead. Version 2 means "the manifest may name a model_kind"; a static bundle must have it.
STATIC_FORMAT_VERSION = 2
FORMAT_VERSIONS = (FORMAT_VERSION, STATIC_FORMAT_VERSION)
# Model families (the manifest's "model_kind"; absent: a transformer, as every bundle made before static models).
# Not called "kind": KINDS below are the kinds of text a model embeds.
TRANSFORMER, STATIC = "transformer", "static"
MODEL_KINDS = {TRANSFORMER: "model.onnx", STATIC: "embeddings.npy"}  # family -> the file holding its weights
# What a text is embedded as: a search query, or a document that queries are compared with. Models trained
# with prompts (E5: "query: " / "passage: ") expect their prompt in front of each text; the manifest's
# "prompts" object records them (absent in bundles exported before prompts: no prompts).
KINDS = ("query", "document")
# Texts are cut at max_tokens x this many characters before tokenizing, whatever their shape: a window needs far
# fewer (all-mpnet-base-v2: at most 5.5 characters a token over 240 real documents; WordPiece makes one [UNK] of
# a word over 100 characters), while tokenizing a text without word breaks takes 100-300 bytes a character (32 Mi
# emoji whole: 9 GB and 2 minutes). A text whose window needs more (a window's worth of 100-letter words, long
# runs of spaces) gets the tokens of its first characters only, a word cut there included.
MAX_CHARS_PER_TOKEN = 64


class BundleError(Exception):
    """The bundle is missing, damaged or not what the database expects. The message says how to fix it."""


class NoKnownWords(Exception):
    """A search query none of whose words a static model knows: its vector would be zero, nearest to nothing
    (static.py says why this is an error rather than no rows)."""


@dataclass(frozen=True)
class Bundle:
    path: str
    model_id: str
    dimension: int
    pooling: str
    normalize: bool
    max_tokens: int
    files: dict = field(hash=False)
    manifest: dict = field(hash=False, repr=False)
    query_prompt: str = ""
    document_prompt: str = ""
    model_kind: str = TRANSFORMER

    @property
    def is_static(self) -> bool:
        return self.model_kind == STATIC

    def prompt(self, kind: str) -> str:
        """The text put in front of every text of this kind before tokenizing ("" when none)."""
        if kind == "query":
            return self.query_prompt
        if kind == "document":
            return self.document_prompt
        raise ValueError(f"unknown kind of text {kind!r}: use 'query' (a search query) or 'document' "
                         f"(a text that is searched)")

    @property
    def readable_chars(self) -> int:
        """The characters of a text that are ever tokenized (see MAX_CHARS_PER_TOKEN): the rest can be dropped.
        A static bundle may read fewer ("max_chars": model2vec cuts a text at max_tokens x its median token
        length before tokenizing, and a distilled bundle reads what its library reads)."""
        limit = self.max_tokens * MAX_CHARS_PER_TOKEN
        return min(limit, int(self.manifest["max_chars"])) if self.manifest.get("max_chars") else limit

    @property
    def onnx_path(self) -> str:
        return os.path.join(self.path, "model.onnx")

    @property
    def tokenizer_path(self) -> str:
        return os.path.join(self.path, "tokenizer.json")

    @property
    def weights_path(self) -> str:
        """The file holding the model's weights: model.onnx, or a static model's embeddings.npy."""
        return os.path.join(self.path, MODEL_KINDS[self.model_kind])

    def verify(self, checksums: bool = False) -> None:
        """Check every listed file exists with its recorded size (and sha256 when asked: slow for big models)."""
        for name, meta in self.files.items():
            full = os.path.join(self.path, name)
            try:
                size = os.path.getsize(full)
            except OSError:
                raise BundleError(f"model bundle {self.path}: file {name} is missing; "
                                  f"re-export it with `pgbert export {self.model_id}`") from None
            if size != meta["size"]:
                raise BundleError(f"model bundle {self.path}: {name} is {size} bytes, manifest says "
                                  f"{meta['size']} (truncated or replaced); re-export it with "
                                  f"`pgbert export {self.model_id}`")
            if checksums and sha256_file(full) != meta["sha256"]:
                raise BundleError(f"model bundle {self.path}: {name} does not match its sha256 in the "
                                  f"manifest; re-export it with `pgbert export {self.model_id}`")


def sha256_file(path: str, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def file_key(path: str) -> tuple:
    """What identifies a bundle's files for caches: re-exported, replaced, truncated or deleted files change
    these stats, so the next call reloads (or fails with a clear error), and a repaired bundle is picked up
    without restarting the server. Three stat() calls cost microseconds; this runs on every embed() call, so
    nothing more (the path is the absolute one registered in pgbert.models). Every family's weights file is
    looked at: which one a bundle has is in its manifest, and reading that costs more than a stat()."""
    stats = []
    for name in (MANIFEST, *MODEL_KINDS.values(), "tokenizer.json"):
        try:
            st = os.stat(os.path.join(path, name))
            stats.append((st.st_size, st.st_mtime_ns, st.st_ino))
        except OSError:
            stats.append(None)
    return (path, *stats)


def load_bundle(path: str) -> Bundle:
    """Read and check a bundle's manifest (cheap: sizes only, no checksums)."""
    manifest_path = os.path.join(path, MANIFEST)
    try:
        with open(manifest_path, encoding="utf-8") as f:
            manifest = json.load(f)
    except FileNotFoundError:
        raise BundleError(f"no model bundle at {path} ({MANIFEST} not found); export one with "
                          f"`pgbert export MODEL` and register it with pgbert.use_model()") from None
    except (OSError, ValueError) as exc:
        raise BundleError(f"model bundle {path}: cannot read {MANIFEST}: {exc}") from None
    try:
        model_kind = _model_kind(path, manifest)
        bundle = Bundle(
            path=path,
            model_id=str(manifest["model_id"]),
            dimension=int(manifest["dimension"]),
            pooling=str(manifest["pooling"]),
            normalize=bool(manifest["normalize"]),
            max_tokens=int(manifest["max_tokens"]),
            files=dict(manifest["files"]),
            manifest=manifest,
            model_kind=model_kind,
            **_prompts(manifest.get("prompts")),
        )
        if bundle.is_static:
            _check_static(bundle)
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"model bundle {path}: {MANIFEST} is incomplete ({exc!r}); re-export the model") from None
    if bundle.pooling not in ("mean", "cls"):
        raise BundleError(f"model bundle {path}: unknown pooling {bundle.pooling!r}")
    bundle.verify()
    return bundle


def _model_kind(path: str, manifest: dict) -> str:
    """The bundle's model family, checked against its format_version (see STATIC_FORMAT_VERSION)."""
    version = manifest.get("format_version")
    if version not in FORMAT_VERSIONS:
        raise BundleError(f"model bundle {path}: format_version {version!r}, this pgbert reads "
                          f"{' and '.join(map(str, FORMAT_VERSIONS))}; upgrade pgbert or re-export the model")
    model_kind = manifest.get("model_kind", TRANSFORMER)
    if model_kind not in MODEL_KINDS:
        raise BundleError(f"model bundle {path}: unknown model_kind {model_kind!r} (this pgbert runs "
                          f"{', '.join(MODEL_KINDS)} models); upgrade pgbert, or export a model it runs with "
                          f"`pgbert export MODEL` (or `pgbert export --static MODEL`)")
    if model_kind == STATIC and version < STATIC_FORMAT_VERSION:
        raise BundleError(f"model bundle {path}: a static bundle needs format_version {STATIC_FORMAT_VERSION}, "
                          f"its manifest says {version}; re-export it with `pgbert export --static` or "
                          f"`pgbert import-vectors`")
    return model_kind


def _check_static(bundle: Bundle) -> None:
    """What a static bundle's manifest must hold besides the common fields (TypeError/ValueError: incomplete)."""
    for name in ("tokenizer.json", MODEL_KINDS[STATIC]):
        if name not in bundle.files:
            raise ValueError(f"files lacks {name}")
    if bundle.pooling != "mean":
        raise ValueError(f"a static model averages its tokens' vectors: pooling must be 'mean', not "
                         f"{bundle.pooling!r}")
    unknown = bundle.manifest.get("unk_token_ids", [])
    if not isinstance(unknown, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in unknown):
        raise TypeError(f"unk_token_ids must be a list of token ids, not {unknown!r}")
    if bundle.max_tokens < 1:
        raise ValueError(f"max_tokens must be at least 1, not {bundle.max_tokens}")
    max_chars = bundle.manifest.get("max_chars")
    if max_chars is not None and not (isinstance(max_chars, int) and max_chars >= 1):
        raise ValueError(f"max_chars must be a number of characters above 0, not {max_chars!r}")


def _prompts(prompts) -> dict[str, str]:
    """Bundle fields from the manifest's {"query": ..., "document": ...}; no object (older bundles) or a
    missing or null entry means no prompt."""
    if prompts is None:
        prompts = {}
    if not isinstance(prompts, dict):
        raise TypeError(f"prompts must be an object, not {type(prompts).__name__}")
    fields = {}
    for kind in KINDS:
        value = prompts.get(kind)
        if value is None:
            value = ""
        elif not isinstance(value, str):
            raise TypeError(f"prompts.{kind} must be a string, not {type(value).__name__}")
        fields[f"{kind}_prompt"] = value
    return fields
