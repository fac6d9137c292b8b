import numpy as np
import pytest

from pgbert_runtime import cls_pool, l2_normalize, mean_pool, to_pgvector


def test_mean_pool_ignores_padding():
    hidden = np.array([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]], dtype=np.float32)
    mask = np.array([[1, 1, 0]])
    np.testing.assert_allclose(mean_pool(hidden, mask), [[2.0, 3.0]])


def test_mean_pool_all_masked_row_is_zero_not_nan():
    hidden = np.ones((1, 2, 3), dtype=np.float32)
    assert np.all(mean_pool(hidden, np.zeros((1, 2))) == 0)


def test_cls_pool_takes_first_token():
    hidden = np.arange(12, dtype=np.float32).reshape(2, 2, 3)
    np.testing.assert_array_equal(cls_pool(hidden), [[0, 1, 2], [6, 7, 8]])


def test_l2_normalize_unit_rows_and_zero_row():
    out = l2_normalize(np.array([[3.0, 4.0], [0.0, 0.0]], dtype=np.float32))
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0]])


@pytest.mark.parametrize("seed", range(3))
def test_pgvector_text_round_trips_float32_exactly(seed):
    vector = np.random.default_rng(seed).standard_normal(384).astype(np.float32)
    text = to_pgvector(vector)
    assert text.startswith("[") and text.endswith("]")
    parsed = np.array([float(x) for x in text[1:-1].split(",")], dtype=np.float32)
    np.testing.assert_array_equal(parsed, vector)
