"""Per-client rate limits in the node's memory: one token bucket for every door.

The mail doors' connection rate (``protocols.tcp.ClientLimits``), the web login forms, the
REST API's calls and bad tokens and the portal's unknown links all count with
:class:`RateLimiter`. The node's limiters are held by its :class:`~caducee.app.App` (one
:class:`RateLimits` component, one limiter per name), never by a module: two apps in one
process (tests, the bench) do not share counters. They slow down scripted guessing from one
address on one node; the lockout counters in the database (``services.lockout``) are what hold
across nodes.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from caducee.app import App

#: The least recently seen clients are forgotten beyond this (per limiter).
MAX_CLIENTS = 10_000


class RateLimiter:
    """A token bucket per client: ``per_minute`` tokens at most, refilled continuously."""

    def __init__(self, per_minute: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = max(1, per_minute)
        self.capacity = float(self.per_minute)
        self.rate = self.capacity / 60.0  # tokens per second
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def _tokens(self, client: str, now: float) -> float:
        tokens, last = self._buckets.pop(client, (self.capacity, now))
        return min(self.capacity, tokens + max(0.0, now - last) * self.rate)

    def _keep(self, client: str, tokens: float, now: float) -> None:
        self._buckets[client] = (tokens, now)
        while len(self._buckets) > MAX_CLIENTS:
            self._buckets.popitem(last=False)

    def allow(self, client: str, now: float | None = None) -> bool:
        """Take one token for ``client``; False (nothing taken) when its bucket is empty."""
        now = self.clock() if now is None else now
        tokens = self._tokens(client, now)
        allowed = tokens >= 1.0
        self._keep(client, tokens - 1.0 if allowed else tokens, now)
        return allowed

    def blocked(self, client: str, now: float | None = None) -> bool:
        """Whether ``client``'s bucket is empty, taking nothing (for limits that count only
        failures: check first, :meth:`allow` once the attempt failed)."""
        now = self.clock() if now is None else now
        tokens = self._tokens(client, now)
        self._keep(client, tokens, now)
        return tokens < 1.0

    def retry_after(self, client: str) -> int:
        """Seconds until ``client`` has a token again (at least 1)."""
        tokens, _last = self._buckets.get(client, (self.capacity, 0.0))
        return max(1, int((1.0 - tokens) / self.rate) + 1)


class RateLimits:
    """The node's rate limiters by name (an :meth:`App.component`)."""

    def __init__(self, app: App) -> None:
        self._limiters: dict[str, RateLimiter] = {}

    def get(self, name: str, per_minute: int) -> RateLimiter:
        found = self._limiters.get(name)
        if found is None or found.per_minute != max(1, per_minute):
            found = self._limiters[name] = RateLimiter(per_minute)
        return found


def limiter(app: App, name: str, per_minute: int) -> RateLimiter:
    """The node's limiter called ``name`` (e.g. ``"web.login"``), created on first use."""
    return app.component(RateLimits, RateLimits).get(name, per_minute)
