"""Per-client rate limits: one token bucket for every door, counted across the node's worker
processes and across nodes.

The mail doors' connection rate (``protocols.tcp.ClientLimits``), the web login forms, the
REST API's calls and bad tokens and the portal's unknown links all count with
:class:`RateLimiter`. The limiters are held by the node's :class:`~caducee.app.App` (one
:class:`RateLimits` component, one limiter per name), never by a module. An app's limiter keeps
its buckets in the database (``store.rate_repo``: one atomic statement per check, on SQLite
and PostgreSQL alike), so a client gets the same budget whichever worker process or node its
connections land on, and memory stays bounded (maintenance forgets buckets untouched for a
minute: they are full again). A limiter without a database (``ClientLimits()`` alone) keeps
its buckets in memory, the least recently seen of 10,000 clients forgotten.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable

from caducee.app import App
from caducee.errors import TemporaryFailure
from caducee.store import rate_repo
from caducee.store.database import Database

log = logging.getLogger(__name__)

#: The least recently seen clients are forgotten beyond this (per in-memory limiter).
MAX_CLIENTS = 10_000
#: A bucket untouched this long is full again: maintenance deletes it.
FORGET_AFTER_SECONDS = 60.0


class RateLimiter:
    """A token bucket per client: ``per_minute`` tokens at most, refilled continuously; in
    ``db`` under ``name`` when given, else in this process's memory."""

    def __init__(
        self,
        per_minute: int,
        *,
        clock: Callable[[], float] = time.time,
        db: Database | None = None,
        name: str = "",
    ) -> None:
        self.per_minute = max(1, per_minute)
        self.capacity = float(self.per_minute)
        self.rate = self.capacity / 60.0  # tokens per second
        self.clock = clock
        self.db = db
        self.name = name
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def _tokens(self, client: str, now: float) -> float:
        tokens, last = self._buckets.pop(client, (self.capacity, now))
        return min(self.capacity, tokens + max(0.0, now - last) * self.rate)

    def _keep(self, client: str, tokens: float, now: float) -> None:
        self._buckets[client] = (tokens, now)
        while len(self._buckets) > MAX_CLIENTS:
            self._buckets.popitem(last=False)

    async def allow(self, client: str, now: float | None = None) -> bool:
        """Take one token for ``client``; False (nothing taken) when its bucket is empty."""
        now = self.clock() if now is None else now
        if self.db is not None:
            try:
                async with self.db.write() as conn:
                    return await rate_repo.take(
                        conn, self.name, client[:100], now, self.capacity, self.rate
                    )
            except TemporaryFailure as exc:
                # The database cannot count now (full disk, restarting, busy): count in this
                # process meanwhile, so a client is neither cut without a word nor let through
                # without any limit.
                log.warning("rate limit counted locally name=%s reason=%s", self.name,
                            type(exc).__name__)  # fmt: skip
        tokens = self._tokens(client, now)
        allowed = tokens >= 1.0
        self._keep(client, tokens - 1.0 if allowed else tokens, now)
        return allowed

    async def _left(self, client: str, now: float) -> float:
        if self.db is not None:
            try:
                async with self.db.read() as conn:
                    return await rate_repo.tokens(
                        conn, self.name, client[:100], now, self.capacity, self.rate
                    )
            except TemporaryFailure as exc:
                log.warning("rate limit read locally name=%s reason=%s", self.name,
                            type(exc).__name__)  # fmt: skip
        tokens = self._tokens(client, now)
        self._keep(client, tokens, now)
        return tokens

    async def blocked(self, client: str, now: float | None = None) -> bool:
        """Whether ``client``'s bucket is empty, taking nothing (for limits that count only
        failures: check first, :meth:`allow` once the attempt failed)."""
        return await self._left(client, self.clock() if now is None else now) < 1.0

    async def retry_after(self, client: str, now: float | None = None) -> int:
        """Seconds until ``client`` has a token again (at least 1)."""
        tokens = await self._left(client, self.clock() if now is None else now)
        return max(1, int((1.0 - tokens) / self.rate) + 1)


class RateLimits:
    """The node's rate limiters by name (an :meth:`App.component`), counting in its database."""

    def __init__(self, app: App) -> None:
        self.app = app
        self._limiters: dict[str, RateLimiter] = {}

    def get(self, name: str, per_minute: int) -> RateLimiter:
        found = self._limiters.get(name)
        if found is None or found.per_minute != max(1, per_minute):
            found = self._limiters[name] = RateLimiter(per_minute, db=self.app.db, name=name)
        return found


def limiter(app: App, name: str, per_minute: int) -> RateLimiter:
    """The node's limiter called ``name`` (e.g. ``"web.login"``), created on first use."""
    return app.component(RateLimits, RateLimits).get(name, per_minute)


async def forget_full_buckets(app: App, now: float | None = None) -> int:
    """Delete the buckets untouched for :data:`FORGET_AFTER_SECONDS` (maintenance)."""
    before = (time.time() if now is None else now) - FORGET_AFTER_SECONDS
    async with app.db.write() as conn:
        return await rate_repo.purge(conn, before)
