"""Authentication: the account password (web, first factor) and app passwords (mail protocols).

Both entry points follow the same steps:

1. refuse at once if the account or the client address is locked (before looking at the
   secret: a locked account is refused even with the right password);
2. check the secret outside any transaction (argon2 runs in a worker thread, so the event loop
   keeps serving other clients); an unknown login costs the same argon2 verification;
3. in one write transaction: count the failure or reset the counters, store what changed
   (rehashed password, last use of the app password) and append the audit record.

Refusals use one generic message whatever went wrong (unknown login, wrong secret, disabled
account, app password revoked or out of scope), so the answer tells nothing about the account.

The second factor (TOTP) is :func:`caducee.services.totp.verify_totp`. For an account with TOTP
on, a right password does not reset the failure counters: only the complete login does, so
guessing codes between right passwords keeps counting towards the lock.
"""

from __future__ import annotations

import asyncio
import hmac
from datetime import datetime
from typing import Literal

from caducee.app import App
from caducee.domain.model import Account
from caducee.errors import AccessDenied
from caducee.services import audit, lockout, passwords
from caducee.services.app_passwords import MAIL_SCOPES, app_password_digest
from caducee.services.audit import AuditEvent
from caducee.services.lockout import (
    AccountLocked,
    LockoutPolicy,
    Outcome,
    auth_event,
    lock_keys,
    normalize_login,
    normalize_source,
    utcnow,
)
from caducee.store import auth_repo

MailService = Literal["imap", "pop3", "smtp"]

_DUMMY_PASSWORD = "caducee-dummy-password-for-unknown-logins"  # noqa: S105 - not a secret
_dummy_hash: str | None = None


def wrong_credentials() -> AccessDenied:
    """The one refusal every failed authentication gets."""
    return AccessDenied("Identifiant ou mot de passe incorrect.", "Wrong login or password.")


async def _dummy_hash_value() -> str:
    """An argon2 hash with today's parameters, to spend the same time on unknown logins."""
    global _dummy_hash
    if _dummy_hash is None:
        _dummy_hash = await asyncio.to_thread(passwords.hash_password, _DUMMY_PASSWORD)
    return _dummy_hash


async def verify_password_login(
    app: App,
    login: str,
    password: str,
    source: str,
    *,
    service: str = "web",
    now: datetime | None = None,
) -> Account:
    """Check the account password (interactive first factor); return the account.

    Raises :class:`AccountLocked` while the account or the address is locked, else
    :class:`AccessDenied` with the generic message on any failure. The caller asks for the
    TOTP code next when ``account.totp_enabled``.
    """
    login = normalize_login(login)
    source = normalize_source(source)
    now = now or utcnow()
    keys = lock_keys(login, source)
    policy = LockoutPolicy.from_settings(app.settings)

    def event(result: Outcome, reason: str = "") -> AuditEvent:
        return auth_event(login, "auth.password", source, result, reason, service=service)

    async with app.db.read() as conn:
        until = await lockout.locked_until(conn, keys, now)
        creds = None if until else await auth_repo.account_credentials(conn, login)
    if until is not None:
        await audit.record(app.db, event(Outcome.DENIED, "locked"))
        raise AccountLocked(until, now)

    stored = creds.password_hash if creds is not None else await _dummy_hash_value()
    right = len(password) <= passwords.MAX_LENGTH and await asyncio.to_thread(
        passwords.verify_password, stored, password
    )
    new_hash: str | None = None
    if creds is None or not right:
        outcome, reason = Outcome.FAILED, "unknown_login" if creds is None else "bad_password"
    elif creds.account.disabled:
        outcome, reason = Outcome.DENIED, "disabled"
    else:
        outcome, reason = Outcome.OK, ""
        if passwords.needs_rehash(creds.password_hash):
            new_hash = await asyncio.to_thread(passwords.hash_password, password)

    async with app.db.write() as conn:
        if outcome is Outcome.OK:
            # A burst of parallel guesses may have locked the key since the first check.
            until = await lockout.locked_until(conn, keys, now)
            if until is not None:
                outcome, reason = Outcome.DENIED, "locked"
        if outcome is Outcome.OK:
            assert creds is not None
            if new_hash is not None:
                await auth_repo.set_password_hash(conn, creds.account.id, new_hash)
            if not creds.account.totp_enabled:
                await lockout.reset(conn, keys)
            await audit.append(conn, event(outcome))
        elif outcome is Outcome.FAILED:
            await lockout.record_failure(conn, policy, keys, now)
            await audit.append(conn, event(outcome, reason))
        else:
            await audit.append(conn, event(outcome, reason))

    if outcome is Outcome.OK:
        assert creds is not None
        return creds.account
    if until is not None:
        raise AccountLocked(until, now)
    raise wrong_credentials()


async def authenticate_mail(
    app: App,
    login: str,
    password: str,
    service: MailService,
    source: str,
    *,
    now: datetime | None = None,
) -> Account:
    """Authenticate a mail client (IMAP, POP3, SMTP) with an app password; return the account.

    Only app passwords are accepted here, never the account password. The SHA-256 of what was
    typed is compared in constant time with every app password of the account (not with a SQL
    equality). A revoked app password, or one outside its scopes, is refused without counting
    as a guess (a stale client retrying must not lock its owner out); a wrong one counts.
    """
    if service not in MAIL_SCOPES:
        raise ValueError(f"unknown mail service {service!r}")
    login = normalize_login(login)
    source = normalize_source(source)
    now = now or utcnow()
    keys = lock_keys(login, source)
    policy = LockoutPolicy.from_settings(app.settings)

    def event(result: Outcome, reason: str = "", app_password_id: int | None = None) -> AuditEvent:
        return auth_event(
            login,
            "auth.mail",
            source,
            result,
            reason,
            service=service,
            app_password=app_password_id,
        )

    async with app.db.read() as conn:
        until = await lockout.locked_until(conn, keys, now)
        creds = None if until else await auth_repo.account_credentials(conn, login)
        # The same query for an unknown login (no row has id 0): the same time.
        rows = await auth_repo.app_passwords_of(conn, creds.account.id if creds else 0)
    if until is not None:
        await audit.record(app.db, event(Outcome.DENIED, "locked"))
        raise AccountLocked(until, now)

    digest = app_password_digest(password)
    match: auth_repo.AppPasswordRow | None = None
    for row in rows:  # no early exit: the time does not depend on which one matches
        if hmac.compare_digest(row.secret_sha256.encode("ascii"), digest.encode("ascii")):
            match = match or row
    match_id = match.id if match is not None else None
    if creds is None or match is None:
        outcome, reason = Outcome.FAILED, "unknown_login" if creds is None else "bad_password"
    elif match.revoked_at is not None:
        outcome, reason = Outcome.DENIED, "revoked"
    elif creds.account.disabled:
        outcome, reason = Outcome.DENIED, "disabled"
    elif service not in match.scopes.split(","):
        outcome, reason = Outcome.DENIED, "scope"
    else:
        outcome, reason = Outcome.OK, ""

    async with app.db.write() as conn:
        if outcome is Outcome.OK:
            until = await lockout.locked_until(conn, keys, now)
            if until is not None:
                outcome, reason = Outcome.DENIED, "locked"
        if outcome is Outcome.OK:
            assert creds is not None and match is not None
            await auth_repo.touch_app_password(conn, match.id, now)
            await lockout.reset(conn, keys)
        elif outcome is Outcome.FAILED:
            await lockout.record_failure(conn, policy, keys, now)
        await audit.append(conn, event(outcome, reason, match_id))

    if outcome is Outcome.OK:
        assert creds is not None
        return creds.account
    if until is not None:
        raise AccountLocked(until, now)
    raise wrong_credentials()
