"""Long documents: chunking against today's truncation, side by side in one run -> bench/RESULTS-long-documents.md
(part of `make bench`).

  .venv/bin/python bench/long_documents.py [--url URL] [--docs 120] [--chunks 256/32,128/16]
                                           [--baseline-docs 60] [--slice 10] [--seed 0]
  .venv/bin/python bench/long_documents.py --docs 6 --baseline-docs 6 --slice 3 --output /tmp/x.md  (smoke)

Corpus: Debian's English package descriptions (bench/_common's loader, file order). A document is 30
consecutive descriptions (a seeded sample of disjoint blocks), their long descriptions joined by blank lines,
*without* their one-line summaries; its query is the summary of one description inside it, picked at a
seeded random position among those whose summary is unique in the sample (a summary shared by two packages,
such as "transitional package", has no single right answer). The right answer is the document.

Configurations, each on its own table in the same database, same documents, same queries:
  truncated   an unchunked table (enable_embedding(tbl, 'body')): one vector of the model's first window
  chunked     enable_embedding(tbl, 'body', chunk_tokens => c, overlap_tokens => o), for each c/o of --chunks
  rows        the chunk texts of the first --chunks configuration (read back from its chunk table with
              substr(body, start_char + 1, end_char - start_char)) loaded as separate rows of an unchunked
              table: the same tokens without chunking, the reference for the chunked load's throughput

Loads are INSERT ... SELECT through pgbert's triggers, in slices of --slice documents, every table in turn per
slice, so that noise on a shared machine hits every configuration alike; the rows baseline runs right after
its chunked slice for the first --baseline-docs documents, and the throughput target is judged on the median of
the per-slice ratios (exactly the same chunk texts both ways). Every query runs through
search(query, 10, tbl, 'vector'), tables interleaved per query, one fresh connection per table (no hits in
embed()'s per-backend cache): recall@10 and MRR@10 of the right document, p50 latency. Storage per document:
pg_total_relation_size of the table plus its chunk table (indexes and TOAST included) / N.
Tables: long_trunc, long_chunked_<c>_<o>, long_rows (dropped at the end; --keep keeps them).
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time

import numpy as np

from _common import connect, cpu_summary, metrics, rank_of  # noqa: E402  (puts cli/ on sys.path)
from pgbert.cluster import Cluster  # noqa: E402
from pgbert.corpus import load_packages  # noqa: E402

PER_DOC = 30
CHUNK_TARGET_RECALL = 0.9
CHUNK_TARGET_FACTOR = 3.0
LOAD_TARGET_RATIO = 0.9


# -- corpus ---------------------------------------------------------------------------------------------
def build_corpus(packages, n_docs: int, seed: int, mix: str = "consecutive", joiner: str = "\n\n"):
    """(documents, queries): documents are dicts with body and the character span of each description;
    queries are (summary, document index, description index inside it). mix 'consecutive': disjoint blocks
    of consecutive descriptions (neighbours in Debian's file are often one source package's binaries: one
    topic per document); 'random': descriptions drawn at random (many topics per document). joiner: what
    separates the descriptions (a blank line: paragraphs; a space: one run of text, no paragraph breaks)."""
    rng = random.Random(seed)
    if mix == "random":
        drawn = rng.sample(range(len(packages)), n_docs * PER_DOC)
        groups = [[packages[k] for k in drawn[i * PER_DOC:(i + 1) * PER_DOC]] for i in range(n_docs)]
    else:
        blocks = sorted(rng.sample(range(len(packages) // PER_DOC), n_docs))
        groups = [packages[b * PER_DOC:(b + 1) * PER_DOC] for b in blocks]
    docs = []
    for members in groups:
        spans, parts, at = [], [], 0
        for p in members:
            spans.append((at, at + len(p.description)))
            parts.append(p.description)
            at += len(p.description) + len(joiner)  # what separates descriptions
        docs.append({"body": joiner.join(parts), "spans": spans, "summaries": [p.summary for p in members]})
    counts: dict[str, int] = {}
    for doc in docs:
        for s in doc["summaries"]:
            counts[s.casefold()] = counts.get(s.casefold(), 0) + 1
    queries = []
    for i, doc in enumerate(docs):
        unique = [j for j, s in enumerate(doc["summaries"]) if counts[s.casefold()] == 1]
        j = rng.choice(unique or list(range(PER_DOC)))
        queries.append((doc["summaries"][j], i, j))
    return docs, queries


def tokenizer_of(bundle: str):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(os.path.join(bundle, "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    return tok


def token_counts(tok, texts: list[str]) -> list[int]:
    return [len(e.ids) for e in tok.encode_batch(texts, add_special_tokens=False)]


# -- database -------------------------------------------------------------------------------------------
def chunking_available(cur) -> bool:
    cur.execute("SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
                "WHERE n.nspname = 'pgbert' AND p.proname = 'enable_embedding' "
                "AND 'chunk_tokens' = ANY (p.proargnames)")
    return cur.fetchone()[0] > 0


def drop(cur, table: str) -> None:
    cur.execute(f"DROP TABLE IF EXISTS {table}")  # the event trigger forgets it and drops its chunk table
    cur.execute(f"DROP TABLE IF EXISTS {table}_chunks")  # left over by an interrupted run, if any


def create(cur, table: str, lexical: str | None, chunk: tuple[int, int] | None = None) -> None:
    drop(cur, table)
    cur.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, body text)")
    extra, params = "", []
    if chunk:
        extra += ", chunk_tokens => %s, overlap_tokens => %s"
        params += list(chunk)
    if lexical:
        extra += ", lexical => %s"
        params.append(lexical)
    cur.execute(f"CALL pgbert.enable_embedding('public.{table}', 'body'{extra})", params)


def insert(cur, table: str, ids: list[int], bodies: list[str]) -> float:
    """Seconds to INSERT ... SELECT the rows (autocommit: the triggers' work and the commit included)."""
    started = time.perf_counter()
    cur.execute(f"INSERT INTO {table} (id, body) SELECT * FROM unnest(%s::int[], %s::text[])", (ids, bodies))
    return time.perf_counter() - started


def pending(cur, table: str) -> int:
    cur.execute("SELECT pgbert.pending_rows(%s)", (f"public.{table}",))
    return cur.fetchone()[0]


def storage(cur, table: str, chunked: bool) -> int:
    cur.execute("SELECT pg_total_relation_size(%s::regclass)"
                + (" + pg_total_relation_size(%s::regclass)" if chunked else ""),
                (f"public.{table}", f"public.{table}_chunks") if chunked else (f"public.{table}",))
    return cur.fetchone()[0]


def search_all(url: str, tables: list[tuple[str, bool]], queries, docs, modes) -> dict:
    """Per table (name, chunked): ranks, latencies and API checks of every query in every mode, tables and
    modes interleaved per query so that noise on a shared machine hits them alike. One fresh connection per
    table: every query vector is a miss of embed()'s per-backend cache, as for a real query, not a hit left
    by another table's run of the same query. Every table is asked for the same columns."""
    curs = {}
    for table, _ in tables:
        curs[table] = connect(url).cursor()
        curs[table].execute("SELECT embed('warm up')")
    out = {table: {m: {"ranks": [], "ms": [], "passage_hits": 0, "found": 0} for m in modes} for table, _ in tables}
    for table, _ in tables:
        out[table]["problems"] = {"duplicate rows": 0, "passage not the exact substring": 0, "missing passage": 0}
    for query, target, member in queries:
        for table, chunked in tables:
            cur, problems = curs[table], out[table]["problems"]
            for mode in modes:
                started = time.perf_counter()
                cur.execute("SELECT id, content, passage, passage_start, passage_end FROM search(%s, 10, %s, %s)",
                            (query, table, mode))
                rows = cur.fetchall()
                found = out[table][mode]
                found["ms"].append((time.perf_counter() - started) * 1000)
                ids = [int(r[0]) for r in rows]
                rank = rank_of(target, ids)
                found["ranks"].append(rank)
                if not chunked:
                    continue
                problems["duplicate rows"] += len(ids) != len(set(ids))
                for _id, content, passage, start, end in rows:
                    if passage is None or start is None or end is None:
                        problems["missing passage"] += 1
                    elif content[start:end] != passage:
                        problems["passage not the exact substring"] += 1
                if rank:
                    _, _, _, start, end = rows[rank - 1]
                    lo, hi = docs[target]["spans"][member]
                    found["found"] += 1
                    found["passage_hits"] += start is not None and start < hi and end > lo
    for cur in curs.values():
        cur.connection.close()
    return out


def slices(n: int, size: int):
    return [list(range(i, min(n, i + size))) for i in range(0, n, size)]


# -- the run --------------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url")
    parser.add_argument("--docs", type=int, default=120)
    parser.add_argument("--chunks", default="256/32,128/16", help="chunk_tokens/overlap_tokens, comma-separated; "
                                                          "the first also gets the separate-rows baseline")
    parser.add_argument("--baseline-docs", type=int, default=60,
                        help="documents whose chunks the separate-rows baseline loads (the first slices)")
    parser.add_argument("--slice", type=int, default=10, help="documents per INSERT statement")
    parser.add_argument("--lexical", help="also give every table a lexical side (e.g. english) and search "
                                          "in every mode")
    parser.add_argument("--mix", choices=("consecutive", "random"), default="consecutive",
                        help="a document's descriptions: consecutive in Debian's file (the issue's corpus) or "
                             "drawn at random (a diagnostic: many topics per document)")
    parser.add_argument("--join", choices=("paragraphs", "space"), default="paragraphs",
                        help="descriptions separated by blank lines (paragraphs) or joined by a space (no "
                             "paragraph breaks: the chunker has no paragraph to cut at)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="keep the tables")
    parser.add_argument("--output", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                         "RESULTS-long-documents.md"))
    args = parser.parse_args()
    configs = [tuple(int(x) for x in c.split("/")) for c in args.chunks.split(",") if c.strip()]
    modes = ("vector", "lexical", "hybrid") if args.lexical else ("vector",)
    run_started = time.perf_counter()

    url = args.url or Cluster().url()
    conn = connect(url)
    cur = conn.cursor()
    cur.execute("SELECT model_id, bundle_path, max_tokens FROM pgbert.active_model")
    model_id, bundle, max_tokens = cur.fetchone()
    cur.execute("SELECT embed('warm up')")
    tok = tokenizer_of(bundle)

    docs, queries = build_corpus(load_packages(echo=print), args.docs, args.seed, args.mix,
                                 "\n\n" if args.join == "paragraphs" else " ")
    n = len(docs)
    ids = list(range(n))
    bodies = [d["body"] for d in docs]
    doc_tokens = token_counts(tok, bodies)
    baseline_n = min(n, max(args.baseline_docs, 0))
    parts = slices(n, args.slice)
    print(f"{n} documents, tokens mean {statistics.mean(doc_tokens):.0f}, median {statistics.median(doc_tokens):.0f}"
          f", max {max(doc_tokens)}; {len(queries)} queries", flush=True)

    # Where the query's description starts: inside the first window (what truncation can see at all) or not.
    inside = [len(tok.encode(docs[i]["body"][: docs[i]["spans"][j][0]], add_special_tokens=False).ids)
              < max_tokens - 2 for _, i, j in queries]
    visible = sum(inside) / len(inside)

    def beyond(ranks) -> float:
        """recall@10 of the queries whose description starts beyond the first window."""
        far = [r for r, near in zip(ranks, inside) if not near]
        return metrics(far)[0] if far else float("nan")

    results = []  # dicts: name, recall, mrr, docs_s, chunks_s, chunks_per_doc, kb_per_doc, p50 per mode, ...
    notes: list[str] = []

    # Tables: truncated (today's unchunked table), one per chunk configuration, and the separate-rows baseline
    # of the first configuration's chunk texts. Loaded slice by slice, every table in turn, so that noise on a
    # shared machine hits every configuration alike.
    if not chunking_available(cur):
        notes.append("**Chunking is not installed in this database** (enable_embedding has no chunk_tokens): "
                     "only the truncated configuration ran.")
        configs = []
    tables = [("long_trunc", None)] + [(f"long_chunked_{c}_{o}", (c, o)) for c, o in configs]
    for table, chunk in tables:
        create(cur, table, args.lexical, chunk)
    with_rows = bool(configs) and baseline_n > 0
    if with_rows:
        create(cur, "long_rows", args.lexical)
    seconds = {table: 0.0 for table, _ in tables}
    first_chunked = tables[1][0] if configs else None
    chunked_base_s = rows_s = 0.0
    chunked_base_chunks = next_row = 0
    slice_ratios = []  # per slice: chunked chunks/s over separate rows/s
    for part in parts:
        for table, _ in tables:
            took = insert(cur, table, [ids[i] for i in part], [bodies[i] for i in part])
            seconds[table] += took
            if table == first_chunked and with_rows and part[0] < baseline_n:
                cur.execute(f"SELECT substr(d.body, c.start_char + 1, c.end_char - c.start_char) "
                            f"FROM {table}_chunks c JOIN {table} d ON d.id = c.row_key "
                            f"WHERE c.row_key = ANY (%s) ORDER BY c.row_key, c.chunk", (part,))
                texts = [r[0] for r in cur.fetchall()]
                chunked_base_s += took
                chunked_base_chunks += len(texts)
                rows_took = insert(cur, "long_rows", list(range(next_row, next_row + len(texts))), texts)
                rows_s += rows_took
                next_row += len(texts)
                slice_ratios.append(rows_took / took)  # same texts: the ratio of the rates
        print(f"  {part[-1] + 1}/{n} documents loaded, {time.perf_counter() - run_started:.0f} s: "
              + ", ".join(f"{t} {s:.0f} s" for t, s in seconds.items()), flush=True)

    for table, chunk in tables:
        assert pending(cur, table) == 0, f"{table}: rows left without a vector"
        cur.execute(f"ANALYZE {table}")
        if chunk:
            cur.execute(f"ANALYZE {table}_chunks")
    searched = search_all(url, [(table, bool(chunk)) for table, chunk in tables], queries, docs, modes)
    for table, chunk in tables:
        if chunk:
            cur.execute(f"SELECT count(*), count(DISTINCT row_key) FROM {table}_chunks")
            n_chunks, covered = cur.fetchone()
            cur.execute(f"SELECT substr(d.body, c.start_char + 1, c.end_char - c.start_char) "
                        f"FROM {table}_chunks c JOIN {table} d ON d.id = c.row_key")
            chunk_tokens_seen = token_counts(tok, [r[0] for r in cur.fetchall()])
        else:
            n_chunks, covered, chunk_tokens_seen = n, n, []
        found = searched[table]
        recall, mrr = metrics(found["vector"]["ranks"])
        result = {"name": f"chunked {chunk[0]}/{chunk[1]}" if chunk else f"truncated (today: first {max_tokens} "
                  "tokens)", "key": f"{chunk[0]}/{chunk[1]}" if chunk else "truncated",
                  "recall": recall, "mrr": mrr, "beyond": beyond(found["vector"]["ranks"]),
                  "docs_s": n / seconds[table], "chunks_s": n_chunks / seconds[table],
                  "chunks_per_doc": n_chunks / n, "kb": storage(cur, table, bool(chunk)) / n / 1024,
                  "p50": {m: np.percentile(found[m]["ms"], 50) for m in modes},
                  "modes": {m: metrics(found[m]["ranks"]) for m in modes}}
        if chunk:
            result.update({"passage": found["vector"]["passage_hits"] / max(found["vector"]["found"], 1),
                           "problems": found["problems"], "uncovered": n - covered,
                           "max_chunk_tokens": max(chunk_tokens_seen),
                           "mean_chunk_tokens": statistics.mean(chunk_tokens_seen)})
        results.append(result)
        print(f"{table}: recall@10 {recall:.3f} MRR@10 {mrr:.3f}, {n / seconds[table]:.2f} docs/s, "
              f"{n_chunks / seconds[table]:.2f} chunks/s, {n_chunks / n:.1f} chunks/doc", flush=True)
    rows_stats = None
    if with_rows:
        assert pending(cur, "long_rows") == 0, "long_rows: rows left without a vector"
        rows_stats = {"config": results[1]["key"], "docs": baseline_n, "chunks": next_row,
                      "rows_s": next_row / rows_s, "chunked_s": chunked_base_chunks / chunked_base_s,
                      "slice_ratios": slice_ratios, "median": statistics.median(slice_ratios),
                      "kb": storage(cur, "long_rows", False) / baseline_n / 1024}
        print(f"separate rows: {rows_stats['rows_s']:.2f} rows/s against chunked "
              f"{rows_stats['chunked_s']:.2f} chunks/s on the same texts", flush=True)
    if not args.keep:
        for table, _ in tables:
            drop(cur, table)
        drop(cur, "long_rows")
    elapsed = time.perf_counter() - run_started

    # -- the results file ---------------------------------------------------------------------------------
    trunc = results[0]
    mean_tokens = statistics.mean(doc_tokens)
    lines = ["# Long documents: chunking against truncation", "", cpu_summary(), "",
             f"Model {model_id} (window {max_tokens} tokens, special tokens included); {n} documents of "
             f"{PER_DOC} " + ("consecutive Debian package descriptions each (seeded sample of disjoint blocks"
                              if args.mix == "consecutive" else
                              "Debian package descriptions each drawn at random (--mix random") +
             f", seed {args.seed}), long descriptions only, joined by "
             + ("blank lines" if args.join == "paragraphs" else "a space (**no paragraph breaks**)")
             + ", **without their one-line "
             f"summaries**; "
             f"{len(queries)} queries, one per document: the summary of one description inside it at a seeded "
             f"random position (among summaries unique in the sample). The right answer is the document.", "",
             f"Tokens per document (the model's tokenizer, no special tokens): mean {mean_tokens:.0f}, median "
             f"{statistics.median(doc_tokens):.0f}, min {min(doc_tokens)}, max {max(doc_tokens)}. "
             f"{visible:.0%} of the queries' descriptions start inside the first window (all truncation can see).",
             "",
             f"One run; loads are INSERT … SELECT through the triggers (batch strategy, HNSW index present) in "
             f"slices of {args.slice} documents, every table in turn per slice (the separate rows right after "
             f"their chunked slice); search(query, 10, tbl, 'vector'), tables interleaved per query, each from a fresh "
             f"connection (no embed() cache hits); whole "
             f"run {elapsed / 60:.1f} min on a machine shared with other work. Command: "
             f"`bench/long_documents.py{''.join(' ' + a for a in sys.argv[1:])}`"
             f"{' (defaults)' if len(sys.argv) == 1 else ''}.", ""]
    lines += notes + ([""] if notes else [])
    lines += ["| configuration | recall@10 | MRR@10 | recall@10, description beyond the first window | load docs/s "
              "| chunks/s | chunks per doc | storage per doc KB | search p50 ms |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['name']} | {r['recall']:.3f} | {r['mrr']:.3f} | {r['beyond']:.3f} | {r['docs_s']:.2f} | "
                     f"{r['chunks_s']:.2f} | {r['chunks_per_doc']:.1f} | {r['kb']:.1f} | {r['p50']['vector']:.1f} |")
    if rows_stats:
        lines.append(f"| separate rows ({rows_stats['config']} chunk texts of the first {rows_stats['docs']} "
                     f"documents, {rows_stats['chunks']} rows) | | | | | {rows_stats['rows_s']:.2f} | 1 per row | "
                     f"{rows_stats['kb']:.1f} | |")
    if args.lexical:
        lines += ["", f"Every mode (lexical side: {args.lexical}):", "",
                  "| configuration | mode | recall@10 | MRR@10 | p50 ms |", "|---|---|---|---|---|"]
        for r in results:
            for m in modes:
                lines.append(f"| {r['name']} | {m} | {r['modes'][m][0]:.3f} | {r['modes'][m][1]:.3f} | "
                             f"{r['p50'][m]:.1f} |")
    chunked = results[1:]
    if chunked:
        best = max(chunked, key=lambda r: (r["recall"], r["mrr"]))

        def verdict(ok: bool) -> str:
            return "met" if ok else "**not met**"

        lines += ["", "Targets:", ""]
        for r in chunked:
            factor = r["recall"] / trunc["recall"] if trunc["recall"] else float("inf")
            lines.append(f"- {r['name']}: recall@10 {r['recall']:.3f} ≥ {CHUNK_TARGET_RECALL}: "
                         f"{verdict(r['recall'] >= CHUNK_TARGET_RECALL)}; against truncation on the same run "
                         f"{r['recall']:.3f} / {trunc['recall']:.3f} = {factor:.2f}× ≥ {CHUNK_TARGET_FACTOR:.0f}×: "
                         f"{verdict(factor >= CHUNK_TARGET_FACTOR)}.")
        if rows_stats:
            ratio = rows_stats["chunked_s"] / rows_stats["rows_s"]
            median = rows_stats["median"]
            each = ", ".join(f"{r:.2f}" for r in rows_stats["slice_ratios"])
            lines.append(f"- Chunked load throughput against the same tokens as separate rows (chunk texts of the "
                         f"first {rows_stats['docs']} documents, each slice loaded both ways back to back): median "
                         f"of the slices' ratios {median:.2f}× ≥ {LOAD_TARGET_RATIO}×: "
                         f"{verdict(median >= LOAD_TARGET_RATIO)} (per slice: {each}; all slices together "
                         f"{rows_stats['chunked_s']:.2f} / {rows_stats['rows_s']:.2f} chunks/s = {ratio:.2f}×). "
                         f"The median, because other work on this shared machine can land on either statement.")
        if len(chunked) > 1:
            lines.append(f"- Best configuration of the sweep (recall@10, then MRR@10): {best['name']}.")
        lines += ["", "Checks on the chunked tables:", ""]
        for r in chunked:
            problems = ", ".join(f"{k}: {v}" for k, v in r["problems"].items() if v) or "none"
            lines.append(f"- {r['name']}: chunk texts {r['mean_chunk_tokens']:.0f} tokens on average, at most "
                         f"{r['max_chunk_tokens']}; documents without chunks: {r['uncovered']}; where the right "
                         f"document is found, its passage overlaps the query's own description in "
                         f"{r['passage']:.0%} of the queries; API problems in search() results: {problems}.")
    with open(args.output, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
