"""Long inputs: cutting texts before tokenizing (Encoder.encode now) against tokenizing them whole (before).

  .venv/bin/python bench/bounded_input.py [--bundle DIR]

Uses the default model (all-mpnet-base-v2) when its bundle exists, else the tiny test model. Prints, for a
4 MB run of '!' and 20 MB of English, the time and peak resident memory that one encode() adds (each in a
fresh process, so that the peak is that call's), old way and new; the smallest cosine between old and new
vectors over long texts (1.0: same tokens, same vectors); and the longest stretch without a check() call
(how long a cancel request can wait) for a few workloads. Needs no database.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "plpython"))
sys.path.insert(0, os.path.join(HERE, "..", "cli"))

import numpy as np

from pgbert.paths import Paths
from pgbert_runtime.bundle import load_bundle
from pgbert_runtime.encoder import Encoder

PROSE = ("PostgreSQL is a powerful, open source object-relational database system with over 35 years of active "
         "development that has earned it a strong reputation for reliability, feature robustness, and performance. "
         "It runs on all major operating systems and supports advanced data types and performance optimization "
         "features, only available in the most expensive commercial databases. ")
BIG = {"4 MB of '!'": lambda: "!" * 4_000_000,
       "20 MB of English": lambda: (PROSE * (20_000_000 // len(PROSE) + 1))[:20_000_000]}


def old_encode(encoder: Encoder, texts: list[str]) -> np.ndarray:
    """Encoder.encode before: whole texts through the truncating tokenizer, no check()."""
    encodings = encoder.tokenizer.encode_batch(list(texts))
    ids = [e.ids for e in encodings]
    types = [e.type_ids for e in encodings]
    out = np.empty((len(texts), encoder.dimension), dtype=np.float32)
    for chunk in encoder.batches([len(x) for x in ids]):
        out[chunk] = encoder._run([ids[i] for i in chunk], [types[i] for i in chunk])
    return out


def kib(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def child(bundle: str, case: str, way: str) -> None:
    """One encode() of one big text in this process: prints seconds and the peak memory it added."""
    encoder = Encoder(load_bundle(bundle))
    encoder.encode([PROSE * 40, "warm up"])  # thread pools, the engine's buffers for a full window
    text = BIG[case]()
    before = kib("VmHWM")
    started = time.perf_counter()
    (old_encode if way == "old" else Encoder.encode)(encoder, [text])
    print(json.dumps({"seconds": time.perf_counter() - started, "peak_mb": (kib("VmHWM") - before) / 1024}))


def long_texts() -> list[str]:
    return [
        PROSE * 100,
        "自然言語処理が大好きです。東京の天気は晴れ、明日は雨でしょう。" * 2_000,
        "def embed(text):\n    return model(text)  # code\n" * 2_000,
        "!" * 100_000,
        "word " * 50_000,
        " " * 50_000 + PROSE * 20,
        "a" * 50_000 + " " + PROSE * 20,
        PROSE * 5 + "z" * 50_000,
        "🚀👍🏽👨‍👩‍👧 naïve café " * 5_000,
        "Ελληνικά русский 中文 العربية हिन्दी İstanbul " * 3_000,
        "e\u0301\u0302\u0303 o\u0308 " * 20_000,
        "\x00\x01\x1b\ufffd" * 20_000 + PROSE * 20,
        "<mask> [MASK] </s> " * 10_000,
        " ".join("b" * (99 + i % 4) for i in range(2_000)),
    ]


def longest_wait(work, texts: list[str]) -> tuple[float, int, float]:
    """(longest stretch without a check() call, check() calls, total seconds) for work(texts, check)."""
    stamps = [time.perf_counter()]
    work(texts, check=lambda: stamps.append(time.perf_counter()))
    stamps.append(time.perf_counter())
    return max(b - a for a, b in zip(stamps, stamps[1:], strict=False)), len(stamps) - 2, stamps[-1] - stamps[0]


def default_bundle() -> str:
    paths = Paths.default()
    mpnet = paths.bundle("all-mpnet-base-v2")
    if os.path.exists(os.path.join(mpnet, "manifest.json")):
        return mpnet
    tiny = os.path.join(paths.state, "test-bundles", "tiny-bert")
    if not os.path.exists(os.path.join(tiny, "manifest.json")):
        sys.exit(f"neither {mpnet} nor {tiny} exists: run `pgbert setup` or the unit tests first")
    return tiny


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", default=None)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    bundle = args.bundle or default_bundle()
    if args.child:
        child(bundle, *args.child)
        return

    with open("/proc/cpuinfo") as f:
        cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "unknown CPU")
    encoder = Encoder(load_bundle(bundle))
    print(f"model {encoder.bundle.model_id} (max_tokens {encoder.bundle.max_tokens}), engine {encoder.engine.name}, "
          f"{encoder.threads} threads; CPU: {cpu}, {os.cpu_count()} cores")

    print("\none encode() of one big text (fresh process each; peak = resident memory the call added):")
    print(f"  {'input':18} {'way':4} {'seconds':>8} {'peak MB':>8}")
    for case in BIG:
        for way in ("old", "new"):
            out = subprocess.run([sys.executable, __file__, "--bundle", bundle, "--child", case, way],
                                 capture_output=True, text=True)
            if out.returncode:
                print(f"  {case:18} {way:4} failed: {out.stderr.strip()[-300:]}")
                continue
            result = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"  {case:18} {way:4} {result['seconds']:8.2f} {result['peak_mb']:8.0f}")

    texts = long_texts()
    old, new = old_encode(encoder, texts), encoder.encode(texts)
    pairs = zip(encoder.tokenizer.encode_batch(texts), encoder.bounded.encode_batch(texts), strict=True)
    same = sum(a.ids == b.ids for a, b in pairs)
    cosines = (old * new).sum(axis=1) / (np.linalg.norm(old, axis=1) * np.linalg.norm(new, axis=1))
    print(f"\n{len(texts)} long texts (100 kB to 300 kB): min cosine old vs new {cosines.min():.7f}, "
          f"max |difference| {np.abs(old - new).max():.2e}; token ids identical for {same} of {len(texts)}")

    print("\nlongest wait for a check() call (how long a cancel request waits), tokenizing only / whole encode():")
    workloads = {
        "100 short texts": [f"short text number {i} about databases" for i in range(100)],
        "64 texts of 20 kB English": [f"{i} " + PROSE * 60 for i in range(64)],
        "64 texts of 20 kB Japanese": [f"{i} " + "自然言語処理が大好きです。" * 1_500 for i in range(64)],
        "4 MB of '!'": ["!" * 4_000_000],
        "one 1 MB word (prefix grows)": ["a" * 1_000_000],
    }
    for name, batch in workloads.items():
        tokenizing = longest_wait(encoder.bounded.encode_batch, batch)
        line = f"  {name:30} tokenizing: longest {tokenizing[0] * 1000:5.0f} ms ({tokenizing[1]:2} checks)"
        if len(batch) <= 8 or name.endswith("short texts"):  # the model's part: a few calls are enough
            whole = longest_wait(encoder.encode, batch)
            line += f"   encode(): longest {whole[0] * 1000:5.0f} ms ({whole[1]} checks, {whole[2]:.1f} s in all)"
        print(line)


if __name__ == "__main__":
    main()
