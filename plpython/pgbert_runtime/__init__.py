"""pgbert's in-database runtime: loads an exported model bundle and turns texts into vectors.

Imports only numpy, tokenizers and onnxruntime, so it runs inside PostgreSQL's PL/Python
interpreter and is unit-tested without a database. Names are imported on first use: a backend
that embeds through the model host (host.py) never imports numpy, tokenizers or onnxruntime.
"""
import importlib

_WHERE = {
    "Bundle": "bundle", "BundleError": "bundle", "load_bundle": "bundle",
    "Encoder": "encoder", "get_encoder": "encoder",
    "cls_pool": "pooling", "l2_normalize": "pooling", "mean_pool": "pooling",
    "to_pgvector": "vectors",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'pgbert_runtime' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
