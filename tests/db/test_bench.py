"""The benchmark's quick mode runs in the tests, so the benchmark never rots."""
import os
import subprocess
import sys

import pytest

from helpers import CLUSTER, ROOT, TEST_BUNDLES

pytestmark = pytest.mark.slow  # real weights / long runs: `make test`, not `make check`


def test_quick_benchmark_writes_table_and_plot(conn, tiny_bundle, tmp_path):
    out = subprocess.run([sys.executable, "bench/run.py", "--quick", "--url", CLUSTER.url(conn.info.dbname),
                          "--bundle", tiny_bundle, "--model-dir", os.path.join(TEST_BUNDLES, "src", "tiny-bert"),
                          "--output-dir", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    table = (tmp_path / "RESULTS.md").read_text()
    for measure in ("1 baseline", "2 ceiling [onnxruntime-fp32]", "3 in-db [onnxruntime-fp32]: COPY",
                    "search() p50", "first embed()", "recall@10, HNSW",
                    "[onnxruntime-fp32] cosine to PyTorch fp32, min"):
        assert measure in table, measure
    assert (tmp_path / "results.png").stat().st_size > 10_000
    min_cosine = float(table.split("[onnxruntime-fp32] cosine to PyTorch fp32, min")[1].split("|")[1])
    assert min_cosine >= 0.9999
