"""bench/models.py's quick mode runs in the tests, so the benchmark never rots (timings are not judged here): the
tiny BERT as the transformer, its model2vec distillation and gensim's Word2Vec test file, both made by the bench."""
import os
import re
import shutil
import subprocess
import sys

import pytest

from helpers import CLUSTER, ROOT, TEST_BUNDLES

pytestmark = pytest.mark.slow  # parses the Debian corpus and distils a model: `make test`, not `make check`

LABELS = ("transformer", "static (model2vec)", "Word2Vec")


def rows_of(table: str, heading: str) -> dict[str, list[str]]:
    """The rows of the section under heading: {model label: its cells after the label}."""
    section = table.split(heading, 1)[1].split("\n## ", 1)[0]
    return {cells[0]: cells[1:] for cells in (
        [c.strip() for c in line.strip("|").split("|")] for line in section.splitlines()
        if line.startswith("| ") and not line.startswith("| model"))}


def number(cell: str) -> float:
    return float(re.sub(r"[,×]", "", cell))


def test_quick_models_benchmark_writes_every_row(conn, tiny_bundle, tmp_path):
    static_bundle = os.path.join(TEST_BUNDLES, "bench-models-static")
    vectors_bundle = os.path.join(TEST_BUNDLES, "bench-models-word2vec")
    for folder in (static_bundle, vectors_bundle):  # the bench makes them: its export and import run too
        shutil.rmtree(folder, ignore_errors=True)
    output = tmp_path / "RESULTS-models.md"
    out = subprocess.run([sys.executable, "bench/models.py", "--quick", "--url", CLUSTER.url(conn.info.dbname),
                          "--static-model", os.path.join(TEST_BUNDLES, "src", "tiny-bert"),
                          "--static-bundle", static_bundle, "--vectors-bundle", vectors_bundle,
                          "--output", str(output)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    table = output.read_text()
    print(table)
    assert "CPU: " in table and "2,747 words x 10 dimensions" in table and "Target: " in table

    speed = rows_of(table, "## 1. Speed")
    assert set(speed) == set(LABELS), table
    for label, cells in speed.items():
        rows, copy_rate, batch_rate = number(cells[1]), number(cells[3]), number(cells[5])
        assert rows == (20 if label == "transformer" else 200) and copy_rate > 0 and batch_rate > 0, (label, cells)
    assert number(speed["transformer"][4]) == 1.0  # the ratios are to the transformer

    search = rows_of(table, "## 2. Search")
    assert set(search) == set(LABELS), table
    for label, cells in search.items():
        recall, mrr, exact_recall, exact_mrr = (number(c) for c in cells[1:5])
        assert 0 <= mrr <= recall <= 1 and 0 <= exact_mrr <= exact_recall <= 1, (label, cells)
        assert 0 <= int(cells[5]) <= 15 and 0 <= int(cells[6]) <= 60, (label, cells)

    lee = rows_of(table, "## 3. Similarity")
    assert set(lee) == set(LABELS), table
    for label, cells in lee.items():
        assert -1 <= number(cells[1]) <= 1 and -1 <= number(cells[2]) <= 1, (label, cells)
    # Word2Vec vectors trained on the Lee background corpus agree with the human ratings (0.22 measured); vectors
    # paired with the wrong documents, or the wrong half of the rating matrix, would not.
    assert number(lee["Word2Vec"][1]) > 0.15, lee

    # The run dropped its tables and the models it registered.
    assert conn.execute("SELECT array_agg(name::text) FROM pgbert.models").fetchone()[0] == ["tiny-bert"]
    assert conn.execute("SELECT count(*) FROM pg_tables WHERE tablename LIKE 'bench_models%'").fetchone()[0] == 0
