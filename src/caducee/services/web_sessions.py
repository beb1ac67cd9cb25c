"""Web sessions and the web's second factors beyond TOTP: recovery codes and WebAuthn keys.

Sessions live in the database (every node sees them, "log out everywhere" works across nodes).
The cookie carries a random 256-bit token; only its SHA-256 is stored, so a copy of the
database opens no session. A session has a **stage**:

* ``mfa``   — the password was right, the second factor is awaited (short lifetime);
* ``enrol`` — the password was right, the practice requires a second factor and the account has
  none yet: only the enrolment pages are open;
* ``full``  — logged in.

Every change of stage creates a new session (new token, new CSRF token) and deletes the old one:
the id is rotated at login and at each privilege change. A session ends at its absolute expiry
(counted from the login) or after ``idle`` without a request, whichever comes first.

Recovery codes: 10 random codes of 16 symbols (≈ 79 bits each), shown once, stored as SHA-256
bound to the account, each usable once. Being that random, a fast hash is enough.

Everything audited here is content-free: never a token, a code or a key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from caducee.app import App
from caducee.domain.model import Account, Practice
from caducee.errors import AccessDenied, InvalidInput, NotFound
from caducee.services import audit, lockout
from caducee.services.audit import AuditEvent, AuditRecord
from caducee.services.lockout import Verdict, normalize_login, normalize_source, utcnow
from caducee.services.totp import SEAL_FIELD, seal_record
from caducee.store import auth_repo, web_repo
from caducee.store import directory_repo as repo
from caducee.store.keyring import SYSTEM_SCOPE
from caducee.store.web_repo import AuditFilter, CredentialRow

TOKEN_BYTES = 32  # 256 bits
#: ``last_seen_at`` is written at most this often (a write per request would be wasteful);
#: the idle timeout is therefore exact to within this interval.
TOUCH_INTERVAL = timedelta(seconds=30)
MAX_USER_AGENT = 200


class Stage(StrEnum):
    MFA = "mfa"
    ENROL = "enrol"
    FULL = "full"


@dataclass(frozen=True)
class SessionPolicy:
    idle: timedelta = timedelta(minutes=30)
    absolute: timedelta = timedelta(hours=12)
    #: How long a half-open session (``mfa``/``enrol``) lasts: enough to find one's phone.
    pending: timedelta = timedelta(minutes=10)


@dataclass(frozen=True)
class WebSession:
    id: int
    account_id: int
    stage: Stage
    csrf_token: str
    source: str
    user_agent: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    pending: dict[str, Any] | None


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _web_session(row: web_repo.SessionRow) -> WebSession:
    pending: dict[str, Any] | None = None
    if row.pending:
        loaded = json.loads(row.pending)
        pending = loaded if isinstance(loaded, dict) else None
    return WebSession(
        id=row.id,
        account_id=row.account_id,
        stage=Stage(row.stage),
        csrf_token=row.csrf_token,
        source=row.source,
        user_agent=row.user_agent,
        created_at=row.created_at,
        last_seen_at=row.last_seen_at,
        expires_at=row.expires_at,
        pending=pending,
    )


async def create_session(
    app: App,
    account: Account,
    stage: Stage,
    *,
    policy: SessionPolicy,
    source: str,
    user_agent: str = "",
    now: datetime | None = None,
    method: str = "",
    replaces: int | None = None,
) -> tuple[str, WebSession]:
    """Open a session (deleting ``replaces``, the session it rotates); return its token.

    A ``full`` session is audited as ``web.login`` with the ``method`` that completed it.
    """
    now = now or utcnow()
    token = secrets.token_urlsafe(TOKEN_BYTES)
    lifetime = policy.absolute if stage is Stage.FULL else policy.pending
    source = normalize_source(source)
    async with app.db.write() as conn:
        if replaces is not None:
            await web_repo.delete_session(conn, replaces)
        session_id = await web_repo.insert_session(
            conn,
            token_sha256=token_digest(token),
            account_id=account.id,
            stage=stage.value,
            csrf_token=secrets.token_urlsafe(TOKEN_BYTES),
            source=source,
            user_agent=user_agent[:MAX_USER_AGENT],
            created_at=now,
            expires_at=now + lifetime,
        )
        if stage is Stage.FULL:
            await audit.append(
                conn,
                AuditEvent(
                    actor=account.login,
                    action="web.login",
                    target=account.login,
                    source=source,
                    details={"method": method} if method else {},
                ),
            )
        row = await web_repo.session_by_id(conn, session_id)
    assert row is not None
    return token, _web_session(row)


async def load_session(
    app: App, token: str, *, policy: SessionPolicy, now: datetime | None = None
) -> WebSession | None:
    """The live session whose token is ``token``, or None (unknown, expired or idle).

    An expired or idle session is deleted when met. ``last_seen_at`` is refreshed (at most
    every :data:`TOUCH_INTERVAL`).
    """
    if not token or len(token) > 100:
        return None
    now = now or utcnow()
    digest = token_digest(token)
    async with app.db.read() as conn:
        row = await web_repo.session_by_token_hash(conn, digest)
    if row is None:
        return None
    if now >= row.expires_at or now - row.last_seen_at >= policy.idle:
        async with app.db.write() as conn:
            await web_repo.delete_session(conn, row.id)
        return None
    if now - row.last_seen_at >= TOUCH_INTERVAL:
        async with app.db.write() as conn:
            await web_repo.touch_session(conn, row.id, now)
    return _web_session(row)


async def end_session(
    app: App, session: WebSession, login: str, *, source: str, reason: str = "logout"
) -> None:
    """Log out: delete the session (audited ``web.logout``)."""
    async with app.db.write() as conn:
        await web_repo.delete_session(conn, session.id)
        await audit.append(
            conn,
            AuditEvent(
                actor=login,
                action="web.logout",
                target=login,
                source=normalize_source(source),
                details={"reason": reason},
            ),
        )


async def end_all_sessions(
    app: App,
    account: Account,
    *,
    actor: str,
    source: str,
    reason: str = "logout_all",
    except_id: int | None = None,
) -> int:
    """Delete every session of ``account`` (but ``except_id``); audited ``web.logout_all``."""
    async with app.db.write() as conn:
        count = await web_repo.delete_sessions_of(conn, account.id, except_id=except_id)
        await audit.append(
            conn,
            AuditEvent(
                actor=actor,
                action="web.logout_all",
                target=account.login,
                source=normalize_source(source),
                details={"sessions": count, "reason": reason},
            ),
        )
    return count


async def list_sessions(
    app: App, account_id: int, *, policy: SessionPolicy, now: datetime
) -> list[WebSession]:
    """The live sessions of an account, most recently used first."""
    async with app.db.read() as conn:
        rows = await web_repo.sessions_of(conn, account_id)
    return [
        _web_session(row)
        for row in rows
        if now < row.expires_at and now - row.last_seen_at < policy.idle
    ]


async def set_pending(app: App, session: WebSession, pending: dict[str, Any] | None) -> None:
    """Keep (or clear) a small JSON state with the session, e.g. a WebAuthn challenge."""
    text = json.dumps(pending, separators=(",", ":")) if pending is not None else None
    async with app.db.write() as conn:
        await web_repo.set_session_pending(conn, session.id, text)


async def purge_sessions(app: App, *, policy: SessionPolicy, now: datetime | None = None) -> int:
    """Delete expired and idle sessions (called now and then; returns how many)."""
    now = now or utcnow()
    async with app.db.write() as conn:
        return await web_repo.delete_stale_sessions(conn, now, now - policy.idle)


# --- account state for the web ---------------------------------------------------------------


async def account_by_id(app: App, account_id: int) -> Account | None:
    async with app.db.read() as conn:
        return await repo.account_by_id(conn, account_id)


async def practice_of(app: App, account: Account) -> Practice:
    async with app.db.read() as conn:
        practice = await repo.get_practice(conn, account.practice_id)
    assert practice is not None
    return practice


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
        digest = recovery_digest(account_id, code).encode("ascii")
        match: web_repo.RecoveryCodeRow | None = None
        for row in rows:  # no early exit
            if hmac.compare_digest(row.code_sha256.encode("ascii"), digest) and row.used_at is None:
                match = match or row
        if account is None or match is None:
            return Verdict.failed("bad_code")
        if account.disabled:
            return Verdict.denied("disabled")
        if not await web_repo.use_recovery_code(conn, match.id, when):
            return Verdict.failed("replay")
        return Verdict.ok(account, left=sum(1 for r in rows if r.used_at is None) - 1)

    verdict = await lockout.attempt(
        app.db,
        app.settings,
        login=login,
        source=source,
        action="auth.recovery",
        check=check,
        now=when,
    )
    if verdict.account is None:
        raise wrong_recovery_code()
    return verdict.account


# --- WebAuthn credentials --------------------------------------------------------------------

MAX_KEYS = 10


def check_key_label(label: str) -> str:
    label = " ".join(label.split())
    if not label or len(label) > 100:
        raise InvalidInput(
            "Donnez un nom à la clé (100 caractères au plus), par exemple « Clé USB bleue ».",
            "Give the key a name (at most 100 characters), for example 'Blue USB key'.",
        )
    return label


async def webauthn_credentials(app: App, account_id: int) -> list[CredentialRow]:
    async with app.db.read() as conn:
        return await web_repo.credentials_of(conn, account_id)


async def webauthn_credential(app: App, credential_id: str) -> CredentialRow | None:
    async with app.db.read() as conn:
        return await web_repo.credential_by_credential_id(conn, credential_id)


async def add_webauthn_credential(
    app: App,
    account: Account,
    *,
    credential_id: str,
    public_key: bytes,
    sign_count: int,
    label: str,
    transports: Sequence[str],
    source: str,
    now: datetime | None = None,
) -> int:
    label = check_key_label(label)
    now = now or utcnow()
    async with app.db.write() as conn:
        if await web_repo.count_credentials(conn, account.id) >= MAX_KEYS:
            raise InvalidInput(
                f"{MAX_KEYS} clés de sécurité au plus par compte : supprimez-en une d'abord.",
                f"At most {MAX_KEYS} security keys per account: remove one first.",
            )
        if await web_repo.credential_by_credential_id(conn, credential_id) is not None:
            raise InvalidInput(
                "Cette clé de sécurité est déjà enregistrée.",
                "This security key is already registered.",
            )
        row_id = await web_repo.insert_credential(
            conn,
            account_id=account.id,
            credential_id=credential_id,
            public_key=public_key,
            sign_count=sign_count,
            label=label,
            transports=[t for t in transports if t.isalnum() or t in ("hybrid",)][:10],
            now=now,
        )
        await audit.append(
            conn,
            AuditEvent(
                actor=account.login,
                action="webauthn.register",
                target=account.login,
                source=normalize_source(source),
                details={"id": row_id, "label": label},
            ),
        )
    return row_id


async def delete_webauthn_credential(
    app: App, account: Account, row_id: int, *, actor: str, source: str
) -> None:
    async with app.db.write() as conn:
        if not await web_repo.delete_credential(conn, account.id, row_id):
            raise NotFound("Clé de sécurité introuvable.", "Security key not found.")
        await audit.append(
            conn,
            AuditEvent(
                actor=actor,
                action="webauthn.delete",
                target=account.login,
                source=normalize_source(source),
                details={"id": row_id},
            ),
        )


async def begin_webauthn_login(app: App, login: str, source: str, now: datetime) -> None:
    """Refuse at once while the account or the address is locked (before any challenge)."""
    await lockout.refuse_if_locked(app.db, login, source, "auth.webauthn", now)


async def finish_webauthn_login(
    app: App,
    login: str,
    source: str,
    *,
    credential: CredentialRow | None,
    new_sign_count: int | None,
    reason: str = "",
    now: datetime | None = None,
) -> Account:
    """Record the outcome of a WebAuthn assertion checked by the web door.

    ``new_sign_count`` None means the assertion failed (``reason`` says why): it counts towards
    the lock. On success the counters are reset and the credential's counter is stored. One
    :func:`caducee.services.lockout.attempt`: a locked account is refused whatever the
    assertion was.
    """
    login = normalize_login(login)
    when = now or utcnow()

    async def check(conn: AsyncConnection) -> Verdict:
        account = await repo.account_by_login(conn, login)
        if (
            new_sign_count is None
            or credential is None
            or account is None
            or credential.account_id != account.id
        ):
            return Verdict.failed(reason or "bad_assertion")
        if account.disabled:
            return Verdict.denied("disabled")
        await web_repo.update_credential_use(conn, credential.id, new_sign_count, when)
        return Verdict.ok(account)

    verdict = await lockout.attempt(
        app.db,
        app.settings,
        login=login,
        source=source,
        action="auth.webauthn",
        check=check,
        now=when,
        key=credential.id if credential else None,
    )
    if verdict.account is None:
        raise AccessDenied(
            "La clé de sécurité n'a pas été reconnue. Réessayez, ou utilisez un autre moyen.",
            "The security key was not recognised. Try again, or use another method.",
        )
    return verdict.account


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


# --- audit viewer ----------------------------------------------------------------------------


def practice_target(practice: Practice) -> str:
    return f"practice:{practice.id}"


async def practice_audit(
    app: App,
    practice: Practice,
    flt: AuditFilter,
    *,
    limit: int | None = 100,
    before_seq: int | None = None,
) -> list[AuditRecord]:
    """Audit records about one practice (its accounts, mailboxes and settings), newest first."""
    async with app.db.read() as conn:
        rows = await web_repo.practice_audit_records(
            conn,
            practice.domains,
            practice_target(practice),
            flt,
            limit=limit,
            before_seq=before_seq,
        )
    return [
        AuditRecord(**{name: getattr(row, name) for name in AuditRecord.__dataclass_fields__})
        for row in rows
    ]


async def audit_export_recorded(
    app: App, actor: str, practice: Practice, count: int, *, source: str
) -> None:
    """Audit that the practice's audit log was exported (how many records, not which)."""
    await audit.record(
        app.db,
        AuditEvent(
            actor=actor,
            action="audit.export",
            target=practice_target(practice),
            source=normalize_source(source),
            details={"records": count, "format": "csv"},
        ),
    )
