"""Helpers shared by the benchmark scripts (which run on the database host)."""
from __future__ import annotations

import os
import sys

# The scripts run from a checkout: make the `pgbert` command's package importable.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "cli"))


def rss_mb(pid: int) -> float:
    """Resident memory of a server backend, from /proc."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")
