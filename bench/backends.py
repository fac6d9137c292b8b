"""Many backends, one model: memory, first call and throughput as connections grow: bench/RESULTS-backends.md.

  .venv/bin/python bench/backends.py [--url URL] [--seconds 10]

Three configurations side by side in one run, on the default engine: every backend loading its own copy of
the model (model_host and shared_weights off: what pgbert did before), backends mapping the model prepared
once per server (model_host off, shared_weights on), and the model host (both on, the default: one process
per server embeds for every backend). For 1, 2, 4 and 8 connections that each called embed(): the total PSS
of their backends and of the model host (from /proc/<pid>/smaps_rollup: shared pages count once, split among
sharers), the first embed() in each new connection, and the aggregate throughput of as many clients calling
embed_batch() at once; then one backend's throughput on short and on long texts, and the cosine between the
configurations' vectors. On the local cluster (no --url) it also restarts the server and times the first
backend's first call. The header names the CPU and the flags every engine choice depends on.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import threading
import time

import numpy as np

from _common import connect, cpu_summary  # noqa: E402  (puts cli/ on sys.path)
from pgbert.cluster import Cluster  # noqa: E402

SHORT = ["Debian package descriptions make a fine corpus for semantic search inside PostgreSQL " * 3] * 32
LONG = [" ".join(f"Package {i} installs a library, its documentation and the tools that manage its "
                 f"configuration files on a Debian system." for i in range(24))] * 8  # past the 384-token window
PROBES = ["a short query", "自然言語処理のためのライブラリ", SHORT[0], LONG[0]]


def pss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def throughput(conns, seconds: float, texts: list[str]) -> float:
    """Texts/s of all connections calling embed_batch(texts) at once."""
    done, stop = [0] * len(conns), time.perf_counter() + seconds

    def work(i, conn):
        cur = conn.cursor()
        while time.perf_counter() < stop:
            cur.execute("SELECT cardinality(embed_batch(%s))", (texts,))
            done[i] += len(texts)

    threads = [threading.Thread(target=work, args=(i, c)) for i, c in enumerate(conns)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(done) / (time.perf_counter() - started)


def first_call(url: str):
    """A new connection and the seconds its first embed() took."""
    conn = connect(url)
    started = time.perf_counter()
    conn.cursor().execute("SELECT embed('first call')")
    return conn, time.perf_counter() - started


def vectors(conn) -> list[np.ndarray]:
    cur = conn.cursor()
    cur.execute("SELECT embed(t)::text FROM unnest(%s::text[]) t", (PROBES,))
    return [np.array(json.loads(v)) for (v,) in cur.fetchall()]


def status_value(conn, setting: str) -> str | None:
    cur = conn.cursor()
    cur.execute("SELECT value FROM pgbert.status() WHERE setting = %s", (setting,))
    row = cur.fetchone()
    return row[0] if row else None


def total_pss(conns) -> float:
    """PSS of the connections' backends, plus the model host's when one serves them."""
    pids = {c.get_backend_pid() for c in conns}
    host = status_value(conns[0], "model_host_pid")
    return sum(pss_mb(pid) for pid in pids | ({int(host)} if host else set()))


def against_one(conns, seconds: float, rounds: int = 3) -> tuple[float, float]:
    """(texts/s of all connections at once, that / one connection alone), the two measured in alternation
    (rounds each, medians): the machine's drift between two runs is not taken for an effect of concurrency."""
    alone, together = [], []
    for _ in range(rounds):
        alone.append(throughput(conns[:1], seconds, SHORT))
        together.append(throughput(conns, seconds, SHORT))
    rate = statistics.median(together)
    return rate, rate / statistics.median(alone)


def measure(url: str, seconds: float, lines: list[str]) -> dict:
    conns, firsts = [], []
    for n in (1, 2, 4, 8):
        while len(conns) < n:
            conn, took = first_call(url)
            conns.append(conn)
            firsts.append(took)
        rate, ratio = against_one(conns, seconds) if n > 1 else (throughput(conns, seconds, SHORT), 1.0)
        total = total_pss(conns)
        lines.append(f"| {n} | {total:.0f} | {total / n:.0f} | {firsts[-1]:.2f} | {rate:.1f} | {ratio:.2f}× |")
        print(lines[-1], flush=True)
    result = {"weights": status_value(conns[0], "weights"), "runs_in": status_value(conns[0], "model_runs_in"),
              "first_others": statistics.median(firsts[1:]), "first_worst": max(firsts[1:]),
              "vectors": vectors(conns[0]), "pss8": total, "aggregate8": ratio}
    for c in conns:
        c.close()
    return result


def one_backend(url: str, seconds: float, results: list[dict], rounds: int = 3) -> None:
    """One connection's texts/s on short and on long texts under each configuration, the configurations taken
    in turn, rounds times (medians): the machine's drift is not taken for a difference between them."""
    conn = connect(url)
    rates = [{"short": [], "long": []} for _ in CONFIGURATIONS]
    for _ in range(rounds):
        for (_, model_host, shared_weights), rate in zip(CONFIGURATIONS, rates, strict=True):
            configure(url, model_host, shared_weights)
            conn.cursor().execute("SELECT embed_batch(%s)", (SHORT,))  # loads the model where it now runs
            for kind, texts in (("short", SHORT), ("long", LONG)):
                rate[kind].append(throughput([conn], seconds, texts))
    conn.close()
    for result, rate in zip(results, rates, strict=True):
        result.update({kind: statistics.median(values) for kind, values in rate.items()})


def configure(url: str, model_host: str, shared_weights: str) -> None:
    admin = connect(url)
    cur = admin.cursor()
    for name, value in (("model_host", model_host), ("shared_weights", shared_weights)):
        cur.execute("UPDATE pgbert.settings SET value = %s WHERE name = %s", (value, name))
    admin.close()


def first_after_restart(url: str) -> float:
    cluster = Cluster()
    cluster.stop(echo=lambda *_: None)
    cluster.start(echo=lambda *_: None)
    conn, took = first_call(url)
    conn.close()
    return took


CONFIGURATIONS = (  # label, model_host, shared_weights
    ("private copies (model_host and shared_weights off: before)", "off", "off"),
    ("shared weights, a model per backend (model_host off)", "off", "on"),
    ("model host (the default: after)", "on", "on"),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--output", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                         "RESULTS-backends.md"))
    args = parser.parse_args()
    url = args.url or Cluster().url()
    lines = ["# Backends: memory, first call, throughput", "", cpu_summary(), "",
             f"Default engine, all backends of one server; `bench/backends.py --seconds {args.seconds:g}`, the "
             "configurations one after the other in one run. Total PSS includes the model host's when one serves. "
             f"\"texts/s\" is the aggregate of as many clients calling embed_batch() ({len(SHORT)} texts of about "
             "45 tokens) at once; \"× 1\" divides it by one client alone, the two measured in alternation (three "
             "rounds each, medians).", "",
             "| backends | total PSS MB | PSS per backend MB | first embed() s (newest) | texts/s, all at once | × 1 |",
             "|---|---|---|---|---|---|"]
    results = []
    try:
        for label, model_host, shared_weights in CONFIGURATIONS:
            configure(url, model_host, shared_weights)
            lines.append(f"| **{label}** | | | | | |")
            results.append(measure(url, args.seconds, lines))
            if not args.url:
                results[-1]["restart"] = first_after_restart(url)
        one_backend(url, args.seconds, results)
    finally:
        configure(url, "on", "on")
    before, after = results[0], results[-1]
    cosine = min(float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
                 for r in results[1:] for a, b in zip(before["vectors"], r["vectors"], strict=True))
    lines += ["", "| | private copies | shared weights | model host | host / private |", "|---|---|---|---|---|"]
    rows = [("first embed() in a new connection, model in use elsewhere (median, s)", "first_others"),
            ("same, slowest of the 7 (s)", "first_worst"),
            ("first embed() of the first backend after a restart (s)", "restart"),
            (f"one backend, texts/s, short texts ({len(SHORT)} × ~45 tokens; 3 rounds in turn, median)", "short"),
            (f"one backend, texts/s, long texts ({len(LONG)} × 384 tokens, the window; same)", "long"),
            ("8 clients at once, × 1 client", "aggregate8"),
            ("total PSS of 8 backends, and of the host (MB)", "pss8")]
    for title, key in rows:
        if all(key in r for r in results):
            cells = " | ".join(f"{r[key]:.2f}" for r in results)
            lines.append(f"| {title} | {cells} | {after[key] / before[key]:.2f}× |")
    lines += ["", f"Vectors: minimum cosine to the private copies' over {len(PROBES)} texts: {cosine:.7f}.", ""]
    lines += [f"- {label.split(' (')[0]}: runs in {r['runs_in']}; weights: {r['weights']}."
              for (label, *_), r in zip(CONFIGURATIONS, results, strict=True)]
    print("\n".join(lines[-14:]))
    with open(args.output, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
