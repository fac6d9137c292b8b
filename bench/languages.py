"""Search quality and latency by language and mode: bench/RESULTS-languages.md (part of `make bench`).

  .venv/bin/python bench/languages.py [--url URL] [--docs 1000] [--queries 200] [--seed 0]

For English and Japanese Debian package descriptions (Translation-en / Translation-ja, a seeded sample of
documents and of their one-line summaries as queries, the right answer being the summary's own package),
a table is loaded through pgbert's triggers (lexical => 'english' / 'japanese') and every query is run by
search() in each mode: recall@10, MRR@10, and latency p50/p95, side by side in one run, on the active model.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

from _common import connect, copy_buffer, cpu_summary, metrics, rank_of, sample  # noqa: E402  (puts cli/ on sys.path)
from pgbert.cluster import Cluster  # noqa: E402
from pgbert.corpus import load_packages  # noqa: E402

LANGUAGES = [("English", "en", "english"), ("Japanese", "ja", "japanese")]
MODES = ("vector", "lexical", "hybrid")


def run_language(cur, name: str, code: str, config: str, args) -> list[str]:
    docs, queries = sample(load_packages(code, echo=lambda *_: None), args.docs, args.queries, args.seed)
    table = f"bench_lang_{code}"
    cur.execute(f"DROP TABLE IF EXISTS {table}")
    cur.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, body text)")
    cur.execute(f"CALL pgbert.enable_embedding('{table}', 'body', lexical => %s)", (config,))
    started = time.perf_counter()
    cur.copy_expert(f"COPY {table} (id, body) FROM STDIN", copy_buffer(enumerate(docs)))
    load = len(docs) / (time.perf_counter() - started)
    cur.execute(f"ANALYZE {table}")
    print(f"{name}: {len(docs)} documents loaded at {load:.1f} rows/s", flush=True)
    ranks = {mode: [] for mode in MODES}
    times = {mode: [] for mode in MODES}
    for query, target in queries:
        for mode in MODES:  # interleaved, so that noise on this shared machine hits every mode alike
            started = time.perf_counter()
            cur.execute("SELECT id FROM search(%s, 10, %s, %s)", (query, table, mode))
            times[mode].append((time.perf_counter() - started) * 1000)
            ranks[mode].append(rank_of(target, [int(r[0]) for r in cur.fetchall()]))
    rows = []
    for mode in MODES:
        recall, mrr = metrics(ranks[mode])
        p50, p95 = np.percentile(times[mode], 50), np.percentile(times[mode], 95)
        ratio = p50 / np.percentile(times["vector"], 50)
        rows.append(f"| {name} | {mode} | {recall:.3f} | {mrr:.3f} | {p50:.1f} | {p95:.1f} | {ratio:.2f}× |")
        print(rows[-1], flush=True)
    cur.execute(f"DROP TABLE {table}")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url")
    parser.add_argument("--docs", type=int, default=1000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                         "RESULTS-languages.md"))
    args = parser.parse_args()
    conn = connect(args.url or Cluster().url())
    cur = conn.cursor()
    cur.execute("SELECT name, model_id FROM pgbert.active_model")
    model = cur.fetchone()
    cur.execute("SELECT string_agg(name || ' = ' || value, ', ' ORDER BY name) FROM pgbert.settings "
                "WHERE name LIKE 'hybrid%'")
    settings = cur.fetchone()[0]
    cur.execute("SELECT embed('warm up')")
    lines = ["# Search by language and mode", "", cpu_summary(), "",
             f"Model {model[1]}; {args.docs} documents and {args.queries} summary queries per language (seed "
             f"{args.seed}), Debian package descriptions; one run, modes interleaved. {settings}.", "",
             "| language | mode | recall@10 | MRR@10 | p50 ms | p95 ms | p50 / vector p50 |",
             "|---|---|---|---|---|---|---|"]
    for name, code, config in LANGUAGES:
        lines += run_language(cur, name, code, config, args)
    with open(args.output, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
