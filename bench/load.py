"""Load test: inserting clients and searching clients at once, against an auto-embedding table.

  .venv/bin/python bench/load.py [--inserters 8] [--searchers 8] [--seconds 60] [--url URL] [--output FILE]

Each inserter sends one-row INSERTs (the row embeds itself in its transaction); each searcher calls
search(). Reports transactions/s, errors, rows inserted vs rows embedded, and the resident memory of the
client backends after warm-up and at the end. Exits non-zero on any error or any row left without a vector.
"""
from __future__ import annotations

import argparse
import csv
import os
import sys
import threading
import time

import psycopg2

from _common import rss_mb  # noqa: E402,F401  (also puts cli/ on sys.path)
from pgbert.cluster import Cluster  # noqa: E402
from pgbert.paths import ROOT  # noqa: E402

TABLE = "pgbert_load_test"


def sample_texts() -> list[str]:
    with open(os.path.join(ROOT, "demo", "debian-packages-sample.tsv"), encoding="utf-8") as f:
        return [row["summary"] for row in csv.DictReader(f, delimiter="\t")]



class Client(threading.Thread):
    def __init__(self, url: str, kind: str, texts: list[str], index: int):
        super().__init__(daemon=True)
        self.conn = psycopg2.connect(url)
        self.conn.autocommit = True
        self.pid = self.conn.get_backend_pid()
        self.kind, self.texts, self.index = kind, texts, index
        self.done = self.errors = 0
        self.error_samples: list[str] = []
        self.stop = threading.Event()
        self.go = threading.Event()

    def run(self) -> None:
        cur = self.conn.cursor()
        cur.execute("SELECT embed('warm up')")  # model load happens here, before the clock starts
        self.ready = True
        self.go.wait()
        i = self.index
        while not self.stop.is_set():
            text = self.texts[i % len(self.texts)]
            try:
                if self.kind == "insert":
                    cur.execute(f"INSERT INTO {TABLE} (body) VALUES (%s)", (f"{text} #{i}",))
                else:
                    cur.execute(f"SELECT id FROM search(%s, 10, '{TABLE}')", (text,))
                    cur.fetchall()
                self.done += 1
            except psycopg2.Error as exc:
                self.errors += 1
                if len(self.error_samples) < 3:
                    self.error_samples.append(str(exc).strip())
            i += 17


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--inserters", type=int, default=8)
    parser.add_argument("--searchers", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--url", default=None, help="database URL (default: the local cluster)")
    parser.add_argument("--output", help="also write the results table (markdown) here")
    args = parser.parse_args()
    url = args.url or Cluster().url()

    setup = psycopg2.connect(url)
    setup.autocommit = True
    cur = setup.cursor()
    cur.execute(f"DROP TABLE IF EXISTS {TABLE}")
    cur.execute(f"CREATE TABLE {TABLE} (id bigserial PRIMARY KEY, body text)")
    cur.execute(f"CALL pgbert.enable_embedding('{TABLE}', 'body')")
    texts = sample_texts()
    cur.execute(f"INSERT INTO {TABLE} (body) SELECT unnest(%s::text[])", (texts[:50],))  # something to find

    clients = [Client(url, "insert", texts, i) for i in range(args.inserters)]
    clients += [Client(url, "search", texts, i) for i in range(args.searchers)]
    print(f"{args.inserters} inserting + {args.searchers} searching clients, {args.seconds:.0f}s; loading the model "
          f"in every backend...", flush=True)
    for c in clients:
        c.ready = False
        c.start()
    while not all(c.ready for c in clients):
        time.sleep(0.1)
    started = time.perf_counter()
    for c in clients:
        c.go.set()
    time.sleep(args.seconds * 0.25)
    rss_warm = {c.pid: rss_mb(c.pid) for c in clients}
    time.sleep(max(0.0, args.seconds - (time.perf_counter() - started)))
    rss_end = {c.pid: rss_mb(c.pid) for c in clients}
    for c in clients:
        c.stop.set()
    for c in clients:
        c.join(120)
    elapsed = time.perf_counter() - started

    inserts = sum(c.done for c in clients if c.kind == "insert")
    searches = sum(c.done for c in clients if c.kind == "search")
    errors = sum(c.errors for c in clients)
    cur.execute(f"SELECT count(*), count(body_embedding) FROM {TABLE}")
    rows, embedded = cur.fetchone()
    growth = [rss_end[p] - rss_warm[p] for p in rss_warm]
    lines = [
        "| measure | value |", "|---|---|",
        f"| clients | {args.inserters} inserting, {args.searchers} searching, {elapsed:.0f} s |",
        f"| inserts | {inserts} ({inserts / elapsed:.1f}/s) |",
        f"| searches | {searches} ({searches / elapsed:.1f}/s) |",
        f"| transactions | {(inserts + searches) / elapsed:.1f}/s |",
        f"| errors | {errors} |",
        f"| rows in table / with a vector | {rows} / {embedded} |",
        f"| backend RSS after warm-up (mean / max) | {sum(rss_warm.values()) / len(rss_warm):.0f} / "
        f"{max(rss_warm.values()):.0f} MB |",
        f"| backend RSS at the end (mean / max) | {sum(rss_end.values()) / len(rss_end):.0f} / "
        f"{max(rss_end.values()):.0f} MB |",
        f"| RSS growth after warm-up (mean / max) | {sum(growth) / len(growth):+.1f} / {max(growth):+.1f} MB |",
    ]
    print("\n".join(lines))
    for c in clients:
        for sample in c.error_samples:
            print(f"error ({c.kind}): {sample}", file=sys.stderr)
    if args.output:
        with open(args.output, "w") as f:
            cur.execute("SELECT name FROM pgbert.models WHERE active")
            f.write(f"# Load test ({cur.fetchone()[0]}, {os.cpu_count()} CPUs)\n\n" + "\n".join(lines) + "\n")
    cur.execute(f"CALL pgbert.disable_embedding('{TABLE}')")
    cur.execute(f"DROP TABLE {TABLE}")
    return 0 if errors == 0 and rows == embedded else 1


if __name__ == "__main__":
    sys.exit(main())
