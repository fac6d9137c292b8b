"""Trigger handlers with a fake TD: which rows are embedded inline, which are left to the batch write-back."""
import pytest

from pgbert_runtime import triggers

TABLE = 4242


@pytest.fixture(autouse=True)
def clean_state():
    triggers._statements.clear()
    yield
    triggers._statements.clear()


def fake_embed(plpy, text):
    return None if text is None else f"vec({text})"


def row(text, vector=None, strategy="batch", event="INSERT", relid=TABLE):
    return {"event": event, "relid": str(relid), "args": ["body", "body_embedding", strategy, str(TABLE)],
            "new": {"body": text, "body_embedding": vector}}


def fire(td):
    result = triggers.embed_row(None, td, embed=fake_embed)
    return result, td["new"]["body_embedding"]


def test_row_strategy_embeds_every_row_inline():
    triggers.batch_start({"relid": str(TABLE)})  # even inside a statement
    for text in ("a", "b", "c"):
        assert fire(row(text, strategy="row")) == ("MODIFY", f"vec({text})")


def test_batch_statement_embeds_its_first_row_inline_and_leaves_the_rest():
    triggers.batch_start({"relid": str(TABLE)})
    assert fire(row("first")) == ("MODIFY", "vec(first)")
    assert fire(row("second")) == (None, None)
    assert fire(row("third")) == (None, None)
    triggers.batch_end({"relid": str(TABLE)})
    triggers.batch_start({"relid": str(TABLE)})  # the next statement starts over
    assert fire(row("next")) == ("MODIFY", "vec(next)")


def test_a_row_inserted_straight_into_a_partition_is_embedded_inline():
    """The parent's statement triggers do not fire for it: no statement in progress means inline."""
    partition = TABLE + 1
    assert fire(row("p1", relid=partition)) == ("MODIFY", "vec(p1)")
    assert fire(row("p2", relid=partition)) == ("MODIFY", "vec(p2)")


def test_rows_of_a_statement_on_the_parent_routed_to_partitions_are_batched():
    triggers.batch_start({"relid": str(TABLE)})
    assert fire(row("first", relid=TABLE + 1)) == ("MODIFY", "vec(first)")
    assert fire(row("second", relid=TABLE + 2)) == (None, None)


def test_client_vectors_and_null_text_are_left_alone():
    assert fire(row("text", vector="[1,2]")) == (None, "[1,2]")
    assert fire(row(None)) == (None, None)


def test_update_re_embeds_and_null_clears():
    triggers.batch_start({"relid": str(TABLE)})
    triggers.embed_row(None, row("x"), embed=fake_embed)  # the statement's first row
    assert fire(row("changed", vector="[old]", event="UPDATE")) == ("MODIFY", "vec(changed)")
    assert fire(row(None, vector="[old]", event="UPDATE")) == ("MODIFY", None)


def test_the_lexical_side_is_filled_inline_on_every_path():
    calls = []

    def fake_lexemes(plpy, text, config):
        calls.append((text, config))
        return None if text is None else f"lex({text})"

    def fire_lexical(td):
        td["args"] += ["body_lexemes", "japanese"]
        td["new"]["body_lexemes"] = None
        result = triggers.embed_row(None, td, embed=fake_embed, lexemes=fake_lexemes)
        return result, td["new"]["body_embedding"], td["new"]["body_lexemes"]

    triggers.batch_start({"relid": str(TABLE)})
    assert fire_lexical(row("first")) == ("MODIFY", "vec(first)", "lex(first)")
    assert fire_lexical(row("second")) == ("MODIFY", None, "lex(second)")  # vector left to the write-back
    assert fire_lexical(row("kept", vector="[1]")) == ("MODIFY", "[1]", "lex(kept)")
    assert fire_lexical(row("new text", vector="[old]", event="UPDATE")) == ("MODIFY", "vec(new text)", "lex(new text)")
    assert calls[-1] == ("new text", "japanese")
