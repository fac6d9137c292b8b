"""The query ORMs write for vector search, `ORDER BY embedding <=> embed('...') LIMIT 5`, against one embed()
plus one index scan: bench/RESULTS-orm.md.

  .venv/bin/python bench/orm_query.py [--url URL] [--queries 20]

SQLAlchemy (`order_by(Doc.embedding.cosine_distance(func.embed(q)))`) and Django generate this SQL; under a
sequential scan (small tables, filtered queries) embed() runs once per row unless its result is cached.
Tables of 200 and 20,000 rows (vectors given by the client: the point is the plan, not the text), each query
text new (nothing cached from an earlier query), with and without a WHERE filter; one run.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

from _common import connect, cpu_summary  # noqa: E402  (puts cli/ on sys.path)
from pgbert.cluster import Cluster  # noqa: E402


def timed(cur, sql, args=()):
    started = time.perf_counter()
    cur.execute(sql, args)
    rows = cur.fetchall()
    return (time.perf_counter() - started) * 1000, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url")
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--output", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "RESULTS-orm.md"))
    args = parser.parse_args()
    conn = connect(args.url or Cluster().url())
    cur = conn.cursor()
    cur.execute("SELECT dimension FROM pgbert.active_model")
    dim = cur.fetchone()[0]
    cur.execute("SELECT embed('warm up')")
    lines = ["# The ORM query: ORDER BY embedding <=> embed('...')", "", cpu_summary(), "",
             "| rows | query | p50 ms | × (embed() + index scan) p50 |", "|---|---|---|---|"]
    for rows in (200, 20000):
        cur.execute("DROP TABLE IF EXISTS bench_orm")
        cur.execute(f"CREATE TABLE bench_orm (id int PRIMARY KEY, section int, body text, embedding vector({dim}))")
        cur.execute(f"INSERT INTO bench_orm SELECT g, g % 10, 'row ' || g, "
                    f"(SELECT array_agg(random() - 0.5) FROM generate_series(1, {dim}) WHERE g > 0)::vector "
                    f"FROM generate_series(1, {rows}) g")
        cur.execute("CREATE INDEX ON bench_orm USING hnsw (embedding vector_cosine_ops)")
        cur.execute("ANALYZE bench_orm")
        times = {"parts": [], "orm": [], "orm + WHERE": []}
        for i in range(args.queries):
            query = f"compress files number {rows}-{i}"
            t_embed, vec = timed(cur, "SELECT embed(%s)::text", (query + " (parts)",))
            t_scan, _ = timed(cur, "SELECT id FROM bench_orm ORDER BY embedding <=> %s::vector LIMIT 5", (vec[0][0],))
            times["parts"].append(t_embed + t_scan)
            times["orm"].append(timed(cur, "SELECT id FROM bench_orm ORDER BY embedding <=> embed(%s) LIMIT 5",
                                      (query,))[0])
            times["orm + WHERE"].append(timed(cur, "SELECT id FROM bench_orm WHERE section = 3 "
                                                   "ORDER BY embedding <=> embed(%s) LIMIT 5", (query + " w",))[0])
        parts = np.percentile(times["parts"], 50)
        for name in ("orm", "orm + WHERE"):
            p50 = np.percentile(times[name], 50)
            lines.append(f"| {rows} | {name} | {p50:.1f} | {p50 / parts:.2f}× |")
            print(lines[-1], flush=True)
        lines.append(f"| {rows} | embed() + index scan | {parts:.1f} | 1.00× |")
        print(lines[-1], flush=True)
    cur.execute("DROP TABLE bench_orm")
    with open(args.output, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
