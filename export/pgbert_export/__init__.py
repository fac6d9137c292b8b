"""Export a Hugging Face encoder to a pgbert model bundle (ONNX + tokenizer.json + manifest)."""
from .export import ExportError, export_model
from .sources import OFFLINE_MODELS, resolve_model

__all__ = ["ExportError", "OFFLINE_MODELS", "export_model", "resolve_model"]
