"""TOTP second factor: enrolment, confirmation, verification, replay, lockout."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import datetime, timedelta
from urllib.parse import parse_qs, unquote, urlparse

import pyotp
import pytest
from sqlalchemy import update

from caducee.app import App
from caducee.errors import AccessDenied, IntegrityError, InvalidInput
from caducee.services.auth import verify_password_login
from caducee.services.lockout import AccountLocked
from caducee.services.totp import (
    begin_totp_enrolment,
    confirm_totp,
    disable_totp,
    seal_record,
    verify_totp,
)
from caducee.store.keyring import SYSTEM_SCOPE
from caducee.store.tables import accounts
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


def code_at(secret: str, when: datetime) -> str:
    return pyotp.TOTP(secret).at(when)


async def enrolled(app: App, when: datetime = T0) -> str:
    """An account with TOTP enabled at ``when``; returns the secret."""
    await add_account(app)
    secret, _ = await begin_totp_enrolment(app, LOGIN)
    await confirm_totp(app, LOGIN, code_at(secret, when), now=when)
    return secret


async def refused(app: App, code: str, when: datetime, source: str = IP) -> AccessDenied:
    with pytest.raises(AccessDenied) as info:
        await verify_totp(app, LOGIN, code, source, now=when)
    return info.value


async def test_enrolment_stores_the_secret_sealed_and_not_enabled(app: App) -> None:
    account_id = await add_account(app)
    secret, uri = await begin_totp_enrolment(app, LOGIN)
    assert len(base64.b32decode(secret)) >= 20
    parsed = urlparse(uri)
    assert (parsed.scheme, parsed.netloc) == ("otpauth", "totp")
    assert unquote(parsed.path) == f"/Caducée:{LOGIN}"
    query = parse_qs(parsed.query)
    assert query["secret"] == [secret] and query["issuer"] == ["Caducée"]
    row = await account_row(app)
    assert not row.totp_enabled and row.totp_last_step is None
    sealed = bytes(row.totp_sealed)
    assert secret.encode() not in sealed and base64.b32decode(secret) not in sealed
    async with app.db.read() as conn:
        opened = await app.keyring.open(conn, SYSTEM_SCOPE, seal_record(account_id), "totp", sealed)
    assert opened == secret.encode()
    # Not enabled yet: the account logs in with its password alone.
    assert not (await verify_password_login(app, LOGIN, PASSWORD, IP)).totp_enabled
    assert secret not in await audit_text(app)


async def test_confirm_needs_the_right_code(app: App) -> None:
    await add_account(app)
    secret, _ = await begin_totp_enrolment(app, LOGIN)
    wrong = code_at(secret, T0 + timedelta(minutes=10))
    with pytest.raises(InvalidInput) as info:
        await confirm_totp(app, LOGIN, wrong, now=T0)
    assert "Code incorrect" in info.value.fr
    assert not (await account_row(app)).totp_enabled
    await confirm_totp(app, LOGIN, code_at(secret, T0), now=T0)
    row = await account_row(app)
    assert row.totp_enabled and row.totp_last_step == int(T0.timestamp()) // 30
    assert (await verify_password_login(app, LOGIN, PASSWORD, IP)).totp_enabled
    with pytest.raises(InvalidInput):  # enrolling again needs disabling first
        await begin_totp_enrolment(app, LOGIN)


async def test_confirm_without_enrolment(app: App) -> None:
    await add_account(app)
    with pytest.raises(InvalidInput) as info:
        await confirm_totp(app, LOGIN, "123456", now=T0)
    assert "Aucun enregistrement" in info.value.fr


async def test_verify_accepts_a_code_within_one_step(app: App) -> None:
    secret = await enrolled(app)
    now = T0 + timedelta(minutes=5)
    account = await verify_totp(app, LOGIN, code_at(secret, now), IP, now=now)
    assert account.login == LOGIN
    # The next step's code (phone clock a little ahead) is accepted, with spaces.
    later = code_at(secret, now + timedelta(seconds=30))
    await verify_totp(app, LOGIN, f"{later[:3]} {later[3:]}", IP, now=now + timedelta(seconds=1))
    # Two steps away is refused.
    await refused(app, code_at(secret, now + timedelta(minutes=2)), now + timedelta(seconds=2))
    [first, second, third] = await audit_rows(app, "auth.totp")
    assert [r.result for r in (first, second, third)] == ["ok", "ok", "failed"]
    assert json.loads(third.details) == {"reason": "bad_code"}


async def test_replay_and_older_steps_are_refused(app: App) -> None:
    secret = await enrolled(app)
    now = T0 + timedelta(minutes=5)
    code = code_at(secret, now)
    await verify_totp(app, LOGIN, code, IP, now=now)
    error = await refused(app, code, now + timedelta(seconds=5))
    assert "Code de vérification incorrect" in error.fr
    # The previous step is inside the window but older than the last used one.
    await refused(app, code_at(secret, now - timedelta(seconds=30)), now + timedelta(seconds=6))
    results = [(r.result, json.loads(r.details)) for r in await audit_rows(app, "auth.totp")]
    assert results[1:] == [("failed", {"reason": "replay"}), ("failed", {"reason": "replay"})]
    assert (await account_row(app)).totp_last_step == int(now.timestamp()) // 30


async def test_the_confirmation_code_cannot_be_replayed(app: App) -> None:
    secret = await enrolled(app, T0)
    await refused(app, code_at(secret, T0), T0 + timedelta(seconds=10))


async def test_wrong_codes_lock_the_account(app: App) -> None:
    app.settings.lockout_threshold = 3
    secret = await enrolled(app)
    now = T0 + timedelta(minutes=5)
    bad = code_at(secret, now + timedelta(hours=1))
    for _ in range(3):
        assert type(await refused(app, bad, now)) is AccessDenied
    error = await refused(app, code_at(secret, now), now)
    assert isinstance(error, AccountLocked)
    assert (await audit_rows(app, "auth.totp"))[-1].result == "denied"


async def test_right_password_does_not_reset_code_failures(app: App) -> None:
    """Guessing codes between right passwords must still end in a lock."""
    app.settings.lockout_threshold = 3
    secret = await enrolled(app)
    now = T0 + timedelta(minutes=5)
    bad = code_at(secret, now + timedelta(hours=1))
    await refused(app, bad, now)
    await verify_password_login(app, LOGIN, PASSWORD, IP, now=now)
    await refused(app, bad, now)
    await verify_password_login(app, LOGIN, PASSWORD, IP, now=now)
    await refused(app, bad, now)
    with pytest.raises(AccountLocked):
        await verify_password_login(app, LOGIN, PASSWORD, IP, now=now)


async def test_a_complete_login_resets_the_counters(app: App) -> None:
    app.settings.lockout_threshold = 3
    secret = await enrolled(app)
    now = T0 + timedelta(minutes=5)
    bad = code_at(secret, now + timedelta(hours=1))
    await refused(app, bad, now)
    await refused(app, bad, now)
    await verify_totp(app, LOGIN, code_at(secret, now), IP, now=now)
    await refused(app, bad, now + timedelta(seconds=30))
    await refused(app, bad, now + timedelta(seconds=30))
    later = now + timedelta(seconds=30)
    assert (await verify_totp(app, LOGIN, code_at(secret, later), IP, now=later)).login == LOGIN


async def test_verify_without_totp_or_disabled_account(app: App) -> None:
    await add_account(app)
    await refused(app, "123456", T0)
    secret = await begin_totp_enrolment(app, LOGIN)
    await refused(app, code_at(secret[0], T0), T0)  # enrolled but not confirmed
    async with app.db.write() as conn:
        await conn.execute(update(accounts).values(disabled=True))
    await confirm_totp(app, LOGIN, code_at(secret[0], T0), now=T0)
    later = T0 + timedelta(seconds=60)
    await refused(app, code_at(secret[0], later), later)
    assert (await audit_rows(app, "auth.totp"))[-1].result == "denied"


async def test_disable_forgets_the_secret(app: App) -> None:
    secret = await enrolled(app)
    await disable_totp(app, LOGIN, actor="admin@cabinet.test")
    row = await account_row(app)
    assert not row.totp_enabled and row.totp_sealed is None
    later = T0 + timedelta(minutes=1)
    await refused(app, code_at(secret, later), later)
    [record] = await audit_rows(app, "totp.disable")
    assert record.actor == "admin@cabinet.test" and record.target == LOGIN
    # A new enrolment starts afresh.
    new_secret, _ = await begin_totp_enrolment(app, LOGIN)
    assert new_secret != secret


async def test_sealed_secret_is_bound_to_its_account(app: App) -> None:
    await enrolled(app)
    await add_account(app, "other@cabinet.test")
    sealed = (await account_row(app)).totp_sealed
    async with app.db.write() as conn:
        await conn.execute(
            update(accounts)
            .where(accounts.c.login == "other@cabinet.test")
            .values(totp_sealed=sealed, totp_enabled=True)
        )
    with pytest.raises(IntegrityError):
        await verify_totp(app, "other@cabinet.test", "123456", IP, now=T0)


async def test_audit_never_holds_codes_or_secrets(app: App) -> None:
    secret = await enrolled(app)
    now = T0 + timedelta(minutes=5)
    code = code_at(secret, now)
    await verify_totp(app, LOGIN, code, IP, now=now)
    text = await audit_text(app)
    assert secret not in text
    for record in await audit_rows(app):
        assert code not in record.details
    actions = [r.action for r in await audit_rows(app)]
    assert actions == ["totp.enrol", "totp.enable", "auth.totp"]


async def test_the_same_code_sent_twice_at_once_is_accepted_once(app: App) -> None:
    secret = await enrolled(app)
    now = T0 + timedelta(minutes=5)
    code = code_at(secret, now)
    results = await asyncio.gather(
        verify_totp(app, LOGIN, code, IP, now=now),
        verify_totp(app, LOGIN, code, "192.0.2.1", now=now),
        return_exceptions=True,
    )
    assert sorted(type(r).__name__ for r in results) == ["AccessDenied", "Account"]
