"""The vector cache: bounded by bytes, least recently used out first, emptied by a model or role change."""
import json
import os

import pytest

from fake_plpy import FakePlpy
from pgbert_runtime import sql_api, triggers
from pgbert_runtime.cache import VectorCache


def test_least_recently_used_entries_leave_first_and_the_limit_holds():
    cache, owner = VectorCache(), object()
    assert cache.get(owner, "alice", ("query", "a")) is None
    for text in "abcde":
        cache.put(owner, "alice", ("query", text), "[1,2,3]" * 50, limit_bytes=2_800)
    assert cache.bytes <= 2_800 and len(cache.entries) == 4
    assert cache.get(owner, "alice", ("query", "a")) is None  # the oldest went first
    assert cache.get(owner, "alice", ("query", "e")) is not None
    assert (cache.hits, cache.misses) == (1, 2)


def test_another_model_empties_the_cache_and_huge_texts_are_not_kept():
    cache, first, second = VectorCache(), object(), object()
    cache.get(first, "alice", ("document", "x"))
    cache.put(first, "alice", ("document", "x"), "[1]", limit_bytes=10_000)
    assert cache.get(second, "alice", ("document", "x")) is None and cache.entries == {}
    cache.put(second, "alice", ("document", "y" * 5_000), "[1]", limit_bytes=10_000)  # over a quarter of the limit
    assert cache.entries == {}


def test_another_role_empties_the_cache():
    """Round 3, finding 11: a backend shared by roles (SET ROLE) told mallory which texts alice had embedded."""
    cache, model = VectorCache(), object()
    cache.get(model, "alice", ("query", "code name BLUEBIRD"))
    cache.put(model, "alice", ("query", "code name BLUEBIRD"), "[1]", limit_bytes=10_000)
    assert cache.get(model, "mallory", ("query", "code name BLUEBIRD")) is None and cache.entries == {}
    cache.put(model, "alice", ("query", "code name BLUEBIRD"), "[1]", limit_bytes=10_000)  # alice's, mallory asked last
    assert cache.entries == {}


@pytest.fixture()
def plpy(tiny_bundle):
    with open(os.path.join(tiny_bundle, "manifest.json")) as f:
        files = json.dumps(json.load(f)["files"])
    return FakePlpy(tiny_bundle, files, embed_cache_mb="1")


def test_the_same_text_twice_is_one_model_call_and_kinds_are_apart(plpy):
    calls = sql_api._active(plpy)[0].encoder.calls
    first = sql_api.embed(plpy, "compress files")
    assert sql_api.embed(plpy, "compress files") == first
    assert sql_api._active(plpy)[0].encoder.calls == calls + 1
    sql_api.embed(plpy, "compress files", "query")  # another kind: another entry
    assert sql_api._active(plpy)[0].encoder.calls == calls + 2


def test_cache_off_and_triggers_never_fill_it(plpy):
    plpy.settings["embed_cache_mb"] = "0"
    calls = sql_api._active(plpy)[0].encoder.calls
    sql_api.embed(plpy, "no cache")
    sql_api.embed(plpy, "no cache")
    assert sql_api._active(plpy)[0].encoder.calls == calls + 2
    plpy.settings["embed_cache_mb"] = "1"
    entries = len(sql_api.cache.entries)
    td = {"event": "INSERT", "relid": "1", "args": ["body", "v", "row", "1"], "new": {"body": "loaded row", "v": None}}
    triggers.embed_row(plpy, td)
    assert td["new"]["v"] is not None and len(sql_api.cache.entries) == entries


def test_embed_under_another_role_is_a_model_call_again(plpy):
    calls, hits = sql_api._active(plpy)[0].encoder.calls, sql_api.cache.hits
    sql_api.embed(plpy, "merger talks with Contoso, code name BLUEBIRD", "query")
    plpy.role = "mallory"  # SET ROLE mallory in the same backend (DISCARD ALL does not empty a Python module)
    sql_api.embed(plpy, "merger talks with Contoso, code name BLUEBIRD", "query")
    assert sql_api._active(plpy)[0].encoder.calls == calls + 2 and sql_api.cache.hits == hits
