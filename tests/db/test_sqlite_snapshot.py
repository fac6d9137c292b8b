"""`pgbert sqlite`: a table's snapshot in SQLite (sqlite-vec) finds what PostgreSQL finds, with the same float32
vectors, and every wrong input is refused with what to do."""
import csv
import json
import os
import shutil
import sqlite3
import subprocess
import sys

import numpy as np
import pytest

from helpers import db_url, tiny_bundle_path
from pgbert.paths import ROOT
from pgbert.sqlite import Snapshot, SnapshotError, export, open_sqlite, search
from pgbert_runtime.encoder import get_encoder

TIES = 1e-6  # distances this close are one rank: compared as sets


def packages() -> list[dict]:
    with open(os.path.join(ROOT, "demo", "debian-packages-sample.tsv"), encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter="\t"))


@pytest.fixture()
def docs(conn):
    """200 real Debian package descriptions, embedded by the tiny model's triggers. The server runs the engine the
    snapshot's search will run here (bf16 and fp32 differ in the last bits: the distances are compared to 1e-6)."""
    engine = get_encoder(tiny_bundle_path()).engine.name
    conn.execute("UPDATE pgbert.settings SET value = %s WHERE name = 'engine'", (engine,))
    conn.execute("CREATE TABLE docs (id int PRIMARY KEY, package text, body text)")
    conn.execute("CALL pgbert.enable_embedding('docs', 'body')")
    with conn.cursor().copy("COPY docs (id, package, body) FROM STDIN") as copy:
        for i, p in enumerate(packages(), 1):
            copy.write_row((i, p["package"], p["description"]))
    return "public.docs"


def url(conn) -> str:
    return db_url(conn.info.dbname)


def exact_ranking(conn, query: str) -> list[tuple[str, float]]:
    """Every row by distance to the query, as PostgreSQL computes it with no index (an exact scan)."""
    with conn.transaction():
        conn.execute("SET LOCAL enable_indexscan = off")
        return conn.execute("SELECT id::text, body_embedding <=> embed(%s, 'tiny-bert'::name, 'query') AS d FROM docs "
                            "WHERE body_embedding IS NOT NULL ORDER BY d", (query,)).fetchall()


def assert_same_top(hits, ranking, k):
    """The snapshot's k rows are PostgreSQL's k nearest, in order, where rows tie within TIES in any order."""
    assert len(hits) == k
    distance = dict(ranking)
    kth = ranking[k - 1][1]
    for hit, (_, expected) in zip(hits, ranking):
        assert abs(hit.distance - expected) <= TIES, (hit, expected)  # the same distance at each rank
        assert abs(distance[hit.key] - hit.distance) <= TIES, hit  # and that is this row's own
    nearer = {key for key, d in ranking if d < kth - TIES}
    assert nearer <= {hit.key for hit in hits}


def test_search_finds_the_exact_scans_top_10_for_50_queries(conn, docs, tmp_path):
    path = str(tmp_path / "docs.db")
    meta = export(url(conn), docs, path)
    assert meta["rows"] == 200 and meta["skipped_null_vectors"] == 0
    queries = [p["summary"] for p in packages()[::4]]
    assert len(queries) == 50
    with Snapshot(path) as snapshot:
        for query in queries:
            assert_same_top(snapshot.search(query, 10), exact_ranking(conn, query), 10)
    assert [hit.key for hit in search(path, "Real-time strategy game of ancient warfare", 1)] == \
        [key for key, _ in exact_ranking(conn, "Real-time strategy game of ancient warfare")[:1]]


def test_the_snapshot_holds_the_same_float32_values_and_the_models_manifest(conn, docs, tmp_path):
    path = str(tmp_path / "docs.db")
    export(url(conn), docs, path)
    with conn.cursor(binary=True) as cur:  # float4 values in binary: no decimal round trip on this side either
        stored = {key: np.array(v, dtype=np.float32)
                  for key, v in cur.execute("SELECT id::text, body_embedding::real[] FROM docs")}
    db = open_sqlite(path, readonly=True)
    rows = db.execute("SELECT r.key, r.text, v.embedding FROM pgbert_rows r JOIN pgbert_vectors v USING (rowid)"
                      ).fetchall()
    meta = {k: json.loads(v) for k, v in db.execute("SELECT key, value FROM pgbert_meta")}
    db.close()
    assert len(rows) == 200 and {key for key, _, _ in rows} == set(stored)
    for key, _, blob in rows:
        assert np.array_equal(np.frombuffer(blob, dtype="<f4"), stored[key]), key
    model = conn.execute("SELECT name, model_id, dimension, normalize, pooling, sha256, bundle_path, manifest "
                         "FROM pgbert.models WHERE name = 'tiny-bert'").fetchone()
    assert (meta["model_name"], meta["model_id"], meta["dimension"], meta["normalize"], meta["pooling"],
            meta["model_sha256"], meta["bundle_path"], meta["manifest"]) == model
    assert meta["files"] == model[7]["files"] and all(len(f["sha256"]) == 64 for f in meta["files"].values())
    assert (meta["format_version"], meta["source_table"], meta["key_column"], meta["text_column"],
            meta["vector_column"], meta["metric"]) == (1, "public.docs", "id", "body", "body_embedding", "cosine")
    assert meta["pgbert_version"] and meta["exported_at"].endswith("+00:00") and meta["sqlite_vec_version"]
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"  # it holds the table's texts: like a dump
    texts = dict(conn.execute("SELECT id::text, body FROM docs").fetchall())
    assert all(text == texts[key] for key, text, _ in rows)


def test_rows_without_a_vector_are_skipped_and_counted(conn, docs, tmp_path):
    conn.execute("CALL pgbert.set_strategy('docs', 'queue')")  # new rows wait for a worker: no vector yet
    conn.execute("INSERT INTO docs VALUES (1001, 'a', 'queued text'), (1002, 'b', 'another'), (1003, 'c', NULL)")
    assert conn.execute("SELECT count(*) FROM docs WHERE body_embedding IS NULL").fetchone() == (3,)
    meta = export(url(conn), docs, str(tmp_path / "docs.db"))
    assert (meta["rows"], meta["skipped_null_vectors"]) == (200, 3)
    with Snapshot(str(tmp_path / "docs.db")) as snapshot:
        assert not {"1001", "1002", "1003"} & {hit.key for hit in snapshot.search("queued text", 200)}
    meta = export(url(conn), docs, str(tmp_path / "docs.db"), where="package LIKE 'lib%'")  # replaces it
    assert meta["rows"] == conn.execute("SELECT count(*) FROM docs WHERE package LIKE 'lib%' "
                                        "AND body_embedding IS NOT NULL").fetchone()[0] > 0


def test_files_that_are_not_snapshots_are_refused(tmp_path):
    junk = tmp_path / "junk.db"
    junk.write_bytes(os.urandom(4096))
    with pytest.raises(SnapshotError, match="junk.db is not a SQLite database"):
        search(str(junk), "query")
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE notes (body text)")
    with pytest.raises(SnapshotError, match=r"other.db is not a pgbert snapshot \(no pgbert_meta table\)"):
        search(str(other), "query")
    with pytest.raises(SnapshotError, match="missing.db: no such file"):
        search(str(tmp_path / "missing.db"), "query")


def test_a_bundle_other_than_the_snapshots_model_is_refused_naming_both(conn, docs, tmp_path):
    path = str(tmp_path / "docs.db")
    export(url(conn), docs, path)
    wide = tiny_bundle_path("tiny-bert-64", hidden=64)
    with pytest.raises(SnapshotError) as refused:
        search(path, "query", model_dir=wide)
    message = str(refused.value)
    assert "model 'tiny-bert' (tiny-bert," in message and f"the bundle at {wide} (tiny-bert-64)" in message
    assert "model.onnx sha256" in message and "--model-dir" in message
    # the same manifest over other weights: the files' own sha256 is checked too
    forged = str(tmp_path / "forged")
    shutil.copytree(tiny_bundle_path(), forged)
    with open(os.path.join(forged, "tokenizer.json"), "r+b") as f:
        first = f.read(1)
        f.seek(0)
        f.write(b" " if first != b" " else b"\n")
    with pytest.raises(SnapshotError, match="tokenizer.json does not match its sha256"):
        search(path, "query", model_dir=forged)
    with pytest.raises(SnapshotError, match="holds no model bundle: pass --model-dir"):
        search(path, "query", model_dir=str(tmp_path))
    assert len(search(path, "query", k=3, model_dir=tiny_bundle_path())) == 3  # the right one, given explicitly


def test_tables_that_cannot_be_exported_are_refused_with_what_to_do(conn, docs, tmp_path):
    path = str(tmp_path / "out.db")
    conn.execute("CREATE TABLE plain (id int PRIMARY KEY, body text)")
    with pytest.raises(SnapshotError, match=r"public.plain has no auto-embedding .* pgbert.enable_embedding"):
        export(url(conn), "public.plain", path)
    with pytest.raises(SnapshotError, match="no table 'public.nope'"):
        export(url(conn), "public.nope", path)
    conn.execute("CREATE TABLE keyless (body text)")
    conn.execute("CALL pgbert.enable_embedding('keyless', 'body')")
    with pytest.raises(SnapshotError, match="public.keyless has no primary key"):
        export(url(conn), "keyless", path)
    with pytest.raises(SnapshotError, match="column \"nope\" does not exist"):
        export(url(conn), docs, path, where="nope = 1")
    assert os.listdir(tmp_path) == []  # no half-written file, no temporary left behind
    with pytest.raises(SnapshotError, match="cannot write .*No such file or directory"):
        export(url(conn), docs, str(tmp_path / "no" / "folder.db"))
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(SnapshotError, match="notes.txt exists and is not a pgbert snapshot"):
        export(url(conn), docs, str(tmp_path / "notes.txt"))
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_the_export_runs_as_the_connecting_role(conn, docs, role, tmp_path):
    name = role("snapshot_reader")
    conn.execute(f"ALTER ROLE {name} LOGIN")
    as_role = url(conn).replace("postgres@", f"{name}@")
    with pytest.raises(SnapshotError, match=f"GRANT pgbert_user TO {name}"):
        export(as_role, docs, str(tmp_path / "a.db"))
    conn.execute(f"GRANT pgbert_user TO {name}")
    with pytest.raises(SnapshotError, match="has no auto-embedding .*or you may not read it"):
        export(as_role, docs, str(tmp_path / "a.db"))  # the registry shows it only tables it may read
    conn.execute(f"GRANT SELECT (id, body) ON docs TO {name}")  # not the vectors
    with pytest.raises(SnapshotError, match="permission denied"):
        export(as_role, docs, str(tmp_path / "a.db"))
    conn.execute(f"GRANT SELECT ON docs TO {name}")
    assert export(as_role, docs, str(tmp_path / "a.db"))["rows"] == 200
    conn.execute("ALTER TABLE docs ENABLE ROW LEVEL SECURITY")
    conn.execute(f"CREATE POLICY first_ten ON docs FOR SELECT TO {name} USING (id <= 10)")
    meta = export(as_role, docs, str(tmp_path / "a.db"))  # the rows this role may see, and only those
    assert (meta["rows"], meta["skipped_null_vectors"]) == (10, 0)


def pgbert(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pgbert.cli", "sqlite", *args], capture_output=True, text=True,
                          timeout=120)


def test_the_command_line(conn, docs, tmp_path):
    path = str(tmp_path / "docs.db")
    out = pgbert("export", docs, path, "--url", url(conn))
    assert out.returncode == 0, out.stderr
    assert f"exported 200 rows of public.docs (tiny-bert, 32-d, cosine) to {path}" in out.stdout
    assert "200 / 200 rows" in out.stderr  # progress
    out = pgbert("search", path, "Real-time strategy game of ancient warfare", "-k", "3")
    assert out.returncode == 0, out.stderr
    lines = [line.split("\t") for line in out.stdout.splitlines()]
    expected = exact_ranking(conn, "Real-time strategy game of ancient warfare")
    assert [(key, float(d)) for key, d, _ in lines] == [(k, pytest.approx(d, abs=1e-6)) for k, d in expected[:3]]
    assert all(len(text) <= 80 for _, _, text in lines)
    out = pgbert("search", path, "ancient warfare", "-k", "2", "--json")
    hits = json.loads(out.stdout)
    assert [set(hit) for hit in hits] == [{"key", "distance", "text"}] * 2
    out = pgbert("search", str(tmp_path), "query")
    assert out.returncode == 1 and "no such file" in out.stderr and out.stdout == ""
    (tmp_path / "other.db").write_bytes(b"")  # an empty file is an empty SQLite database
    out = pgbert("search", str(tmp_path / "other.db"), "query")
    assert out.returncode == 1 and "is not a pgbert snapshot (no pgbert_meta table)" in out.stderr
    out = pgbert("export", "public.nope", path, "--url", url(conn))
    assert out.returncode == 1 and "no table 'public.nope'" in out.stderr
    out = pgbert("search", path, "query", "-k", "0")
    assert out.returncode == 2 and "must be a finite number above 0" in out.stderr
