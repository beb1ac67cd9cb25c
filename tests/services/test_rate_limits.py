"""The one per-client rate limiter (token bucket) every door counts with: in memory, and in
the database on both backends (shared by the node's worker processes and by nodes)."""

from __future__ import annotations

import pytest

from caducee.app import App
from caducee.services import rate_limits
from caducee.services.rate_limits import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "database"])
def limiter_of(request: pytest.FixtureRequest, app: App) -> object:
    def make(per_minute: int, clock: Clock) -> RateLimiter:
        if request.param == "memory":
            return RateLimiter(per_minute, clock=clock)
        return RateLimiter(per_minute, clock=clock, db=app.db, name="test.limit")

    return make


async def test_a_burst_then_one_per_refill(limiter_of: object) -> None:
    clock = Clock()
    limiter = limiter_of(3, clock)  # type: ignore[operator]
    assert [await limiter.allow("192.0.2.1") for _ in range(4)] == [True, True, True, False]
    assert 20 <= await limiter.retry_after("192.0.2.1") <= 21
    assert await limiter.allow("192.0.2.2")  # another client has its own bucket
    start = clock.now
    clock.now = start + 19.9
    assert not await limiter.allow("192.0.2.1")
    clock.now = start + 20.0
    assert await limiter.allow("192.0.2.1") and not await limiter.allow("192.0.2.1")


async def test_blocked_takes_nothing(limiter_of: object) -> None:
    clock = Clock()
    limiter = limiter_of(2, clock)  # type: ignore[operator]
    assert not any([await limiter.blocked("c") for _ in range(10)])
    await limiter.allow("c")
    await limiter.allow("c")
    assert await limiter.blocked("c")
    clock.now += 30.0
    assert not await limiter.blocked("c")


async def test_the_app_holds_one_limiter_per_name(app: App) -> None:
    login = rate_limits.limiter(app, "web.login", 5)
    assert rate_limits.limiter(app, "web.login", 5) is login
    assert rate_limits.limiter(app, "api.calls", 5) is not login


async def test_two_apps_on_one_database_share_the_buckets(app: App) -> None:
    # As two worker processes (or nodes) do: the same name counts in one bucket.
    other = RateLimiter(2, db=app.db, name="web.login")
    mine = rate_limits.limiter(app, "web.login", 2)
    assert await mine.allow("192.0.2.9") and await other.allow("192.0.2.9")
    assert not await mine.allow("192.0.2.9") and not await other.allow("192.0.2.9")


async def test_maintenance_forgets_full_buckets_only(app: App) -> None:
    limiter = rate_limits.limiter(app, "web.login", 2)
    assert await limiter.allow("old", now=1_800_000_000.0)
    assert await limiter.allow("new", now=1_800_000_100.0)
    assert await rate_limits.forget_full_buckets(app, now=1_800_000_100.0) == 1
    assert await limiter.allow("new", now=1_800_000_100.0)
    assert not await limiter.allow("new", now=1_800_000_100.0)
