"""A node's in-memory cache bounded in bytes (and optionally in entries), least recently used
out first: the one shape of the metadata, structure and header caches of the mail store.

A plain ``dict`` keeps the order of use (a hit is inserted again at the end): about 50 bytes an
entry less than an ``OrderedDict``, which counts at 100,000 messages (issue 17).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class Weighed(Protocol):
    """A cache :func:`sizes` reports: its name and the bytes it holds (as weighed)."""

    name: str
    size: int


#: Every cache alive in this process (what ``/metrics`` reports, see :func:`sizes`).
_LIVE: weakref.WeakSet[Weighed] = weakref.WeakSet()


def track(cache: Weighed) -> None:
    """Report ``cache`` in :func:`sizes` while it lives (a bounded cache of another shape than
    :class:`BoundedCache`, which tracks itself)."""
    _LIVE.add(cache)


class BoundedCache(Generic[K, V]):
    """Values by key; ``size`` is the sum of ``weigh(value)`` over the entries, never left above
    ``max_bytes`` (nor the count above ``max_entries``) after a :meth:`put`. ``name`` says
    which cache it is in ``caducee_cache_bytes`` (:func:`sizes`)."""

    def __init__(
        self,
        name: str,
        weigh: Callable[[V], int],
        max_bytes: int,
        max_entries: int | None = None,
    ) -> None:
        self.name = name
        self.entries: dict[K, V] = {}
        self.size = 0
        self._weigh = weigh
        self._max_bytes = max_bytes
        self._max_entries = max_entries
        track(self)

    def get(self, key: K) -> V | None:
        found = self.entries.pop(key, None)
        if found is not None:
            self.entries[key] = found  # most recently used: last
        return found

    def peek(self) -> Callable[[K], V | None]:
        """A look-up that is not a use (the order is kept: no ``pop`` and insert per hit): the
        current dict's ``get``. A worker thread may call it while the event loop uses the
        cache: one look-up of a ``str`` or ``int`` key holds the interpreter lock from start to
        end (no Python code runs in it); a key that :meth:`get` is moving to the end at that
        instant reads as absent, and after :meth:`clear` the old entries are read. Callers
        treat absent as "load it"."""
        return self.entries.get

    def clear(self) -> None:
        self.entries = {}
        self.size = 0
        self.dropped()

    def discard(self, key: K) -> None:
        old = self.entries.pop(key, None)
        if old is not None:
            self.size -= self._weigh(old)
            self.dropped()

    def dropped(self) -> None:
        """Called after entries left the cache (evicted, discarded, cleared): a subclass
        forgets what it keeps about them."""

    def put(self, key: K, value: V) -> None:
        old = self.entries.pop(key, None)
        if old is not None:
            self.size -= self._weigh(old)
        self.entries[key] = value
        self.size += self._weigh(value)
        evicted = old is not None and old is not value
        while self.entries and (
            self.size > self._max_bytes
            or (self._max_entries is not None and len(self.entries) > self._max_entries)
        ):
            gone = self.entries.pop(next(iter(self.entries)))
            self.size -= self._weigh(gone)
            evicted = True
        if evicted:
            self.dropped()


#: Other bounded holdings of this process that are not a :class:`BoundedCache`, by name: how
#: to weigh each (see :func:`measured`).
_MEASURED: dict[str, Callable[[], int]] = {}


def measured(name: str, weigh: Callable[[], int]) -> None:
    """Report ``weigh()`` bytes as cache ``name`` in :func:`sizes` (a bounded structure of
    another shape, e.g. the text index's trigram hashes)."""
    _MEASURED[name] = weigh


def sizes() -> dict[str, int]:
    """This process's caches: the bytes each holds (as weighed), by name."""
    found: dict[str, int] = {}
    for cache in list(_LIVE):
        found[cache.name] = found.get(cache.name, 0) + cache.size
    for name, weigh in _MEASURED.items():
        found[name] = found.get(name, 0) + weigh()
    return found
