"""Trigger handlers of auto-embedding tables (sql/30_triggers.sql names the triggers that call them).

Strategy 'row': `embed_row` embeds every inserted row inline. Strategy 'batch': `batch_start` (BEFORE
STATEMENT) marks an INSERT statement on the table as begun; `embed_row` embeds its first row inline (so a
one-row INSERT ... RETURNING shows its vector and the row is written once) and leaves the others to the
table's write-back function, which embeds them after the statement in batched model calls;
`batch_end` (AFTER STATEMENT) closes the statement. A row whose table has no statement in progress —
one inserted straight into a partition, whose parent's statement triggers do not fire — is embedded
inline. UPDATEs of the source text are always embedded inline.

State lives in this module, i.e. once per backend, keyed by the registered table's oid.
"""
from __future__ import annotations

from functools import partial

from . import sql_api

FIRST, REST = "first row", "other rows"
# Loading a table must not fill embed()'s cache with texts nobody searches for.
_embed_uncached = partial(sql_api.embed, cached=False)
_statements: dict[int, str] = {}  # registered table oid -> where its INSERT statement is


def batch_start(TD) -> None:
    _statements[int(TD["relid"])] = FIRST


def batch_end(TD) -> None:
    _statements.pop(int(TD["relid"]), None)


def embed_row(plpy, TD, embed=None, lexemes=sql_api.document_lexemes):
    """BEFORE INSERT / UPDATE OF source, FOR EACH ROW. Arguments: source column, vector column, strategy,
    oid of the registered table (a partition's rows find their parent's statement by it), and, for a
    table with a lexical side, its tsvector column and lexical config. The lexical side is always filled
    inline: analysing a text costs far less than embedding it."""
    source, target, strategy, table, *lexical_side = TD["args"]
    embed = embed or _embed_uncached
    new = TD["new"]
    if lexical_side:
        column, config = lexical_side
        new[column] = lexemes(plpy, new[source], config)
    if TD["event"] == "UPDATE":
        new[target] = embed(plpy, new[source])  # the WHEN clause fired us: the text changed
        return "MODIFY"
    if new[target] is not None or new[source] is None:
        # an explicit vector from the client is kept; no text, no vector
        return "MODIFY" if lexical_side else None
    if strategy == "batch":
        where = _statements.get(int(table))
        if where == REST:
            # the write-back function embeds this row with the statement's others
            return "MODIFY" if lexical_side else None
        if where == FIRST:
            _statements[int(table)] = REST
    new[target] = embed(plpy, new[source])
    return "MODIFY"
