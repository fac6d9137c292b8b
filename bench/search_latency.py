"""search() latency next to its parts, on the local cluster's active model, in one run.

  .venv/bin/python bench/search_latency.py [--rows 5000] [--queries 100]

Loads ROWS Debian package summaries into a fresh auto-embedding table (COPY), then times, per query:
search(query, 10, table); embed(query) alone; the index scan alone with a precomputed vector.
"""
from __future__ import annotations

import argparse
import io
import os
import sys
import time

import numpy as np
import psycopg2

from _common import rss_mb  # noqa: E402,F401  (also puts cli/ on sys.path)
from pgbert.cluster import Cluster  # noqa: E402
from pgbert.corpus import load_packages  # noqa: E402


def timed(cur, sql, args=()) -> float:
    started = time.perf_counter()
    cur.execute(sql, args)
    cur.fetchall()
    return (time.perf_counter() - started) * 1000


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--queries", type=int, default=100)
    args = parser.parse_args()
    packages = load_packages(echo=lambda *_: None)
    conn = psycopg2.connect(Cluster().url())
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute("DROP TABLE IF EXISTS bench_search")
    cur.execute("CREATE TABLE bench_search (id int PRIMARY KEY, body text)")
    cur.execute("CALL pgbert.enable_embedding('bench_search', 'body')")
    started = time.perf_counter()
    buf = io.StringIO("".join(f"{i}\t{p.summary.replace(chr(9), ' ').replace(chr(92), '/')}\n"
                              for i, p in enumerate(packages[:args.rows])))
    cur.copy_expert("COPY bench_search (id, body) FROM STDIN", buf)
    print(f"loaded {args.rows} rows in {time.perf_counter() - started:.1f}s", flush=True)
    queries = [p.description.split(". ")[0] for p in packages[args.rows:args.rows + args.queries]]
    timings = {"search()": [], "embed()": [], "index scan": []}
    cur.execute("SELECT embed('warm up')")
    for q in queries:
        timings["search()"].append(timed(cur, "SELECT * FROM search(%s, 10, 'bench_search')", (q,)))
        timings["embed()"].append(timed(cur, "SELECT embed(%s)::text", (q,)))
        cur.execute("SELECT embed(%s)::text", (q,))
        vector = cur.fetchone()[0]
        timings["index scan"].append(timed(
            cur, "SELECT id, body FROM bench_search ORDER BY body_embedding <=> %s::vector LIMIT 10", (vector,)))
    for name, values in timings.items():
        print(f"{name:12} p50 {np.percentile(values, 50):7.2f} ms   p95 {np.percentile(values, 95):7.2f} ms")
    parts = np.array(timings["embed()"]) + np.array(timings["index scan"])
    print(f"search() p50 / (embed() + index scan) p50 = "
          f"{np.percentile(timings['search()'], 50) / np.percentile(parts, 50):.2f}")
    cur.execute("CALL pgbert.disable_embedding('bench_search')")
    cur.execute("DROP TABLE bench_search")
    return 0


if __name__ == "__main__":
    sys.exit(main())
