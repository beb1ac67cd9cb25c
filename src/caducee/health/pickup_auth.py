"""Opening a pickup: one-time codes by SMS, the passphrase given in person, portal sessions.

- A code is 6 random digits, valid 10 minutes, single use; a new code supersedes the previous
  ones; at most :data:`CODES_PER_WINDOW` codes per link every :data:`CODE_WINDOW`. Only a keyed
  hash (HMAC-SHA256 under a key derived from the sender mailbox's data key) is stored.
- Wrong codes and wrong passphrases count together: at :data:`MAX_FAILURES` the link locks,
  the practice gets an alert in the sender mailbox's Inbox, and it is audited. Each try is
  compared and counted in one transaction holding the pickup's row, so tries sent at once are
  compared one after the other and none once the link is locked.
- A right code or passphrase opens a portal session: a 256-bit cookie token (SHA-256 kept)
  bound to ONE pickup, valid :data:`SESSION_MINUTES` minutes, with its CSRF token.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import NoReturn

from caducee.app import App
from caducee.errors import CaduceeError, LimitReached
from caducee.health import pickup_mail, sms
from caducee.health.pickup_store import (
    Contact,
    Pickup,
    PickupClosed,
    add_event,
    audit_event,
    by_id,
    code_key,
    contact,
    passphrase_hash,
    read_code_key,
    read_contact,
)
from caducee.services import metrics
from caducee.services.audit import append
from caducee.services.delivery import deliver_local
from caducee.services.passwords import verify_password
from caducee.store import directory_repo, pickup_repo
from caducee.store.connection import AsyncConnection

log = logging.getLogger(__name__)

CODE_DIGITS = 6
CODE_MINUTES = 10
MAX_FAILURES = 5
CODES_PER_WINDOW = 3
CODE_WINDOW = timedelta(minutes=15)
SESSION_MINUTES = 15


def _code_hash(key: bytes, pickup_id: int, code: str) -> str:
    return hmac.new(key, f"{pickup_id}:{code}".encode(), hashlib.sha256).hexdigest()


def _too_many_codes() -> LimitReached:
    return LimitReached(
        "Trop de codes demandés pour ce lien : patientez un quart d'heure avant d'en demander "
        "un autre.",
        "Too many codes asked for this link: wait a quarter of an hour before asking again.",
    )


async def request_code(app: App, pickup: Pickup, *, source: str) -> str:
    """Send a new code by SMS to the patient's mobile; returns the masked number."""
    pickup.check_open()
    now = datetime.now(UTC)
    code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
    key = await code_key(app, pickup)
    patient = await contact(app, pickup)
    async with app.db.write() as conn:
        pickup = await by_id(conn, pickup.id, lock=True)
        pickup.check_open(now)
        recent = await pickup_repo.codes_since(conn, pickup.id, now - CODE_WINDOW)
        if recent >= CODES_PER_WINDOW:
            await append(conn, audit_event(pickup, "pickup.code_request", source, "denied"))
            raise _too_many_codes()
        await pickup_repo.replace_code(
            conn,
            pickup.id,
            _code_hash(key, pickup.id, code),
            now,
            now + timedelta(minutes=CODE_MINUTES),
        )
        await add_event(conn, pickup, "code_sent", now=now)
        await append(conn, audit_event(pickup, "pickup.code_sent", source))
    try:
        receipt = await sms.send_sms(
            app,
            patient.mobile,
            f"Caducée : votre code pour lire le message de votre cabinet est {code}. "
            f"Valable {CODE_MINUTES} min. Ne le communiquez à personne.",
            actor=f"pickup:{pickup.id}",
            purpose="portal.code",
        )
    except CaduceeError:
        metrics.PICKUP_CODES.labels("send_failed").inc()
        raise
    metrics.PICKUP_CODES.labels("sent").inc()
    return receipt.masked_to


async def check_code(app: App, pickup: Pickup, code: str, *, source: str) -> bool:
    """Whether ``code`` is the link's current code (then used up); a wrong one counts toward
    the lock (:class:`PickupClosed` once locked).

    The code is compared and the failure counted in one transaction holding the pickup's row
    (``SELECT … FOR UPDATE``; SQLite's single writer), after checking the link is not locked:
    guesses sent at once are compared one at a time, and none once the link is locked.
    """
    pickup.check_open()
    given = "".join(code.split())
    now = datetime.now(UTC)
    async with app.db.write() as conn:
        pickup = await by_id(conn, pickup.id, lock=True)
        pickup.check_open(now)  # locked (or closed): refused before any comparison
        key = await read_code_key(conn, app, pickup)
        digest = _code_hash(key, pickup.id, given[:20])
        matched = None
        for row in await pickup_repo.live_codes(conn, pickup.id):  # each one, constant time
            fits = hmac.compare_digest(row.code_hash.encode(), digest.encode())
            if fits and row.expires_at > now and matched is None:
                matched = row.id
        right = matched is not None and len(given) == CODE_DIGITS and given.isdigit()
        if right:
            assert matched is not None
            await pickup_repo.use_code(conn, matched, now)
            await append(conn, audit_event(pickup, "pickup.code_ok", source))
            locked = None
        else:
            locked = await _count_failure(conn, app, pickup, source, "code", now)
    if not right:
        metrics.PICKUP_CODES.labels("wrong").inc()
    if locked is not None:
        await _lock_alert(app, pickup, locked)
    return right


async def check_passphrase(app: App, pickup: Pickup, passphrase: str, *, source: str) -> bool:
    """Whether ``passphrase`` is the one the practitioner gave; failures count like codes.

    Compared and counted in one transaction holding the pickup's row, like a code: at most
    :data:`MAX_FAILURES` wrong passphrases are ever compared. The argon2 verification runs in
    a worker thread (not on the event loop) while that transaction waits, which holds the
    database's writer on SQLite for one verification per try — a few tries per link at most.
    """
    pickup.check_open()
    now = datetime.now(UTC)
    async with app.db.write() as conn:
        pickup = await by_id(conn, pickup.id, lock=True)
        pickup.check_open(now)  # locked (or closed): refused before any comparison
        stored = await passphrase_hash(conn, pickup.id)
        right = stored is not None and await asyncio.to_thread(
            verify_password, stored, passphrase[:200]
        )
        if right:
            await append(conn, audit_event(pickup, "pickup.passphrase_ok", source))
            locked = None
        else:
            locked = await _count_failure(conn, app, pickup, source, "passphrase", now)
    if locked is not None:
        await _lock_alert(app, pickup, locked)
    return right


async def tries_left(app: App, pickup: Pickup) -> int:
    """How many wrong codes or passphrases the link still takes before it locks, as counted now
    (guesses sent at the same time by others included)."""
    async with app.db.read() as conn:
        current = await by_id(conn, pickup.id)
    return max(0, MAX_FAILURES - current.failed_attempts)


async def _count_failure(
    conn: AsyncConnection, app: App, pickup: Pickup, source: str, kind: str, now: datetime
) -> Contact | None:
    """Count a wrong code or passphrase of ``pickup`` (its row locked by the caller's
    transaction). When this failure locks the link, its sessions end and the patient's
    contact is returned (for the practice's alert)."""
    patient = await read_contact(conn, app, pickup)
    failures = pickup.failed_attempts + 1
    locks = failures >= MAX_FAILURES
    await pickup_repo.set_failures(conn, pickup.id, failures, now if locks else None)
    await add_event(conn, pickup, "code_failed", kind, now=now)
    await append(
        conn, audit_event(pickup, f"pickup.{kind}_failed", source, "denied", failures=failures)
    )
    if locks:
        await pickup_repo.end_sessions(conn, pickup.id)
        await add_event(conn, pickup, "locked", now=now)
        await append(conn, audit_event(pickup, "pickup.locked", source, "denied"))
    return patient if locks else None


async def _lock_alert(app: App, pickup: Pickup, patient: Contact) -> NoReturn:
    """Tell the practice (its sender mailbox's Inbox) that the link is locked; raise the
    refusal the patient sees."""
    async with app.db.read() as conn:
        mailbox = await directory_repo.mailbox_by_id(conn, pickup.sender_mailbox_id)
    if mailbox is not None:
        alert = pickup_mail.lock_alert(
            hostname=app.settings.hostname,
            mailbox_address=mailbox.address,
            patient_email=patient.email,
            created_at=pickup.created_at,
        )
        await deliver_local(app, alert, [mailbox.address])
    raise PickupClosed(
        "locked",
        "Ce lien est verrouillé après trop de codes erronés. Votre cabinet est prévenu : "
        "contactez-le pour recevoir un nouveau lien.",
        "This link is locked after too many wrong codes. Your practice has been told: "
        "contact it to get a new link.",
    )


@dataclass(frozen=True)
class PortalSession:
    id: int
    pickup_id: int
    csrf_token: str
    expires_at: datetime


async def open_session(app: App, pickup: Pickup) -> tuple[str, PortalSession]:
    """A new portal session for ``pickup``: (cookie token, session)."""
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    expires = now + timedelta(minutes=SESSION_MINUTES)
    async with app.db.write() as conn:
        session_id = await pickup_repo.insert_session(conn, pickup.id, token, csrf, now, expires)
    return token, PortalSession(session_id, pickup.id, csrf, expires)


async def load_session(app: App, token: str) -> PortalSession | None:
    """The live session of a cookie token (None: unknown or expired)."""
    async with app.db.read() as conn:
        row = await pickup_repo.session_by_token(conn, token)
    if row is None or row.expires_at <= datetime.now(UTC):
        return None
    return PortalSession(row.id, row.pickup_id, row.csrf_token, row.expires_at)


async def end_session(app: App, session: PortalSession) -> None:
    async with app.db.write() as conn:
        await pickup_repo.delete_session(conn, session.id)
