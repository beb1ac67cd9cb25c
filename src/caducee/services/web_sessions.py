"""Web sessions: created at login, loaded on every request, rotated at each change of stage.

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

Second factors and recovery codes are in :mod:`caducee.services.mfa`, WebAuthn keys in
:mod:`caducee.services.webauthn_keys`, the admin console's audit viewer in
:mod:`caducee.services.audit_viewer`. Everything audited here is content-free: never a token.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from caducee.app import App
from caducee.domain.model import Account, Practice
from caducee.services import audit
from caducee.services.audit import AuditEvent
from caducee.services.lockout import normalize_source, utcnow
from caducee.store import directory_repo as repo
from caducee.store import web_repo
from caducee.store.tokens import token_digest

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
    now = now or utcnow()
    async with app.db.read() as conn:
        row = await web_repo.session_by_token(conn, token)
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
