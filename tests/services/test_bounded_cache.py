"""The mail store's caches share one bounded, least-recently-used cache."""

from __future__ import annotations

from caducee.services.bounded_cache import BoundedCache, sizes


def test_the_least_recently_used_goes_first_and_the_bounds_hold() -> None:
    cache: BoundedCache[str, bytes] = BoundedCache("essai", len, max_bytes=10, max_entries=3)
    cache.put("a", b"1234")
    cache.put("b", b"1234")
    assert cache.get("a") == b"1234"  # "a" is now the most recent
    cache.put("c", b"12")
    assert cache.size == 10 and list(cache.entries) == ["b", "a", "c"]
    cache.put("d", b"1")  # 11 bytes: "b", the least recently used, goes
    assert cache.get("b") is None and cache.size == 7
    cache.put("e", b"")  # a fourth entry: over the count, "a" goes
    assert list(cache.entries) == ["c", "d", "e"] and cache.size == 3
    cache.put("c", b"123456789")  # replacing a value re-weighs it
    assert cache.size == 10 and cache.get("c") == b"123456789"
    cache.put("big", b"x" * 11)  # heavier than the whole bound: nothing is kept
    assert cache.entries == {} and cache.size == 0
    cache.put("d", b"123")
    assert sizes()["essai"] == 3  # what /metrics reports as caducee_cache_bytes
