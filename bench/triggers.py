"""Auto-embedding strategies side by side, in one run, on the same model and rows.

  .venv/bin/python bench/triggers.py [--short 2000] [--long 300]

Short texts: Debian package summaries of at most 16 tokens; long: their descriptions (~100 tokens).
Each strategy loads the same rows into a fresh table of the local cluster's database (active model):
  one-row-at-a-time  one INSERT statement per row (autocommit), row trigger: per-row model calls
  row / INSERT…SELECT, row / COPY       BEFORE ROW trigger: one model call per row, inside one statement
  batch / INSERT…SELECT, batch / COPY   pgbert's default: statement trigger, length-sorted batched calls
Writes bench/RESULTS-triggers.md.
"""
from __future__ import annotations

import argparse
import os
import sys

from _common import connect, load_rate, short_summaries  # noqa: E402  (also puts cli/ on sys.path)
from pgbert.cluster import Cluster  # noqa: E402
from pgbert.corpus import load_packages  # noqa: E402
from pgbert.paths import ROOT, Paths  # noqa: E402

CASES = [("row", "one-row-at-a-time"), ("row", "INSERT…SELECT"), ("row", "COPY"),
         ("batch", "INSERT…SELECT"), ("batch", "COPY")]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--short", type=int, default=2000)
    parser.add_argument("--long", type=int, default=300)
    parser.add_argument("--output", default=os.path.join(ROOT, "bench", "RESULTS-triggers.md"))
    args = parser.parse_args()
    conn = connect(Cluster().url())
    cur = conn.cursor()
    cur.execute("SELECT name FROM pgbert.models WHERE active")
    model = cur.fetchone()[0]
    results = {}
    packages = load_packages(echo=lambda *_: None)
    short = short_summaries(packages, Paths.default().bundle())
    if len(short) < args.short:
        raise SystemExit(f"only {len(short)} short texts found")
    long_ = [p.description for p in packages[:args.long]]
    for label, texts in (("short (≤16 tokens)", short[:args.short]), ("long (descriptions)", long_)):
        for strategy, method in CASES:
            rate = load_rate(cur, texts, method, strategy)
            results[(label, strategy, method)] = rate
            print(f"{label:20} {strategy:6} {method:18} {rate:8.1f} rows/s", flush=True)
    lines = [f"# Auto-embedding strategies ({model}, {os.cpu_count()} CPUs, one run)", "",
             f"Rows: {args.short} short texts, {args.long} long texts. "
             "Ratios are to one-row-at-a-time on the same texts.", "",
             "| texts | strategy | load | rows/s | × one-row-at-a-time |", "|---|---|---|---|---|"]
    for (label, strategy, method), rate in results.items():
        base = results[(label, "row", "one-row-at-a-time")]
        lines.append(f"| {label} | {strategy} | {method} | {rate:.1f} | {rate / base:.2f}× |")
    with open(args.output, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
