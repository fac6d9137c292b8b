"""Trigger handlers with a fake TD: which rows are embedded inline, which are left to the batch write-back."""
import pytest

from pgbert_runtime import triggers

TABLE = 4242
PARTITION = TABLE + 1


class Server:
    """Answers the triggers' statement queries as PostgreSQL does: the token batch_start sets is
    transaction-local (gone when its (sub)transaction aborts), the transaction id changes per transaction."""

    def __init__(self):
        self.xid, self.depth, self.settings, self.queries = 100, 1, {}, 0

    def prepare(self, query, types):
        return query

    def execute(self, query, args):
        self.queries += 1
        if query == triggers.PARTITION_SQL:  # PARTITION is a partition of TABLE
            registered, partition = args
            return [{"key": registered if int(partition) in (PARTITION, int(registered)) else partition}]
        table, *token = args
        if query == triggers.START_SQL:
            self.settings[table] = token[0]
        else:
            assert query == triggers.CHECK_SQL
        return [{"statement": f"{self.xid} {self.depth} {self.settings.get(table, '')}"}]

    def fail(self):
        """The running statement raises: its transaction (or savepoint) rolls back, batch_end never runs."""
        self.settings.clear()

    def next_transaction(self):
        self.xid += 1
        self.settings.clear()


@pytest.fixture(autouse=True)
def server():
    triggers._statements.clear()
    yield Server()
    triggers._statements.clear()


@pytest.fixture()
def start(server):
    return lambda table=TABLE: triggers.batch_start({"relid": str(table)}, server)


def fake_embed(plpy, text):
    return None if text is None else f"vec({text})"


def row(text, vector=None, strategy="batch", event="INSERT", relid=TABLE):
    """An UPDATE's row keeps its old vector (the client did not send one)."""
    td = {"event": event, "relid": str(relid), "args": ["body", "body_embedding", strategy, str(TABLE)],
          "new": {"body": text, "body_embedding": vector}}
    if event == "UPDATE":
        td["old"] = {"body": "the old text", "body_embedding": vector}
    return td


@pytest.fixture()
def fire(server):
    def fire(td):
        result = triggers.embed_row(server, td, embed=fake_embed)
        return result, td["new"]["body_embedding"]
    return fire


def test_row_strategy_embeds_every_row_inline(start, fire):
    start()  # even inside a statement
    for text in ("a", "b", "c"):
        assert fire(row(text, strategy="row")) == ("MODIFY", f"vec({text})")


def test_batch_statement_embeds_its_first_row_inline_and_leaves_the_rest(start, fire):
    start()
    assert fire(row("first")) == ("MODIFY", "vec(first)")
    assert fire(row("second")) == (None, None)
    assert fire(row("third")) == (None, None)
    triggers.batch_end({"relid": str(TABLE)})
    start()  # the next statement starts over
    assert fire(row("next")) == ("MODIFY", "vec(next)")


def test_a_row_inserted_straight_into_a_partition_is_embedded_inline(fire, server):
    """The parent's statement triggers do not fire for it: no statement in progress means inline."""
    assert fire(row("p1", relid=PARTITION)) == ("MODIFY", "vec(p1)")
    assert fire(row("p2", relid=PARTITION)) == ("MODIFY", "vec(p2)")
    assert server.queries == 0  # no statement in progress: nothing to check


def test_rows_of_a_statement_on_the_parent_routed_to_partitions_are_batched(start, fire):
    start()
    assert fire(row("first", relid=PARTITION)) == ("MODIFY", "vec(first)")
    assert fire(row("second", relid=PARTITION + 1)) == (None, None)
    assert fire(row("third", relid=PARTITION)) == (None, None)


def test_a_statement_straight_into_a_partition_is_batched(fire, server):
    """The partition's copies of the table's statement triggers name the table: its rows find the state there."""
    copy = {"relid": str(PARTITION), "args": [str(TABLE)]}
    triggers.batch_start(copy, server)
    assert fire(row("first", relid=PARTITION)) == ("MODIFY", "vec(first)")
    assert fire(row("second", relid=PARTITION)) == (None, None)  # left to the write-back through the table
    triggers.batch_end(copy)
    assert triggers._statements == {} and triggers._keys == {}
    assert fire(row("after the statement", relid=PARTITION)) == ("MODIFY", "vec(after the statement)")


def test_a_copy_naming_a_table_it_is_no_partition_of_keeps_its_state_to_itself(fire, server):
    """A role may attach pgbert.batch_start('<another table's oid>') to a table of its own: the catalog says no."""
    stranger = PARTITION + 1
    triggers.batch_start({"relid": str(stranger), "args": [str(TABLE)]}, server)
    assert set(triggers._statements) == {stranger}
    assert fire(row("a row of the table", relid=PARTITION)) == ("MODIFY", "vec(a row of the table)")


# ---- security finding 9: a statement that fails leaves its state behind -----------------------------------
@pytest.mark.parametrize("rows_before_the_error", [0, 1, 2])  # the state left: FIRST, or REST
def test_a_failed_statement_s_state_never_applies_to_a_later_direct_partition_insert(
        start, fire, server, rows_before_the_error):
    start()
    for i in range(rows_before_the_error):
        fire(row(f"parent row {i}", relid=PARTITION))
    server.fail()  # no batch_end
    for text in ("direct one", "direct two", "direct three"):  # one multi-row INSERT INTO the partition
        assert fire(row(text, relid=PARTITION)) == ("MODIFY", f"vec({text})")
    assert triggers._statements == {}  # found stale once, then forgotten


def test_a_stale_state_is_refused_in_a_later_transaction_even_if_the_session_forged_its_token(start, fire, server):
    """A session may SET pgbert.batch_<oid> itself (e.g. to the token it read during its own failed
    statement) before a pooler hands the connection to another role: the transaction id still differs."""
    start()
    fire(row("first", relid=PARTITION))
    fire(row("second", relid=PARTITION))
    forged = dict(server.settings)
    server.fail()
    server.next_transaction()
    server.settings.update(forged)
    assert fire(row("another role's row", relid=PARTITION)) == ("MODIFY", "vec(another role's row)")


def test_a_statement_rolled_back_to_a_savepoint_leaves_no_state_in_the_same_transaction(start, fire, server):
    start()  # a statement that succeeds: its token stays set until the transaction ends
    fire(row("ok", relid=PARTITION))
    triggers.batch_end({"relid": str(TABLE)})
    before = dict(server.settings)
    start()  # SAVEPOINT s; INSERT ... fails; ROLLBACK TO s
    fire(row("first", relid=PARTITION))
    fire(row("second", relid=PARTITION))
    server.settings = before
    assert fire(row("direct", relid=PARTITION)) == ("MODIFY", "vec(direct)")


def test_a_partition_insert_run_from_inside_the_statement_is_not_its_row(start, fire, server):
    """E.g. another table's trigger, fired by the statement, inserts straight into the partition: that
    row is not in the statement's transition table, so its write-back would never embed it."""
    start()
    fire(row("first", relid=PARTITION))
    server.depth += 1
    assert fire(row("nested", relid=PARTITION)) == ("MODIFY", "vec(nested)")


def test_a_stale_state_never_applies_to_the_registered_table_itself(start, fire, server):
    """E.g. after ATTACH PARTITION to another table: its rows come through a statement on that table."""
    start()
    fire(row("first"))
    server.fail()
    assert fire(row("through the new parent")) == ("MODIFY", "vec(through the new parent)")


def test_only_a_row_that_finds_a_state_costs_a_query(start, fire, server):
    start()
    fire(row("first", relid=PARTITION))
    fire(row("second", relid=PARTITION))
    assert server.queries == 1 + 2  # batch_start's, then one per row
    server.fail()
    for text in ("a", "b", "c"):
        fire(row(text, relid=PARTITION))
    assert server.queries == 3 + 1  # the first row found the state stale and dropped it


def test_client_vectors_and_null_text_are_left_alone(fire):
    assert fire(row("text", vector="[1,2]")) == (None, "[1,2]")
    assert fire(row(None)) == (None, None)


def test_update_re_embeds_and_null_clears(start, fire):
    start()
    fire(row("x"))  # the statement's first row
    assert fire(row("changed", vector="[old]", event="UPDATE")) == ("MODIFY", "vec(changed)")
    assert fire(row(None, vector="[old]", event="UPDATE")) == ("MODIFY", None)


def test_the_lexical_side_is_filled_inline_on_every_path(start, server):
    calls = []

    def fake_lexemes(plpy, text, config):
        calls.append((text, config))
        return None if text is None else f"lex({text})"

    def fire_lexical(td):
        td["args"] += ["body_lexemes", "japanese"]
        td["new"]["body_lexemes"] = None
        result = triggers.embed_row(server, td, embed=fake_embed, lexemes=fake_lexemes)
        return result, td["new"]["body_embedding"], td["new"]["body_lexemes"]

    start()
    assert fire_lexical(row("first")) == ("MODIFY", "vec(first)", "lex(first)")
    assert fire_lexical(row("second")) == ("MODIFY", None, "lex(second)")  # vector left to the write-back
    assert fire_lexical(row("kept", vector="[1]")) == ("MODIFY", "[1]", "lex(kept)")
    assert fire_lexical(row("new text", vector="[old]", event="UPDATE")) == ("MODIFY", "vec(new text)", "lex(new text)")
    assert calls[-1] == ("new text", "japanese")
