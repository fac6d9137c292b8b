"""Pooling and normalisation, matching sentence-transformers' Pooling and Normalize modules."""
import numpy as np


def mean_pool(hidden: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
    """Mean of the token vectors that the attention mask keeps (padding excluded)."""
    mask = attention_mask.astype(hidden.dtype)[:, :, None]
    summed = (hidden * mask).sum(axis=1)
    # sentence-transformers clamps the token count at 1e-9; an all-masked row gives zeros, not NaN.
    return summed / np.clip(mask.sum(axis=1), 1e-9, None)


def cls_pool(hidden: np.ndarray, attention_mask: np.ndarray | None = None) -> np.ndarray:
    """The first token's vector ([CLS] for BERT, <s> for RoBERTa/XLM-R)."""
    return hidden[:, 0, :]


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    """Unit length rows; a zero row stays zero (torch.nn.functional.normalize uses eps=1e-12)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


POOLERS = {"mean": mean_pool, "cls": cls_pool}
