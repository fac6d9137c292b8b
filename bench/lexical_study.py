"""Lexical search for Japanese (issue 9): which analyzer, and does PostgreSQL's ranking hold up?

  .venv/bin/python bench/lexical_study.py                  # every part, prints markdown tables
  .venv/bin/python bench/lexical_study.py --parts python   # only the in-Python BM25 comparison

Protocol (as bench/run.py's quality section): from Debian's package descriptions, a seeded sample of
--docs documents (the long descriptions) and --queries of their one-line summaries; a query's right
answer is its own package's description. Japanese: Translation-ja (cli/pgbert/corpus.py);
English: Translation-en (cli/pgbert/corpus.py). recall@10 and MRR@10.

Parts:
  python   BM25 (k1 1.2, b 0.75) in Python over each analyzer's tokens: character bigrams (baseline),
           SudachiPy modes A/B/C x part-of-speech filters (pgbert_runtime.lexical, the code pgbert
           ships), fugashi + unidic-lite if installed; analysis speed in docs/s.
  pg       what pgbert can ship: lexical.py's lexemes stored as tsvector in PostgreSQL (GIN index),
           an OR tsquery, ranked by ts_rank / ts_rank_cd with several normalizations, and BM25
           computed in SQL over the GIN matches (document frequencies counted through the index).
  english  the same in PostgreSQL with the 'english' config: plainto / websearch (AND) and OR queries.
  hybrid   reciprocal rank fusion of vector search (all-mpnet-base-v2 via pgbert_runtime's Encoder;
           vectors cached under .cache/lexical_study/) with the lexical rankings; grid over k and
           the lexical weight.

The database parts create their own database (lexical_study) on the project's cluster and drop it
at the end (--keep-db keeps it).
"""
from __future__ import annotations

import argparse
import hashlib
import math
import os
import platform
import re
import sys
import time
import unicodedata
from collections import Counter, defaultdict

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "cli"))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "plpython"))

from _common import cpu_summary, metrics, rank_of, sample  # noqa: E402
from pgbert.paths import ROOT  # noqa: E402
from pgbert_runtime import lexical  # noqa: E402

STUDY_DB = "lexical_study"
CACHE = os.path.join(ROOT, ".cache", "lexical_study")


# -- corpus and metrics ------------------------------------------------------------------------------



# -- analyzers ---------------------------------------------------------------------------------------

_RUN = re.compile(r"\w+")


def bigrams(text: str) -> list[str]:
    """The baseline: NFKC, lowercase, character bigrams inside runs of word characters."""
    out = []
    for run in _RUN.findall(unicodedata.normalize("NFKC", text).lower()):
        out.extend([run] if len(run) == 1 else [run[i:i + 2] for i in range(len(run) - 1)])
    return out


def sudachi(mode: str, filter: str, split_unknown: bool = True, ascii_surface: bool = True,
            query_ascii_surface: bool = False):
    """lexical.py's analysis; like to_tsvector_text / to_tsquery_text, ASCII spellings go into the
    documents only (in queries too they count twice and cost MRR), unless asked otherwise."""
    def analyze(text: str) -> list[str]:
        return lexical.japanese_lexemes(text, mode=mode, filter=filter, split_unknown=split_unknown,
                                        ascii_surface=ascii_surface)

    def analyze_query(text: str) -> list[str]:
        return lexical.japanese_lexemes(text, mode=mode, filter=filter, split_unknown=split_unknown,
                                        ascii_surface=query_ascii_surface)
    analyze.query = analyze_query
    return analyze


def fugashi_analyzer(filter: str):
    """fugashi + unidic-lite: orthographic base form (書か -> 書く), NFKC, lowercase; same filters."""
    import fugashi

    tagger = fugashi.Tagger()
    drop = {"補助記号", "記号", "空白"}
    function_words = {"助詞", "助動詞"}
    content = {"名詞", "動詞", "形容詞", "形状詞", "副詞", "接頭辞", "接尾辞"}

    def analyze(text: str) -> list[str]:
        out = []
        for word in tagger(unicodedata.normalize("NFKC", text)):
            f = word.feature
            if f.pos1 in drop:
                continue
            if filter == "particles" and f.pos1 in function_words:
                continue
            light_verb = f.pos1 in ("動詞", "形容詞") and f.pos2 == "非自立可能"
            if filter == "content" and (f.pos1 not in content or light_verb):
                continue
            form = unicodedata.normalize("NFKC", f.orthBase or word.surface).lower().strip()
            if form and any(ch.isalnum() for ch in form):
                out.append(form)
        return out
    return analyze


def analyze_all(analyzer, texts: list[str]) -> tuple[list[list[str]], float]:
    """Tokens of every text and docs/s (after one warm-up call, which loads dictionaries)."""
    analyzer(texts[0])
    started = time.perf_counter()
    tokens = [analyzer(t) for t in texts]
    return tokens, len(texts) / (time.perf_counter() - started)


# -- BM25 in Python -------------------------------------------------------------------------------------

class BM25:
    def __init__(self, docs: list[list[str]], k1: float = 1.2, b: float = 0.75):
        self.k1, self.b = k1, b
        self.n = len(docs)
        self.lengths = [len(d) for d in docs]
        self.avgdl = sum(self.lengths) / max(1, self.n)
        self.postings: dict[str, list[tuple[int, int]]] = defaultdict(list)
        for i, doc in enumerate(docs):
            for term, tf in Counter(doc).items():
                self.postings[term].append((i, tf))

    def idf(self, term: str) -> float:
        df = len(self.postings.get(term, ()))
        return math.log(1 + (self.n - df + 0.5) / (df + 0.5))

    def search(self, query: list[str], k: int = 100) -> list[int]:
        scores: dict[int, float] = defaultdict(float)
        for term in dict.fromkeys(query):
            idf = self.idf(term)
            for doc, tf in self.postings.get(term, ()):
                norm = self.k1 * (1 - self.b + self.b * self.lengths[doc] / self.avgdl)
                scores[doc] += idf * tf * (self.k1 + 1) / (tf + norm)
        return [d for d, _ in sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:k]]


def bm25_rankings(analyzer, docs: list[str], queries) -> tuple[list[list[int]], float]:
    """BM25 rankings (top 100) of every query; an analyzer's .query, if any, analyses the queries."""
    tokens, rate = analyze_all(analyzer, docs)
    index = BM25(tokens)
    analyze_query = getattr(analyzer, "query", analyzer)
    return [index.search(analyze_query(q)) for q, _ in queries], rate


# -- PostgreSQL ---------------------------------------------------------------------------------------

class Database:
    """A database of our own on the project's cluster, dropped on close."""

    def __init__(self, keep: bool = False):
        import psycopg2

        from pgbert.cluster import Cluster

        self.keep = keep
        cluster = Cluster()
        self.admin = psycopg2.connect(cluster.url())
        self.admin.autocommit = True
        with self.admin.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (STUDY_DB,))
            if not cur.fetchone():
                cur.execute(f"CREATE DATABASE {STUDY_DB}")
        self.conn = psycopg2.connect(cluster.url(STUDY_DB))
        self.conn.autocommit = True
        self.cur = self.conn.cursor()
        self.cur.execute("SELECT version()")
        self.version = self.cur.fetchone()[0].split(" on ")[0]

    def close(self) -> None:
        self.conn.close()
        if not self.keep:
            with self.admin.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS {STUDY_DB}")
        self.admin.close()

    def load(self, table: str, docs: list[str], tsvector_sql: str, literals: list[str] | None = None) -> float:
        """A table (id, body, tsv, dl) with a GIN index; tsvector_sql computes tsv from body (and
        %(lit)s, the literal lexical.py made). Returns rows/s of the load (SQL side only)."""
        cur = self.cur
        cur.execute(f"DROP TABLE IF EXISTS {table}")
        cur.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, body text, tsv tsvector, dl int)")
        started = time.perf_counter()
        rows = [(i, d, literals[i] if literals else None) for i, d in enumerate(docs)]
        from psycopg2.extras import execute_values
        execute_values(cur, f"INSERT INTO {table} (id, body, tsv) SELECT v.id, v.body, {tsvector_sql} "
                            "FROM (VALUES %s) AS v(id, body, lit)", rows, template="(%s, %s, %s)", page_size=200)
        rate = len(docs) / (time.perf_counter() - started)
        # document length for BM25: the number of positions (words) in the tsvector
        cur.execute(f"UPDATE {table} SET dl = coalesce((SELECT sum(coalesce(array_length(positions, 1), 1)) "
                    f"FROM unnest(tsv)), 0)")
        cur.execute(f"CREATE INDEX ON {table} USING gin (tsv)")
        cur.execute(f"ANALYZE {table}")
        return rate

    def ts_rank(self, table: str, tsquery: str, fn: str, norm: int, k: int = 100) -> list[int]:
        self.cur.execute(f"SELECT id FROM {table}, (SELECT nullif(%s, '')::tsquery AS q) AS x WHERE tsv @@ q "
                         f"ORDER BY {fn}(tsv, q, %s) DESC, id LIMIT %s", (tsquery, norm, k))
        return [r[0] for r in self.cur.fetchall()]

    def bm25(self, table: str, lexemes: list[str], k1: float = 1.2, b: float = 0.75, k: int = 100) -> list[int]:
        """BM25 in SQL: the GIN index finds the rows that match any lexeme and counts each lexeme's
        document frequency; term frequency is the number of positions (≤ 256)."""
        lexemes = list(dict.fromkeys(x for x in lexemes if x))
        if not lexemes:
            return []
        # MATERIALIZED: inlined, the df subquery would run once per joined row (20x slower).
        self.cur.execute(f"""
            WITH q AS MATERIALIZED (
                     SELECT lexeme, (SELECT count(*) FROM {table} WHERE tsv @@ lexical_quote(lexeme)::tsquery) AS df
                     FROM unnest(%(lexemes)s::text[]) AS lexeme),
                 stats AS MATERIALIZED (SELECT count(*) AS n, avg(dl) AS avgdl FROM {table}),
                 hits AS (
                     SELECT d.id, d.dl, q.df, coalesce(array_length(u.positions, 1), 1) AS tf
                     FROM {table} d, unnest(d.tsv) u, q
                     WHERE d.tsv @@ %(query)s::tsquery AND u.lexeme = q.lexeme)
            SELECT hits.id
            FROM hits, stats
            GROUP BY hits.id
            ORDER BY sum(ln(1 + (stats.n - hits.df + 0.5) / (hits.df + 0.5)) * hits.tf * ({k1} + 1)
                         / (hits.tf + {k1} * (1 - {b} + {b} * hits.dl / stats.avgdl))) DESC, hits.id
            LIMIT %(k)s""", {"lexemes": lexemes, "query": lexical.tsquery_or(lexemes), "k": k})
        return [r[0] for r in self.cur.fetchall()]

    def install_quote(self) -> None:
        """SQL twin of lexical.quote_lexeme, for the per-lexeme document-frequency counts."""
        self.cur.execute(r"""
            CREATE OR REPLACE FUNCTION lexical_quote(text) RETURNS text IMMUTABLE STRICT LANGUAGE sql
            AS $$ SELECT '''' || replace(replace($1, '\', '\\'), '''', '''''') || '''' $$""")


# -- vectors and fusion -----------------------------------------------------------------------------------

def embeddings(texts: list[str], tag: str, bundle: str):
    """Normalised vectors from pgbert_runtime's Encoder, cached as .npy keyed by the texts."""
    import numpy as np

    digest = hashlib.sha256(("\x00".join(texts) + "\x01" + bundle).encode()).hexdigest()[:16]
    path = os.path.join(CACHE, f"{tag}-{digest}.npy")
    if os.path.exists(path):
        return np.load(path)
    from pgbert_runtime.encoder import get_encoder

    started = time.perf_counter()
    vectors = get_encoder(bundle).encode(texts)
    print(f"  embedded {len(texts)} texts ({tag}) in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    os.makedirs(CACHE, exist_ok=True)
    np.save(path, vectors)
    return vectors


def vector_rankings(docs: list[str], queries, tag: str, bundle: str, k: int = 100) -> list[list[int]]:
    import numpy as np

    d = embeddings(docs, f"{tag}-docs", bundle)
    q = embeddings([text for text, _ in queries], f"{tag}-queries", bundle)
    sims = q @ d.T
    return [list(map(int, np.argsort(-row, kind="stable")[:k])) for row in sims]


def rrf(vector: list[int], lexical_: list[int], k: float, weight: float, depth: int = 100) -> list[int]:
    """Reciprocal rank fusion: 1/(k + rank) from each list (top `depth`), lexical one times weight."""
    scores: dict[int, float] = defaultdict(float)
    for rank, doc in enumerate(vector[:depth], 1):
        scores[doc] += 1 / (k + rank)
    for rank, doc in enumerate(lexical_[:depth], 1):
        scores[doc] += weight / (k + rank)
    return [d for d, _ in sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))]


# -- the study ------------------------------------------------------------------------------------------

class Study:
    def __init__(self, args):
        self.args = args
        self.rows: list[tuple[str, str, str, str, str]] = []   # part, method, recall, MRR, notes
        self.rankings: dict[str, list[list[int]]] = {}
        self.db: Database | None = None

    def record(self, section: str, method: str, rankings: list[list[int]], queries, extra: str = "") -> None:
        recall, mrr = metrics([rank_of(target, r) for r, (_, target) in zip(rankings, queries)])
        self.rows.append((section, method, f"{recall:.3f}", f"{mrr:.3f}", extra))
        print(f"  {section:8} {method:58} recall@10 {recall:.3f}  MRR@10 {mrr:.3f}  {extra}",
              file=sys.stderr, flush=True)

    def database(self) -> Database:
        if self.db is None:
            self.db = Database(keep=self.args.keep_db)
            self.db.install_quote()
        return self.db

    def japanese(self):
        from pgbert.corpus import load_packages

        return sample(load_packages("ja", echo=lambda *_: None), self.args.docs, self.args.queries, self.args.seed)

    def english(self):
        from pgbert.corpus import load_packages

        return sample(load_packages(echo=lambda *_: None), self.args.docs, self.args.queries, self.args.seed)

    # python ------------------------------------------------------------------------------------------
    def python(self, docs, queries) -> None:
        analyzers = [("character bigrams (baseline)", bigrams)]
        for mode in "ABC":
            for filter in ("none", "particles", "content"):
                analyzers.append((f"Sudachi {mode}, normalized form, filter={filter}", sudachi(mode, filter)))
        mode, filter = lexical.DEFAULT_MODE, lexical.DEFAULT_FILTER
        analyzers.append((f"Sudachi {mode}, normalized form, filter={filter}, unknown katakana not split",
                          sudachi(mode, filter, split_unknown=False)))
        analyzers.append((f"Sudachi {mode}, normalized form, filter={filter}, no ASCII spellings",
                          sudachi(mode, filter, ascii_surface=False)))
        analyzers.append((f"Sudachi {mode}, normalized form, filter={filter}, ASCII spellings in queries too",
                          sudachi(mode, filter, query_ascii_surface=True)))
        try:
            import fugashi  # noqa: F401
            import unidic_lite  # noqa: F401
            for filter in ("none", "particles", "content"):
                analyzers.append((f"fugashi + unidic-lite, base form, filter={filter}", fugashi_analyzer(filter)))
        except ImportError:
            print("  fugashi / unidic-lite not installed: skipped", file=sys.stderr)
        for name, analyzer in analyzers:
            rankings, rate = bm25_rankings(analyzer, docs, queries)
            self.rankings[f"bm25:{name}"] = rankings
            self.record("python", f"BM25, {name}", rankings, queries, f"{rate:,.0f} docs/s")

    # pg ------------------------------------------------------------------------------------------------
    def pg(self, docs, queries) -> None:
        """Every Sudachi mode x filter as tsvector in PostgreSQL; the full ranking grid for lexical.py's
        default (what to_tsvector_text / to_tsquery_text ship), a short one for the others."""
        db = self.database()
        started = time.perf_counter()
        for d in docs:
            lexical.to_tsvector_text(d, "japanese")
        print(f"  to_tsvector_text (default analysis) {len(docs) / (time.perf_counter() - started):,.0f} docs/s",
              file=sys.stderr)
        default = (lexical.DEFAULT_MODE, lexical.DEFAULT_FILTER)
        variants = [(m, f, True) for m in "ABC" for f in ("none", "particles", "content")] + [(*default, False)]
        if self.args.variants:
            wanted = {tuple(v.split(":")) for v in self.args.variants.split(",")}
            variants = [v for v in variants if (v[0], v[1]) in wanted and (v[2] or (v[0], v[1], "nosplit") in wanted)]
        for mode, filter, split in variants:
            table = f"ja_{mode}_{filter}{'' if split else '_nosplit'}".lower()
            literals = [lexical.tsvector_literal(lexical.japanese_positions(d, mode, filter, split_unknown=split))
                        for d in docs]
            load_rate = db.load(table, docs, "lit::tsvector", literals)
            lexemes = [lexical.japanese_lexemes(q, mode, filter, split_unknown=split, ascii_surface=False)
                       for q, _ in queries]
            tsqueries = [lexical.tsquery_or(x) for x in lexemes]
            full = (mode, filter, split) == (*default, True)
            grid = ([("ts_rank", n) for n in (0, 1, 2, 8)] + [("ts_rank_cd", n) for n in (0, 1, 2, 4, 8)]
                    if full else [("ts_rank", 0), ("ts_rank", 1), ("ts_rank_cd", 1)])
            label = (f"Sudachi {mode}, filter={filter}" + ("" if split else ", unknown katakana not split")
                     + (" (lexical.py default)" if full else ""))
            key = f"pg:{mode}:{filter}" + ("" if split else ":nosplit")
            for fn, norm in grid:
                rankings = [db.ts_rank(table, tq, fn, norm) for tq in tsqueries]
                self.rankings[f"{key}:{fn}:{norm}"] = rankings
                self.record("pg-ja", f"{fn}(tsv, OR tsquery, {norm}), {label}", rankings, queries)
            started = time.perf_counter()
            rankings = [db.bm25(table, x) for x in lexemes]
            ms = (time.perf_counter() - started) * 1000 / len(queries)
            self.rankings[f"{key}:bm25"] = rankings
            self.record("pg-ja", f"BM25 in SQL (df via GIN), {label}", rankings, queries, f"{ms:.1f} ms/query")
            if full:
                started = time.perf_counter()
                for tq in tsqueries:
                    db.ts_rank(table, tq, "ts_rank", 1, 10)
                ms = (time.perf_counter() - started) * 1000 / len(queries)
                print(f"  INSERT of the literals {load_rate:,.0f} rows/s; ts_rank top-10 {ms:.1f} ms/query",
                      file=sys.stderr)

    # english ---------------------------------------------------------------------------------------------
    def english_pg(self, docs, queries) -> None:
        db = self.database()
        db.load("en_docs", docs, "to_tsvector('english', v.body)")
        cur = db.cur
        lexemes = []
        for q, _ in queries:
            cur.execute("SELECT coalesce(array_agg(lexeme ORDER BY p), '{}') FROM "
                        "(SELECT lexeme, min(p) AS p FROM unnest(to_tsvector('english', %s)) u, unnest(u.positions) p "
                        "GROUP BY lexeme) x", (q,))
            lexemes.append(cur.fetchone()[0])
        or_queries = [lexical.tsquery_or(x) for x in lexemes]
        for fn, norm in [("ts_rank", n) for n in (0, 1, 2, 8)] + [("ts_rank_cd", n) for n in (0, 1, 2, 4, 8)]:
            rankings = [db.ts_rank("en_docs", tq, fn, norm) for tq in or_queries]
            self.rankings[f"en:{fn}:{norm}"] = rankings
            self.record("pg-en", f"{fn}(tsv, OR tsquery, {norm})", rankings, queries)
        for builder in ("plainto_tsquery", "websearch_to_tsquery"):
            rankings = []
            for q, _ in queries:
                cur.execute(f"SELECT id FROM en_docs, {builder}('english', %s) q WHERE tsv @@ q "
                            "ORDER BY ts_rank(tsv, q, 1) DESC, id LIMIT 100", (q,))
                rankings.append([r[0] for r in cur.fetchall()])
            self.record("pg-en", f"ts_rank(tsv, {builder} (AND), 1)", rankings, queries)
        rankings = [db.bm25("en_docs", x) for x in lexemes]
        self.rankings["en:bm25"] = rankings
        self.record("pg-en", "BM25 in SQL over 'english' lexemes", rankings, queries)

    # hybrid ------------------------------------------------------------------------------------------------
    def hybrid(self, docs, queries, tag: str, lexical_keys: list[str], grid_keys: tuple[str, ...] = ()) -> None:
        """RRF of exact vector search with each lexical ranking; the grid is tuned on these same
        queries (optimistic), so the k=60, weight 1 row is the honest default."""
        vector = vector_rankings(docs, queries, tag, self.args.bundle)
        self.record(f"hybrid-{tag}", "vector only (exact cosine)", vector, queries)
        for key in lexical_keys:
            if key not in self.rankings:
                continue
            best = None
            for k in (1, 5, 10, 20, 30, 60, 100):
                for weight in (0.5, 0.75, 1.0, 1.5, 2.0, 3.0):
                    fused = [rrf(v, lx, k, weight) for v, lx in zip(vector, self.rankings[key])]
                    recall, mrr = metrics([rank_of(t, r) for r, (_, t) in zip(fused, queries)])
                    if best is None or (recall, mrr) > best[0]:
                        best = ((recall, mrr), k, weight)
                    if (k, weight) == (60, 1.0):
                        self.record(f"hybrid-{tag}", f"RRF k=60 w=1: vector + {key}", fused, queries)
            (recall, mrr), k, weight = best
            self.rows.append((f"hybrid-{tag}", f"RRF best (k={k}, lexical weight {weight}): vector + {key}",
                              f"{recall:.3f}", f"{mrr:.3f}", "grid-tuned on these queries"))
            print(f"  best k={k} w={weight}: {recall:.3f} / {mrr:.3f}", file=sys.stderr)
            if key in grid_keys:
                self.grid(vector, self.rankings[key], queries, f"{tag}: vector + {key}")

    def grid(self, vector, lexical_rankings, queries, title) -> None:
        ks, weights = (5, 10, 20, 30, 60, 100), (0.5, 1.0, 1.5, 2.0, 3.0)
        lines = [f"\nRRF recall@10 / MRR@10 grid, {title} (rows: k, columns: lexical weight)\n",
                 "| k | " + " | ".join(str(w) for w in weights) + " |", "|---" * (len(weights) + 1) + "|"]
        for k in ks:
            cells = []
            for w in weights:
                fused = [rrf(v, lx, k, w) for v, lx in zip(vector, lexical_rankings)]
                recall, mrr = metrics([rank_of(t, r) for r, (_, t) in zip(fused, queries)])
                cells.append(f"{recall:.3f} / {mrr:.3f}")
            lines.append(f"| {k} | " + " | ".join(cells) + " |")
        self.grids.append("\n".join(lines))

    def run(self) -> None:
        parts = set(self.args.parts.split(","))
        self.grids: list[str] = []
        try:
            if parts & {"python", "pg", "hybrid"}:
                docs, queries = self.japanese()
                if parts & {"python", "hybrid"}:
                    self.python(docs, queries)
                if parts & {"pg", "hybrid"}:
                    self.pg(docs, queries)
                if "hybrid" in parts:
                    mode, filter = lexical.DEFAULT_MODE, lexical.DEFAULT_FILTER
                    self.hybrid(docs, queries, "ja",
                                ["bm25:character bigrams (baseline)",
                                 f"bm25:Sudachi {mode}, normalized form, filter={filter}",
                                 *(f"pg:{mode}:{filter}:{fn}"
                                   for fn in ("ts_rank:0", "ts_rank:1", "ts_rank_cd:1", "bm25")),
                                 *(f"pg:{m}:{f}:ts_rank:1" for m in "ABC" for f in ("none", "particles", "content")
                                   if (m, f) != (mode, filter))],
                                grid_keys=(f"pg:{mode}:{filter}:ts_rank:1", f"pg:{mode}:{filter}:bm25"))
            if parts & {"english"}:
                docs, queries = self.english()
                self.english_pg(docs, queries)
                if "hybrid" in parts:
                    self.hybrid(docs, queries, "en", ["en:ts_rank:0", "en:ts_rank:1", "en:bm25"],
                                grid_keys=("en:ts_rank:1",))
        finally:
            if self.db:
                self.db.close()
        self.report()

    def report(self) -> None:
        a = self.args
        print(f"## Lexical study ({a.docs} documents, {a.queries} queries, seed {a.seed})\n")
        print(f"{cpu_summary()}; Python {platform.python_version()}"
              + (f"; {self.db.version}" if self.db else "") + "\n")
        print("| part | method | recall@10 | MRR@10 | notes |")
        print("|---|---|---|---|---|")
        for row in self.rows:
            print("| " + " | ".join(row) + " |")
        for grid in self.grids:
            print(grid)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", default="python,pg,english,hybrid",
                        help="comma-separated: python, pg, english, hybrid (default: all)")
    parser.add_argument("--docs", type=int, default=1000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bundle", default=os.path.join(ROOT, ".pgbert", "models", "all-mpnet-base-v2"))
    parser.add_argument("--variants", default="",
                        help="pg part: only these Sudachi MODE:FILTER variants, e.g. B:particles,C:content "
                             "(MODE:FILTER:nosplit for the default without katakana splitting); default all")
    parser.add_argument("--keep-db", action="store_true", help=f"keep the {STUDY_DB} database")
    Study(parser.parse_args(argv)).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
