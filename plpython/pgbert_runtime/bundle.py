"""A model bundle: model.onnx + tokenizer.json + manifest.json, as written by `pgbert export`."""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field

MANIFEST = "manifest.json"
FORMAT_VERSION = 1
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
        """The characters of a text that are ever tokenized (see MAX_CHARS_PER_TOKEN): the rest can be dropped."""
        return self.max_tokens * MAX_CHARS_PER_TOKEN

    @property
    def onnx_path(self) -> str:
        return os.path.join(self.path, "model.onnx")

    @property
    def tokenizer_path(self) -> str:
        return os.path.join(self.path, "tokenizer.json")

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
    nothing more (the path is the absolute one registered in pgbert.models)."""
    stats = []
    for name in (MANIFEST, "model.onnx", "tokenizer.json"):
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
        if manifest.get("format_version") != FORMAT_VERSION:
            raise BundleError(f"model bundle {path}: format_version {manifest.get('format_version')!r}, "
                              f"this pgbert reads {FORMAT_VERSION}; re-export the model")
        bundle = Bundle(
            path=path,
            model_id=str(manifest["model_id"]),
            dimension=int(manifest["dimension"]),
            pooling=str(manifest["pooling"]),
            normalize=bool(manifest["normalize"]),
            max_tokens=int(manifest["max_tokens"]),
            files=dict(manifest["files"]),
            manifest=manifest,
            **_prompts(manifest.get("prompts")),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"model bundle {path}: {MANIFEST} is incomplete ({exc!r}); re-export the model") from None
    if bundle.pooling not in ("mean", "cls"):
        raise BundleError(f"model bundle {path}: unknown pooling {bundle.pooling!r}")
    bundle.verify()
    return bundle


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
