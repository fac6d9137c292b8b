"""The README's demo: a sample of real Debian package descriptions, embedded by the database itself."""
from __future__ import annotations

import csv
import os
import time

import psycopg2

from .cluster import Cluster
from .paths import ROOT

SAMPLE = os.path.join(ROOT, "demo", "debian-packages-sample.tsv")
QUERIES = ["a game about ancient wars", "read and write spreadsheets", "tools for Japanese text input",
           "compress files"]


def run(cluster: Cluster) -> int:
    with open(SAMPLE, encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    conn = psycopg2.connect(cluster.url())
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM text_embeddings WHERE text = ANY(%s)",
                    ([r["description"] for r in rows],))
        if cur.fetchone()[0] < len(rows):
            print(f"loading {len(rows)} Debian package descriptions into text_embeddings "
                  f"(the database embeds them on INSERT)", flush=True)
            started = time.perf_counter()
            cur.execute("DELETE FROM text_embeddings WHERE text = ANY(%s)", ([r["description"] for r in rows],))
            cur.execute("INSERT INTO text_embeddings (text) SELECT unnest(%s::text[])",
                        ([r["description"] for r in rows],))
            elapsed = time.perf_counter() - started
            print(f"  {len(rows)} rows embedded in {elapsed:.1f}s ({len(rows) / elapsed:.1f} rows/s)")
        else:
            print(f"sample already loaded ({len(rows)} rows)")
        for query in QUERIES:
            cur.execute("SELECT id, left(text, 70), round(distance::numeric, 3) FROM search(%s, 3)", (query,))
            print(f"\nSELECT * FROM search('{query}', 3);")
            for row_id, text, distance in cur.fetchall():
                print(f"  {row_id:>5}  {distance}  {text}…")
    conn.close()
    print(f"\nThe cluster keeps running. Connect with:\n  psql \"{cluster.url()}\"\n"
          f"  (or: psql \"$(.venv/bin/pgbert db url)\")   stop it with: .venv/bin/pgbert db stop")
    return 0
