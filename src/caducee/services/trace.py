"""The sender's trace of a sent message (per recipient): queued, delivered, deferred, bounced,
expired, read, and the patient portal's steps. Keyed by the SHA-256 of the Message-ID; no
subject, no content.

No recipient address is stored in clear (a patient's address is health data, and the trace is
kept for ``trace_retention_days``). Every recipient — professional or patient: telling them
apart would need the registry at every write, and a rule that seals every address cannot miss
one — is stored as

- ``recipient_key``, a keyed pseudonym: HMAC-SHA256 of the normalised address (trimmed, angle
  brackets removed, lower-cased) under a key derived from the sender mailbox's data key. The
  practice finds a recipient's rows by computing the pseudonym of the address it types
  (:func:`pseudonym`); a database dump shows only opaque values, which differ from one mailbox
  to another (a patient cannot be linked across mailboxes or practices);
- ``recipient_sealed``, the address sealed with that data key (AES-256-GCM, record
  ``trace:<trace key>``, field ``recipient:<pseudonym>``: a copy moved to another message or
  recipient does not open), for the pages that show it (« suivi de l'envoi »).

The details written with a recipient never carry its address either (a remote reply often
quotes it): :func:`record` replaces it with ``<destinataire>``.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from caducee.app import App
from caducee.domain.addresses import hide_address, pseudonym_form
from caducee.errors import AccessDenied, IntegrityError
from caducee.store import queue_repo, trace_repo
from caducee.store.connection import AsyncConnection
from caducee.store.database import Database
from caducee.store.keyring import Keyring, mailbox_scope

if TYPE_CHECKING:
    from caducee.services.mailboxes import Access

log = logging.getLogger(__name__)

EVENTS = ("queued", "delivered", "deferred", "bounced", "expired", "read")
_PSEUDONYM_LABEL = b"caducee address pseudonym v1"
#: Rows converted per transaction by :func:`conceal_clear_addresses`.
_BATCH = 200


def trace_key(message_id: str) -> str | None:
    """The key of a Message-ID (angle brackets and case of the domain do not matter)."""
    value = message_id.strip().strip("<>").strip()
    if not value:
        return None
    local, _, domain = value.rpartition("@")
    normalised = f"{local}@{domain.lower()}" if local else value
    return hashlib.sha256(normalised.encode("utf-8", "replace")).hexdigest()


def pseudonym(data_key: bytes, address: str) -> str:
    """The keyed pseudonym of ``address`` under a scope's data key (64 hex digits)."""
    key = hmac.new(data_key, _PSEUDONYM_LABEL, hashlib.sha256).digest()
    return hmac.new(key, pseudonym_form(address).encode(), hashlib.sha256).hexdigest()


async def scope_pseudonym(keyring: Keyring, conn: AsyncConnection, scope: str, address: str) -> str:
    return pseudonym(await keyring.data_key(conn, scope), address)


@dataclass(frozen=True)
class Concealed:
    """A recipient as the trace stores it: its pseudonym and its sealed address."""

    key: str
    sealed: bytes


def _field(key: str) -> str:
    return f"recipient:{key}"


def _record_name(trace_key: str) -> str:
    return f"trace:{trace_key}"


async def conceal(
    keyring: Keyring, conn: AsyncConnection, mailbox_id: int, trace_key: str, address: str
) -> Concealed:
    """The pseudonym and sealed copy of a recipient of the mailbox's message ``trace_key``."""
    scope = mailbox_scope(mailbox_id)
    data_key = await keyring.data_key(conn, scope)
    key = pseudonym(data_key, address)
    plain = address.strip()[:320].encode()
    sealed = await keyring.seal(conn, scope, _record_name(trace_key), _field(key), plain)
    return Concealed(key, sealed)


async def record(
    app: App,
    conn: AsyncConnection,
    mailbox_id: int,
    key: str,
    recipient: str,
    event: str,
    detail: str = "",
    *,
    now: datetime | None = None,
) -> None:
    """One event of one recipient in the mailbox's trace (in the caller's transaction)."""
    concealed = await conceal(app.keyring, conn, mailbox_id, key, recipient)
    await record_concealed(
        conn, mailbox_id, key, concealed, event, hide_address(detail, recipient), now=now
    )


async def record_concealed(
    conn: AsyncConnection,
    mailbox_id: int,
    key: str,
    recipient: Concealed,
    event: str,
    detail: str = "",
    *,
    now: datetime | None = None,
) -> None:
    """:func:`record` for a recipient already concealed (a pickup keeps its patient so)."""
    await trace_repo.insert_event(
        conn,
        mailbox_id=mailbox_id,
        trace_key=key,
        recipient_key=recipient.key,
        recipient_sealed=recipient.sealed,
        event=event,
        detail=detail[:500],
        ts=now or datetime.now(UTC),
    )


async def record_outbound(
    app: App,
    conn: AsyncConnection,
    queue_id: int,
    recipient: str,
    event: str,
    detail: str,
    now: datetime,
) -> None:
    """An outbound result, traced when the queued message came from one of our mailboxes."""
    origin = await trace_repo.queued_origin(conn, queue_id)
    if origin is not None:
        mailbox_id, key = origin
        await record(app, conn, mailbox_id, key, recipient, event, detail, now=now)


@dataclass(frozen=True)
class TraceEvent:
    recipient: str
    event: str
    detail: str
    ts: datetime


async def events(app: App, mailbox_id: int, message_id: str) -> list[TraceEvent]:
    """The trace of one message of the mailbox, recipients' addresses opened."""
    key = trace_key(message_id)
    if key is None:
        return []
    scope = mailbox_scope(mailbox_id)
    async with app.db.read() as conn:
        rows = await trace_repo.events_of(conn, mailbox_id, key)
        found = []
        opened: dict[str, str] = {}
        for row in rows:
            recipient = row.recipient  # a row written before 0019 and not converted yet
            if row.recipient_sealed is not None and row.recipient_key is not None:
                recipient = opened.get(row.recipient_key, "")
                if not recipient:
                    try:
                        plain = await app.keyring.open(
                            conn,
                            scope,
                            _record_name(key),
                            _field(row.recipient_key),
                            row.recipient_sealed,
                        )
                        recipient = opened[row.recipient_key] = plain.decode()
                    except IntegrityError:
                        log.warning("trace recipient unreadable id=%d", row.id)
                        recipient = "?"
            found.append(TraceEvent(recipient, row.event, row.detail, row.ts))
        return found


async def sent_to(app: App, keys: Iterable[str], address: str) -> list[tuple[str, str]]:
    """(trace key, event) of the rows, in any mailbox, about ``address`` as a recipient of one
    of the messages ``keys``: the pseudonym is computed under each candidate mailbox's key."""
    wanted = list(dict.fromkeys(keys))
    if not wanted:
        return []
    async with app.db.read() as conn:
        rows = await trace_repo.events_of_messages(conn, wanted)
        by_mailbox: dict[int, str] = {}
        for mailbox_id in {row.mailbox_id for row in rows if row.recipient_key is not None}:
            by_mailbox[mailbox_id] = await scope_pseudonym(
                app.keyring, conn, mailbox_scope(mailbox_id), address
            )
    plain = pseudonym_form(address)
    return [
        (row.trace_key, row.event)
        for row in rows
        if (row.recipient_key is not None and row.recipient_key == by_mailbox[row.mailbox_id])
        or (row.recipient_key is None and pseudonym_form(row.recipient) == plain)
    ]


async def purge(db: Database, retention_days: int, *, now: datetime | None = None) -> int:
    """Delete trace rows older than ``retention_days`` (0: keep them forever)."""
    if retention_days <= 0:
        return 0
    before = (now or datetime.now(UTC)) - timedelta(days=retention_days)
    async with db.write() as conn:
        return await trace_repo.delete_before(conn, before)


async def conceal_clear_addresses(app: App) -> int:
    """Convert what was written in clear before migration 0019: trace rows and finished queue
    rows (pickups: ``health.pickup_store.conceal_clear_patients``). Idempotent; returns how
    many rows changed."""
    done = 0
    while True:
        async with app.db.write() as conn:
            rows = await trace_repo.in_clear(conn, _BATCH)
            for row in rows:
                concealed = await conceal(
                    app.keyring, conn, row.mailbox_id, row.trace_key, row.recipient
                )
                await trace_repo.conceal_row(
                    conn,
                    row.id,
                    concealed.key,
                    concealed.sealed,
                    hide_address(row.detail, row.recipient)[:500],
                )
        done += len(rows)
        if len(rows) < _BATCH:
            break
    while True:
        async with app.db.write() as conn:
            ids = await queue_repo.finished_in_clear(conn, _BATCH)
            await queue_repo.conceal(conn, app.keyring, ids)
        done += len(ids)
        if len(ids) < _BATCH:
            break
    if done:
        log.info("addresses concealed rows=%d", done)
    return done


async def read_receipts_enabled(app: App, mailbox_id: int) -> bool:
    async with app.db.read() as conn:
        return await trace_repo.read_receipts_enabled(conn, mailbox_id)


async def set_read_receipts(app: App, access: Access, enabled: bool) -> None:
    """Whether receipts asked of the mailbox are sent: its owner's choice only (a delegate
    reads in the owner's name but does not decide what the owner's mailbox tells senders)."""
    if access.delegated:
        raise AccessDenied(
            "Seul le titulaire de la boîte règle ses accusés de lecture.",
            "Only the mailbox's owner sets its read receipts.",
        )
    async with app.db.write() as conn:
        await trace_repo.set_read_receipts(conn, access.mailbox.id, enabled)
