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
import io
import os
import sys
import time

import psycopg2

from _common import rss_mb  # noqa: E402,F401  (also puts cli/ on sys.path)
from pgbert.cluster import Cluster  # noqa: E402
from pgbert.corpus import load_packages  # noqa: E402
from pgbert.paths import ROOT, Paths  # noqa: E402


def short_texts(n: int) -> list[str]:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(os.path.join(Paths.default().bundle(), "tokenizer.json"))
    tok.no_padding()  # the saved tokenizer may pad to the model's maximum
    out = [p.summary for p in load_packages(echo=lambda *_: None)
           if len(tok.encode(p.summary).ids) <= 16]
    if len(out) < n:
        raise SystemExit(f"only {len(out)} short texts found")
    return out[:n]


def long_texts(n: int) -> list[str]:
    return [p.description for p in load_packages(echo=lambda *_: None)[:n]]


def run_case(cur, strategy: str, method: str, texts: list[str]) -> float:
    cur.execute("DROP TABLE IF EXISTS bench_docs")
    cur.execute("CREATE TABLE bench_docs (id bigserial PRIMARY KEY, body text)")
    cur.execute("CALL pgbert.enable_embedding('bench_docs', 'body', strategy => %s, build_index => false)", (strategy,))
    cur.execute("SELECT embed('warm up')")
    started = time.perf_counter()
    if method == "one-row-at-a-time":
        for text in texts:
            cur.execute("INSERT INTO bench_docs (body) VALUES (%s)", (text,))
    elif method == "INSERT…SELECT":
        cur.execute("INSERT INTO bench_docs (body) SELECT unnest(%s::text[])", (texts,))
    elif method == "COPY":
        buf = io.StringIO("".join(t.replace("\\", "\\\\").replace("\t", " ").replace("\n", " ") + "\n" for t in texts))
        cur.copy_expert("COPY bench_docs (body) FROM STDIN", buf)
    elapsed = time.perf_counter() - started
    cur.execute("SELECT count(*) FILTER (WHERE body_embedding IS NULL) FROM bench_docs")
    assert cur.fetchone()[0] == 0, "rows left without a vector"
    cur.execute("CALL pgbert.disable_embedding('bench_docs')")
    cur.execute("DROP TABLE bench_docs")
    return len(texts) / elapsed


CASES = [("row", "one-row-at-a-time"), ("row", "INSERT…SELECT"), ("row", "COPY"),
         ("batch", "INSERT…SELECT"), ("batch", "COPY")]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--short", type=int, default=2000)
    parser.add_argument("--long", type=int, default=300)
    parser.add_argument("--output", default=os.path.join(ROOT, "bench", "RESULTS-triggers.md"))
    args = parser.parse_args()
    conn = psycopg2.connect(Cluster().url())
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute("SELECT name FROM pgbert.models WHERE active")
    model = cur.fetchone()[0]
    results = {}
    for label, texts in (("short (≤16 tokens)", short_texts(args.short)), ("long (descriptions)", long_texts(args.long))):
        for strategy, method in CASES:
            rate = run_case(cur, strategy, method, texts)
            results[(label, strategy, method)] = rate
            print(f"{label:20} {strategy:6} {method:18} {rate:8.1f} rows/s", flush=True)
    lines = [f"# Auto-embedding strategies ({model}, {os.cpu_count()} CPUs, one run)", "",
             f"Rows: {args.short} short texts, {args.long} long texts. Ratios are to one-row-at-a-time on the same texts.", "",
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
