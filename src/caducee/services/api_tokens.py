"""API tokens for practice software (LPS): ``cdc_`` + 256 random bits, shown once; stored only
as HMAC-SHA256 under a server key (sealed by the master key), so a database dump gives no usable
token and the lookup by hash leaks nothing about the secret. Scopes: ``lecture`` (list, fetch),
``marquage`` (flags, move), ``envoi`` (send). Each use re-checks the account's access to the
mailbox (``services.mailboxes.open_mailbox``): a revoked delegation ends the token's access."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, select, update

from caducee.app import App
from caducee.domain.model import Account
from caducee.errors import AccessDenied, InvalidInput, NotFound
from caducee.services import mailboxes
from caducee.services.audit import AuditEvent, append
from caducee.services.scope_keys import scope_key
from caducee.store import directory_repo
from caducee.store.tables import api_tokens
from caducee.store.times import aware

PREFIX = "cdc_"
SCOPES = ("lecture", "marquage", "envoi", "patients")
KEY_SCOPE = "api-tokens"
MAX_LABEL = 100
MAX_MAILBOXES = 50


@dataclass(frozen=True)
class ApiToken:
    id: int
    account_id: int
    label: str
    scopes: tuple[str, ...]
    mailbox_ids: tuple[int, ...]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None

    def active(self, now: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


def _row(row: object) -> ApiToken:
    def ids(text: str) -> tuple[int, ...]:
        return tuple(int(x) for x in text.split(",") if x)

    return ApiToken(
        id=row.id,  # type: ignore[attr-defined]
        account_id=row.account_id,  # type: ignore[attr-defined]
        label=row.label,  # type: ignore[attr-defined]
        scopes=tuple(s for s in row.scopes.split(",") if s),  # type: ignore[attr-defined]
        mailbox_ids=ids(row.mailbox_ids),  # type: ignore[attr-defined]
        created_at=aware(row.created_at),  # type: ignore[attr-defined]
        expires_at=aware(row.expires_at),  # type: ignore[attr-defined]
        revoked_at=aware(row.revoked_at),  # type: ignore[attr-defined]
        last_used_at=aware(row.last_used_at),  # type: ignore[attr-defined]
    )


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
            "Droits du jeton : lecture, marquage, envoi et/ou patients.",
            "Token scopes: lecture, marquage, envoi and/or patients.",
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
        result = await conn.execute(
            insert(api_tokens).values(
                account_id=account.id,
                label=label,
                token_hash=digest,
                scopes=",".join(chosen),
                mailbox_ids=",".join(str(i) for i in sorted(set(ids))),
                created_at=now,
                expires_at=now + timedelta(days=expires_days) if expires_days else None,
            )
        )
        token_id = int(result.inserted_primary_key[0])  # type: ignore[index]
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
        row = (await conn.execute(select(api_tokens).where(api_tokens.c.id == token_id))).one()
    return token, _row(row)


async def tokens_of(app: App, login: str) -> list[ApiToken]:
    async with app.db.read() as conn:
        account = await directory_repo.account_by_login(conn, login)
        if account is None:
            return []
        rows = await conn.execute(
            select(api_tokens)
            .where(api_tokens.c.account_id == account.id)
            .order_by(api_tokens.c.id)
        )
        return [_row(r) for r in rows]


async def revoke_token(app: App, login: str, token_id: int, *, actor: str, source: str) -> None:
    now = datetime.now(UTC)
    async with app.db.write() as conn:
        account = await directory_repo.account_by_login(conn, login)
        result = await conn.execute(
            update(api_tokens)
            .where(
                api_tokens.c.id == token_id,
                api_tokens.c.account_id == (account.id if account else -1),
                api_tokens.c.revoked_at.is_(None),
            )
            .values(revoked_at=now)
        )
        if not result.rowcount:
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
        row = (
            await conn.execute(select(api_tokens).where(api_tokens.c.token_hash == digest))
        ).first()
        found = _row(row) if row is not None else None
        account = await directory_repo.account_by_id(conn, found.account_id) if found else None
    if found is None or account is None or account.disabled or not found.active(now):
        raise invalid_token()
    if found.last_used_at is None or now - found.last_used_at > timedelta(minutes=1):
        async with app.db.write() as conn:
            await conn.execute(
                update(api_tokens).where(api_tokens.c.id == found.id).values(last_used_at=now)
            )
    return found, account
