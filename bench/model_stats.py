"""What pgbert.model_stats costs: embed throughput with statistics on and off, side by side (RESULTS-model-stats.md).

  .venv/bin/python bench/model_stats.py [--url URL] [--calls 3000] [--output ...]

Two connections, one with the statistics off and one with them on, take turns call by call (off, on, on, off,
...: whatever else the machine does weighs on both alike), with the model host (the default: both backends send
to it) and with model_host = off (each backend runs the model). "Off" sets model_stats.enabled = False in its
backend (a DO block: superuser), which also tells the model host to skip that backend's calls. Workloads: embed()
of one short text per call (the smallest model call: the largest share for the per-call cost) and embed_batch()
of 32 short texts. Distinct texts: the vector cache never answers. The figures: texts/s of each connection over
all its calls and their ratio; then the recording's own cost per call, timed in this process (model_stats.Recorder
and TimedGate), with one model in the process's statistics file and with five.
"""
from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import tempfile
import time
from contextlib import nullcontext

from _common import connect, cpu_summary  # noqa: E402  (also puts cli/ on sys.path)
from pgbert.cluster import Cluster  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "plpython"))

SENTENCE = ("search engines rank documents by how well their words and meaning match a short query typed by a "
            "person who wants an answer quickly")
WORDS = SENTENCE.split()
CALLS = itertools.count()  # every call's texts are its own: the vector cache never answers
TOGGLE = ("SELECT pgbert._boot(); "  # the runtime on sys.path
          "DO $$ import pgbert_runtime.model_stats as s; s.enabled = {} $$ LANGUAGE plpython3u")


def text(n: int, j: int = 0) -> str:
    """A short sentence (about 12 tokens), distinct for each (n, j)."""
    start = (n * 7 + j * 3) % len(WORDS)
    return f"t{n}.{j} " + " ".join((WORDS + WORDS)[start:start + 9])


def call(cur, i: int, batch: int) -> None:
    if batch == 1:
        cur.execute("SELECT embed(%s) IS NOT NULL", (text(i),))
    else:
        cur.execute("SELECT cardinality(embed_batch(%s))", ([text(i, j) for j in range(batch)],))
    cur.fetchone()


def compare(off, on, calls: int, batch: int) -> dict:
    """Texts/s of the connection with statistics off and of the one with them on, taking turns call by call, and
    the ratio on / off; with the median call of each."""
    seconds: dict[bool, list[float]] = {False: [], True: []}
    for i in range(calls):
        for enabled in ((False, True) if i % 2 == 0 else (True, False)):
            started = time.perf_counter()
            call(on if enabled else off, next(CALLS), batch)
            seconds[enabled].append(time.perf_counter() - started)
    rate = {k: calls * batch / sum(v) for k, v in seconds.items()}
    return {"off": rate[False], "on": rate[True], "ratio": rate[True] / rate[False],
            "median_off": statistics.median(seconds[False]) * 1000,
            "median_on": statistics.median(seconds[True]) * 1000}


def recording_cost_us(models: int, n: int = 20_000) -> float:
    """Microseconds that recording adds to one model call in the process that runs it: the timed gate (two
    entries: tokenizer and model call), the clock reads, the counters and the write of the process's file."""
    from pgbert_runtime import model_stats

    recorder = model_stats.Recorder(tempfile.mkdtemp(), "bench.stats")
    for k in range(1, models):
        recorder.call(f"/srv/models/other-{k}", "openvino-bf16", 1, 14, 0.01, 0.0)
    started = time.perf_counter()
    for i in range(n):
        gate = model_stats.TimedGate(nullcontext)
        t0 = time.perf_counter()
        with gate():
            pass
        with gate():
            pass
        recorder.call("/srv/models/all-mpnet-base-v2", "openvino-bf16", 1, 14,
                      time.perf_counter() - t0 + (i % 50) * 1e-4, gate.waited)
    return (time.perf_counter() - started) / n * 1e6


def cpu_model() -> str:
    with open("/proc/cpuinfo") as f:
        fields = {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in f.read().split("\n\n")[0]
                                                     .splitlines() if ":" in line)}
    return f"family {fields['cpu family']} model {fields['model']}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url")
    parser.add_argument("--calls", type=int, default=3000, help="embed() calls per connection (embed_batch: a tenth)")
    parser.add_argument("--output", default=os.path.join(os.path.dirname(__file__), "RESULTS-model-stats.md"))
    args = parser.parse_args()
    url = args.url or Cluster().url()
    admin = connect(url).cursor()
    admin.execute("SELECT value FROM pgbert.settings WHERE name = 'model_host'")
    saved = admin.fetchone()[0]
    admin.execute("SELECT name FROM pgbert.models WHERE active")
    model = admin.fetchone()[0]
    lines = ["# What per-model statistics cost", "", f"{cpu_summary()} ({cpu_model()})", "",
             f"Model {model}. Two connections, statistics off in one and on in the other, take turns call by call "
             f"(off, on, on, off, ...), {args.calls} embed() calls each and {args.calls // 10} embed_batch() calls "
             "of 32 texts; distinct short texts (~12 tokens). texts/s: over all of a connection's calls.", "",
             "| model runs in | workload | texts/s off | texts/s on | on / off | median call off (ms) | on (ms) |",
             "|---|---|---|---|---|---|---|"]
    ratios = []
    try:
        for where, setting in (("the model host", "on"), ("the backend (model_host = off)", "off")):
            admin.execute("UPDATE pgbert.settings SET value = %s WHERE name = 'model_host'", (setting,))
            off, on = connect(url).cursor(), connect(url).cursor()  # new backends: they read the setting
            off.execute(TOGGLE.format(False))
            for _ in range(20):
                for cur in (off, on):
                    call(cur, next(CALLS), 1)  # warm up: model loaded, caches filled
            for label, calls, batch in (("embed(), 1 text a call", args.calls, 1),
                                        ("embed_batch(), 32 texts a call", max(1, args.calls // 10), 32)):
                m = compare(off, on, calls, batch)
                ratios.append(m["ratio"])
                lines.append(f"| {where} | {label} | {m['off']:.1f} | {m['on']:.1f} | {m['ratio']:.4f} | "
                             f"{m['median_off']:.2f} | {m['median_on']:.2f} |")
                print(lines[-1], flush=True)
            off.connection.close()
            on.connection.close()
    finally:
        admin.execute("UPDATE pgbert.settings SET value = %s WHERE name = 'model_host'", (saved,))
    one, five = recording_cost_us(1), recording_cost_us(5)
    lines += ["", f"Cost of the statistics (1 - the lowest throughput on/off): {max(0.0, 1 - min(ratios)) * 100:.2f}% "
              "of throughput (target: at most 2%).", "",
              f"Recording's own cost, timed in one process: {one:.1f} µs per model call with one model in its file, "
              f"{five:.1f} µs with five (clock reads, the timed thread-budget gate, the counters, the pwrite() of the "
              "process's statistics file).", ""]
    print("\n".join(lines[-4:]))
    with open(args.output, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))


if __name__ == "__main__":
    main()
