"""`pgbert sqlite`: a searchable snapshot of an embedding-enabled table in one SQLite file (sqlite-vec).

`pgbert sqlite export TABLE FILE` streams the table's keys, texts and vectors (exactly the float32 values
PostgreSQL holds) into FILE; `pgbert sqlite search FILE 'query'` embeds the query with the same model bundle,
checked by its files' sha256, and returns the nearest rows, with no database server. Apps call search() or
Snapshot below.

A snapshot holds three tables:
- pgbert_meta (key, value): every value JSON; format_version, the model (name, model_id, dimension, normalize,
  pooling, sha256, manifest with each file's sha256, bundle_path on the server), the source table and its
  columns, metric, export time, pgbert's version, rows and rows skipped (no vector yet);
- pgbert_rows (rowid, key, text): the table's primary key as text (as search() returns it), and its text;
- pgbert_vectors: a sqlite-vec vec0 table, float[dimension] with the table's distance metric, same rowid.
"""
from __future__ import annotations

import contextlib
import json
import os
import pathlib
import sys
import tempfile
import time
from datetime import timezone
from typing import NamedTuple

FORMAT_VERSION = 1
BATCH_ROWS = 1000
PROGRESS_EVERY = 2.0  # seconds between progress lines
K_MAX = 4096  # the most rows a sqlite-vec KNN query returns
# sqlite-vec's vec0 knows l2 and cosine; a normalised model's inner product orders rows as cosine does.
METRICS = {"cosine": "cosine", "l2": "l2"}
REQUIRED_META = {"model_name", "model_id", "model_sha256", "bundle_path", "files", "metric", "dimension"}
SCHEMA = """
CREATE TABLE pgbert_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE pgbert_rows (rowid INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, text TEXT);
CREATE VIRTUAL TABLE pgbert_vectors USING vec0(embedding float[{dimension}] distance_metric={metric});
"""


class SnapshotError(Exception):
    """What went wrong and what to do next (exit status 1)."""


class Hit(NamedTuple):
    key: str
    distance: float
    text: str | None


# --- SQLite with sqlite-vec ------------------------------------------------------------------------------

def sqlite_module():
    """A DB-API sqlite3 module that can load extensions: Python's own where it was built with them, else
    pysqlite3 (pyenv's and macOS's system Pythons are built without)."""
    import sqlite3

    if hasattr(sqlite3.Connection, "enable_load_extension"):
        return sqlite3
    try:
        from pysqlite3 import dbapi2
    except ImportError:
        raise SnapshotError("this Python's sqlite3 cannot load extensions (sqlite-vec is one): "
                            "pip install pysqlite3 (or use a Python built with --enable-loadable-sqlite-extensions)"
                            ) from None
    return dbapi2


def _readonly_uri(path: str) -> str:
    return pathlib.Path(path).absolute().as_uri() + "?mode=ro"  # any '?', '#' or '%' in the name quoted


def open_sqlite(path: str, readonly: bool):
    """A connection to path with sqlite-vec loaded (only for that call: no SQL can load another extension)."""
    try:
        import sqlite_vec
    except ImportError:
        raise SnapshotError("sqlite-vec is not installed: pip install sqlite-vec (pgbert's client extra)") from None
    sqlite = sqlite_module()
    db = sqlite.connect(_readonly_uri(path) if readonly else path, uri=readonly)
    try:
        db.enable_load_extension(True)
        sqlite_vec.load(db)
        db.enable_load_extension(False)
    except Exception:
        db.close()
        raise
    return db


def is_snapshot(path: str) -> bool:
    sqlite = sqlite_module()
    try:
        with contextlib.closing(sqlite.connect(_readonly_uri(path), uri=True)) as db:
            return db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'pgbert_meta'"
                              ).fetchone() is not None
    except sqlite.DatabaseError:
        return False


# --- export ----------------------------------------------------------------------------------------------

class Source(NamedTuple):
    table: str  # schema.table, quoted where needed
    key_column: str
    key_type: str
    text_column: str
    vector_column: str
    metric: str
    model: dict  # the pgbert.models row
    vector_schema: str


def _one(cur, query, params=None):
    cur.execute(query, params)
    return cur.fetchone()


def _check_installed(cur) -> None:
    installed, role, database = _one(
        cur, "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n "
             "ON n.oid = c.relnamespace WHERE n.nspname = 'pgbert' AND c.relname = 'enabled_tables'), "
             "current_user, current_database()")
    if not installed:
        raise SnapshotError(f"pgbert is not installed in database {database}: connect to the database that holds "
                            "the table (--url), or install pgbert there (pgbert db migrate)")
    # CASE: the table's name resolves only with USAGE on its schema
    if not _one(cur, "SELECT CASE WHEN has_schema_privilege('pgbert', 'USAGE') "
                     "THEN has_table_privilege('pgbert.enabled_tables', 'SELECT') ELSE false END")[0]:
        raise SnapshotError(f"role {role} may not read pgbert's registry: GRANT pgbert_user TO {role};")


def _table(cur, table: str) -> tuple[int, str]:
    import psycopg2

    try:
        row = _one(cur, "SELECT c.oid, format('%%I.%%I', n.nspname, c.relname) FROM pg_catalog.pg_class c "
                        "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass(%s)",
                   (table,))
    except psycopg2.Error as exc:  # a malformed name, a schema the role may not use
        raise SnapshotError(f"cannot look up table {table!r}: {_first_line(exc)}") from None
    if row is None:
        raise SnapshotError(f"no table {table!r} in database {cur.connection.info.dbname}: name it as psql would "
                            "(schema.table), and check --url")
    return row


def _registry(cur, oid: int, name: str) -> tuple:
    row = _one(cur, "SELECT e.source_column, e.vector_column, e.metric, e.model_name, e.chunk_relid IS NOT NULL "
                    "FROM pgbert.enabled_tables e WHERE e.relid = %s::oid::regclass", (oid,))
    if row is None:
        raise SnapshotError(f"{name} has no auto-embedding (it is not in pgbert.enabled_tables, or you may not read "
                            f"it): its owner runs CALL pgbert.enable_embedding('{name}', 'text_column'); then "
                            "export it again")
    if row[4]:
        raise SnapshotError(f"{name} is chunked (its vectors are per passage, in its chunk table): snapshots hold "
                            "one vector per row; enable a table without chunk_tokens to export it")
    return row[:4]


def _primary_key(cur, oid: int, name: str) -> tuple[str, str]:
    """The single-column primary key: a snapshot's keys must find their rows again (ctid changes with every
    UPDATE and VACUUM FULL, so it is no key to hand to an application)."""
    row = _one(cur, "SELECT i.indnkeyatts, a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_catalog.pg_index i "
                    "JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] "
                    "WHERE i.indrelid = %s AND i.indisprimary", (oid,))
    if row is None or row[0] != 1:
        what = "no primary key" if row is None else f"a primary key of {row[0]} columns"
        raise SnapshotError(f"{name} has {what}: a snapshot names each row by a single-column primary key "
                            f"(ALTER TABLE {name} ADD PRIMARY KEY (id)); ctid is no key, it changes on UPDATE")
    return row[1], row[2]


def _model(cur, model_name: str, metric: str, name: str) -> dict:
    cur.execute("SELECT name, model_id, dimension, normalize, pooling, max_tokens, sha256, bundle_path, "
                "manifest::text AS manifest FROM pgbert.models WHERE name = %s", (model_name,))
    model = dict(zip([d[0] for d in cur.description], cur.fetchone()))
    model["manifest"] = json.loads(model["manifest"])
    if metric == "inner_product" and not model["normalize"]:
        raise SnapshotError(f"{name} is searched by inner product with the unnormalised model {model_name!r}: "
                            "sqlite-vec has no inner-product index; enable the table with distance => 'cosine' "
                            "or 'l2'")
    return model


def read_source(cur, table: str) -> Source:
    """Everything the export needs to know about a table, from pgbert's registry and the catalogs."""
    _check_installed(cur)
    oid, name = _table(cur, table)
    text_column, vector_column, metric, model_name = _registry(cur, oid, name)
    key_column, key_type = _primary_key(cur, oid, name)
    model = _model(cur, model_name, metric, name)
    vector_schema = _one(cur, "SELECT n.nspname FROM pg_catalog.pg_extension e JOIN pg_catalog.pg_namespace n "
                              "ON n.oid = e.extnamespace WHERE e.extname = 'vector'")[0]
    return Source(name, key_column, key_type, text_column, vector_column, metric, model, vector_schema)


def _rows_query(source: Source, where: str | None, counting: bool = False):
    from psycopg2 import sql

    table, vec = sql.SQL(source.table), sql.Identifier(source.vector_column)
    condition = sql.SQL("({})").format(sql.SQL(where)) if where else sql.SQL("true")
    if counting:
        return sql.SQL("SELECT count(*), count(t.{}) FROM {} t WHERE {}").format(vec, table, condition)
    # vector_send: pgvector's binary form, float32 as stored (nothing lost in a decimal round trip)
    query = "SELECT t.{}::text, t.{}::text, {}.vector_send(t.{}) FROM {} t WHERE t.{} IS NOT NULL AND {}"
    return sql.SQL(query).format(sql.Identifier(source.key_column), sql.Identifier(source.text_column),
                                 sql.Identifier(source.vector_schema), vec, table, vec, condition)


def _vector_blob(data, dimension: int, key: str) -> bytes:
    """pgvector's binary form (int16 dimension, int16 unused, big-endian float32s) -> sqlite-vec's blob
    (little-endian float32s): the same values."""
    import numpy as np

    data = bytes(data)
    if int.from_bytes(data[:2], "big") != dimension:
        raise SnapshotError(f"the vector of key {key} has {int.from_bytes(data[:2], 'big')} dimensions, the table's "
                            f"model gives {dimension}: that vector was not made by the model")
    return np.frombuffer(data, dtype=">f4", count=dimension, offset=4).astype("<f4").tobytes()


def _copy_rows(cur, db, source: Source, where: str | None, total: int, progress) -> int:
    """Streams the rows that have a vector through a server-side cursor, BATCH_ROWS at a time."""
    dimension, done = source.model["dimension"], 0
    cur.itersize = BATCH_ROWS
    cur.execute(_rows_query(source, where))
    while batch := cur.fetchmany(BATCH_ROWS):
        ids = range(done + 1, done + len(batch) + 1)
        db.executemany("INSERT INTO pgbert_rows (rowid, key, text) VALUES (?, ?, ?)",
                       [(i, key, text) for i, (key, text, _) in zip(ids, batch)])
        db.executemany("INSERT INTO pgbert_vectors (rowid, embedding) VALUES (?, ?)",
                       [(i, _vector_blob(v, dimension, key)) for i, (key, _, v) in zip(ids, batch)])
        done += len(batch)
        progress(done, total)
    return done


def _meta(source: Source, where, exported_at: str, database: str, rows: int, skipped: int, vec_version: str) -> dict:
    from importlib.metadata import version

    model = source.model
    return {
        "format_version": FORMAT_VERSION, "pgbert_version": version("pgbert"), "sqlite_vec_version": vec_version,
        "exported_at": exported_at, "source_database": database, "source_table": source.table,
        "where": where, "key_column": source.key_column, "key_type": source.key_type,
        "text_column": source.text_column, "vector_column": source.vector_column,
        "table_metric": source.metric, "metric": METRICS.get(source.metric, "cosine"),
        "model_name": model["name"], "model_id": model["model_id"], "dimension": model["dimension"],
        "normalize": model["normalize"], "pooling": model["pooling"], "max_tokens": model["max_tokens"],
        "model_sha256": model["sha256"], "bundle_path": model["bundle_path"],
        "files": model["manifest"].get("files", {}), "manifest": model["manifest"],
        "rows": rows, "skipped_null_vectors": skipped,
    }


def _write(conn, tmp: str, table: str, where: str | None, progress) -> dict:
    """One REPEATABLE READ, READ ONLY transaction: the counts and the rows are one consistent snapshot."""
    with conn.cursor() as cur:
        source = read_source(cur, table)
        started, database = _one(cur, "SELECT now(), current_database()")  # the data's as-of time
        exported_at = started.astimezone(timezone.utc).isoformat()
        total, with_vector = _one(cur, _rows_query(source, where, counting=True))
    db = open_sqlite(tmp, readonly=False)
    try:
        db.execute("PRAGMA journal_mode = OFF")  # a new file, renamed into place only when complete
        db.executescript(SCHEMA.format(dimension=int(source.model["dimension"]),
                                       metric=METRICS.get(source.metric, "cosine")))
        with conn.cursor(name="pgbert_sqlite_export") as cur:
            rows = _copy_rows(cur, db, source, where, with_vector, progress)
        meta = _meta(source, where, exported_at, database, rows, total - with_vector,
                     db.execute("SELECT vec_version()").fetchone()[0])
        db.executemany("INSERT INTO pgbert_meta (key, value) VALUES (?, ?)",
                       [(k, json.dumps(v)) for k, v in meta.items()])
        db.commit()
    finally:
        db.close()
    return meta


def export(url: str, table: str, path: str, where: str | None = None, progress=None) -> dict:
    """Writes a snapshot of table to path (replacing an earlier snapshot there, never another file) and returns
    its metadata. progress(rows_done, rows_total) is called after every batch. Runs as the connecting role:
    it needs SELECT on the table and pgbert_user (to read the registry). where: an SQL condition on the table's
    columns, run in a read-only transaction as that role."""
    import psycopg2

    path = os.path.abspath(path)
    if os.path.exists(path) and not (os.path.isfile(path) and is_snapshot(path)):
        raise SnapshotError(f"{path} exists and is not a pgbert snapshot: remove it or choose another file")
    try:  # beside its target, so that the rename is atomic; mode 0600: it holds the table's texts
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=os.path.basename(path) + ".", suffix=".tmp")
        os.close(fd)
    except OSError as exc:
        raise SnapshotError(f"cannot write {path}: {exc.strerror} ({os.path.dirname(path)})") from None
    conn = None
    try:
        conn = psycopg2.connect(url, application_name="pgbert sqlite export")
        conn.set_session(isolation_level="REPEATABLE READ", readonly=True)
        meta = _write(conn, tmp, table, where, progress or (lambda done, total: None))
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except psycopg2.Error as exc:
        if conn is None:
            raise SnapshotError(f"cannot connect ({_first_line(exc)}): check --url and that the server runs") from None
        raise SnapshotError(_database_error(exc, table)) from None
    except (OSError, sqlite_module().Error) as exc:  # a full disk
        raise SnapshotError(f"writing {path} failed: {exc}") from None
    finally:
        if conn is not None:
            conn.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return meta


def _first_line(exc) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _database_error(exc, table: str) -> str:
    hint = getattr(getattr(exc, "diag", None), "message_hint", None)
    if getattr(exc, "pgcode", None) == "42501":  # insufficient_privilege
        hint = hint or f"its owner can GRANT SELECT ON {table} TO the role you connect as"
    return f"exporting {table} failed: {_first_line(exc)}" + (f" ({hint})" if hint else "")


# --- search ----------------------------------------------------------------------------------------------

_checked: dict[tuple, None] = {}  # bundle files whose sha256 was checked in this process, by their stat


def _check_contents(bundle) -> None:
    """Each file's sha256 against its manifest (once per process per unchanged file): a manifest that lists
    the right sums is not enough, the files themselves must be those the snapshot's vectors came from."""
    stats = []
    for name in sorted(bundle.files):
        st = os.stat(os.path.join(bundle.path, name))
        stats.append((name, st.st_size, st.st_mtime_ns, st.st_ino))
    key = (bundle.path, *stats)
    if key not in _checked:
        bundle.verify(checksums=True)
        _checked[key] = None


class Snapshot:
    """An open snapshot: Snapshot(path).search('query', k) -> [Hit(key, distance, text)], nearest first.
    model_dir: the model bundle to embed queries with (default: the folder recorded at export, if it exists
    here); it must hold exactly the files (sha256) the snapshot was made with. One per thread (it holds a SQLite
    connection); the model itself is loaded once per process."""

    def __init__(self, path: str, model_dir: str | None = None):
        self.path = path
        if not os.path.isfile(path):
            raise SnapshotError(f"{path}: no such file; make a snapshot with `pgbert sqlite export TABLE {path}`")
        self.db = open_sqlite(path, readonly=True)
        try:
            self.meta = self._read_meta()
            self.bundle = self._bundle(model_dir)
        except BaseException:
            self.db.close()
            raise
        self._encoder = None

    def _read_meta(self) -> dict:
        sqlite = sqlite_module()
        try:
            found = self.db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'pgbert_meta'"
                                    ).fetchone()
        except sqlite.DatabaseError as exc:
            raise SnapshotError(f"{self.path} is not a SQLite database ({exc}): pass a file made by "
                                "`pgbert sqlite export`") from None
        if not found:
            raise SnapshotError(f"{self.path} is not a pgbert snapshot (no pgbert_meta table): make one with "
                                f"`pgbert sqlite export TABLE {self.path}`")
        try:
            meta = {k: json.loads(v) for k, v in self.db.execute("SELECT key, value FROM pgbert_meta")}
        except (sqlite.DatabaseError, ValueError) as exc:
            raise SnapshotError(f"{self.path}: its pgbert_meta cannot be read ({exc}): export it again") from None
        if meta.get("format_version") != FORMAT_VERSION:
            raise SnapshotError(f"{self.path} is a pgbert snapshot of format {meta.get('format_version')!r}; this "
                                f"pgbert reads format {FORMAT_VERSION}: use the pgbert that made it, or export again")
        missing = sorted(REQUIRED_META - set(meta))
        if missing:
            raise SnapshotError(f"{self.path}: its pgbert_meta lacks {', '.join(missing)}: export it again")
        return meta

    def _bundle(self, model_dir: str | None):
        from pgbert_runtime.bundle import BundleError, load_bundle

        meta = self.meta
        made_with = (f"model {meta['model_name']!r} ({meta['model_id']}, sha256 {(meta['model_sha256'] or '?')[:12]}, "
                     f"bundle {meta['bundle_path']} on the database server)")
        path = model_dir or meta["bundle_path"]
        if not os.path.isfile(os.path.join(path, "manifest.json")):
            raise SnapshotError(f"{self.path} was made with {made_with}, and {path} holds no model bundle: pass "
                                f"--model-dir with a copy of that bundle (made by `pgbert export {meta['model_id']}`)")
        try:
            bundle = load_bundle(os.path.abspath(path))
            differ = [n for n in sorted(set(bundle.files) | set(meta["files"]))
                      if (bundle.files.get(n) or {}).get("sha256") != (meta["files"].get(n) or {}).get("sha256")]
            if not differ:
                _check_contents(bundle)
        except BundleError as exc:
            raise SnapshotError(f"{self.path} was made with {made_with}; the bundle at {path} is broken: {exc}"
                                ) from None
        if differ:
            raise SnapshotError(
                f"{self.path} was made with {made_with}, but the bundle at {bundle.path} ({bundle.model_id}) holds "
                f"other files: " + ", ".join(f"{n} {_sum(meta['files'], n)} in the snapshot, {_sum(bundle.files, n)} "
                                             f"in the bundle" for n in differ)
                + "; pass --model-dir with the bundle the snapshot was made with, or export the snapshot again")
        if bundle.dimension != meta["dimension"]:  # the same files, but a manifest edited by hand
            raise SnapshotError(f"{self.path} holds {meta['dimension']}-d vectors, the bundle at {bundle.path} says "
                                f"{bundle.dimension}: re-export the bundle")
        return bundle

    @property
    def encoder(self):
        if self._encoder is None:
            from pgbert_runtime.encoder import get_encoder

            self._encoder = get_encoder(self.bundle.path)  # any model family its bundle names
        return self._encoder

    def _embed(self, query: str):
        from pgbert_runtime import bundle as runtime

        try:
            return self.encoder.encode([query], kind="query")[0]
        except runtime.BundleError as exc:
            raise SnapshotError(f"the model bundle {self.bundle.path} cannot embed: {exc}") from None
        except getattr(runtime, "NoKnownWords", ()) as exc:  # a static model's query without a known word
            raise SnapshotError(f"{exc}: search with other words") from None

    def search(self, query: str, k: int = 5) -> list[Hit]:
        if not isinstance(k, int) or not 1 <= k <= K_MAX:
            raise SnapshotError(f"k must be a whole number from 1 to {K_MAX} (sqlite-vec's limit), got {k!r}")
        vector = self._embed(query)
        if self.meta["metric"] == "cosine" and not vector.any():
            # a zero vector has no direction: every cosine distance would be NaN and the order arbitrary
            raise SnapshotError(f"model {self.meta['model_name']!r} gives the query {query!r} no vector (none of its "
                                "words is in the model's vocabulary): search with other words")
        rows = self.db.execute(
            "SELECT r.key, v.distance, r.text FROM (SELECT rowid, distance FROM pgbert_vectors "
            "WHERE embedding MATCH ? AND k = ?) v JOIN pgbert_rows r ON r.rowid = v.rowid ORDER BY v.distance, r.rowid",
            (vector.astype("<f4").tobytes(), k)).fetchall()
        return [Hit(*row) for row in rows]

    def close(self) -> None:
        self.db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _sum(files: dict, name: str) -> str:
    sha = (files.get(name) or {}).get("sha256")
    return f"sha256 {sha[:12]}" if sha else "missing"


def search(path: str, query: str, k: int = 5, model_dir: str | None = None) -> list[Hit]:
    """The k rows of the snapshot at path nearest to query: [Hit(key, distance, text)], nearest first. Apps
    that search more than once keep a Snapshot open instead (the model loads once)."""
    with Snapshot(path, model_dir) as snapshot:
        return snapshot.search(query, k)


# --- the command line ------------------------------------------------------------------------------------

def add_parser(sub, positive) -> None:
    """`pgbert sqlite export|search` on the top-level subparsers; positive: cli.positive (argparse type)."""
    p = sub.add_parser("sqlite", help="a searchable snapshot of a table in one SQLite file (sqlite-vec)",
                       description="Snapshots for SQLite: export a table's keys, texts and vectors to one file, "
                                   "search it without a database server. Exit status 1 on any error.")
    actions = p.add_subparsers(dest="sqlite_command", required=True)
    e = actions.add_parser("export", help="write TABLE's rows that have a vector to FILE")
    e.add_argument("table", metavar="TABLE", help="an embedding-enabled table, e.g. public.docs")
    e.add_argument("file", metavar="FILE", help="the snapshot to write (an earlier snapshot there is replaced)")
    e.add_argument("--url", help="database URL (default: the local cluster); runs as that role: it needs SELECT "
                                 "on TABLE and pgbert_user")
    e.add_argument("--where", metavar="SQL", help="only rows matching this condition on TABLE's columns, "
                                                  "e.g. \"section = 'graphics'\"")
    e.set_defaults(func=run_export)
    s = actions.add_parser("search", help="the rows of FILE nearest to QUERY")
    s.add_argument("file", metavar="FILE")
    s.add_argument("query", metavar="QUERY")
    s.add_argument("-k", type=positive(int), default=5, help="how many rows (5)")
    s.add_argument("--model-dir", metavar="BUNDLE", help="the model bundle (default: the one recorded in FILE, "
                                                         "where that folder exists)")
    s.add_argument("--json", action="store_true", help="a JSON list of {key, distance, text} (whole texts)")
    s.set_defaults(func=run_search)


def _fail(exc: SnapshotError) -> int:
    print(f"pgbert sqlite: {exc}", file=sys.stderr, flush=True)
    return 1


def run_export(args) -> int:
    from .cli import local_cluster

    last = [0.0]

    def progress(done: int, total: int) -> None:
        if time.monotonic() - last[0] >= PROGRESS_EVERY or done == total:
            print(f"  {done:,} / {total:,} rows", file=sys.stderr, flush=True)
            last[0] = time.monotonic()

    started = time.monotonic()
    try:
        meta = export(args.url or local_cluster().url(), args.table, args.file, args.where, progress)
    except SnapshotError as exc:
        return _fail(exc)
    skipped = meta["skipped_null_vectors"]
    print(f"exported {meta['rows']:,} rows of {meta['source_table']} ({meta['model_name']}, {meta['dimension']}-d, "
          f"{meta['metric']}) to {args.file} in {time.monotonic() - started:.1f} s"
          + (f"; skipped {skipped:,} rows without a vector yet (CALL pgbert.backfill('{meta['source_table']}') "
             "or let the queue embed them, then export again)" if skipped else ""), flush=True)
    return 0


def run_search(args) -> int:
    try:
        hits = search(args.file, args.query, args.k, args.model_dir)
    except SnapshotError as exc:
        return _fail(exc)
    if args.json:
        print(json.dumps([hit._asdict() for hit in hits], ensure_ascii=False))
        return 0
    for hit in hits:
        text = " ".join((hit.text or "")[:80].split())  # one line per row: tabs and line breaks become spaces
        print(f"{hit.key}\t{hit.distance:.6f}\t{text}")
    return 0
