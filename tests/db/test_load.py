"""The load test's short version: inserting and searching clients at once, no errors, every row embedded."""
import subprocess
import sys

import pytest

from helpers import CLUSTER, ROOT

pytestmark = pytest.mark.slow  # real weights / long runs: `make test`, not `make check`


def test_short_load_run(conn):
    out = subprocess.run([sys.executable, "bench/load.py", "--inserters", "3", "--searchers", "3",
                          "--seconds", "4", "--url", CLUSTER.url(conn.info.dbname)],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "| errors | 0 |" in out.stdout
    inserted = int(out.stdout.split("| inserts | ")[1].split()[0])
    assert inserted > 0
