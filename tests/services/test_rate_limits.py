"""The one per-client rate limiter (token bucket) every door counts with."""

from __future__ import annotations

from caducee.app import App
from caducee.services import rate_limits
from caducee.services.rate_limits import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_then_one_per_refill() -> None:
    clock = Clock()
    limiter = RateLimiter(3, clock=clock)
    assert [limiter.allow("192.0.2.1") for _ in range(4)] == [True, True, True, False]
    assert 20 <= limiter.retry_after("192.0.2.1") <= 21
    assert limiter.allow("192.0.2.2")  # another client has its own bucket
    clock.now = 19.9
    assert not limiter.allow("192.0.2.1")
    clock.now = 20.0
    assert limiter.allow("192.0.2.1") and not limiter.allow("192.0.2.1")


def test_blocked_takes_nothing() -> None:
    clock = Clock()
    limiter = RateLimiter(2, clock=clock)
    assert not any(limiter.blocked("c") for _ in range(10))
    limiter.allow("c")
    limiter.allow("c")
    assert limiter.blocked("c")
    clock.now = 30.0
    assert not limiter.blocked("c")


async def test_the_app_holds_one_limiter_per_name(app: App) -> None:
    login = rate_limits.limiter(app, "web.login", 5)
    assert rate_limits.limiter(app, "web.login", 5) is login
    assert rate_limits.limiter(app, "api.calls", 5) is not login
