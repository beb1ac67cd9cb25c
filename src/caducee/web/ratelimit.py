"""A per-client rate limit for the login forms (token bucket, in the node's memory).

It slows down scripted guessing from one address on this node; the lockout counters in the
database (``services.lockout``) are what hold across nodes.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

MAX_CLIENTS = 10_000  # the least recently seen clients are forgotten beyond this


class RateLimiter:
    def __init__(self, per_minute: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = float(max(1, per_minute))
        self.rate = self.capacity / 60.0  # tokens per second
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def allow(self, client: str) -> bool:
        """Take one token for ``client``; False when its bucket is empty."""
        now = self.clock()
        tokens, last = self._buckets.pop(client, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - last) * self.rate)
        allowed = tokens >= 1.0
        if allowed:
            tokens -= 1.0
        self._buckets[client] = (tokens, now)
        while len(self._buckets) > MAX_CLIENTS:
            self._buckets.popitem(last=False)
        return allowed

    def retry_after(self, client: str) -> int:
        tokens, _last = self._buckets.get(client, (self.capacity, 0.0))
        return max(1, int((1.0 - tokens) / self.rate) + 1)
