"""Many backends, one model: memory, first call and throughput as connections grow: bench/RESULTS-backends.md.

  .venv/bin/python bench/backends.py [--url URL] [--seconds 10]

For 1, 2, 4 and 8 connections that each called embed(): the total PSS of their backends (from
/proc/<pid>/smaps_rollup: shared pages count once, split among sharers), the first embed() in each new
connection, and the aggregate throughput of as many clients calling embed_batch() at once. Default engine;
the header names the CPU and the flags every engine choice depends on.
"""
from __future__ import annotations

import argparse
import os
import threading
import time

from _common import connect, cpu_summary  # noqa: E402  (puts cli/ on sys.path)
from pgbert.cluster import Cluster  # noqa: E402

TEXTS = ["Debian package descriptions make a fine corpus for semantic search inside PostgreSQL " * 3] * 32


def pss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def throughput(conns, seconds: float) -> float:
    """Texts/s of all connections calling embed_batch() at once."""
    done, stop = [0] * len(conns), time.perf_counter() + seconds

    def work(i, conn):
        cur = conn.cursor()
        while time.perf_counter() < stop:
            cur.execute("SELECT cardinality(embed_batch(%s))", (TEXTS,))
            done[i] += len(TEXTS)

    threads = [threading.Thread(target=work, args=(i, c)) for i, c in enumerate(conns)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(done) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--output", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                         "RESULTS-backends.md"))
    args = parser.parse_args()
    url = args.url or Cluster().url()
    conns, firsts = [], []
    lines = ["# Backends: memory, first call, throughput", "", cpu_summary(), "",
             "| backends | total PSS MB | PSS per backend MB | first embed() s (newest) | texts/s, all at once | × 1 |",
             "|---|---|---|---|---|---|"]
    base = None
    for n in (1, 2, 4, 8):
        while len(conns) < n:
            conn = connect(url)
            started = time.perf_counter()
            conn.cursor().execute("SELECT embed('first call')")
            firsts.append(time.perf_counter() - started)
            conns.append(conn)
        pids = [c.get_backend_pid() for c in conns]
        rate = throughput(conns, args.seconds)
        base = base or rate
        total = sum(pss_mb(p) for p in pids)
        lines.append(f"| {n} | {total:.0f} | {total / n:.0f} | {firsts[-1]:.2f} | {rate:.1f} | {rate / base:.2f}× |")
        print(lines[-1], flush=True)
    for c in conns:
        c.close()
    with open(args.output, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
