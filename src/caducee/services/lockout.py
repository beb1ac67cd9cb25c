"""Lockout with exponential back-off, per account and per client address.

Counters live in the ``auth_failures`` table (key ``account:<login>`` or ``ip:<address>``), so
every node sharing the database sees the same locks. After ``lockout_threshold`` consecutive
failures a key is locked for ``lockout_base_seconds * 2 ** (failures - threshold)`` seconds,
at most ``lockout_max_seconds``. Failures stop counting once the key has been quiet (no
failure, no lock running) for longer than ``lockout_max_seconds``: measured from the end of the
lock, not from the last failure, so that at the cap a guesser gets one try per capped lock
rather than a fresh ``threshold`` tries. A successful authentication deletes the counters of
its account and address.

Attempts refused because of a lock are not counted (the lock is checked before the secret, so
nothing is learnt from them), and counters exist for unknown logins too: a lock says nothing
about whether an account exists.

Every function takes the current time ``now`` from its caller, so tests never sleep.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum

from sqlalchemy.ext.asyncio import AsyncConnection

from caducee.config import Settings
from caducee.errors import AccessDenied
from caducee.services.audit import AuditEvent, Detail
from caducee.store import auth_repo
from caducee.store.database import Database


class Outcome(Enum):
    """The result of one authentication attempt, as audited."""

    OK = "ok"
    FAILED = "failed"  # a wrong secret: counts towards the lock
    DENIED = "denied"  # refused without guessing (locked, disabled, revoked, scope)


def auth_event(
    login: str, action: str, source: str, outcome: Outcome, reason: str = "", **extra: Detail
) -> AuditEvent:
    """The audit record of an authentication attempt (never the secret that was tried)."""
    details: dict[str, Detail] = {k: v for k, v in extra.items() if v is not None}
    if reason:
        details["reason"] = reason
    return AuditEvent(
        actor=login,
        action=action,
        target=login,
        source=source,
        result=outcome.value,
        details=details,
    )


MAX_LOGIN_LENGTH = 320  # accounts.login
MAX_SOURCE_LENGTH = 100  # audit_log.source


def utcnow() -> datetime:
    return datetime.now(UTC)


def normalize_login(login: str) -> str:
    """Logins are mail addresses, compared in lower case (cut to the column's length)."""
    return login.strip().lower()[:MAX_LOGIN_LENGTH]


def normalize_source(source: str) -> str:
    return source.strip()[:MAX_SOURCE_LENGTH]


def account_key(login: str) -> str:
    return f"account:{normalize_login(login)}"


def ip_key(source: str) -> str:
    return f"ip:{normalize_source(source)}"


def lock_keys(login: str, source: str) -> tuple[str, ...]:
    """The counters an attempt by ``login`` from ``source`` touches (no address: account only)."""
    keys = [account_key(login)]
    if normalize_source(source):
        keys.append(ip_key(source))
    return tuple(sorted(keys))  # one lock order for every node: no deadlock


@dataclass(frozen=True)
class LockoutPolicy:
    threshold: int
    base_seconds: int
    max_seconds: int

    @classmethod
    def from_settings(cls, settings: Settings) -> LockoutPolicy:
        return cls(
            threshold=max(1, settings.lockout_threshold),
            base_seconds=max(1, settings.lockout_base_seconds),
            max_seconds=max(1, settings.lockout_max_seconds),
        )

    def lock_seconds(self, failures: int) -> int:
        """How long ``failures`` consecutive failures lock a key (0: not locked)."""
        if failures < self.threshold:
            return 0
        exponent = failures - self.threshold
        if exponent >= 62:  # 2**62 seconds is far beyond any cap
            return self.max_seconds
        return min(self.base_seconds * (1 << exponent), self.max_seconds)


def _duration(seconds: int) -> tuple[str, str]:
    """A short duration for people, in French and English."""
    if seconds < 60:
        return f"{seconds} s", f"{seconds} s"
    minutes = math.ceil(seconds / 60)
    if minutes < 60:
        return f"{minutes} min", f"{minutes} min"
    hours, rest = divmod(minutes, 60)
    if rest:
        return f"{hours} h {rest:02d}", f"{hours} h {rest:02d} min"
    return f"{hours} h", f"{hours} h"


class AccountLocked(AccessDenied):
    """Too many failures: the account or the client address is locked until ``until``."""

    def __init__(self, until: datetime, now: datetime) -> None:
        self.until = until
        self.retry_after_seconds = max(1, math.ceil((until - now).total_seconds()))
        wait_fr, wait_en = _duration(self.retry_after_seconds)
        super().__init__(
            "Trop de tentatives de connexion infructueuses : accès temporairement bloqué. "
            f"Réessayez dans {wait_fr}.",
            f"Too many failed login attempts: access temporarily locked. Try again in {wait_en}.",
        )


async def locked_until(
    conn: AsyncConnection, keys: Sequence[str], now: datetime
) -> datetime | None:
    """The end of the longest lock among ``keys`` still running at ``now``, if any."""
    ends = [
        row.locked_until
        for row in await auth_repo.failures(conn, keys)
        if row.locked_until is not None and row.locked_until > now
    ]
    return max(ends) if ends else None


async def record_failure(
    conn: AsyncConnection, policy: LockoutPolicy, keys: Sequence[str], now: datetime
) -> datetime | None:
    """Count one failure against each key; return the end of the lock it causes, if any."""
    longest: datetime | None = None
    window = timedelta(seconds=policy.max_seconds)
    for key in sorted(keys):
        row = await auth_repo.lock_failure_row(conn, key, now)
        failures = row.failures
        quiet_since = max(row.last_failure_at, row.locked_until or row.last_failure_at)
        if failures and now - quiet_since > window:
            failures = 0
        failures += 1
        seconds = policy.lock_seconds(failures)
        until = now + timedelta(seconds=seconds) if seconds else None
        await auth_repo.save_failure(conn, key, failures, now, until)
        if until is not None and (longest is None or until > longest):
            longest = until
    return longest


async def reset(conn: AsyncConnection, keys: Sequence[str]) -> None:
    """Forget the failures of ``keys`` (after a successful authentication)."""
    await auth_repo.delete_failures(conn, keys)


async def purge_stale(db: Database, settings: Settings, now: datetime | None = None) -> int:
    """Delete counters that no longer count nor lock (for a periodic worker). Returns how many."""
    policy = LockoutPolicy.from_settings(settings)
    before = (now or utcnow()) - timedelta(seconds=policy.max_seconds)
    async with db.write() as conn:
        return await auth_repo.delete_stale_failures(conn, before)
