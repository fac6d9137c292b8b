"""How fast embedding work stops when cancelled, and what a huge text costs: bench/RESULTS-cancel.md.

  .venv/bin/python bench/cancel.py [--url URL] [--runs 20] [--output bench/RESULTS-cancel.md]

For embed_batch(), embed() over many rows and a trigger-driven INSERT of 2,000 long texts each, a second
connection calls pg_cancel_backend() after a random 0.3-2.0 s; the figure is the time from the cancel to the
error reaching the client. statement_timeout = 1s is measured the same way (time past the 1 s). Then the
peak memory (VmHWM) a backend adds to embed one 20 MB text.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import random
import threading
import time

import numpy as np
import psycopg2

from _common import connect, cpu_summary, proc_status_mb  # noqa: E402  (also puts cli/ on sys.path)
from pgbert.cluster import Cluster  # noqa: E402

LONG = "SELECT array_agg(repeat('word' || g || ' ', 400)) FROM generate_series(1, 2000) g"
STATEMENTS = {
    "embed_batch()": f"SELECT embed_batch(({LONG}))",
    "embed() per row": "SELECT count(embed(repeat('word' || g || ' ', 400))) FROM generate_series(1, 2000) g",
    "INSERT (triggers)": "INSERT INTO bench_cancel (body) SELECT repeat('word' || g || ' ', 400) "
                         "FROM generate_series(1, 2000) g",
}


def cancel_latency(url: str, statement: str, delay: float) -> float:
    worker, control = connect(url), connect(url)
    worker.cursor().execute("SELECT embed('warm up')")
    pid, done = worker.get_backend_pid(), {}

    def run():
        try:
            worker.cursor().execute(statement)
        except psycopg2.extensions.QueryCanceledError:
            done["at"] = time.perf_counter()

    thread = threading.Thread(target=run)
    thread.start()
    time.sleep(delay)
    cancelled = time.perf_counter()
    control.cursor().execute("SELECT pg_cancel_backend(%s)", (pid,))
    thread.join(120)
    worker.close()
    control.close()
    if "at" not in done:
        raise RuntimeError(f"not cancelled: {statement}")
    return done["at"] - cancelled


def timeout_overshoot(url: str, statement: str) -> float:
    conn = connect(url)
    cur = conn.cursor()
    cur.execute("SELECT embed('warm up')")
    cur.execute("SET statement_timeout = '1s'")
    started = time.perf_counter()
    with contextlib.suppress(psycopg2.extensions.QueryCanceledError):
        cur.execute(statement)
    conn.close()
    return time.perf_counter() - started - 1.0


def huge_text_memory(url: str, megabytes: int) -> tuple[float, float]:
    conn = connect(url)
    cur = conn.cursor()
    pid = conn.get_backend_pid()
    cur.execute("SELECT embed('warm up'), embed_batch(ARRAY[repeat('warm up ', 500), 'x'])")
    before = proc_status_mb(pid, "VmHWM")
    started = time.perf_counter()
    cur.execute("SELECT vector_dims(embed(repeat('All work and no play makes Jack a dull boy. ', %s)))",
                (megabytes * 1024 * 1024 // 44,))
    seconds = time.perf_counter() - started
    after = proc_status_mb(pid, "VmHWM")
    conn.close()
    return after - before, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--output", default=os.path.join(os.path.dirname(__file__), "RESULTS-cancel.md"))
    args = parser.parse_args()
    url = args.url or Cluster().url()
    setup = connect(url).cursor()
    setup.execute("DROP TABLE IF EXISTS bench_cancel")
    setup.execute("CREATE TABLE bench_cancel (id serial PRIMARY KEY, body text)")
    setup.execute("CALL pgbert.enable_embedding('bench_cancel', 'body', build_index => false)")
    setup.execute("SELECT value FROM pgbert.settings WHERE name = 'engine'")
    rng = random.Random(7)
    lines = ["# Cancelling embedding work", "", cpu_summary(), "",
             f"{args.runs} runs per statement; cancel after a random 0.3–2.0 s. Seconds from the cancel to the error.",
             "", "| statement | cancel → error p50 | p95 | max | statement_timeout 1s: time past it |",
             "|---|---|---|---|---|"]
    for name, statement in STATEMENTS.items():
        latencies = [cancel_latency(url, statement, rng.uniform(0.3, 2.0)) for _ in range(args.runs)]
        overshoot = timeout_overshoot(url, statement)
        lines.append(f"| {name} | {np.percentile(latencies, 50):.3f} | {np.percentile(latencies, 95):.3f} | "
                     f"{max(latencies):.3f} | {overshoot:.3f} |")
        print(lines[-1], flush=True)
    setup.execute("DROP TABLE bench_cancel")
    extra, seconds = huge_text_memory(url, 20)
    lines += ["", "| one text | backend peak memory added (VmHWM) | seconds |", "|---|---|---|",
              f"| 20 MB of English | {extra:.1f} MB | {seconds:.2f} |", ""]
    print(lines[-2])
    with open(args.output, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))


if __name__ == "__main__":
    main()
