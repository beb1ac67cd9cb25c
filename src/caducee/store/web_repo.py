"""SQL of the web door: sessions, recovery codes, WebAuthn credentials, practice web settings,
and the practice-scoped audit queries of the admin console.

Rules (lifetimes, rotation, lockout) live in :mod:`caducee.services.web_sessions`; this module
only reads and writes rows, in the caller's transaction. Datetimes come back timezone-aware.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import String, cast, delete, func, insert, literal, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from caducee.store import tokens
from caducee.store.database import inserted_id
from caducee.store.tables import (
    audit_log,
    mailboxes,
    practice_domains,
    web_practice_settings,
    web_recovery_codes,
    web_sessions,
    webauthn_credentials,
)
from caducee.store.times import aware

# --- sessions --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SessionRow:
    id: int
    account_id: int
    stage: str
    csrf_token: str
    source: str
    user_agent: str
    pending: str | None
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime


def _session(row: Any) -> SessionRow:
    return SessionRow(
        id=row.id,
        account_id=row.account_id,
        stage=row.stage,
        csrf_token=row.csrf_token,
        source=row.source,
        user_agent=row.user_agent,
        pending=row.pending,
        created_at=aware(row.created_at),
        last_seen_at=aware(row.last_seen_at),
        expires_at=aware(row.expires_at),
    )


async def insert_session(
    conn: AsyncConnection,
    *,
    token_sha256: str,
    account_id: int,
    stage: str,
    csrf_token: str,
    source: str,
    user_agent: str,
    created_at: datetime,
    expires_at: datetime,
) -> int:
    result = await conn.execute(
        insert(web_sessions).values(
            token_sha256=token_sha256,
            account_id=account_id,
            stage=stage,
            csrf_token=csrf_token,
            source=source,
            user_agent=user_agent,
            created_at=created_at,
            last_seen_at=created_at,
            expires_at=expires_at,
        )
    )
    return inserted_id(result)


async def session_by_token(conn: AsyncConnection, token: str) -> SessionRow | None:
    """The session a cookie's token was issued for (None: unknown, empty or over-long)."""
    row = await tokens.row_by_token(conn, web_sessions.c.token_sha256, token)
    return _session(row) if row else None


async def session_by_id(conn: AsyncConnection, session_id: int) -> SessionRow | None:
    row = (await conn.execute(select(web_sessions).where(web_sessions.c.id == session_id))).first()
    return _session(row) if row else None


async def sessions_of(conn: AsyncConnection, account_id: int) -> list[SessionRow]:
    rows = await conn.execute(
        select(web_sessions)
        .where(web_sessions.c.account_id == account_id)
        .order_by(web_sessions.c.last_seen_at.desc())
    )
    return [_session(row) for row in rows.all()]


async def touch_session(conn: AsyncConnection, session_id: int, now: datetime) -> None:
    await conn.execute(
        update(web_sessions).where(web_sessions.c.id == session_id).values(last_seen_at=now)
    )


async def set_session_pending(conn: AsyncConnection, session_id: int, pending: str | None) -> None:
    await conn.execute(
        update(web_sessions).where(web_sessions.c.id == session_id).values(pending=pending)
    )


async def delete_session(conn: AsyncConnection, session_id: int) -> bool:
    result = await conn.execute(delete(web_sessions).where(web_sessions.c.id == session_id))
    return bool(result.rowcount)


async def delete_sessions_of(
    conn: AsyncConnection, account_id: int, *, except_id: int | None = None
) -> int:
    query = delete(web_sessions).where(web_sessions.c.account_id == account_id)
    if except_id is not None:
        query = query.where(web_sessions.c.id != except_id)
    result = await conn.execute(query)
    return int(result.rowcount or 0)


async def delete_stale_sessions(conn: AsyncConnection, now: datetime, idle_before: datetime) -> int:
    result = await conn.execute(
        delete(web_sessions).where(
            or_(web_sessions.c.expires_at <= now, web_sessions.c.last_seen_at < idle_before)
        )
    )
    return int(result.rowcount or 0)


# --- recovery codes --------------------------------------------------------------------------


@dataclass(frozen=True)
class RecoveryCodeRow:
    id: int
    code_sha256: str
    used_at: datetime | None


async def replace_recovery_codes(
    conn: AsyncConnection, account_id: int, digests: Sequence[str], now: datetime
) -> None:
    await conn.execute(
        delete(web_recovery_codes).where(web_recovery_codes.c.account_id == account_id)
    )
    if digests:
        await conn.execute(
            insert(web_recovery_codes),
            [{"account_id": account_id, "code_sha256": d, "created_at": now} for d in digests],
        )


async def recovery_codes_of(conn: AsyncConnection, account_id: int) -> list[RecoveryCodeRow]:
    rows = await conn.execute(
        select(web_recovery_codes)
        .where(web_recovery_codes.c.account_id == account_id)
        .order_by(web_recovery_codes.c.id)
    )
    return [RecoveryCodeRow(r.id, r.code_sha256, aware(r.used_at)) for r in rows.all()]


async def use_recovery_code(conn: AsyncConnection, code_id: int, now: datetime) -> bool:
    """Mark a code used; False if another request used it first (conditional UPDATE)."""
    result = await conn.execute(
        update(web_recovery_codes)
        .where(web_recovery_codes.c.id == code_id, web_recovery_codes.c.used_at.is_(None))
        .values(used_at=now)
    )
    return bool(result.rowcount)


async def delete_recovery_codes(conn: AsyncConnection, account_id: int) -> None:
    await conn.execute(
        delete(web_recovery_codes).where(web_recovery_codes.c.account_id == account_id)
    )


# --- WebAuthn credentials --------------------------------------------------------------------


@dataclass(frozen=True)
class CredentialRow:
    id: int
    account_id: int
    credential_id: str  # base64url, no padding
    public_key: bytes
    sign_count: int
    label: str
    transports: tuple[str, ...]
    created_at: datetime
    last_used_at: datetime | None


def _credential(row: Any) -> CredentialRow:
    return CredentialRow(
        id=row.id,
        account_id=row.account_id,
        credential_id=row.credential_id,
        public_key=bytes(row.public_key),
        sign_count=int(row.sign_count),
        label=row.label,
        transports=tuple(t for t in row.transports.split(",") if t),
        created_at=aware(row.created_at),
        last_used_at=aware(row.last_used_at),
    )


async def insert_credential(
    conn: AsyncConnection,
    *,
    account_id: int,
    credential_id: str,
    public_key: bytes,
    sign_count: int,
    label: str,
    transports: Sequence[str],
    now: datetime,
) -> int:
    result = await conn.execute(
        insert(webauthn_credentials).values(
            account_id=account_id,
            credential_id=credential_id,
            public_key=public_key,
            sign_count=sign_count,
            label=label,
            transports=",".join(transports),
            created_at=now,
        )
    )
    return inserted_id(result)


async def credentials_of(conn: AsyncConnection, account_id: int) -> list[CredentialRow]:
    rows = await conn.execute(
        select(webauthn_credentials)
        .where(webauthn_credentials.c.account_id == account_id)
        .order_by(webauthn_credentials.c.id)
    )
    return [_credential(row) for row in rows.all()]


async def credential_by_credential_id(
    conn: AsyncConnection, credential_id: str
) -> CredentialRow | None:
    row = (
        await conn.execute(
            select(webauthn_credentials).where(
                webauthn_credentials.c.credential_id == credential_id
            )
        )
    ).first()
    return _credential(row) if row else None


async def count_credentials(conn: AsyncConnection, account_id: int) -> int:
    count = await conn.scalar(
        select(func.count())
        .select_from(webauthn_credentials)
        .where(webauthn_credentials.c.account_id == account_id)
    )
    return int(count or 0)


async def update_credential_use(
    conn: AsyncConnection, row_id: int, sign_count: int, now: datetime
) -> None:
    await conn.execute(
        update(webauthn_credentials)
        .where(webauthn_credentials.c.id == row_id)
        .values(sign_count=sign_count, last_used_at=now)
    )


async def delete_credential(conn: AsyncConnection, account_id: int, row_id: int) -> bool:
    result = await conn.execute(
        delete(webauthn_credentials).where(
            webauthn_credentials.c.id == row_id, webauthn_credentials.c.account_id == account_id
        )
    )
    return bool(result.rowcount)


# --- practice web settings -------------------------------------------------------------------


async def second_factor_required(conn: AsyncConnection, practice_id: int) -> bool:
    value = await conn.scalar(
        select(web_practice_settings.c.require_second_factor).where(
            web_practice_settings.c.practice_id == practice_id
        )
    )
    return bool(value)


async def set_second_factor_required(
    conn: AsyncConnection, practice_id: int, required: bool, now: datetime
) -> None:
    result = await conn.execute(
        update(web_practice_settings)
        .where(web_practice_settings.c.practice_id == practice_id)
        .values(require_second_factor=required, updated_at=now)
    )
    if not result.rowcount:
        await conn.execute(
            insert(web_practice_settings).values(
                practice_id=practice_id, require_second_factor=required, updated_at=now
            )
        )


# --- practice-scoped audit queries -----------------------------------------------------------


@dataclass(frozen=True)
class AuditFilter:
    """What the admin console's audit viewer filters on (all optional)."""

    since: datetime | None = None
    until: datetime | None = None
    actor: str = ""
    action: str = ""
    result: str = ""


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _practice_scope(domains: Sequence[str], practice_target: str) -> Any:
    """Records about a practice: its target marker, an actor/target in one of its domains, or
    a target naming one of its mailboxes by id (``mailbox:<id>``: the patient portal's
    ``pickup.*`` events, whose actor is the pickup and whose patient is never recorded). The
    practice owns the mailboxes of the practice its domains belong to — never another's."""
    own_mailboxes = select(literal("mailbox:") + cast(mailboxes.c.id, String)).where(
        mailboxes.c.practice_id.in_(
            select(practice_domains.c.practice_id).where(
                practice_domains.c.domain.in_(list(domains))
            )
        )
    )
    clauses: list[Any] = [
        audit_log.c.target == practice_target,
        audit_log.c.target.in_(own_mailboxes),
    ]
    for domain in domains:
        pattern = f"%@{_like_escape(domain)}"
        clauses.append(audit_log.c.actor.like(pattern, escape="\\"))
        clauses.append(audit_log.c.target.like(pattern, escape="\\"))
    return or_(*clauses)


async def practice_audit_records(
    conn: AsyncConnection,
    domains: Sequence[str],
    practice_target: str,
    flt: AuditFilter,
    *,
    limit: int | None,
    before_seq: int | None = None,
) -> Sequence[Any]:
    """Audit rows of one practice, newest first (``limit`` None: all of them)."""
    query = select(audit_log).where(_practice_scope(domains, practice_target))
    if flt.since is not None:
        query = query.where(audit_log.c.ts >= flt.since)
    if flt.until is not None:
        query = query.where(audit_log.c.ts < flt.until)
    if flt.actor:
        query = query.where(audit_log.c.actor == flt.actor)
    if flt.action:
        query = query.where(audit_log.c.action.like(f"{_like_escape(flt.action)}%", escape="\\"))
    if flt.result:
        query = query.where(audit_log.c.result == flt.result)
    if before_seq is not None:
        query = query.where(audit_log.c.seq < before_seq)
    query = query.order_by(audit_log.c.seq.desc())
    if limit is not None:
        query = query.limit(limit)
    return (await conn.execute(query)).all()
