"""Helpers shared by the benchmark scripts (which run on the database host)."""
from __future__ import annotations

import io
import os
import random
import sys
import time

# The scripts run from a checkout: make the `pgbert` command's package importable.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "cli"))


def connect(url: str):
    """A psycopg2 connection in autocommit mode."""
    import psycopg2

    conn = psycopg2.connect(url)
    conn.autocommit = True
    return conn


def proc_status_mb(pid: int, field: str) -> float:
    """A memory figure of a server backend from /proc/<pid>/status: VmRSS (resident), VmHWM (its peak)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def rss_mb(pid: int) -> float:
    return proc_status_mb(pid, "VmRSS")


def short_summaries(packages, bundle: str) -> list[str]:
    """Package summaries of at most 16 tokens under the bundle's own tokenizer (no padding, no truncation)."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(os.path.join(bundle, "tokenizer.json"))
    tok.no_padding()  # the saved tokenizer may pad to the model's maximum
    tok.no_truncation()
    return [p.summary for p in packages if len(tok.encode(p.summary).ids) <= 16]


def copy_buffer(rows) -> io.StringIO:
    """COPY text format for rows of values (tabs and newlines in values become spaces)."""
    def field(value) -> str:
        return str(value).replace("\\", "\\\\").replace("\t", " ").replace("\n", " ")
    return io.StringIO("".join("\t".join(field(v) for v in row) + "\n" for row in rows))


def load_rate(cur, texts: list[str], method: str, strategy: str = "batch") -> float:
    """Rows/s of loading texts into a fresh auto-embedding table (no index) with one of
    'one-row-at-a-time', 'INSERT…SELECT', 'COPY'; checks that every row got its vector."""
    cur.execute("DROP TABLE IF EXISTS bench_docs")
    cur.execute("CREATE TABLE bench_docs (id bigserial PRIMARY KEY, body text)")
    cur.execute("CALL pgbert.enable_embedding('bench_docs', 'body', strategy => %s, build_index => false)",
                (strategy,))
    cur.execute("SELECT embed('warm up')")
    started = time.perf_counter()
    if method == "one-row-at-a-time":
        for text in texts:
            cur.execute("INSERT INTO bench_docs (body) VALUES (%s)", (text,))
    elif method == "INSERT…SELECT":
        cur.execute("INSERT INTO bench_docs (body) SELECT unnest(%s::text[])", (texts,))
    elif method == "COPY":
        cur.copy_expert("COPY bench_docs (body) FROM STDIN", copy_buffer((t,) for t in texts))
    else:
        raise ValueError(method)
    rate = len(texts) / (time.perf_counter() - started)
    cur.execute("SELECT count(*) FILTER (WHERE body_embedding IS NULL) FROM bench_docs")
    assert cur.fetchone()[0] == 0, "rows left without a vector"
    cur.execute("DROP TABLE bench_docs")  # the event trigger forgets it and its batch function
    return rate


def cpu_summary() -> str:
    """The CPU and the flags every engine choice and ratio depends on (from /proc/cpuinfo)."""
    model, flags = "unknown CPU", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and model == "unknown CPU":
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags") and not flags:
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    wanted = {"avx2": "AVX2", "avx512f": "AVX-512", "avx512_bf16": "AVX512-BF16", "amx_bf16": "AMX"}
    present = [name for flag, name in wanted.items() if flag in flags]
    absent = [name for flag, name in wanted.items() if flag not in flags]
    return (f"CPU: {model}, {os.cpu_count()} CPUs; has {', '.join(present) or 'none of'}"
            f"{'; lacks ' + ', '.join(absent) if absent else ''}")


def sample(packages, n_docs: int, n_queries: int, seed: int):
    """(documents, [(query, index of its document)]) — seeded, reproducible."""
    rng = random.Random(seed)
    docs = rng.sample(packages, min(n_docs, len(packages)))
    picks = rng.sample(range(len(docs)), min(n_queries, len(docs)))
    return [p.description for p in docs], [(docs[i].summary, i) for i in picks]


def rank_of(target: int, ranked: list[int]) -> int | None:
    """1-based rank of target in the top 10, None when absent."""
    top = ranked[:10]
    return top.index(target) + 1 if target in top else None


def metrics(ranks: list[int | None]) -> tuple[float, float]:
    """(recall@10, MRR@10)."""
    return (sum(r is not None for r in ranks) / len(ranks), sum(1 / r for r in ranks if r) / len(ranks))
