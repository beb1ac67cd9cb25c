"""The account password (web first factor) and the lockout, on both backends."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

import pyotp
import pytest
from argon2 import PasswordHasher
from sqlalchemy import select

from caducee.app import App, open_app
from caducee.errors import AccessDenied
from caducee.services import lockout, mfa, web_sessions, webauthn_keys
from caducee.services.app_passwords import create_app_password
from caducee.services.auth import authenticate_mail, verify_password_login
from caducee.services.lockout import AccountLocked, LockoutPolicy
from caducee.services.passwords import needs_rehash, verify_password
from caducee.services.totp import begin_totp_enrolment, confirm_totp, verify_totp
from caducee.store.tables import auth_failures
from tests.services.auth_helpers import (
    PASSWORD,
    T0,
    account_row,
    add_account,
    audit_rows,
    audit_text,
)

LOGIN = "dr.martin@cabinet.test"
IP = "198.51.100.7"
GENERIC_FR = "Identifiant ou mot de passe incorrect."
GENERIC_EN = "Wrong login or password."


def small_lockout(app: App, threshold: int = 3, base: int = 30, maximum: int = 3600) -> None:
    app.settings.lockout_threshold = threshold
    app.settings.lockout_base_seconds = base
    app.settings.lockout_max_seconds = maximum


async def fail_login(
    app: App, login: str = LOGIN, source: str = IP, now: datetime | None = None
) -> AccessDenied:
    """A wrong password; returns the refusal (generic, or AccountLocked while locked)."""
    with pytest.raises(AccessDenied) as info:
        await verify_password_login(app, login, "not-the-password", source, now=now)
    return info.value


# --- first factor ---------------------------------------------------------------------------


async def test_right_password_returns_the_account_and_is_audited(app: App) -> None:
    account_id = await add_account(app)
    account = await verify_password_login(app, "Dr.Martin@Cabinet.TEST ", PASSWORD, IP)
    assert account.id == account_id and account.login == LOGIN
    assert not account.totp_enabled
    [record] = await audit_rows(app, "auth.password")
    assert (record.actor, record.target, record.source, record.result) == (LOGIN, LOGIN, IP, "ok")
    assert json.loads(record.details) == {"service": "web"}
    assert PASSWORD not in await audit_text(app)


async def test_wrong_password_and_unknown_login_get_the_same_refusal(app: App) -> None:
    await add_account(app)
    wrong = await fail_login(app)
    unknown = await fail_login(app, "nobody@cabinet.test")
    for error in (wrong, unknown):
        assert type(error) is AccessDenied
        assert (error.fr, error.en) == (GENERIC_FR, GENERIC_EN)
    records = await audit_rows(app, "auth.password")
    assert [(r.target, r.result) for r in records] == [
        (LOGIN, "failed"),
        ("nobody@cabinet.test", "failed"),
    ]
    text = await audit_text(app)
    assert "not-the-password" not in text and PASSWORD not in text


async def test_disabled_account_is_refused_even_with_the_right_password(app: App) -> None:
    await add_account(app, disabled=True)
    with pytest.raises(AccessDenied) as info:
        await verify_password_login(app, LOGIN, PASSWORD, IP)
    assert info.value.fr == GENERIC_FR
    [record] = await audit_rows(app, "auth.password")
    assert record.result == "denied"


async def test_overlong_password_is_refused_without_error(app: App) -> None:
    await add_account(app)
    with pytest.raises(AccessDenied):
        await verify_password_login(app, LOGIN, "x" * 100_000, IP)


async def test_password_is_rehashed_when_argon2_parameters_change(app: App) -> None:
    old_hasher = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1)
    old_hash = old_hasher.hash(PASSWORD)
    assert needs_rehash(old_hash)
    await add_account(app, password_hash=old_hash)
    await verify_password_login(app, LOGIN, PASSWORD, IP)
    new_hash = (await account_row(app)).password_hash
    assert new_hash != old_hash
    assert not needs_rehash(new_hash)
    assert verify_password(new_hash, PASSWORD)
    # A second login keeps the (now current) hash.
    await verify_password_login(app, LOGIN, PASSWORD, IP)
    assert (await account_row(app)).password_hash == new_hash


async def test_failed_login_does_not_rehash(app: App) -> None:
    old_hash = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1).hash(PASSWORD)
    await add_account(app, password_hash=old_hash)
    await fail_login(app)
    assert (await account_row(app)).password_hash == old_hash


# --- lockout --------------------------------------------------------------------------------


def test_policy_doubles_and_caps() -> None:
    policy = LockoutPolicy(threshold=5, base_seconds=30, max_seconds=3600)
    expected = [0] * 4 + [30, 60, 120, 240, 480, 960, 1920, 3600]
    assert [policy.lock_seconds(n) for n in range(1, 13)] == expected
    assert policy.lock_seconds(10_000) == 3600


async def test_locked_after_threshold_even_with_the_right_password(app: App) -> None:
    small_lockout(app)
    await add_account(app)
    for i in range(3):
        error = await fail_login(app, now=T0 + timedelta(seconds=i))
        assert type(error) is AccessDenied  # the third failure is refused as wrong, not locked
    with pytest.raises(AccountLocked) as info:
        await verify_password_login(app, LOGIN, PASSWORD, IP, now=T0 + timedelta(seconds=10))
    locked = info.value
    assert isinstance(locked, AccessDenied)
    assert "temporairement" in locked.fr and "Réessayez dans 22 s" in locked.fr
    assert "Try again in 22 s" in locked.en
    assert locked.until == T0 + timedelta(seconds=2 + 30)
    assert locked.retry_after_seconds == 22
    assert (await audit_rows(app, "auth.password"))[-1].result == "denied"
    # Once the lock is over, the right password works and resets the counters.
    account = await verify_password_login(app, LOGIN, PASSWORD, IP, now=T0 + timedelta(seconds=33))
    assert account.login == LOGIN
    async with app.db.read() as conn:
        assert (await conn.execute(select(auth_failures))).all() == []


async def test_back_off_doubles_then_caps(app: App) -> None:
    small_lockout(app, threshold=3, base=30, maximum=100)
    await add_account(app)
    now = T0
    for _ in range(3):
        await fail_login(app, now=now)
    waits = []
    for _ in range(4):
        with pytest.raises(AccountLocked) as info:
            await verify_password_login(app, LOGIN, PASSWORD, IP, now=now)
        waits.append(info.value.retry_after_seconds)
        now = info.value.until  # the lock is over exactly then: one more failure
        await fail_login(app, now=now)
    assert waits == [30, 60, 100, 100]
    # At the cap, waiting for the lock to end does not buy a fresh series of tries: the
    # counter is forgotten only after a whole quiet window once the lock is over.
    await fail_login(app, now=now + timedelta(seconds=100 + 50))
    error = await fail_login(app, now=now + timedelta(seconds=100 + 51))
    assert isinstance(error, AccountLocked) and error.retry_after_seconds == 99


async def test_concurrent_failures_are_all_counted(app: App) -> None:
    small_lockout(app, threshold=10)
    await add_account(app)
    await asyncio.gather(*(fail_login(app, now=T0) for _ in range(6)))
    async with app.db.read() as conn:
        rows = (await conn.execute(select(auth_failures.c.key, auth_failures.c.failures))).all()
    assert sorted(rows) == [(f"account:{LOGIN}", 6), (f"ip:{IP}", 6)]


async def test_locked_attempts_do_not_extend_the_lock(app: App) -> None:
    small_lockout(app)
    await add_account(app)
    for _ in range(3):
        await fail_login(app, now=T0)
    for seconds in (1, 5, 20):
        error = await fail_login(app, now=T0 + timedelta(seconds=seconds))
        assert isinstance(error, AccountLocked)
        assert error.until == T0 + timedelta(seconds=30)


async def test_success_resets_the_counter(app: App) -> None:
    small_lockout(app)
    await add_account(app)
    await fail_login(app, now=T0)
    await fail_login(app, now=T0)
    await verify_password_login(app, LOGIN, PASSWORD, IP, now=T0)
    await fail_login(app, now=T0)
    await fail_login(app, now=T0)
    assert (await verify_password_login(app, LOGIN, PASSWORD, IP, now=T0)).login == LOGIN


async def test_old_failures_stop_counting(app: App) -> None:
    small_lockout(app, threshold=3, maximum=600)
    await add_account(app)
    await fail_login(app, now=T0)
    await fail_login(app, now=T0)
    later = T0 + timedelta(seconds=601)
    await fail_login(app, now=later)  # counts as the first again
    await fail_login(app, now=later)
    assert (await verify_password_login(app, LOGIN, PASSWORD, IP, now=later)).login == LOGIN


async def test_client_address_is_locked_across_accounts(app: App) -> None:
    small_lockout(app)
    logins = [f"user{i}@cabinet.test" for i in range(4)]
    for login in logins:
        await add_account(app, login)
    for login in logins[:3]:  # one failure on each of three accounts
        await fail_login(app, login, now=T0)
    with pytest.raises(AccountLocked):
        await verify_password_login(app, logins[3], PASSWORD, IP, now=T0)
    # The accounts themselves are not locked: from another address they work.
    for login in logins:
        assert (await verify_password_login(app, login, PASSWORD, "192.0.2.1", now=T0)).login


async def test_unknown_logins_are_locked_too(app: App) -> None:
    small_lockout(app)
    for _ in range(3):
        await fail_login(app, "ghost@cabinet.test", source="", now=T0)
    error = await fail_login(app, "ghost@cabinet.test", source="", now=T0)
    assert isinstance(error, AccountLocked)


async def test_lock_is_shared_by_every_node(app: App) -> None:
    small_lockout(app)
    await add_account(app)
    for _ in range(3):
        await fail_login(app, now=T0)
    async with open_app(app.settings) as other_node:
        with pytest.raises(AccountLocked):
            await verify_password_login(other_node, LOGIN, PASSWORD, "192.0.2.1", now=T0)


async def test_purge_stale_counters(app: App) -> None:
    small_lockout(app, maximum=600)
    await add_account(app)
    await fail_login(app, now=T0)
    assert await lockout.purge_stale(app.db, app.settings, now=T0 + timedelta(seconds=60)) == 0
    assert await lockout.purge_stale(app.db, app.settings, now=T0 + timedelta(seconds=601)) == 2


# --- one attempt, one transaction, every door ------------------------------------------------

#: A wrong attempt at one door at ``now``: it raises the door's refusal.
WrongAttempt = Callable[[datetime], Awaitable[object]]


async def _password_door(app: App) -> tuple[str, WrongAttempt]:
    await add_account(app)

    def wrong(now: datetime) -> Awaitable[object]:
        return verify_password_login(app, LOGIN, "not-the-password", IP, now=now)

    return "auth.password", wrong


async def _mail_door(app: App) -> tuple[str, WrongAttempt]:
    await add_account(app)
    await create_app_password(app, LOGIN, "Thunderbird")

    def wrong(now: datetime) -> Awaitable[object]:
        return authenticate_mail(app, LOGIN, "aaaaaaa-aaaaaaa-aaaaaaa-aaaaaaa", "imap", IP, now=now)

    return "auth.mail", wrong


async def _totp_door(app: App) -> tuple[str, WrongAttempt]:
    await add_account(app)
    secret, _uri = await begin_totp_enrolment(app, LOGIN)
    await confirm_totp(app, LOGIN, pyotp.TOTP(secret).at(T0), now=T0)
    bad = pyotp.TOTP(secret).at(T0 + timedelta(hours=1))

    def wrong(now: datetime) -> Awaitable[object]:
        return verify_totp(app, LOGIN, bad, IP, now=now)

    return "auth.totp", wrong


async def _recovery_door(app: App) -> tuple[str, WrongAttempt]:
    account = await web_sessions.account_by_id(app, await add_account(app))
    assert account is not None
    await mfa.generate_recovery_codes(app, account, actor=LOGIN, source=IP)

    def wrong(now: datetime) -> Awaitable[object]:
        return mfa.use_recovery_code(app, LOGIN, "aaaa-aaaa-aaaa-aaaa", IP, now=now)

    return "auth.recovery", wrong


async def _webauthn_door(app: App) -> tuple[str, WrongAttempt]:
    await add_account(app)

    def wrong(now: datetime) -> Awaitable[object]:
        return webauthn_keys.finish_webauthn_login(
            app, LOGIN, IP, credential=None, new_sign_count=None, reason="bad_assertion", now=now
        )

    return "auth.webauthn", wrong


DOORS: dict[str, Callable[[App], Awaitable[tuple[str, WrongAttempt]]]] = {
    "password": _password_door,
    "mail": _mail_door,
    "totp": _totp_door,
    "recovery": _recovery_door,
    "webauthn": _webauthn_door,
}


@pytest.mark.parametrize("door", list(DOORS))
async def test_two_concurrent_wrong_secrets_at_the_limit_count_once(app: App, door: str) -> None:
    """The lock is checked again in the transaction that counts: of two wrong secrets sent at
    once when one failure is left, one is counted (and locks), the other is refused as locked
    without being counted — whichever door they come through."""
    small_lockout(app, threshold=3)
    action, wrong = await DOORS[door](app)
    for _ in range(2):
        with pytest.raises(AccessDenied) as info:
            await wrong(T0)
        assert type(info.value) is AccessDenied
    results = await asyncio.gather(wrong(T0), wrong(T0), return_exceptions=True)
    assert sorted(type(r).__name__ for r in results) == ["AccessDenied", "AccountLocked"]
    [locked] = [r for r in results if isinstance(r, AccountLocked)]
    assert locked.until == T0 + timedelta(seconds=30)  # the first lock, not a doubled one
    async with app.db.read() as conn:
        rows = (await conn.execute(select(auth_failures.c.key, auth_failures.c.failures))).all()
    assert sorted(rows) == [(f"account:{LOGIN}", 3), (f"ip:{IP}", 3)]
    results_audited = [(r.result, json.loads(r.details)) for r in await audit_rows(app, action)]
    assert [result for result, _ in results_audited] == ["failed"] * 3 + ["denied"]
    assert results_audited[-1][1]["reason"] == "locked"
