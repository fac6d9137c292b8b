"""A bounded cache of query vectors, one per backend: the same text, kind and model give the same vector
without a second model call. It makes `ORDER BY embedding <=> embed('query')` cost one model call whatever
plan the planner picks (under a sequential scan embed() runs once per row), and repeated searches cheap.

Entries are the pgvector text embed() returns, least recently used first out; the limit is in bytes (the
embed_cache_mb setting; 0 turns it off). A different model (a new Encoder) empties it, and so does another
role: a backend that a pooler shares between roles (SET ROLE) must not tell one role, by a hit or its speed,
which texts another embedded.
"""
from __future__ import annotations

import sys
from collections import OrderedDict

ENTRY_OVERHEAD = 200  # bytes per entry beyond the key and value strings: the tuple, the dict slot


class VectorCache:
    def __init__(self):
        self.entries: OrderedDict[tuple, str] = OrderedDict()
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self.owner = None  # the loaded model (its Bundle object) whose vectors these are
        self.role = None  # the role (current_user) that embedded them

    @staticmethod
    def _size(key: tuple, value: str) -> int:
        return sys.getsizeof(key[1]) + sys.getsizeof(value) + ENTRY_OVERHEAD

    def get(self, owner, role: str, key: tuple) -> str | None:
        if owner is not self.owner or role != self.role:
            self.clear()
            self.owner, self.role = owner, role
        value = self.entries.get(key)
        if value is None:
            self.misses += 1
            return None
        self.entries.move_to_end(key)
        self.hits += 1
        return value

    def put(self, owner, role: str, key: tuple, value: str, limit_bytes: int) -> None:
        size = self._size(key, value)
        if owner is not self.owner or role != self.role or size > limit_bytes // 4:
            return  # another model or role meanwhile, or one text too big to be worth a quarter of the cache
        if key in self.entries:
            return
        self.entries[key] = value
        self.bytes += size
        while self.bytes > limit_bytes and self.entries:
            old_key, old_value = self.entries.popitem(last=False)
            self.bytes -= self._size(old_key, old_value)

    def clear(self) -> None:
        self.entries.clear()
        self.bytes = 0
