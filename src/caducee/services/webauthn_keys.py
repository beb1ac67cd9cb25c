"""WebAuthn keys and passkeys of an account: registration, removal, and the outcome of a
login assertion checked by the web door (counted like every second factor, through
:func:`caducee.services.lockout.attempt`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from caducee.app import App
from caducee.domain.model import Account
from caducee.errors import AccessDenied, InvalidInput, NotFound
from caducee.services import audit, lockout
from caducee.services.audit import AuditEvent
from caducee.services.lockout import Verdict, normalize_login, normalize_source, utcnow
from caducee.store import directory_repo as repo
from caducee.store import web_repo
from caducee.store.connection import AsyncConnection
from caducee.store.web_repo import CredentialRow

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


def unrecognised_key() -> AccessDenied:
    return AccessDenied(
        "La clé de sécurité n'a pas été reconnue. Réessayez, ou utilisez un autre moyen.",
        "The security key was not recognised. Try again, or use another method.",
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

    return await lockout.authenticate(
        app,
        login=login,
        source=source,
        action="auth.webauthn",
        check=check,
        now=when,
        refusal=unrecognised_key,
        key=credential.id if credential else None,
    )
