"""Authentication: the account password (web, first factor) and app passwords (mail protocols:
an account's own, or a mailbox's, whose address is then a login of its own).

Both go through :func:`caducee.services.lockout.attempt`, the one path of every
authentication attempt: in one write transaction it checks the lock of the account and the
client address (a locked account is refused even with the right password, whatever the
secret), checks the secret, counts the failure or resets the counters, stores what a success
changes (rehashed password, last use of the app password) and appends the audit record.

The account password is an argon2 hash: it is verified before that transaction, in a worker
thread (the event loop keeps serving other clients and the database's writer is not held),
after a first look at the lock spares the work while one runs. An unknown login costs the same
argon2 verification. App passwords are SHA-256 digests, compared inside the transaction.

Refusals use one generic message whatever went wrong (unknown login, wrong secret, disabled
account, app password revoked or out of scope), so the answer tells nothing about the account.

The second factor (TOTP) is :func:`caducee.services.totp.verify_totp`. For an account with TOTP
on, a right password does not reset the failure counters: only the complete login does, so
guessing codes between right passwords keeps counting towards the lock.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Literal

from caducee.app import App
from caducee.domain.model import Account, MailPrincipal
from caducee.errors import AccessDenied
from caducee.services import last_use, lockout, passwords
from caducee.services.app_passwords import MAIL_SCOPES, app_password_digest
from caducee.services.lockout import Verdict, normalize_login, normalize_source, utcnow
from caducee.store import auth_repo, directory_repo
from caducee.store.connection import AsyncConnection

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
    await lockout.refuse_if_locked(app.db, login, source, "auth.password", now, service=service)
    async with app.db.read() as conn:
        creds = await auth_repo.account_credentials(conn, login)
    stored = creds.password_hash if creds is not None else await _dummy_hash_value()
    right = len(password) <= passwords.MAX_LENGTH and await asyncio.to_thread(
        passwords.verify_password, stored, password
    )
    new_hash: str | None = None
    if creds is not None and right and passwords.needs_rehash(creds.password_hash):
        new_hash = await asyncio.to_thread(passwords.hash_password, password)

    async def check(conn: AsyncConnection) -> Verdict:
        if creds is None:
            return Verdict.failed("unknown_login")
        if not right:
            return Verdict.failed("bad_password")
        if creds.account.disabled:
            return Verdict.denied("disabled")
        if new_hash is not None:
            await auth_repo.set_password_hash(conn, creds.account.id, new_hash)
        return Verdict.ok(creds.account, reset=not creds.account.totp_enabled)

    return await lockout.authenticate(
        app,
        login=login,
        source=source,
        action="auth.password",
        check=check,
        now=now,
        service=service,
        refusal=wrong_credentials,
    )


async def authenticate_mail(
    app: App,
    login: str,
    password: str,
    service: MailService,
    source: str,
    *,
    now: datetime | None = None,
) -> MailPrincipal:
    """Authenticate a mail client (IMAP, POP3, SMTP) with an app password; return who it is.

    Only app passwords are accepted here, never the account password. ``login`` is an
    account's login (its own app passwords only), or the address of a mailbox that is no
    account's login — a TLT mailbox's billing software — checked against that mailbox's app
    passwords only; the principal returned then has the mailbox's address as its login. The
    SHA-256 of what was typed is compared in constant time with every app password of that
    holder (not with a SQL equality); both kinds of login run the same queries. A revoked app
    password, one outside its scopes, a disabled account, a disabled mailbox or a mailbox
    whose owner's account is disabled are refused without counting as a guess (a stale client
    retrying must not lock anyone out); a wrong one counts, against ``login`` and the address.
    """
    if service not in MAIL_SCOPES:
        raise ValueError(f"unknown mail service {service!r}")
    login = normalize_login(login)
    now = now or utcnow()
    digest = app_password_digest(password)
    found: list[MailPrincipal] = []

    async def check(conn: AsyncConnection) -> Verdict:
        creds = await auth_repo.account_credentials(conn, login)
        # Looked up for every login (an account's personal mailbox has its address), so
        # account, mailbox and unknown logins run the same queries.
        box = await directory_repo.mailbox_by_address(conn, login)
        owner: Account | None
        if creds is not None:
            owner, box = creds.account, None
            holder = auth_repo.Holder(owner.id)
        elif box is not None:
            owner = await directory_repo.account_by_id(conn, box.owner_account_id)
            holder = auth_repo.Holder(box.owner_account_id, box.id)
        else:
            # The same query for an unknown login (no row has id 0): the same time.
            owner, holder = None, auth_repo.Holder(0)
        rows = await auth_repo.app_passwords_of(conn, holder)
        match = lockout.matching_digest(rows, digest, lambda row: row.secret_sha256)
        if owner is None:
            return Verdict.failed("unknown_login")
        if match is None:
            return Verdict.failed("bad_password")
        if match.revoked_at is not None:
            return Verdict.denied("revoked", app_password=match.id)
        if owner.disabled:
            return Verdict.denied("disabled", app_password=match.id)
        if box is not None and box.disabled:
            return Verdict.denied("mailbox_disabled", app_password=match.id)
        if service not in match.scopes.split(","):
            return Verdict.denied("scope", app_password=match.id)
        await auth_repo.touch_app_password(conn, match.id, now)
        await last_use.note(
            app,
            account_id=owner.id if box is None else None,
            mailbox_id=box.id if box is not None else None,
            conn=conn,
        )
        found.append(MailPrincipal(login, owner, box.id if box is not None else None))
        if box is not None:
            return Verdict.ok(owner, app_password=match.id, mailbox=box.address)
        return Verdict.ok(owner, app_password=match.id)

    await lockout.authenticate(
        app,
        login=login,
        source=source,
        action="auth.mail",
        check=check,
        now=now,
        service=service,
        refusal=wrong_credentials,
    )
    return found[-1]


async def session_allowed(app: App, account_id: int | None, mailbox_ids: set[int]) -> bool:
    """Whether an open mail session (IMAP, POP3) may go on: its account enabled, each mailbox
    it has open still there and enabled. Asked when a cut names it (``services.events``)."""
    async with app.db.read() as conn:
        if account_id is not None:
            account = await directory_repo.account_by_id(conn, account_id)
            if account is None or account.disabled:
                return False
        for mailbox_id in mailbox_ids:
            box = await directory_repo.mailbox_by_id(conn, mailbox_id)
            if box is None or box.disabled:
                return False
    return True
