"""API tokens for practice software (LPS): ``cdc_`` + 256 random bits, shown once; stored only
as HMAC-SHA256 under a server key (sealed by the master key), so a database dump gives no usable
token and the lookup by hash leaks nothing about the secret. Scopes: ``lecture`` (list, fetch),
``marquage`` (flags, move), ``envoi`` (send), ``patients`` (the registry), ``lots``
(télétransmission lots). Each use re-checks the account's access to the
mailbox (``services.mailboxes.open_mailbox``): a revoked delegation ends the token's access."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import UTC, datetime, timedelta

from caducee.app import App
from caducee.domain.addresses import normalize_address
from caducee.domain.api_token import ApiToken
from caducee.domain.model import Account, Role
from caducee.errors import AccessDenied, InvalidInput, NotFound
from caducee.services import last_use, mailboxes
from caducee.services.audit import AuditEvent, append
from caducee.services.scope_keys import scope_key
from caducee.store import api_tokens_repo, directory_repo

__all__ = ["ApiToken"]

PREFIX = "cdc_"
SCOPES = ("lecture", "marquage", "envoi", "patients", "lots", "admin")
#: The scope of the practice administrator's API (issue 19): only an administrator's token.
ADMIN_SCOPE = "admin"
KEY_SCOPE = "api-tokens"
MAX_LABEL = 100
MAX_MAILBOXES = 50


async def _hash(app: App, token: str) -> str:
    key = await scope_key(app, KEY_SCOPE)
    return hmac.new(key, token.encode(), hashlib.sha256).hexdigest()


async def create_token(
    app: App,
    login: str,
    label: str,
    mailbox_addresses: list[str],
    scopes: list[str],
    *,
    expires_days: int | None = None,
    actor: str,
    source: str,
) -> tuple[str, ApiToken]:
    """Create a token; the caller shows the returned secret once. Every mailbox must be one the
    account may use (and may send from, for ``envoi``)."""
    label = " ".join(label.split())[:MAX_LABEL]
    if not label:
        raise InvalidInput("Donnez un nom au jeton (le logiciel qui l'utilise).", "Name the token.")
    chosen = sorted(set(scopes))
    if not chosen or any(s not in SCOPES for s in chosen):
        raise InvalidInput(
            "Droits du jeton : lecture, marquage, envoi, patients, lots et/ou admin.",
            "Token scopes: lecture, marquage, envoi, patients, lots and/or admin.",
        )
    if ADMIN_SCOPE in chosen:
        async with app.db.read() as conn:
            holder = await directory_repo.account_by_login(conn, normalize_address(login))
        if holder is None or holder.role is not Role.ADMIN:
            raise AccessDenied(
                "Seul un administrateur du cabinet peut créer un jeton de droit « admin ».",
                "Only an administrator of the practice may create a token with the 'admin' scope.",
            )
    if not mailbox_addresses or len(mailbox_addresses) > MAX_MAILBOXES:
        raise InvalidInput("Choisissez au moins une boîte.", "Choose at least one mailbox.")
    if expires_days is not None and not 1 <= expires_days <= 3650:
        raise InvalidInput("Durée de validité : 1 à 3650 jours.", "Validity: 1 to 3650 days.")
    ids = []
    for address in mailbox_addresses:
        access = await mailboxes.open_mailbox(
            app, login, address, need_send="envoi" in chosen, source=source
        )
        ids.append(access.mailbox.id)
    token = PREFIX + secrets.token_urlsafe(32)
    digest = await _hash(app, token)
    now = datetime.now(UTC)
    async with app.db.write() as conn:
        account = await directory_repo.account_by_login(conn, login)
        assert account is not None
        token_id = await api_tokens_repo.insert_token(
            conn,
            account_id=account.id,
            label=label,
            token_hash=digest,
            scopes=chosen,
            mailbox_ids=sorted(set(ids)),
            now=now,
            expires_at=now + timedelta(days=expires_days) if expires_days else None,
        )
        await append(
            conn,
            AuditEvent(
                actor=actor,
                action="api_token.create",
                target=login,
                source=source,
                details={"token": token_id, "scopes": ",".join(chosen), "mailboxes": len(ids)},
            ),
        )
        created = await api_tokens_repo.by_id(conn, token_id)
    assert created is not None
    return token, created


async def tokens_of(app: App, login: str) -> list[ApiToken]:
    async with app.db.read() as conn:
        account = await directory_repo.account_by_login(conn, login)
        if account is None:
            return []
        return await api_tokens_repo.of_account(conn, account.id)


async def revoke_token(app: App, login: str, token_id: int, *, actor: str, source: str) -> None:
    now = datetime.now(UTC)
    async with app.db.write() as conn:
        account = await directory_repo.account_by_login(conn, login)
        revoked = account is not None and await api_tokens_repo.revoke(
            conn, account.id, token_id, now
        )
        if not revoked:
            raise NotFound("Jeton introuvable ou déjà révoqué.", "Token not found or revoked.")
        await append(
            conn,
            AuditEvent(
                actor=actor,
                action="api_token.revoke",
                target=login,
                source=source,
                details={"token": token_id},
            ),
        )


def invalid_token() -> AccessDenied:
    return AccessDenied(
        "Jeton d'API absent, invalide, expiré ou révoqué.",
        "API token missing, invalid, expired or revoked.",
    )


async def authenticate(app: App, token: str) -> tuple[ApiToken, Account]:
    if not token.startswith(PREFIX) or len(token) > 200:
        raise invalid_token()
    digest = await _hash(app, token)
    now = datetime.now(UTC)
    async with app.db.read() as conn:
        found = await api_tokens_repo.by_hash(conn, digest)
        account = await directory_repo.account_by_id(conn, found.account_id) if found else None
    if found is None or account is None or account.disabled or not found.active(now):
        raise invalid_token()
    await last_use.note(app, account_id=account.id, now=now)
    if found.last_used_at is None or now - found.last_used_at > timedelta(minutes=1):
        async with app.db.write() as conn:
            await api_tokens_repo.touch(conn, found.id, now)
    return found, account
