"""Lockout with exponential back-off, per account and per client address, and the one
authentication attempt every door goes through.

Counters live in the ``auth_failures`` table (key ``account:<login>`` or ``ip:<address>``), so
every node sharing the database sees the same locks. After ``lockout_threshold`` consecutive
failures a key is locked for ``lockout_base_seconds * 2 ** (failures - threshold)`` seconds,
at most ``lockout_max_seconds``. Failures stop counting once the key has been quiet (no
failure, no lock running) for longer than ``lockout_max_seconds``: measured from the end of the
lock, not from the last failure, so that at the cap a guesser gets one try per capped lock
rather than a fresh ``threshold`` tries. A successful authentication deletes the counters of
its account and address.

:func:`attempt` is the single path of an authentication attempt (account password, app
password, TOTP code, recovery code, WebAuthn key). In ONE write transaction it

1. locks the counter rows of the account and of the address (``SELECT … FOR UPDATE`` on
   PostgreSQL, the single writer on SQLite), so concurrent attempts on the same account or
   address, on any node, run one after the other;
2. refuses at once if either is locked — before the secret is looked at, so the answer is the
   same whether the secret was right or wrong, and the attempt is not counted;
3. checks the secret and applies what a success changes (a recovery code spent, the TOTP
   step advanced, the app password's last use) through the caller's ``check``;
4. counts the failure, or resets the counters on success;
5. appends the audit record.

So of several wrong secrets sent at once when one failure is left, one is counted and the
others are refused as locked, and a right secret never gets through once the lock is reached.
Secrets that are slow to check (argon2 passwords) are verified before the transaction, in a
worker thread, never holding the database's writer: their result is used only if step 2
passes, so a comparison made while a concurrent attempt was locking the key teaches nothing.
:func:`refuse_if_locked` spares that work while a lock is already running.

Attempts refused because of a lock are not counted (nothing is learnt from them), and counters
exist for unknown logins too: a lock says nothing about whether an account exists.

Every function takes the current time ``now`` from its caller, so tests never sleep.
"""

from __future__ import annotations

import hmac
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import TypeVar

from caducee.app import App
from caducee.config import Settings
from caducee.domain.model import Account
from caducee.errors import AccessDenied
from caducee.services import audit, metrics
from caducee.services.audit import AuditEvent, Detail
from caducee.store import auth_repo
from caducee.store.connection import AsyncConnection
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


def _lock_end(rows: Sequence[auth_repo.FailureRow], now: datetime) -> datetime | None:
    """The end of the longest lock among ``rows`` still running at ``now``, if any."""
    ends = [row.locked_until for row in rows if row.locked_until and row.locked_until > now]
    return max(ends) if ends else None


async def locked_until(
    conn: AsyncConnection, keys: Sequence[str], now: datetime
) -> datetime | None:
    """The end of the longest lock among ``keys`` still running at ``now``, if any."""
    return _lock_end(await auth_repo.failures(conn, keys), now)


async def _count_failure(
    conn: AsyncConnection,
    policy: LockoutPolicy,
    rows: Sequence[auth_repo.FailureRow],
    now: datetime,
) -> list[str]:
    """Count one failure against each of the (locked) counter ``rows``; returns the scopes
    (``account``, ``ip``) of the lock-outs this failure starts."""
    window = timedelta(seconds=policy.max_seconds)
    started: list[str] = []
    for row in rows:
        failures = row.failures
        quiet_since = max(row.last_failure_at, row.locked_until or row.last_failure_at)
        if failures and now - quiet_since > window:
            failures = 0
        failures += 1
        seconds = policy.lock_seconds(failures)
        until = now + timedelta(seconds=seconds) if seconds else None
        await auth_repo.save_failure(conn, row.key, failures, now, until)
        if until is not None and (row.locked_until is None or row.locked_until <= now):
            started.append("account" if row.key.startswith("account:") else "ip")
    return started


@dataclass(frozen=True)
class Verdict:
    """What checking a secret found, inside the attempt's transaction."""

    outcome: Outcome
    reason: str = ""  # audited: bad_password, bad_code, replay, disabled, ...
    account: Account | None = None  # the account, on success
    #: Whether a success resets the counters (False: a first factor, the second is awaited,
    #: so guessing codes between right passwords keeps counting).
    reset: bool = True
    details: Mapping[str, Detail] = field(default_factory=dict)  # more audit details

    @classmethod
    def ok(cls, account: Account, *, reset: bool = True, **details: Detail) -> Verdict:
        return cls(Outcome.OK, account=account, reset=reset, details=details)

    @classmethod
    def failed(cls, reason: str, **details: Detail) -> Verdict:
        return cls(Outcome.FAILED, reason, details=details)

    @classmethod
    def denied(cls, reason: str, **details: Detail) -> Verdict:
        return cls(Outcome.DENIED, reason, details=details)


#: Checks the secret in the attempt's transaction and applies what a success changes there.
Check = Callable[[AsyncConnection], Awaitable[Verdict]]


async def refuse_if_locked(
    db: Database, login: str, source: str, action: str, now: datetime, **extra: Detail
) -> None:
    """Raise :class:`AccountLocked` (audited) if the account or the address is locked now.

    A read, for doors about to do slow work (an argon2 verification, a WebAuthn challenge):
    it spares that work while a lock runs. It decides nothing by itself — :func:`attempt`
    checks the lock again in its transaction.
    """
    login, source = normalize_login(login), normalize_source(source)
    async with db.read() as conn:
        until = await locked_until(conn, lock_keys(login, source), now)
    if until is not None:
        event = auth_event(login, action, source, Outcome.DENIED, "locked", **extra)
        await audit.record(db, event)
        raise AccountLocked(until, now)


async def attempt(
    db: Database,
    settings: Settings,
    *,
    login: str,
    source: str,
    action: str,
    check: Check,
    now: datetime,
    **extra: Detail,
) -> Verdict:
    """One authentication attempt by ``login`` from ``source``, in one write transaction.

    Locks the counters, refuses while locked, runs ``check``, counts the failure or resets
    the counters, and audits ``action`` (with ``extra`` and the verdict's details) — see the
    module's documentation. Raises :class:`AccountLocked` while locked; otherwise returns the
    verdict, whose refusal (FAILED or DENIED) the door words itself.
    """
    login, source = normalize_login(login), normalize_source(source)
    keys = lock_keys(login, source)
    policy = LockoutPolicy.from_settings(settings)
    async with db.write() as conn:
        rows = await auth_repo.lock_failure_rows(conn, keys, now)
        until = _lock_end(rows, now)
        if until is not None:
            verdict = Verdict.denied("locked")
        else:
            verdict = await check(conn)
        locks: list[str] = []
        if verdict.outcome is Outcome.FAILED:
            locks = await _count_failure(conn, policy, rows, now)
        elif verdict.outcome is Outcome.OK and verdict.reset:
            await auth_repo.delete_failures(conn, keys)
        else:  # not counted: drop the counters created only to be locked
            await auth_repo.delete_unused_failures(conn, keys)
        details = {**extra, **verdict.details}
        await audit.append(
            conn, auth_event(login, action, source, verdict.outcome, verdict.reason, **details)
        )
    # Counted once committed: every check of a secret passes here, whatever the door.
    if verdict.outcome is Outcome.FAILED:
        service = extra.get("service")
        metrics.LOGIN_FAILURES.labels(metrics.label(str(service), metrics.SERVICES)).inc()
    for scope in locks:
        metrics.LOCKOUTS.labels(scope).inc()
    if until is not None:
        raise AccountLocked(until, now)
    return verdict


async def purge_stale(db: Database, settings: Settings, now: datetime | None = None) -> int:
    """Delete counters that no longer count nor lock (for a periodic worker). Returns how many."""
    policy = LockoutPolicy.from_settings(settings)
    before = (now or utcnow()) - timedelta(seconds=policy.max_seconds)
    async with db.write() as conn:
        return await auth_repo.delete_stale_failures(conn, before)


async def authenticate(
    app: App,
    *,
    login: str,
    source: str,
    action: str,
    check: Check,
    now: datetime,
    refusal: Callable[[], AccessDenied],
    **extra: Detail,
) -> Account:
    """:func:`attempt` for a door that only wants the account: the account of an accepted
    secret, else ``refusal()`` (the door's one generic wording) raised, whatever the reason.
    Every check of a password, app password, TOTP, recovery code or WebAuthn key ends here."""
    verdict = await attempt(
        app.db, app.settings, login=login, source=source, action=action, check=check, now=now,
        **extra,
    )  # fmt: skip
    if verdict.account is None:
        raise refusal()
    return verdict.account


Row = TypeVar("Row")


def matching_digest(rows: Sequence[Row], digest: str, stored: Callable[[Row], str]) -> Row | None:
    """The first of ``rows`` whose stored digest (``stored(row)``, hex) is ``digest``: every
    row is compared in constant time, with no early exit, so the time does not depend on which
    one matches (app passwords, recovery codes)."""
    given = digest.encode("ascii")
    match: Row | None = None
    for row in rows:
        if hmac.compare_digest(stored(row).encode("ascii"), given):
            match = match or row
    return match
