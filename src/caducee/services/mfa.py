"""The web's second factors: which an account has, the practice's requirement, a TOTP
enrolment in progress, and recovery codes.

Recovery codes: 10 random codes of 16 symbols (≈ 79 bits each), shown once, stored as SHA-256
bound to the account, each usable once. Being that random, a fast hash is enough. A code is
checked through :func:`caducee.services.lockout.attempt`, like every second factor.

Everything audited here is content-free: never a code or a key.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from caducee.app import App
from caducee.domain.model import Account
from caducee.errors import AccessDenied
from caducee.services import audit, lockout
from caducee.services.audit import AuditEvent
from caducee.services.lockout import Verdict, normalize_login, normalize_source, utcnow
from caducee.services.totp import SEAL_FIELD, seal_record
from caducee.store import auth_repo, web_repo
from caducee.store import directory_repo as repo
from caducee.store.connection import AsyncConnection
from caducee.store.keyring import SYSTEM_SCOPE


@dataclass(frozen=True)
class SecondFactors:
    totp: bool
    keys: int
    recovery_codes_left: int

    @property
    def any(self) -> bool:
        return self.totp or self.keys > 0


async def second_factors(app: App, account_id: int) -> SecondFactors:
    async with app.db.read() as conn:
        account = await repo.account_by_id(conn, account_id)
        keys = await web_repo.count_credentials(conn, account_id)
        codes = await web_repo.recovery_codes_of(conn, account_id)
    return SecondFactors(
        totp=bool(account and account.totp_enabled),
        keys=keys,
        recovery_codes_left=sum(1 for c in codes if c.used_at is None),
    )


async def second_factor_required(app: App, practice_id: int) -> bool:
    async with app.db.read() as conn:
        return await web_repo.second_factor_required(conn, practice_id)


async def set_second_factor_required(
    app: App,
    practice_id: int,
    required: bool,
    *,
    actor: str,
    source: str,
    now: datetime | None = None,
) -> None:
    now = now or utcnow()
    async with app.db.write() as conn:
        await web_repo.set_second_factor_required(conn, practice_id, required, now)
        await audit.append(
            conn,
            AuditEvent(
                actor=actor,
                action="practice.require_second_factor",
                target=f"practice:{practice_id}",
                source=normalize_source(source),
                details={"required": required},
            ),
        )


async def pending_totp_secret(app: App, account_id: int) -> str | None:
    """The secret of a TOTP enrolment in progress (not enabled yet), to show its QR code again.

    None when no enrolment is in progress or TOTP is already on (an enabled secret is never
    shown again).
    """
    async with app.db.read() as conn:
        account = await repo.account_by_id(conn, account_id)
        if account is None or account.totp_enabled:
            return None
        creds = await auth_repo.account_credentials(conn, account.login)
        if creds is None or creds.totp_sealed is None:
            return None
        secret = await app.keyring.open(
            conn, SYSTEM_SCOPE, seal_record(account.id), SEAL_FIELD, creds.totp_sealed
        )
    return secret.decode("ascii")


# --- recovery codes --------------------------------------------------------------------------

RECOVERY_COUNT = 10
RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # 31 symbols, no look-alikes
RECOVERY_GROUPS = 4
RECOVERY_GROUP_LENGTH = 4


def generate_recovery_code() -> str:
    """``xxxx-xxxx-xxxx-xxxx``: 16 symbols of 31, ≈ 79 bits."""
    return "-".join(
        "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(RECOVERY_GROUP_LENGTH))
        for _ in range(RECOVERY_GROUPS)
    )


def normalize_recovery_code(code: str) -> str:
    return "".join(c for c in code.lower() if c.isalnum())


def recovery_digest(account_id: int, code: str) -> str:
    """SHA-256 bound to the account: a code stored for one account is worthless for another."""
    data = f"caducee-recovery|{account_id}|{normalize_recovery_code(code)}"
    return hashlib.sha256(data.encode("utf-8")).hexdigest()


async def generate_recovery_codes(
    app: App, account: Account, *, actor: str, source: str, now: datetime | None = None
) -> list[str]:
    """Replace the account's recovery codes with 10 new ones; return them (shown once)."""
    now = now or utcnow()
    codes = [generate_recovery_code() for _ in range(RECOVERY_COUNT)]
    async with app.db.write() as conn:
        await web_repo.replace_recovery_codes(
            conn, account.id, [recovery_digest(account.id, c) for c in codes], now
        )
        await audit.append(
            conn,
            AuditEvent(
                actor=actor,
                action="recovery_codes.generate",
                target=account.login,
                source=normalize_source(source),
                details={"count": RECOVERY_COUNT},
            ),
        )
    return codes


def wrong_recovery_code() -> AccessDenied:
    return AccessDenied(
        "Code de secours incorrect ou déjà utilisé.", "Wrong or already used recovery code."
    )


async def use_recovery_code(
    app: App, login: str, code: str, source: str, *, now: datetime | None = None
) -> Account:
    """Check a recovery code as the second factor (it is then spent); return the account.

    One :func:`caducee.services.lockout.attempt`: the code is looked up, compared and spent in
    the transaction that checks the lock and counts the failure, like a TOTP code; success
    resets the counters.
    """
    login = normalize_login(login)
    when = now or utcnow()

    async def check(conn: AsyncConnection) -> Verdict:
        account = await repo.account_by_login(conn, login)
        account_id = account.id if account else 0  # the same work for an unknown login
        rows = await web_repo.recovery_codes_of(conn, account_id)
        unused = [row for row in rows if row.used_at is None]
        match = lockout.matching_digest(
            unused, recovery_digest(account_id, code), lambda row: row.code_sha256
        )
        if account is None or match is None:
            return Verdict.failed("bad_code")
        if account.disabled:
            return Verdict.denied("disabled")
        if not await web_repo.use_recovery_code(conn, match.id, when):
            return Verdict.failed("replay")
        return Verdict.ok(account, left=len(unused) - 1)

    return await lockout.authenticate(
        app,
        login=login,
        source=source,
        action="auth.recovery",
        check=check,
        now=when,
        refusal=wrong_recovery_code,
    )


async def reset_second_factors(app: App, account: Account, *, actor: str, source: str) -> None:
    """Remove every second factor of an account (lost phone and keys): TOTP, keys, codes."""
    async with app.db.write() as conn:
        await auth_repo.set_totp(conn, account.id, None, enabled=False, last_step=None)
        for row in await web_repo.credentials_of(conn, account.id):
            await web_repo.delete_credential(conn, account.id, row.id)
        await web_repo.delete_recovery_codes(conn, account.id)
        await audit.append(
            conn,
            AuditEvent(
                actor=actor,
                action="second_factor.reset",
                target=account.login,
                source=normalize_source(source),
            ),
        )
