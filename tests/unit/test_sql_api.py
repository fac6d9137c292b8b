"""sql_api with a fake plpy: the input cap, cancel checks between model calls, NULL handling, errors."""
import json
import os

import numpy as np
import pytest

from fake_plpy import Error, FakePlpy
from pgbert_runtime import sql_api


@pytest.fixture()
def plpy(tiny_bundle):
    with open(os.path.join(tiny_bundle, "manifest.json")) as f:
        files = json.dumps(json.load(f)["files"])
    return FakePlpy(tiny_bundle, files, batch_size="2")


def vector(text: str) -> np.ndarray:
    return np.array(json.loads(text), dtype=np.float32)


def test_embed_and_batch_agree_and_keep_nulls(plpy):
    single = sql_api.embed(plpy, "hello world")
    batch = sql_api.embed_batch(plpy, ["hello world", None, "other"])
    assert batch[1] is None and len(batch) == 3
    np.testing.assert_allclose(vector(single), vector(batch[0]), atol=1e-6)
    assert sql_api.embed(plpy, None) is None


def test_input_over_the_cap_is_refused_with_54000(plpy):
    plpy.settings["max_input_chars"] = "100"
    sql_api.embed_batch(plpy, ["x" * 50, "y" * 50])  # exactly the cap: fine
    with pytest.raises(Error) as info:
        sql_api.embed_batch(plpy, ["x" * 50, "y" * 51])
    assert info.value.sqlstate == "54000" and "max_input_chars" in str(info.value) and info.value.hint


def test_a_cancel_between_model_calls_stops_the_work(plpy):
    """Every model call is preceded by a statement PostgreSQL can cancel; its error ends the call."""
    texts = [f"text number {i}" for i in range(20)]  # batch_size 2: ten model calls
    pings = []
    plpy.on_ping = lambda: pings.append(1)
    sql_api.embed_batch(plpy, texts)
    assert len(pings) >= 10

    class QueryCanceled(Exception):
        pass

    def cancel_after_three():
        pings.append(1)
        if len(pings) > 3:
            raise QueryCanceled("canceling statement due to user request")

    pings.clear()
    plpy.on_ping = cancel_after_three
    calls_before = sql_api._active(plpy)[0].encoder.calls
    with pytest.raises(QueryCanceled):
        sql_api.embed_batch(plpy, texts)
    assert sql_api._active(plpy)[0].encoder.calls - calls_before <= 3


def test_no_active_model_is_a_clear_55000(tiny_bundle):
    with pytest.raises(Error) as info:
        sql_api.embed(FakePlpy(None), "x")
    assert info.value.sqlstate == "55000" and "use_model" in info.value.hint


def test_files_not_the_registered_ones_are_refused(tiny_bundle):
    with pytest.raises(Error, match="not the ones registered") as info:
        sql_api.embed(FakePlpy(tiny_bundle, json.dumps({"model.onnx": {"size": 1, "sha256": "0"}})), "x")
    assert info.value.sqlstate == "55000"


def test_embed_chunks_gives_passages_offsets_and_the_vectors_of_the_passages(plpy):
    text = "The first sentence is here. " * 30 + "The last one differs."
    rows = sql_api.embed_chunks(plpy, [text, None, "short"], 16, 4)
    assert {r[0] for r in rows} == {1, 3}  # NULL gives no chunks
    first = [r for r in rows if r[0] == 1]
    assert [r[1] for r in first] == list(range(len(first))) and len(first) > 3
    for _, _, start, end, passage, vec in first:
        assert passage == text[start:end]
        np.testing.assert_allclose(vector(vec), vector(sql_api.embed(plpy, passage)), atol=1e-5)


def test_embed_chunks_refuses_a_window_the_model_cannot_read_and_too_many_chunks(plpy):
    window = sql_api._active(plpy)[0].chunk_window
    for chunk_tokens, overlap in ((0, 0), (window + 1, 0), (16, 16)):
        with pytest.raises(Error) as info:
            sql_api.embed_chunks(plpy, ["text"], chunk_tokens, overlap)
        assert info.value.sqlstate == "22023" and f"1..{window}" in str(info.value)
    plpy.settings["max_chunks_per_row"] = "3"
    with pytest.raises(Error) as info:
        sql_api.embed_chunks(plpy, ["word " * 500], 16, 0)
    assert info.value.sqlstate == "54000" and "max_chunks_per_row" in info.value.hint


def test_a_search_query_over_the_limit_is_refused_with_54000(plpy):
    """Round 3, finding 10: a 104k-character query was analysed for 14-24 s."""
    from pgbert_runtime import lexical

    pytest.importorskip("sudachipy")
    query = "東京の天気。" * (lexical.MAX_QUERY_CHARS // 6)
    assert sql_api.query_lexemes(plpy, query + "x" * (lexical.MAX_QUERY_CHARS - len(query)), "japanese")[:2] == [
        "東京", "天気"]  # exactly the limit: fine
    with pytest.raises(Error) as info:
        sql_api.query_lexemes(plpy, "東京の天気。" * (lexical.MAX_QUERY_CHARS // 6 + 1), "japanese")
    assert info.value.sqlstate == "54000" and str(lexical.MAX_QUERY_CHARS) in str(info.value) and info.value.hint
    with pytest.raises(Error, match="search query"):
        sql_api.query_lexemes(plpy, "x " * lexical.MAX_QUERY_CHARS, "english")  # whatever the config


def test_status_shows_counters_to_admins_only(plpy):
    """Round 3, finding 16: every pgbert_user read the model host's and the backend's counters (other roles')."""
    sql_api.embed(plpy, "some activity")
    admin = dict(sql_api.status(plpy))
    assert {"cache_hits", "model_calls", "backend_texts"} <= set(admin) and admin["ok"] == "true"
    plpy.admin = False
    user = dict(sql_api.status(plpy))
    assert set(user) == {"ok", "queue_pending", "queue_in_progress", "queue_failed"} | sql_api.PUBLIC_STATUS
    assert user["model_runs_in"] == admin["model_runs_in"] and user["model"] == admin["model"]
