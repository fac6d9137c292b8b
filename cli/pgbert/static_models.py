"""Static models from the command line: `pgbert export --static MODEL` (a model2vec distillation) and
`pgbert import-vectors FILE --name NAME` (Word2Vec, fastText, GloVe); the logic is in pgbert_export.static and
pgbert_export.word_vectors."""
from __future__ import annotations

import argparse
import os
import sys

from .paths import Paths


def say(message: str) -> None:
    print(message, flush=True)


def database_url(args) -> str:
    if args.url:
        return args.url
    from .cli import local_cluster

    return local_cluster().url()


def export_static(args) -> int:
    """`pgbert export --static`: the flags that shape a transformer's bundle do not apply."""
    from pgbert_export import ExportError
    from pgbert_export.static import DEFAULT_DIMS
    from pgbert_export.static import export_static as export

    given = [flag for flag, value in (("--pooling", args.pooling), ("--query-prompt", args.query_prompt),
                                      ("--document-prompt", args.document_prompt)) if value is not None]
    if given:
        print(f"pgbert export: --static takes no {', '.join(given)}: a static model averages its tokens' vectors "
              f"and has no prompts", file=sys.stderr)
        return 2
    output = os.path.abspath(args.output or Paths.default().bundle(args.model) + "-static")
    try:
        manifest = export(args.model, output, dims=args.dims or DEFAULT_DIMS, normalize=args.normalize,
                          max_tokens=args.max_tokens, echo=say)
    except ExportError as exc:
        print(f"pgbert export: {exc}", file=sys.stderr)
        return 1
    say(f"exported {manifest['model_id']} ({manifest['dimension']}-d, {manifest['vocab_size']} tokens, "
        f"normalize={manifest['normalize']}) to {output}")
    if args.activate:
        from .cli import activate

        activate(output, args.url)
    return 0


def import_vectors(args) -> int:
    from pgbert_export import ExportError
    from pgbert_export.word_vectors import import_vectors as read

    output = os.path.abspath(args.output or Paths.default().bundle(args.name))
    try:
        if args.add:
            refuse_taken_name(args)  # before the work, not after it
        manifest = read(args.file, output, name=args.name, binary=args.binary, no_header=args.no_header,
                        limit=args.limit, echo=say)
    except ExportError as exc:
        print(f"pgbert import-vectors: {exc}", file=sys.stderr)
        return 1
    say(f"imported {manifest['source']['words']} words ({manifest['dimension']}-d) as {manifest['model_id']} "
        f"to {output}")
    if args.add:
        import psycopg2

        with psycopg2.connect(database_url(args)) as conn, conn.cursor() as cur:
            cur.execute("SELECT pgbert.add_model(%s, %s)", (args.name, os.path.realpath(output)))
            say(f"registered as model {cur.fetchone()[0]!r}: SELECT embed('some text', model => '{args.name}');")
    else:
        say(f"register it with: SELECT pgbert.add_model('{args.name}', '{os.path.realpath(output)}'); "
            f"(or run again with --add)")
    return 0


def refuse_taken_name(args) -> None:
    import psycopg2

    from pgbert_export import ExportError

    try:
        with psycopg2.connect(database_url(args)) as conn, conn.cursor() as cur:
            cur.execute("SELECT bundle_path FROM pgbert.models WHERE name = %s", (args.name,))
            taken = cur.fetchone()
    except psycopg2.Error as exc:
        raise ExportError(f"--add: cannot look up model names in the database ({str(exc).strip()}); check --url, "
                          f"or leave out --add and register the bundle later") from None
    if taken:
        raise ExportError(f"--name {args.name!r}: the database has a model of that name already ({taken[0]}); "
                          f"choose another name")


def add_parser(sub, positive) -> None:
    """`pgbert import-vectors` (export's --static and --dims are on the export command itself)."""
    p = sub.add_parser("import-vectors", help="word vectors (Word2Vec, fastText .vec, GloVe) -> a static model bundle",
                       description="Reads a word vectors file with gensim and writes a static bundle (word-level "
                                   "tokenizer, mean pooling, normalised) to .pgbert/models/NAME.")
    p.add_argument("file", help="the vectors file: Word2Vec text or binary, fastText .vec, GloVe (--no-header)")
    p.add_argument("--name", required=True, help="the model's name: its folder, and its name in the database")
    p.add_argument("-o", "--output", help="bundle folder (default: .pgbert/models/NAME)")
    p.add_argument("--binary", action=argparse.BooleanOptionalAction, default=None,
                   help="binary Word2Vec format (default: detected from the file)")
    p.add_argument("--no-header", action="store_true",
                   help="the file has no '<words> <dimension>' first line (GloVe)")
    p.add_argument("--limit", type=positive(int), metavar="N", help="read only the first N words")
    p.add_argument("--add", action="store_true",
                   help="register it in the database: SELECT pgbert.add_model(NAME, path)")
    p.add_argument("--url", help="database URL for --add (default: the local cluster)")
    p.set_defaults(func=import_vectors)
