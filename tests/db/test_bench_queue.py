"""The queue benchmark's quick mode runs in the tests, so the benchmark never rots (timings are not judged here)."""
import os
import subprocess
import sys

import pytest

from helpers import CLUSTER, ROOT

pytestmark = pytest.mark.slow  # builds a standby with pg_basebackup: `make test`, not `make check`

MEASURES = ("one-row INSERT commit latency, median ms", "one-row INSERT commit latency, p95 ms", "COPY 40 rows",
            "drain, rows/s: 1 worker", "drain, rows/s: 2 workers", "commit to vector, idle worker, p95 ms",
            "primary CPU ms per embedded row")


@pytest.mark.parametrize("worker", ["sql", "cli"])
def test_quick_queue_benchmark_writes_its_table(conn, tmp_path, worker):
    if worker == "cli" and subprocess.run([os.path.join(ROOT, ".venv", "bin", "pgbert"), "worker", "--help"],
                                          capture_output=True).returncode != 0:
        pytest.skip("no `pgbert worker` in this checkout")
    output = tmp_path / "RESULTS-queue.md"
    out = subprocess.run([sys.executable, "bench/embedding_queue.py", "--quick", "--worker", worker,
                          "--url", CLUSTER.url(conn.info.dbname), "--output", str(output)],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    table = output.read_text()
    print(table)
    assert "| measure | queue | batch (or local) | ratio | target | met? |" in table and "CPU: " in table
    rows = {line.split(" | ")[0].lstrip("| "): line.split(" | ")[1:] for line in table.splitlines()
            if line.startswith("| ") and not line.startswith("| measure")}
    for measure in MEASURES:
        found = [cells for name, cells in rows.items() if name.startswith(measure)]
        assert found, measure
        assert float(found[0][0]) > 0, (measure, table)  # the queue column holds a number
    # Every queued row was embedded (the script checks each table) and the bench left nothing behind.
    assert conn.execute("SELECT count(*) FROM pgbert.embedding_queue").fetchone() == (0,)
    assert conn.execute("SELECT to_regclass('bench_queue_queue'), to_regclass('bench_queue_batch')").fetchone() \
        == (None, None)
