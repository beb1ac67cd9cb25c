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


def test_a_look_up_by_peek_is_not_a_use() -> None:
    cache: BoundedCache[str, bytes] = BoundedCache("essai-peek", len, max_bytes=10)
    cache.put("a", b"1")
    cache.put("b", b"1")
    assert cache.peek()("a") == b"1" and cache.peek()("z") is None
    assert list(cache.entries) == ["a", "b"]  # "a" stays the least recently used
    cache.discard("a")
    assert list(cache.entries) == ["b"] and cache.size == 1


def test_a_folder_column_of_heads_never_outlives_the_cache_entries() -> None:
    """A large folder's column of heads refers to the strings the heads cache holds: whatever
    drops an entry (eviction, discard, clear) drops every column."""
    from datetime import datetime

    from caducee.domain.model import MessageSummary
    from caducee.services import mailstore

    def folder() -> mailstore.FolderRows:
        return mailstore.FolderRows(
            [MessageSummary(i, i, 0, "", 1, datetime(2026, 1, 1), 1, f"b{i}", 1) for i in (1, 2)]
        )

    cache = mailstore.HeadsCache(None)  # type: ignore[arg-type]
    cache._max_bytes = 2 * (150 + 10)
    rows = folder()
    cache.put("b1", "x" * 10)
    column = cache.column(rows)
    assert column == [None, None] and cache.column(rows) is column  # one per rows
    column[0] = cache.peek()("b1")  # what a search's pass does, in a worker thread
    cache.put("b2", "y" * 10)  # room for it: the column stays
    assert rows.heads is column
    cache.put("b3", "z" * 10)  # "b1" evicted
    assert rows.heads is None and cache.column(rows) == [None, None]
    cache.discard("b2")
    assert rows.heads is None
    other = folder()
    cache.column(other)
    cache.clear()
    assert other.heads is None
