"""A transformer, its static distillation and imported Word2Vec vectors, side by side -> bench/RESULTS-models.md
(part of `make bench`; issue 23).

  .venv/bin/python bench/models.py [--url URL] [--rows-transformer 500] [--rows-static 20000] [--docs 1000]
                                   [--queries 200] [--repeats 2] [--output bench/RESULTS-models.md]
  .venv/bin/python bench/models.py --quick --url URL --static-model DIR --static-bundle DIR --vectors-bundle DIR
                                   (the test: tiny sizes and models, seconds)

Models: the database's default model (a transformer: all-mpnet-base-v2 after `pgbert setup`); a static model
distilled from all-mpnet-base-v2 with model2vec (`pgbert export --static`, exported first when its bundle is
missing); Word2Vec vectors imported as `pgbert import-vectors` does (default: gensim's test file
euclidean_vectors.bin, imported first when its bundle is missing). The static models are registered with
pgbert.add_model unless already registered (by name, or their bundle under another name); what this run
registered it drops again at the end, with its tables.
Measured in one run, on the same texts for every model:
  1. speed     texts/s of COPY into a table enabled with enable_embedding(..., model => name) (strategy batch,
               no index), seconds until the COPY has committed, the first Debian descriptions in file order
               (the transformer on fewer of the same rows); and of pgbert.embed_batch(texts, 'document', name)
               in calls of 1,000 texts. --repeats rounds, the models' order reversed each round.
  2. search    recall@10 and MRR@10 of the English Debian known-item task (bench/languages.py's: a seeded sample
               of descriptions, their packages' one-line summaries as queries), by search() (HNSW) and by an
               exact scan (ORDER BY <=> with index scans off), over a table per model.
  3. Lee       Pearson and Spearman correlation, over the 1,225 pairs of the Lee corpus's 50 documents (gensim's
               test data: lee.cor, similarities0-1.txt), of the cosine of their vectors (embed_batch in the
               database) with the mean human similarity rating.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from dataclasses import dataclass, field

import numpy as np
import psycopg2
import psycopg2.errors

from _common import connect, copy_buffer, cpu_summary, metrics, rank_of, sample  # noqa: E402  (puts cli/ on sys.path)
from pgbert.cluster import Cluster  # noqa: E402
from pgbert.corpus import load_packages  # noqa: E402
from pgbert.paths import ROOT, Paths  # noqa: E402

STATIC_SOURCE = "all-mpnet-base-v2"
VECTORS_FILE = "euclidean_vectors.bin"  # in gensim's test data; see describe_vectors()
VECTORS_NAME = "lee-word2vec"
EMBED_BATCH_TEXTS = 1000  # texts per embed_batch() call
TARGET_RATIO = 50  # the distilled static model's texts/s against the transformer's, same run
K = 10
ROUNDS = "s, the models in reverse order every other round"


@dataclass
class Model:
    label: str  # what the tables call it
    key: str  # in the names of its tables
    name: str  # its name in pgbert.models
    bundle: str
    manifest: dict
    registered: bool = False  # by this run: dropped at the end
    seconds: list[float] = field(default_factory=list)  # per COPY round
    batch_seconds: list[float] = field(default_factory=list)  # per embed_batch round
    engine_seconds: list[float] = field(default_factory=list)  # per round: a static engine in this process
    rows: int = 0
    quality: dict = field(default_factory=dict)

    @property
    def static(self) -> bool:
        return self.manifest.get("model_kind") == "static"


def say(message: str) -> None:
    print(message, flush=True)


def gensim_data(name: str) -> str:
    from gensim.test.utils import datapath

    return datapath(name)


def read_manifest(bundle: str) -> dict:
    with open(os.path.join(bundle, "manifest.json"), encoding="utf-8") as f:
        return json.load(f)


# -- the models ---------------------------------------------------------------------------------------------
def ensure_static_bundle(model: str, bundle: str) -> str:
    """The static bundle, distilled with model2vec first when missing (minutes for a base-size model)."""
    if not os.path.exists(os.path.join(bundle, "manifest.json")):
        from pgbert_export.static import export_static

        say(f"no static bundle at {bundle}: distilling {model} with model2vec (`pgbert export --static`)")
        export_static(model, bundle, echo=say)
    return bundle


def ensure_vectors_bundle(path: str, bundle: str, name: str) -> str:
    """The vectors file as a static bundle, imported first when missing (a bundle of another file is refused)."""
    if os.path.exists(os.path.join(bundle, "manifest.json")):
        source = read_manifest(bundle).get("source", {}).get("file")
        if source != os.path.abspath(path):
            raise SystemExit(f"bench/models.py: {bundle} holds vectors from {source}, not {path}: pass another "
                             f"--vectors-bundle (or remove that folder)")
        return bundle
    from pgbert_export.word_vectors import import_vectors

    say(f"importing {path} to {bundle} (`pgbert import-vectors`)")
    import_vectors(path, bundle, name=name, echo=say)
    return bundle


def register(cur, label: str, key: str, name: str, bundle: str) -> Model:
    """The model of that bundle: by name, else under the name the bundle is registered with, else add_model."""
    bundle = os.path.realpath(bundle)
    cur.execute("SELECT name, bundle_path FROM pgbert.models WHERE name = %s OR bundle_path = %s "
                "ORDER BY name = %s DESC", (name, bundle, name))
    row = cur.fetchone()
    if row and os.path.realpath(row[1]) != bundle:
        raise SystemExit(f"bench/models.py: model {name!r} is registered with another bundle ({row[1]}); pass "
                         f"another name (--static-name / --vectors-name)")
    if not row:
        cur.execute("SELECT pgbert.add_model(%s, %s)", (name, bundle))
    return Model(label, key, row[0] if row else name, bundle, read_manifest(bundle), registered=not row)


def models_of(cur, args, models: list[Model]) -> None:
    """Appends the three models to models (so that the caller drops what was registered, even on a failure)."""
    cur.execute("SELECT name, bundle_path FROM pgbert.active_model")
    name, bundle = cur.fetchone()
    transformer = Model("transformer", "transformer", name, bundle, read_manifest(bundle))
    if transformer.static:
        raise SystemExit(f"bench/models.py: the database's default model {name!r} is a static model; make a "
                         f"transformer the default first (SELECT pgbert.use_model('/path/to/bundle'))")
    static_bundle = ensure_static_bundle(args.static_model, args.static_bundle)
    vectors_bundle = ensure_vectors_bundle(args.vectors, args.vectors_bundle, args.vectors_name)
    static_name = args.static_name or os.path.basename(static_bundle)
    models.append(transformer)
    models.append(register(cur, "static (model2vec)", "static", static_name, static_bundle))
    models.append(register(cur, "Word2Vec", "word2vec", args.vectors_name, vectors_bundle))


# -- 1. speed -----------------------------------------------------------------------------------------------
def table_of(model: Model, purpose: str) -> str:
    return f"bench_models_{purpose}_{model.key}"


def copy_seconds(cur, model: Model, texts: list[str]) -> float:
    """Seconds from the start of a COPY of texts into a fresh table enabled with the model (batch strategy, no
    index) until it has committed (autocommit); every row must have its vector."""
    table = table_of(model, "load")
    cur.execute(f"DROP TABLE IF EXISTS {table}")
    cur.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, body text)")
    cur.execute(f"CALL pgbert.enable_embedding('{table}', 'body', build_index => false, model => %s)", (model.name,))
    started = time.perf_counter()
    cur.copy_expert(f"COPY {table} (id, body) FROM STDIN", copy_buffer(enumerate(texts)))
    seconds = time.perf_counter() - started
    cur.execute(f"SELECT count(*) FILTER (WHERE body_embedding IS NULL), count(*) FROM {table}")
    missing, rows = cur.fetchone()
    if missing or rows != len(texts):
        raise RuntimeError(f"{model.name}: {missing} of {rows} rows have no vector after the COPY")
    cur.execute(f"DROP TABLE {table}")
    return seconds


def embed_batch_seconds(cur, model: Model, texts: list[str]) -> float:
    """Seconds of pgbert.embed_batch(texts, 'document', model) in calls of EMBED_BATCH_TEXTS texts (only the
    count comes back: the vectors' transfer to the client is not measured)."""
    started = time.perf_counter()
    for first in range(0, len(texts), EMBED_BATCH_TEXTS):
        part = texts[first:first + EMBED_BATCH_TEXTS]
        cur.execute("SELECT cardinality(pgbert.embed_batch(%s::text[], 'document', %s))", (part, model.name))
        assert cur.fetchone()[0] == len(part)
    return time.perf_counter() - started


def engine_seconds(model: Model, texts: list[str]) -> float:
    """Seconds of the static engine itself on texts, in this process (one thread, as in the server): what the
    database's texts/s are to be read against. (bench/run.py measures the transformer's: its "ceiling".)"""
    from pgbert_runtime.bundle import load_bundle
    from pgbert_runtime.static import StaticEncoder

    encoder = StaticEncoder(load_bundle(model.bundle))
    encoder.encode(texts[:10])  # the memory-mapped table read in before the timing, as in the warm server
    started = time.perf_counter()
    encoder.encode(texts)
    return time.perf_counter() - started


def plain_copy_seconds(cur, texts: list[str]) -> float:
    """The database's own share: the same COPY into a table without embedding."""
    cur.execute("DROP TABLE IF EXISTS bench_models_plain")
    cur.execute("CREATE TABLE bench_models_plain (id int PRIMARY KEY, body text)")
    started = time.perf_counter()
    cur.copy_expert("COPY bench_models_plain (id, body) FROM STDIN", copy_buffer(enumerate(texts)))
    seconds = time.perf_counter() - started
    cur.execute("DROP TABLE bench_models_plain")
    return seconds


def measure_speed(cur, models: list[Model], texts: list[str], args) -> float:
    """Fills each model's seconds and batch_seconds; returns the plain COPY's seconds (median of the rounds)."""
    plain = []
    for model in models:
        model.rows = args.rows_static if model.static else args.rows_transformer
        cur.execute("SELECT embed('warm up', model => %s)", (model.name,))  # loaded before any timing
    for round_ in range(args.repeats):
        order = models if round_ % 2 == 0 else models[::-1]  # noise and drift hit every model alike
        for model in order:
            rows = texts[:model.rows]
            model.seconds.append(copy_seconds(cur, model, rows))
            model.batch_seconds.append(embed_batch_seconds(cur, model, rows))
            if model.static:
                model.engine_seconds.append(engine_seconds(model, rows))
            say(f"round {round_ + 1}: {model.name}: COPY {len(rows)} rows in {model.seconds[-1]:.2f} s "
                f"({len(rows) / model.seconds[-1]:.0f} texts/s), embed_batch {model.batch_seconds[-1]:.2f} s "
                f"({len(rows) / model.batch_seconds[-1]:.0f} texts/s)")
        plain.append(plain_copy_seconds(cur, texts[:args.rows_static]))
    return statistics.median(plain)


def rate(model: Model, seconds: list[float]) -> float:
    return model.rows * len(seconds) / sum(seconds)


# -- 2. the known-item task ---------------------------------------------------------------------------------
def known_item(cur, model: Model, docs: list[str], queries: list[tuple[str, int]]) -> dict:
    """recall@10 and MRR@10 by search() (HNSW) and by an exact scan over a table of docs enabled with the model;
    a query with no word the model knows is refused (SQLSTATE 22023): a miss, counted."""
    table = table_of(model, "search")
    cur.execute(f"DROP TABLE IF EXISTS {table}")
    cur.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, body text)")
    cur.execute(f"CALL pgbert.enable_embedding('{table}', 'body', model => %s)", (model.name,))
    cur.copy_expert(f"COPY {table} (id, body) FROM STDIN", copy_buffer(enumerate(docs)))
    cur.execute(f"ANALYZE {table}")
    cur.execute(f"SELECT count(*) FROM {table} WHERE vector_norm(body_embedding) = 0")
    zero_docs = cur.fetchone()[0]
    hnsw, exact, refused = [], [], 0
    for query, target in queries:
        try:
            cur.execute(f"SELECT id FROM search(%s, {K}, %s)", (query, table))
            hnsw.append(rank_of(target, [int(r[0]) for r in cur.fetchall()]))
            exact.append(exact_rank(cur, table, model, query, target))
        except psycopg2.errors.InvalidParameterValue:  # no known word: no vector to search with
            refused += 1
            hnsw.append(None)
            exact.append(None)
    cur.execute(f"DROP TABLE {table}")
    (recall, mrr), (exact_recall, exact_mrr) = metrics(hnsw), metrics(exact)
    return {"recall": recall, "mrr": mrr, "exact_recall": exact_recall, "exact_mrr": exact_mrr,
            "refused": refused, "zero_docs": zero_docs}


def exact_rank(cur, table: str, model: Model, query: str, target: int) -> int | None:
    """The target's rank among the K nearest rows by a sequential scan (zero vectors: NaN, sorted last)."""
    cur.execute("BEGIN")
    try:
        cur.execute("SET LOCAL enable_indexscan = off")
        # embed(text, model => ...) is IMMUTABLE: folded once at planning, not called per row
        cur.execute(f"SELECT id FROM {table} ORDER BY body_embedding <=> "
                    f"embed(%s, model => %s, kind => 'query') LIMIT {K}", (query, model.name))
        return rank_of(target, [int(r[0]) for r in cur.fetchall()])
    finally:
        cur.execute("ROLLBACK")


# -- 3. the Lee corpus --------------------------------------------------------------------------------------
def lee_corpus() -> tuple[list[str], np.ndarray]:
    """The 50 documents and the upper triangle (1,225 pairs) of the mean human ratings, as gensim ships them:
    lee.cor, one document a line (Latin-1: it has a '£'), and similarities0-1.txt, a 50 x 50 matrix whose
    upper triangle holds the ratings (1 on the diagonal, 0 below it)."""
    with open(gensim_data("lee.cor"), encoding="latin-1") as f:
        docs = [line.strip() for line in f if line.strip()]
    ratings = np.loadtxt(gensim_data("similarities0-1.txt"))
    if len(docs) != 50 or ratings.shape != (50, 50) or np.tril(ratings, -1).any():
        raise RuntimeError(f"gensim's Lee data is not as expected ({len(docs)} documents, a {ratings.shape} "
                           f"upper-triangular matrix expected 50 and (50, 50)): check the gensim version")
    return docs, ratings[np.triu_indices(50, 1)]


def lee_correlation(cur, model: Model, docs: list[str], human: np.ndarray) -> dict:
    """Pearson and Spearman of the cosine of every pair's vectors (embed_batch in the database) with the human
    ratings; a zero vector (a document with no known word) has cosine 0 to everything."""
    from scipy.stats import pearsonr, spearmanr

    cur.execute("SELECT pgbert.embed_batch(%s::text[], 'document', %s)::text[]", (docs, model.name))
    vectors = np.array([json.loads(v) for v in cur.fetchone()[0]], dtype=np.float64)
    norms = np.linalg.norm(vectors, axis=1)
    unit = vectors / np.where(norms == 0, 1, norms)[:, None]
    cosine = (unit @ unit.T)[np.triu_indices(len(docs), 1)]
    return {"pearson": float(pearsonr(cosine, human)[0]), "spearman": float(spearmanr(cosine, human)[0]),
            "lee_zero": int((norms == 0).sum())}


# -- the report ---------------------------------------------------------------------------------------------
def describe_vectors(model: Model) -> str:
    """What the imported file is: format, words, dimensions, and how its vocabulary relates to the Lee background
    corpus (lee_background.cor: gensim trains its test models on it)."""
    import collections

    from gensim.models import KeyedVectors
    from gensim.utils import simple_preprocess

    source = model.manifest["source"]
    vectors = KeyedVectors.load_word2vec_format(source["file"], binary=source["format"] == "binary",
                                                no_header=not source["header"])
    with open(gensim_data("lee_background.cor"), encoding="latin-1") as f:
        counts = collections.Counter(word for line in f for word in simple_preprocess(line))
    words = set(vectors.index_to_key)
    inside = sum(1 for w in words if counts[w])
    text = (f"`{os.path.basename(source['file'])}` ({source['format']} Word2Vec format; {len(words):,} words x "
            f"{vectors.vector_size} dimensions, {'lowercase' if source['lowercase'] else 'cased'}); "
            f"{inside / len(words):.0%} of its words occur in gensim's `lee_background.cor` (300 ABC news texts, "
            f"{sum(counts.values()):,} words)")
    least = min((counts[w] for w in words), default=0)
    if least and words == {w for w, n in counts.items() if n >= least}:
        text += (f", and its vocabulary is exactly the words occurring there at least {least} times (gensim's "
                 f"`simple_preprocess`): a Word2Vec model trained on that corpus alone (gensim's tests do not "
                 f"say so; the vocabulary does)")
    return text + ". A toy: real Word2Vec models have millions of words and 300 dimensions."


def describe(models: list[Model], engine: str) -> list[str]:
    transformer, static, vectors = models
    m = static.manifest
    return [f"- **transformer**: `{transformer.name}` ({transformer.manifest['model_id']}, "
            f"{transformer.manifest['dimension']}-d, reads {transformer.manifest['max_tokens']} tokens), the "
            f"database's default model, engine {engine}.",
            f"- **static (model2vec)**: `{static.name}` ({m['model_id']}, {m['dimension']}-d, {m['vocab_size']:,} "
            f"tokens; `pgbert export --static`).",
            f"- **Word2Vec**: `{vectors.name}` (`pgbert import-vectors`): {describe_vectors(vectors)}"]


def has_amx() -> bool:
    try:
        with open("/proc/cpuinfo") as f:
            return any(line.startswith("flags") and "amx_bf16" in line.split() for line in f)
    except OSError:
        return False


def speed_table(models: list[Model], texts: list[str], plain: float, args) -> list[str]:
    base, base_batch = rate(models[0], models[0].seconds), rate(models[0], models[0].batch_seconds)
    lines = ["| model | name | rows | COPY: s to commit, per round | texts/s (COPY) | × transformer | "
             "embed_batch texts/s | × transformer | engine alone, texts/s |", "|---|---|---|---|---|---|---|---|---|"]
    for model in models:
        copy, batch = rate(model, model.seconds), rate(model, model.batch_seconds)
        alone = f"{rate(model, model.engine_seconds):,.0f}" if model.engine_seconds else "—"
        lines.append(f"| {model.label} | `{model.name}` | {model.rows:,} | "
                     f"{', '.join(f'{s:.2f}' for s in model.seconds)} | {copy:,.0f} | {copy / base:,.1f}× | "
                     f"{batch:,.0f} | {batch / base_batch:,.1f}× | {alone} |")
    ratio = rate(models[1], models[1].seconds) / base
    mean = {n: statistics.mean(len(t) for t in texts[:n]) for n in (args.rows_transformer, args.rows_static)}
    return lines + [
        "", f"Target: the distilled static model's COPY texts/s ≥ {TARGET_RATIO}× the transformer's, same run: "
            f"**{ratio:,.1f}×, {'met' if ratio >= TARGET_RATIO else 'not met'}**.", "",
        f"- Texts: the first {args.rows_static:,} distinct English Debian package descriptions in file order (mean "
        f"{mean[args.rows_static]:.0f} characters) for the static models, the first {args.rows_transformer:,} of "
        f"the same (mean {mean[args.rows_transformer]:.0f} characters) for the transformer. texts/s = rows x "
        f"rounds / the rounds' seconds; {args.repeats} round{ROUNDS if args.repeats > 1 else ''}.",
        f"- COPY: into a fresh table `(id int PRIMARY KEY, body text)` enabled with `enable_embedding(..., "
        f"build_index => false, model => name)` (strategy batch): from the start of the COPY to its commit, "
        f"every row checked to have its vector. The same {args.rows_static:,} rows into a table without embedding "
        f"take {plain:.2f} s ({args.rows_static / plain:,.0f} rows/s): the database's own share.",
        f"- embed_batch: `SELECT cardinality(pgbert.embed_batch(texts, 'document', name))` over the same rows, "
        f"{EMBED_BATCH_TEXTS:,} texts a call (the vectors stay in the server).",
        "- Engine alone: the static engine (pgbert_runtime.static.StaticEncoder, one thread as in the server) on the "
        "same texts in the benchmark's own process, no database: COPY keeps "
        + ", ".join(f"{rate(m, m.seconds) / rate(m, m.engine_seconds):.0%} of it ({m.label})"
                    for m in models if m.engine_seconds) + "."] + ([
        "- The ratios depend on the CPU: a transformer runs in bf16 on AMX where the CPU has it (engine "
        "openvino-bf16), the static engine (a tokenizer and numpy sums) gains nothing from it, and this CPU lacks "
        "AMX. On the AMX CPU of bench/RESULTS-queue.md all-mpnet-base-v2 embedded several times more texts a "
        "second than it does here, so the same static texts/s would be a smaller multiple of it there."]
        if not has_amx() else [])


def quality_table(models: list[Model], args) -> list[str]:
    lines = ["| model | name | recall@10, search() | MRR@10, search() | recall@10, exact | MRR@10, exact | "
             "queries refused (no known word) | documents with no known word |", "|---|---|---|---|---|---|---|---|"]
    for m in models:
        q = m.quality
        lines.append(f"| {m.label} | `{m.name}` | {q['recall']:.3f} | {q['mrr']:.3f} | {q['exact_recall']:.3f} | "
                     f"{q['exact_mrr']:.3f} | {q['refused']} | {q['zero_docs']} |")
    return lines + [
        "", f"- {args.docs:,} English Debian descriptions and {args.queries} of their packages' one-line summaries "
            f"as queries (bench/_common.py's sample, seed {args.seed}: the same as bench/languages.py's), a table "
            f"per model loaded by its triggers with the default HNSW index; the right answer is the summary's own "
            f"package. search(): `search(summary, 10, table)` (HNSW, vector mode); exact: `ORDER BY body_embedding "
            f"<=> embed(summary, model => name, kind => 'query') LIMIT 10` with index scans off. Chance: recall@10 "
            f"{K / args.docs:.3f}.",
        "- A static model refuses a query none of whose words it knows (SQLSTATE 22023): counted as a miss. A "
        "document none of whose words it knows is stored as the zero vector, which no search finds."]


def lee_table(models: list[Model]) -> list[str]:
    lines = ["| model | name | Pearson r | Spearman ρ | documents with no known word |", "|---|---|---|---|---|"]
    for m in models:
        q = m.quality
        lines.append(f"| {m.label} | `{m.name}` | {q['pearson']:.3f} | {q['spearman']:.3f} | {q['lee_zero']} |")
    return lines + [
        "", "- Data: gensim's test copy of the Lee corpus (Lee, Pincombe & Welsh, \"An Empirical Evaluation of "
            "Models of Text Document Similarity\", CogSci 2005): 50 short ABC news documents (`lee.cor`), every "
            "pair rated by students on a 1-5 scale; `similarities0-1.txt` holds the mean rating of each pair, "
            "scaled to 0-1, in the upper triangle of a 50 x 50 matrix. The paper reports inter-rater correlations "
            "of about 0.6, its best LSA model about 0.6 and its best word-based and n-gram models about 0.5.",
        "- Here: the cosine of the two documents' vectors (`pgbert.embed_batch(docs, 'document', model)`, in the "
        "database) against the mean rating, over the 1,225 pairs of the upper triangle; Pearson (the paper's "
        "measure) and Spearman."]


def report(models: list[Model], texts: list[str], plain: float, engine: str, args, minutes: float) -> str:
    lines = ["# Models: a transformer, its static distillation, Word2Vec vectors (issue 23)", "", cpu_summary(), "",
             *describe(models, engine), "",
             f"One run, {minutes:.1f} min, on a machine shared with other work: the ratios, measured side by side, "
             f"are the measure; absolute times drift. Command: `bench/models.py` "
             f"{'--quick' if args.quick else '(defaults)'}.", "",
             "## 1. Speed: texts/s in the database", "", *speed_table(models, texts, plain, args), "",
             "## 2. Search: the English Debian known-item task", "", *quality_table(models, args), "",
             "## 3. Similarity: correlation with human ratings on the Lee corpus", "", *lee_table(models)]
    return "\n".join(lines) + "\n"


# -- main ---------------------------------------------------------------------------------------------------
def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="database URL (default: the local cluster)")
    parser.add_argument("--rows-transformer", type=int, default=500, help="COPY rows for the transformer")
    parser.add_argument("--rows-static", type=int, default=20000, help="COPY rows for the static models")
    parser.add_argument("--repeats", type=int, default=2, help="rounds of the speed measures")
    parser.add_argument("--docs", type=int, default=1000, help="documents of the known-item task")
    parser.add_argument("--queries", type=int, default=200, help="queries of the known-item task")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--static-model", default=STATIC_SOURCE,
                        help="what the static model is distilled from when its bundle is missing")
    parser.add_argument("--static-bundle", help="the static bundle (default: .pgbert/models/<static-model>-static)")
    parser.add_argument("--static-name", help="its name in the database (default: the bundle's folder name)")
    parser.add_argument("--vectors", help=f"a Word2Vec file (default: gensim's test file {VECTORS_FILE})")
    parser.add_argument("--vectors-bundle", help="its bundle (default: .pgbert/models/<vectors-name>)")
    parser.add_argument("--vectors-name", default=VECTORS_NAME, help="its name in the database")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (the test): seconds")
    parser.add_argument("--output", default=os.path.join(ROOT, "bench", "RESULTS-models.md"))
    args = parser.parse_args()
    if args.quick:
        args.rows_transformer, args.rows_static, args.repeats, args.docs, args.queries = 20, 200, 1, 60, 15
    if args.rows_static < args.rows_transformer:
        parser.error("--rows-static must be at least --rows-transformer: the transformer's rows are its first ones")
    args.static_bundle = args.static_bundle or Paths.default().bundle(args.static_model) + "-static"
    args.vectors = args.vectors or gensim_data(VECTORS_FILE)
    args.vectors_bundle = args.vectors_bundle or Paths.default().bundle(args.vectors_name)
    return args


def run(cur, models: list[Model], args) -> tuple[list[str], float]:
    packages = load_packages(echo=say)
    texts = [p.description for p in packages[:args.rows_static]]
    plain = measure_speed(cur, models, texts, args)
    docs, queries = sample(packages, args.docs, args.queries, args.seed)
    lee_docs, human = lee_corpus()
    for model in models:
        model.quality = known_item(cur, model, docs, queries)
        model.quality.update(lee_correlation(cur, model, lee_docs, human))
        say(f"{model.name}: {model.quality}")
    return texts, plain


def main() -> None:
    args = parse_args()
    started = time.perf_counter()
    cur = connect(args.url or Cluster().url()).cursor()
    models: list[Model] = []
    try:
        models_of(cur, args, models)
        texts, plain = run(cur, models, args)
        cur.execute("SELECT value FROM pgbert.status() WHERE setting = 'engine'")
        engine = cur.fetchone()[0]
    finally:
        for model in models:
            for purpose in ("load", "search"):
                cur.execute(f"DROP TABLE IF EXISTS {table_of(model, purpose)}")
            if model.registered:
                cur.execute("SELECT pgbert.drop_model(%s)", (model.name,))
    text = report(models, texts, plain, engine, args, (time.perf_counter() - started) / 60)
    with open(args.output, "w", encoding="utf-8") as f:
        f.write(text)
    print(text)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
