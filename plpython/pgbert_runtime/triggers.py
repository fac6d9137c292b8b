"""Trigger handlers of auto-embedding tables (sql/30_triggers.sql names the triggers that call them).

Strategy 'row': `embed_row` embeds every inserted row inline. Strategy 'batch': `batch_start` (BEFORE
STATEMENT) marks an INSERT statement on the table as begun; `embed_row` embeds its first row inline (so a
one-row INSERT ... RETURNING shows its vector and the row is written once) and leaves the others to the
table's write-back function, which embeds them after the statement in batched model calls;
`batch_end` (AFTER STATEMENT) closes the statement. A partition of a registered partitioned table has copies
of the table's statement triggers (sql/72_partitions.sql), which name the table: a statement straight into a
partition (any level) keeps its state under the table's oid, where its rows look. A row that finds no
statement of its own in progress (one inserted by a trigger inside the statement) is embedded inline. UPDATEs
of the source text (or that leave a row with text without its vector) are embedded inline.

Strategy 'queue': the row triggers never call the model. A row keeps the vector a client sent; an UPDATE
that changes the text otherwise clears it, and the table's queue statement triggers (sql/45_queue.sql)
record every row left with text and no vector for the workers. Strategy 'auto': a statement's rows are
embedded inline while the statement's estimated tokens fit `auto_inline_tokens`; from the first row that
does not fit, its rows are left to the queue.

State lives in this module, i.e. once per backend, keyed by the registered table's oid. A
statement that fails never runs batch_end, so its state outlives it (security finding 9): every state therefore
names the statement that owns it (STATEMENT_SQL), and a row checks that name before trusting the state.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import partial

from . import sql_api

FIRST, REST = "first row", "other rows"
# Loading a table must not fill embed()'s cache with texts nobody searches for.
_embed_uncached = partial(sql_api.embed, cached=False)

# The name of the running statement: its transaction, its trigger depth (a statement run from inside another
# statement's trigger is deeper) and a token that batch_start keeps in a transaction-local setting. PostgreSQL
# reverts that setting when the (sub)transaction that set it aborts, so a failed statement's token is gone
# even inside the same transaction (a savepoint, a PL/pgSQL exception block); the transaction id makes a
# token that a session set itself (SET pgbert.batch_...) useless in any later transaction, e.g. another
# role's on a pooled connection.
STATEMENT_SQL = ("SELECT pg_catalog.txid_current() || ' ' || pg_catalog.pg_trigger_depth() || ' ' || "
                 "COALESCE({}, '') AS statement")
START_SQL = STATEMENT_SQL.format("pg_catalog.set_config('pgbert.batch_' || $1, $2, true)")
CHECK_SQL = STATEMENT_SQL.format("pg_catalog.current_setting('pgbert.batch_' || $1, true)")
# A partition's copy of a registered table's statement trigger names that table ($1): the statement's state is
# kept under its oid once the catalog confirms that the trigger's table ($2) is a partition of it.
PARTITION_SQL = ("SELECT CASE WHEN $1::pg_catalog.oid IN (SELECT a.relid FROM pg_catalog.pg_partition_ancestors("
                 "$2::pg_catalog.oid) a) THEN $1 ELSE $2 END AS key")


@dataclass
class Batch:
    statement: str  # STATEMENT_SQL's answer in batch_start
    where: str = FIRST
    tokens: int = 0  # strategy 'auto': estimated tokens embedded inline so far (-1: the budget is spent)


def estimated_tokens(text: str, max_tokens: int) -> int:
    """What a text costs the model, without tokenizing it here (the model host tokenizes): about 4 bytes of
    UTF-8 per token (English words; a Japanese character is 3 bytes and about one token), at most the
    model's window, which is all the model ever reads of a text."""
    return min(len(text.encode("utf-8")) // 4 + 1, max_tokens)


_statements: dict[int, Batch] = {}  # registered table oid -> its INSERT statement in progress
_keys: dict[int, int] = {}  # a partition's oid -> the registered table its statement's state is kept under
_tokens = itertools.count(1)
_plans: dict[str, object] = {}


def _statement(plpy, query: str, *args: str, column: str = "statement") -> str:
    if query not in _plans:
        _plans[query] = plpy.prepare(query, ["text"] * len(args))
    return plpy.execute(_plans[query], list(args))[0][column]


def batch_start(TD, plpy=None) -> None:
    if plpy is None:  # sql/30_triggers.sql passes only TD; inside PL/Python, plpy is an importable module
        import plpy
    table = int(TD["relid"])
    if TD.get("args"):  # a partition's copy of the registered table's trigger
        _keys[table] = int(_statement(plpy, PARTITION_SQL, TD["args"][0], str(table), column="key"))
        table = _keys[table]
    _statements[table] = Batch(_statement(plpy, START_SQL, str(table), str(next(_tokens))))


def batch_end(TD) -> None:
    table = int(TD["relid"])
    _statements.pop(_keys.pop(table, table), None)


def _batch_of(plpy, table: int) -> Batch | None:
    """The batch statement this row belongs to, if any. Any row may come from a statement that fired no
    batch_start on the table: one on a table it became a partition of (ATTACH PARTITION), one on a partition
    whose copies of the triggers were dropped, one run by a trigger inside the statement. So a row that finds
    a state proves it is its own statement's, at one query (about 3 us: 0.06% of embedding a short text with
    all-mpnet-base-v2)."""
    batch = _statements.get(table)
    if batch is None or _statement(plpy, CHECK_SQL, str(table)) == batch.statement:
        return batch
    del _statements[table]  # stale or another statement's: this statement's next rows skip the check
    return None


def embed_row(plpy, TD, embed=None, lexemes=sql_api.document_lexemes):
    """BEFORE INSERT / UPDATE OF source or vector, FOR EACH ROW. Arguments: source column, vector column, strategy,
    oid of the registered table (a partition's rows find their parent's statement by it), and, for a
    table with a lexical side, its tsvector column and lexical config. The lexical side is always filled
    inline: analysing a text costs far less than embedding it."""
    source, target, strategy, table, model, lexical_side = _arguments(TD["args"])
    embed = embed or partial(_embed_uncached, model=model)
    new = TD["new"]
    if lexical_side:
        column, config = lexical_side
        new[column] = lexemes(plpy, new[source], config)
    if strategy in ("queue", "auto"):
        return _queue_or_embed(plpy, TD, strategy, int(table), embed, model)
    if TD["event"] == "UPDATE":
        # The WHEN clause fired us: the text changed, or the row has text and no vector (an ORM's save() or an
        # upsert wrote the stale NULL of an instance back). A new vector the client sent with a new text is kept.
        if new[source] is None or new[target] is None or new[target] == TD["old"][target]:
            new[target] = embed(plpy, new[source])
        return "MODIFY"
    if new[target] is not None or new[source] is None:
        # an explicit vector from the client is kept; no text, no vector
        return "MODIFY" if lexical_side else None
    batch = _batch_of(plpy, int(table)) if strategy == "batch" else None
    if batch is not None and batch.where == REST:
        # the write-back function embeds this row with the statement's others
        return "MODIFY" if lexical_side else None
    if batch is not None:
        batch.where = REST
    new[target] = embed(plpy, new[source])
    return "MODIFY"


def _arguments(args: list) -> tuple:
    """source, target, strategy, table oid, model name (None: the default model; triggers made before
    0012 name none), and the lexical side's [column, config] or []."""
    source, target, strategy, table, *rest = args
    model = rest.pop(0) if len(rest) in (1, 3) else None
    return source, target, strategy, table, model, rest


def _queue_or_embed(plpy, TD, strategy: str, table: int, embed, model: str | None = None) -> str | None:
    """Strategies 'queue' and 'auto': a row's vector is embedded now (auto, while the statement's budget
    lasts) or left NULL for the queue. A vector the client sent with the row (or with a new text) is kept."""
    source, target = TD["args"][:2]
    new = TD["new"]
    sent = new[target] is not None and (TD["event"] == "INSERT" or new[target] != TD["old"][target])
    if sent or new[source] is None:
        if not sent:
            new[target] = None
        return "MODIFY"
    new[target] = None  # an UPDATE's old vector belongs to the old text
    if strategy == "auto" and _fits_budget(plpy, table, new[source], model):
        new[target] = embed(plpy, new[source])
    return "MODIFY"


def _fits_budget(plpy, table: int, text: str, model: str | None = None) -> bool:
    """Whether this row of the running statement is embedded inline under strategy 'auto'. A row without a
    statement state (one inserted by a trigger inside the statement) is: it is a statement of its own."""
    _, settings = sql_api._active(plpy, model)
    budget = int(settings.get("auto_inline_tokens") or 1024)
    batch = _batch_of(plpy, table)
    cost = estimated_tokens(text, int(settings.get("max_tokens") or 512))
    if batch is None:
        return cost <= budget
    if batch.tokens < 0 or batch.tokens + cost > budget:
        batch.tokens = -1  # the rest of the statement goes to the queue, in order
        return False
    batch.tokens += cost
    return True
