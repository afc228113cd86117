"""The shared LRU: a lookup keeps an entry, a put beyond the size drops the oldest."""

from __future__ import annotations

from app.lru import LRU


def test_least_recently_used_is_dropped_first() -> None:
    cache: LRU[str, int] = LRU(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # "a" is now the most recent
    cache.put("c", 3)
    assert cache.get("b") is None
    assert (cache.get("a"), cache.get("c"), len(cache)) == (1, 3, 2)
    cache.put("a", 10)
    assert cache.get("a") == 10 and len(cache) == 2
    cache.clear()
    assert len(cache) == 0 and cache.get("a") is None
