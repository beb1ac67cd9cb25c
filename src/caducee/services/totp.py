"""TOTP second factor (RFC 6238: HMAC-SHA1, 30-second steps, 6 digits, ±1 step of drift).

The secret is sealed with the keyring (system scope, record ``account:<id>``, field ``totp``)
in ``accounts.totp_sealed``; it is never stored in clear. Enrolment stores a new secret without
enabling it; the first right code enables it. Each accepted code records its time step in
``accounts.totp_last_step`` and a code from that step or an earlier one is refused (RFC 6238
§5.2: a code is used once), across nodes, by a conditional UPDATE.
"""

from __future__ import annotations

import hmac
from datetime import datetime

import pyotp

from caducee.app import App
from caducee.domain.model import Account
from caducee.errors import AccessDenied, InvalidInput
from caducee.services import audit, lockout
from caducee.services.app_passwords import account_not_found
from caducee.services.audit import AuditEvent
from caducee.services.lockout import Verdict, normalize_login, normalize_source, utcnow
from caducee.store import auth_repo
from caducee.store.connection import AsyncConnection
from caducee.store.keyring import SYSTEM_SCOPE

ISSUER = "Caducée"
DIGITS = 6
INTERVAL = 30
WINDOW = 1  # steps accepted before and after the current one
SEAL_FIELD = "totp"


def seal_record(account_id: int) -> str:
    return f"account:{account_id}"


def time_step(now: datetime) -> int:
    return int(now.timestamp()) // INTERVAL


def normalize_code(code: str) -> str:
    return "".join(code.split())


def matching_steps(secret: str, code: str, now: datetime) -> list[int]:
    """The time steps within the window whose code equals ``code`` (constant-time compares)."""
    code = normalize_code(code)
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=INTERVAL)
    current = time_step(now)
    given = code.encode("utf-8")
    matched = []
    for step in range(current - WINDOW, current + WINDOW + 1):
        expected = totp.generate_otp(step).encode("ascii")
        if hmac.compare_digest(expected, given):
            matched.append(step)
    return matched


def wrong_code() -> AccessDenied:
    return AccessDenied(
        "Code de vérification incorrect. Saisissez le code à 6 chiffres affiché en ce moment "
        "par votre application d'authentification.",
        "Wrong verification code. Enter the 6-digit code your authenticator app shows now.",
    )


async def begin_totp_enrolment(
    app: App, login: str, *, actor: str | None = None, source: str = ""
) -> tuple[str, str]:
    """Create a TOTP secret for ``login`` (not enabled yet); return it and its otpauth:// URI.

    The user adds it to an authenticator app (QR code of the URI, or the secret typed in), then
    :func:`confirm_totp` enables it. Refused while TOTP is enabled: disable it first.
    """
    login = normalize_login(login)
    secret = pyotp.random_base32()  # 32 base32 symbols: 160 bits, RFC 4226's recommendation
    async with app.db.write() as conn:
        creds = await auth_repo.account_credentials(conn, login)
        if creds is None:
            raise account_not_found(login)
        account = creds.account
        if account.totp_enabled:
            raise InvalidInput(
                "La validation en deux étapes (TOTP) est déjà activée pour ce compte. "
                "Désactivez-la d'abord pour enregistrer un nouvel appareil.",
                "Two-step verification (TOTP) is already enabled for this account. "
                "Disable it first to register a new device.",
            )
        sealed = await app.keyring.seal(
            conn, SYSTEM_SCOPE, seal_record(account.id), SEAL_FIELD, secret.encode("ascii")
        )
        await auth_repo.set_totp(conn, account.id, sealed, enabled=False, last_step=None)
        await audit.append(
            conn,
            AuditEvent(
                actor=actor or login,
                action="totp.enrol",
                target=login,
                source=normalize_source(source),
                result="ok",
            ),
        )
    uri = pyotp.TOTP(secret, digits=DIGITS, interval=INTERVAL).provisioning_uri(
        name=login, issuer_name=ISSUER
    )
    return secret, uri


async def confirm_totp(
    app: App,
    login: str,
    code: str,
    *,
    actor: str | None = None,
    source: str = "",
    now: datetime | None = None,
) -> None:
    """Enable TOTP for ``login`` if ``code`` is right for the secret being enrolled."""
    login = normalize_login(login)
    now = now or utcnow()
    async with app.db.write() as conn:
        creds = await auth_repo.account_credentials(conn, login)
        if creds is None:
            raise account_not_found(login)
        account = creds.account
        if account.totp_enabled:
            raise InvalidInput(
                "La validation en deux étapes (TOTP) est déjà activée pour ce compte.",
                "Two-step verification (TOTP) is already enabled for this account.",
            )
        if creds.totp_sealed is None:
            raise InvalidInput(
                "Aucun enregistrement TOTP en cours pour ce compte : commencez par en créer un.",
                "No TOTP enrolment in progress for this account: start one first.",
            )
        secret = (
            await app.keyring.open(
                conn, SYSTEM_SCOPE, seal_record(account.id), SEAL_FIELD, creds.totp_sealed
            )
        ).decode("ascii")
        steps = matching_steps(secret, code, now)
        if steps:
            await auth_repo.set_totp(
                conn, account.id, creds.totp_sealed, enabled=True, last_step=max(steps)
            )
            await audit.append(
                conn,
                AuditEvent(
                    actor=actor or login,
                    action="totp.enable",
                    target=login,
                    source=normalize_source(source),
                    result="ok",
                ),
            )
    if not steps:
        raise InvalidInput(
            "Code incorrect : la validation en deux étapes n'est pas activée. Vérifiez l'heure "
            "de votre téléphone et saisissez le code affiché en ce moment.",
            "Wrong code: two-step verification is not enabled. Check your phone's clock and "
            "enter the code shown now.",
        )


async def verify_totp(
    app: App, login: str, code: str, source: str, *, now: datetime | None = None
) -> Account:
    """Check the second factor of ``login`` (after its password); return the account.

    One :func:`caducee.services.lockout.attempt`: a wrong or replayed code counts towards the
    lock; a right one resets the counters of the account and the address (the login is
    complete). Raises :class:`AccountLocked` or :class:`AccessDenied`.
    """
    login = normalize_login(login)
    when = now or utcnow()

    async def check(conn: AsyncConnection) -> Verdict:
        creds = await auth_repo.account_credentials(conn, login)
        if creds is None or not creds.account.totp_enabled or creds.totp_sealed is None:
            return Verdict.failed("no_totp")
        account = creds.account
        sealed = creds.totp_sealed
        secret = await app.keyring.open(
            conn, SYSTEM_SCOPE, seal_record(account.id), SEAL_FIELD, sealed
        )
        steps = matching_steps(secret.decode("ascii"), code, when)
        last = creds.totp_last_step
        fresh = [s for s in steps if last is None or s > last]
        if not fresh:
            return Verdict.failed("replay" if steps else "bad_code")
        if account.disabled:
            return Verdict.denied("disabled")
        # A conditional UPDATE: a code is used once, even by two nodes at the same time.
        if not await auth_repo.advance_totp_step(conn, account.id, max(fresh)):
            return Verdict.failed("replay")
        return Verdict.ok(account)

    return await lockout.authenticate(
        app,
        login=login,
        source=source,
        action="auth.totp",
        check=check,
        now=when,
        refusal=wrong_code,
    )


async def disable_totp(app: App, login: str, actor: str, *, source: str = "") -> None:
    """Turn TOTP off for ``login`` and forget its secret (e.g. a lost phone)."""
    login = normalize_login(login)
    async with app.db.write() as conn:
        creds = await auth_repo.account_credentials(conn, login)
        if creds is None:
            raise account_not_found(login)
        await auth_repo.set_totp(conn, creds.account.id, None, enabled=False, last_step=None)
        await audit.append(
            conn,
            AuditEvent(
                actor=actor,
                action="totp.disable",
                target=login,
                source=normalize_source(source),
                result="ok",
                details={"was_enabled": creds.account.totp_enabled},
            ),
        )
