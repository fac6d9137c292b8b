"""pgbert's in-database runtime: loads an exported model bundle and turns texts into vectors.

Imports only numpy, tokenizers and onnxruntime, so it runs inside PostgreSQL's PL/Python
interpreter and is unit-tested without a database.
"""
from .bundle import Bundle, BundleError, load_bundle
from .encoder import Encoder, get_encoder
from .pooling import cls_pool, l2_normalize, mean_pool
from .vectors import to_pgvector

__all__ = [
    "Bundle", "BundleError", "Encoder", "cls_pool", "get_encoder", "l2_normalize",
    "load_bundle", "mean_pool", "to_pgvector",
]
