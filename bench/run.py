"""pgbert's benchmark: the original tutorial's way next to pgbert, side by side in one run.

  make bench                  # full run on the local cluster's default model -> bench/RESULTS.md + bench/results.png
  .venv/bin/python bench/run.py --quick --url URL --bundle DIR --model-dir DIR --output-dir DIR   (the tests)

Corpus: Debian's English package descriptions (fetched with apt, cached); short texts are package summaries of
at most 16 tokens. Sections:
  1. baseline   the original tutorial's way: PyTorch in a client, one text at a time, INSERT + commit per row
  2. ceiling    pgbert's runtime in a plain Python process, same batching and threads
  3. in-db      auto-embedding of N rows by INSERT ... SELECT and by COPY (batch strategy)
  4. short texts as well as descriptions
  5. search() p50/p95 next to one embed() plus one index scan with that vector
  6. cold first call in a new connection; backend memory after load and after a large batch
  7. fidelity (cosine to PyTorch fp32) and quality: recall@10 / MRR@10 of search(summary) finding its own
     package's description, exact scan vs HNSW
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import psycopg2

from _common import connect, copy_buffer, cpu_summary, load_rate, rss_mb, short_summaries  # noqa: E402  (also puts cli/ on sys.path)
from pgbert.cluster import Cluster  # noqa: E402
from pgbert.corpus import load_packages  # noqa: E402
from pgbert.paths import ROOT, Paths  # noqa: E402


def parse_vector(text: str) -> np.ndarray:
    return np.array([float(x) for x in text.strip("[]").split(",")], dtype=np.float32)



class Bench:
    def __init__(self, args):
        self.args = args
        self.url = args.url or Cluster().url()
        self.bundle = args.bundle or Paths.default().bundle()
        self.manifest = json.load(open(os.path.join(self.bundle, "manifest.json")))
        self.model_dir = args.model_dir or self._default_model_dir()
        self.conn = connect(self.url)
        self.cur = self.conn.cursor()
        self.rows: list[tuple[str, str, float, str]] = []  # section, what, value, unit
        self.rates: dict[tuple[str, str], float] = {}

    def _default_model_dir(self) -> str:
        from pgbert_export.sources import cache_dir
        return os.path.join(cache_dir(), self.manifest["model_id"].split("/")[-1])

    def engines(self) -> list[str]:
        """Every engine this bundle may run here: the fp32 reference, plus bf16 where it passed the check."""
        from pgbert_runtime import engines
        from pgbert_runtime.bundle import load_bundle

        offered = [engines.REFERENCE]
        fast, _ = engines.choose(load_bundle(self.bundle), "auto")
        return offered + ([fast] if fast != engines.REFERENCE else [])

    def use_engine(self, engine: str) -> None:
        self.cur.execute("UPDATE pgbert.settings SET value = %s WHERE name = 'engine'", (engine,))

    def record(self, section: str, what: str, value: float, unit: str) -> None:
        self.rows.append((section, what, value, unit))
        print(f"{section:10} {what:46} {value:10.2f} {unit}", flush=True)

    # -- corpus -------------------------------------------------------------------------------------------
    def corpus(self):
        packages = load_packages(echo=print)
        short = short_summaries(packages, self.bundle)
        return packages, short[: self.args.short], [p.description for p in packages[: self.args.long]]

    # -- 1. the original tutorial's way -----------------------------------------------------------------
    def baseline(self, texts: list[str]) -> float:
        import torch
        from transformers import AutoModel, AutoTokenizer

        torch.set_num_threads(self.args.threads)
        tokenizer = AutoTokenizer.from_pretrained(self.model_dir)
        model = AutoModel.from_pretrained(self.model_dir).eval()
        dim, pooling, normalize = self.manifest["dimension"], self.manifest["pooling"], self.manifest["normalize"]
        conn = psycopg2.connect(self.url)  # the tutorial commits after every row
        cur = conn.cursor()
        cur.execute("DROP TABLE IF EXISTS bench_baseline")
        cur.execute(f"CREATE TABLE bench_baseline (id serial PRIMARY KEY, text text, embedding vector({dim}))")
        conn.commit()
        started = time.perf_counter()
        with torch.inference_mode():
            for text in texts:
                enc = tokenizer(text, truncation=True, max_length=self.manifest["max_tokens"], return_tensors="pt")
                hidden = model(**enc).last_hidden_state
                if pooling == "mean":
                    mask = enc["attention_mask"].unsqueeze(-1).float()
                    vec = (hidden * mask).sum(1) / mask.sum(1)
                else:
                    vec = hidden[:, 0]
                if normalize:
                    vec = torch.nn.functional.normalize(vec, dim=1)
                cur.execute("INSERT INTO bench_baseline (text, embedding) VALUES (%s, %s)",
                            (text, "[" + ",".join("%.9g" % x for x in vec[0].tolist()) + "]"))
                conn.commit()
        elapsed = time.perf_counter() - started
        cur.execute("DROP TABLE bench_baseline")
        conn.commit()
        conn.close()
        return len(texts) / elapsed

    # -- 2. the same runtime outside the database ------------------------------------------------------
    def ceiling(self, texts: list[str], engine: str) -> float:
        from pgbert_runtime.bundle import load_bundle
        from pgbert_runtime.encoder import Encoder

        settings = dict(self._query("SELECT name, value FROM pgbert.settings"))
        encoder = Encoder(load_bundle(self.bundle), threads=self.args.threads,
                          batch_size=int(settings.get("batch_size") or 32),
                          batch_tokens=int(settings.get("batch_tokens") or 512), engine=engine)
        encoder.encode(texts[:4])
        started = time.perf_counter()
        encoder.encode(texts)
        return len(texts) / (time.perf_counter() - started)

    # -- 3. in-database auto-embedding ------------------------------------------------------------------
    def _query(self, sql: str, args=()):
        self.cur.execute(sql, args)
        return self.cur.fetchall()

    def throughput(self, label: str, texts: list[str]) -> None:
        base_name = "1 baseline: PyTorch client, row + commit"
        self.rates[(label, base_name)] = base = self.baseline(texts)
        self.record(label, base_name, base, "rows/s")
        for engine in self.engines():
            self.use_engine(engine)
            ceiling = self.ceiling(texts, engine)
            self.rates[(label, f"2 ceiling [{engine}]: runtime outside the database")] = ceiling
            self.record(label, f"2 ceiling [{engine}]", ceiling, "rows/s")
            best = 0.0
            for method in ("INSERT…SELECT", "COPY"):
                rate = load_rate(self.cur, texts, method)
                self.rates[(label, f"3 in-db [{engine}]: {method}")] = rate
                self.record(label, f"3 in-db [{engine}]: {method}", rate, "rows/s")
                best = max(best, rate)
            self.record(label, f"in-db [{engine}] best / baseline", best / base, "×")
            self.record(label, f"in-db [{engine}] best / ceiling", best / ceiling, "×")
        self.use_engine("auto")

    # -- 5 and 7. search latency and quality on the descriptions ----------------------------------------
    def search_and_quality(self, packages) -> None:
        n, q = self.args.quality_rows, self.args.queries
        self.cur.execute("DROP TABLE IF EXISTS bench_pkgs")
        self.cur.execute("CREATE TABLE bench_pkgs (id int PRIMARY KEY, body text)")
        self.cur.execute("CALL pgbert.enable_embedding('bench_pkgs', 'body')")
        self.cur.copy_expert("COPY bench_pkgs (id, body) FROM STDIN",
                             copy_buffer((i, p.description) for i, p in enumerate(packages[:n])))
        queries = [(i, packages[i].summary) for i in range(0, n, max(1, n // q))][:q]
        timings = {"search": [], "embed": [], "scan": []}
        ranks_hnsw, ranks_exact = [], []
        for target, query in queries:
            started = time.perf_counter()
            hits = [int(r[0]) for r in self._query("SELECT id FROM search(%s, 10, 'bench_pkgs')", (query,))]
            timings["search"].append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            vector = self._query("SELECT embed(%s)::text", (query,))[0][0]
            timings["embed"].append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            self._query("SELECT id FROM bench_pkgs ORDER BY body_embedding <=> %s::vector LIMIT 10", (vector,))
            timings["scan"].append((time.perf_counter() - started) * 1000)
            self.cur.execute("SET enable_indexscan = off")
            exact = [r[0] for r in self._query(
                "SELECT id FROM bench_pkgs ORDER BY body_embedding <=> %s::vector LIMIT 10", (vector,))]
            self.cur.execute("RESET enable_indexscan")
            ranks_hnsw.append(hits.index(target) + 1 if target in hits else None)
            ranks_exact.append(exact.index(target) + 1 if target in exact else None)
        for name in ("search", "embed", "scan"):
            for pct in (50, 95):
                self.record("search", f"{dict(search='search()', embed='embed()', scan='index scan')[name]} p{pct}",
                            float(np.percentile(timings[name], pct)), "ms")
        parts = np.percentile(np.array(timings["embed"]) + np.array(timings["scan"]), 50)
        self.record("search", "search() p50 / (embed() + index scan) p50",
                    np.percentile(timings["search"], 50) / parts, "×")
        for label, ranks in (("exact scan", ranks_exact), ("HNSW", ranks_hnsw)):
            self.record("quality", f"recall@10, {label} ({len(queries)} summaries, {n} rows)",
                        sum(r is not None for r in ranks) / len(ranks), "")
            self.record("quality", f"MRR@10, {label}", sum(1 / r for r in ranks if r) / len(ranks), "")
        self.cur.execute("CALL pgbert.disable_embedding('bench_pkgs')")
        self.cur.execute("DROP TABLE bench_pkgs")

    # -- 6. cold start and memory -----------------------------------------------------------------------
    def cold_start(self, long_texts: list[str]) -> None:
        conn = connect(self.url)
        cur = conn.cursor()
        pid = conn.get_backend_pid()
        before = rss_mb(pid)
        started = time.perf_counter()
        cur.execute("SELECT embed('first call in a new connection')")
        self.record("cold", "first embed() in a new connection (default engine)",
                    (time.perf_counter() - started) * 1000, "ms")
        started = time.perf_counter()
        cur.execute("SELECT embed('second call')")
        self.record("cold", "second embed()", (time.perf_counter() - started) * 1000, "ms")
        self.record("cold", "backend RSS before the first call", before, "MB")
        self.record("cold", "backend RSS after loading the model", rss_mb(pid), "MB")
        cur.execute("SELECT cardinality(embed_batch(%s::text[]))", (long_texts[:256],))
        self.record("cold", f"backend RSS after a batch of {min(256, len(long_texts))} descriptions", rss_mb(pid), "MB")
        conn.close()

    # -- 7. fidelity ----------------------------------------------------------------------------------
    def fidelity(self, texts: list[str]) -> None:
        from pgbert_export.export import ModelSettings, torch_embeddings

        settings = ModelSettings(self.manifest["pooling"], self.manifest["normalize"], self.manifest["max_tokens"])
        reference = torch_embeddings(self.model_dir, texts, settings)
        for engine in self.engines():
            self.use_engine(engine)
            ours = np.stack([parse_vector(r[0]) for r in self._query(
                "SELECT v::text FROM unnest(embed_batch(%s::text[])) WITH ORDINALITY u(v, n) ORDER BY n", (texts,))])
            cos = (ours * reference).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(reference, axis=1)
            self.record("fidelity", f"[{engine}] cosine to PyTorch fp32, min ({len(texts)} texts)",
                        float(cos.min()), "")
            self.record("fidelity", f"[{engine}] cosine to PyTorch fp32, mean", float(cos.mean()), "")
        self.use_engine("auto")

    # -- report ---------------------------------------------------------------------------------------
    def write(self) -> None:
        out = self.args.output_dir
        os.makedirs(out, exist_ok=True)
        model = self.manifest["model_id"]
        lines = [f"# pgbert benchmark: {model} ({self.manifest['dimension']}-d), {self.args.threads} threads, "
                 f"{os.cpu_count()} CPUs", "", cpu_summary(), "",
                 f"One run, same machine and model. Short texts: {self.args.short} package summaries of at most 16 "
                 f"tokens; long: {self.args.long} package descriptions. Regenerate with `make bench`.", "",
                 "| section | measure | value | unit |", "|---|---|---|---|"]
        lines += [f"| {s} | {w} | {v:.4g} | {u} |" for s, w, v, u in self.rows]
        with open(os.path.join(out, "RESULTS.md"), "w") as f:
            f.write("\n".join(lines) + "\n")
        if not self.rates:
            print(f"wrote {out}/RESULTS.md")
            return
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        labels = sorted({label for label, _ in self.rates})
        kinds = [k for k in dict.fromkeys(w for _, w in self.rates)]
        fig, axes = plt.subplots(1, len(labels), figsize=(6 * len(labels), 4))
        for ax, label in zip(np.atleast_1d(axes), labels):
            values = [self.rates[(label, k)] for k in kinds]
            colours = ["#999" if k.startswith("1") else "#4a7" if k.startswith("2") else "#37c" for k in kinds]
            ax.barh([k[2:].replace(": runtime outside the database", "") for k in kinds], values, color=colours)
            ax.set_title(f"{label} texts")
            ax.set_xlabel("rows/s (higher is better)")
            ax.invert_yaxis()
        fig.suptitle(f"pgbert vs the original tutorial's way: {model}")
        fig.tight_layout()
        fig.savefig(os.path.join(out, "results.png"), dpi=110)
        print(f"wrote {out}/RESULTS.md and {out}/results.png")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small N: the tests run this")
    parser.add_argument("--url", help="database URL (default: the local cluster)")
    parser.add_argument("--bundle", help="the active model's bundle (default: the local default bundle)")
    parser.add_argument("--model-dir", help="the Hugging Face folder of the same model, for the PyTorch baseline")
    parser.add_argument("--output-dir", default=os.path.join(ROOT, "bench"))
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--short", type=int, default=1000)
    parser.add_argument("--long", type=int, default=300)
    parser.add_argument("--quality-rows", type=int, default=2000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--sections", default="throughput,search,cold,fidelity",
                        help="comma-separated subset to run (write elsewhere with --output-dir)")
    args = parser.parse_args()
    if args.quick:
        args.short, args.long, args.quality_rows, args.queries = 40, 20, 60, 10
    sections = set(args.sections.split(","))
    bench = Bench(args)
    packages, short, long_ = bench.corpus()
    if "throughput" in sections:
        bench.throughput("short", short)
        bench.throughput("long", long_)
    if "search" in sections:
        bench.search_and_quality(packages)
    if "cold" in sections:
        bench.cold_start(long_)  # the default engine ('auto')
    if "fidelity" in sections:
        bench.fidelity([p.summary for p in packages[:20]] + long_[:20] +
                       ["", "x", "自然言語処理が大好きです。東京の天気は晴れです。", "🚀🔥",
                        "def f(x):\n    return x * 2", "word " * 2000])
    bench.write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
