"""The persistent outbound queue: enqueue, list, retry, delete (the worker is ``outbound``).

A queued message is its envelope (sender, possibly empty ``<>`` for reports; RFC 3461 ENVID and
RET) in clear — addresses route mail — and its raw bytes sealed with the ``queue`` data key
(record: a random blob id, field ``raw``) in the blob store. Each recipient has its own row:
state (queued, deferred, delivered, bounced, expired), attempts, next attempt, last reply,
RFC 3461 NOTIFY and ORCPT. A recipient's address is in clear only while it waits: once final,
it is sealed in the same transaction (``queue_repo.conceal``), and opened again only to be
shown or reported (:func:`list_queue`, :func:`reveal`).

:func:`enqueue` returns once everything is durably committed: the SMTP door answers 250 only
after it. It then wakes the delivery worker (in this process; through PostgreSQL
``NOTIFY caducee_queue`` on every node).

Delivery reports (RFC 3461 §4.1): when a recipient gives no NOTIFY, we act as if it had asked
for ``FAILURE,DELAY``. The RFC leaves delay notices to the MTA's discretion in that case;
like Postfix and Sendmail we send one (after ``queue_delay_notice_hours``), because a health
professional who believes a message arrived when it is still waiting needs to know.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from caducee.app import App
from caducee.errors import InvalidInput, MessageTooLarge, NotFound
from caducee.ids import new_blob_id
from caducee.services import trace
from caducee.services.audit import AuditEvent, append
from caducee.services.envelope import EnvelopeRecipient
from caducee.store import queue_repo
from caducee.store.connection import AsyncConnection
from caducee.store.keyring import mailbox_scope
from caducee.store.queue_repo import QueueRow

log = logging.getLogger(__name__)

#: The data key sealing queued messages (and finished recipients' addresses).
QUEUE_SCOPE = queue_repo.QUEUE_SCOPE
#: PostgreSQL channel waking the delivery workers of every node.
CHANNEL = "caducee_queue"
#: RFC 3461 §4.1: what a recipient without NOTIFY gets (see the module docstring).
DEFAULT_NOTIFY = ("FAILURE", "DELAY")
NOTIFY_VALUES = frozenset({"NEVER", "SUCCESS", "FAILURE", "DELAY"})
#: RFC 3461 §4.4: an ENVID is at most 100 characters.
ENVID_MAX = 100
#: RFC 5321 §4.5.4.1: retry after 5 min, 15 min, 30 min, 1 h, 2 h, then every 4 h.
BACKOFF = (
    timedelta(minutes=5),
    timedelta(minutes=15),
    timedelta(minutes=30),
    timedelta(hours=1),
    timedelta(hours=2),
    timedelta(hours=4),
)
REPLY_MAX = 500

#: A recipient as the SMTP door hands it over (address, NOTIFY, ORCPT): the envelope's type.
QueueRecipient = EnvelopeRecipient
#: What ``caducee queue list`` shows: one recipient of one queued message.
QueueEntry = QueueRow

_CONTROL = re.compile(r"[\x00-\x20\x7f<>]")


@dataclass(frozen=True)
class QueueOrigin:
    """Who queued the message, for the trace and the audit trail (never its content)."""

    actor: str = "system"  # account login, "system" (reports), "cli"
    source: str = ""  # client address, "web", ...
    account_id: int | None = None
    mailbox_id: int | None = None


SYSTEM_ORIGIN = QueueOrigin()


def backoff(attempts: int) -> timedelta:
    """Wait before the next try after ``attempts`` failed attempts (RFC 5321 §4.5.4.1)."""
    return BACKOFF[min(max(attempts, 1), len(BACKOFF)) - 1]


def effective_notify(notify: Sequence[str]) -> tuple[str, ...]:
    return tuple(notify) if notify else DEFAULT_NOTIFY


def wants_report(mail_from: str, notify: Sequence[str], kind: str) -> bool:
    """Whether a DSN of ``kind`` (FAILURE, DELAY, SUCCESS) is due: never to the null sender
    (no report loops, RFC 3461 §6.2 and RFC 5321 §4.5.5), never with NOTIFY=NEVER."""
    return bool(mail_from) and kind in effective_notify(notify)


def _bad_address(value: str) -> InvalidInput:
    return InvalidInput(
        f"Adresse de destination invalide : « {value} ».",
        f"Invalid destination address: '{value}'.",
    )


def split_address(value: str) -> tuple[str, str]:
    """``(address, domain)``: the domain lower-cased, the local part kept as given (RFC 5321
    §2.4: only the destination interprets it). Refuses what cannot go on an SMTP command line."""
    address = value.strip()
    local, at, domain = address.rpartition("@")
    domain = domain.lower().rstrip(".")
    if (
        not at
        or not local
        or not domain
        or len(local.encode()) > 64
        or len(domain.encode()) > 255
        or _CONTROL.search(address)
    ):
        raise _bad_address(value)
    return f"{local}@{domain}", domain


def _check_notify(notify: Sequence[str]) -> tuple[str, ...]:
    values = tuple(dict.fromkeys(n.strip().upper() for n in notify))
    if any(n not in NOTIFY_VALUES for n in values) or ("NEVER" in values and len(values) > 1):
        raise InvalidInput(
            "Paramètre NOTIFY invalide : NEVER seul, ou SUCCESS, FAILURE, DELAY (RFC 3461).",
            "Invalid NOTIFY parameter: NEVER alone, or SUCCESS, FAILURE, DELAY (RFC 3461).",
        )
    return values


def check_dsn(
    notify: Sequence[str], envid: str | None, ret: str | None
) -> tuple[tuple[str, ...], str | None, str | None]:
    """RFC 3461 options asked by a door without SMTP parameters of its own (the REST API):
    NOTIFY (§4.1), ENVID (§4.4), RET (§4.3), checked as :func:`enqueue` checks them, before
    anything is stored; returns them normalised (upper case, no duplicate)."""
    _sender, envid, ret = _check_envelope("", envid, ret)
    return _check_notify(notify), envid, ret


def _check_envelope(
    mail_from: str, envid: str | None, ret: str | None
) -> tuple[str, str | None, str | None]:
    sender = split_address(mail_from)[0] if mail_from.strip() not in ("", "<>") else ""
    if envid is not None and (
        len(envid) > ENVID_MAX or not envid.isascii() or not envid.isprintable()
    ):
        raise InvalidInput(
            "Paramètre ENVID invalide (100 caractères imprimables au plus, RFC 3461 §4.4).",
            "Invalid ENVID parameter (at most 100 printable characters, RFC 3461 §4.4).",
        )
    if ret is not None:
        ret = ret.strip().upper()
        if ret not in ("FULL", "HDRS"):
            raise InvalidInput(
                "Paramètre RET invalide : FULL ou HDRS (RFC 3461 §4.3).",
                "Invalid RET parameter: FULL or HDRS (RFC 3461 §4.3).",
            )
    return sender, envid, ret


class QueueSignal:
    """Wakes this node's delivery worker when mail is queued or made due."""

    def __init__(self, app: App) -> None:
        self.event = asyncio.Event()

    def wake(self) -> None:
        self.event.set()


def queue_signal(app: App) -> QueueSignal:
    return app.component(QueueSignal, QueueSignal)


async def _notify_nodes(app: App, conn: AsyncConnection) -> None:
    """PostgreSQL: NOTIFY inside the transaction reaches every node when it commits."""
    if not app.db.is_sqlite:
        await queue_repo.notify(conn, CHANNEL)


async def _seal(app: App, blob_id: str, raw: bytes) -> bytes:
    """Seal outside the write transaction; create the queue's data key on first use."""
    async with app.db.read() as conn:
        if await queue_repo.has_data_key(conn, QUEUE_SCOPE):
            return await app.keyring.seal(conn, QUEUE_SCOPE, blob_id, "raw", raw)
    async with app.db.write() as conn:
        await queue_repo.ensure_data_key(conn, app.keyring, QUEUE_SCOPE)
        return await app.keyring.seal(conn, QUEUE_SCOPE, blob_id, "raw", raw)


async def enqueue(
    app: App,
    raw: bytes,
    mail_from: str,
    recipients: Sequence[QueueRecipient],
    *,
    envid: str | None = None,
    ret: str | None = None,
    origin: QueueOrigin = SYSTEM_ORIGIN,
    now: datetime | None = None,
    trace_key: str | None = None,
) -> int:
    """Queue ``raw`` for remote ``recipients``; returns the queue id once durably committed.
    With ``trace_key`` and ``origin.mailbox_id``, results go to the sender's trace.

    ``mail_from`` is ``""`` for the null reverse-path (delivery reports). Recipients are
    deduplicated; their NOTIFY and ORCPT are kept for the next hop and for our reports.
    """
    if not raw:
        raise InvalidInput("Message vide.", "Empty message.")
    limit = app.settings.max_message_bytes
    if len(raw) > limit:
        raise MessageTooLarge(
            f"Message trop volumineux : {limit // (1024 * 1024)} Mo au plus.",
            f"Message too large: at most {limit // (1024 * 1024)} MB.",
        )
    sender, envid, ret = _check_envelope(mail_from, envid, ret)
    targets: dict[str, tuple[str, str, QueueRecipient]] = {}
    for recipient in recipients:
        address, domain = split_address(recipient.address)
        _check_notify(recipient.notify)
        if recipient.orcpt is not None and (  # RFC 3461 §4.2: xtext, goes on a command line
            len(recipient.orcpt) > 500
            or not recipient.orcpt.isascii()
            or any(c.isspace() or not c.isprintable() for c in recipient.orcpt)
        ):
            raise InvalidInput("Paramètre ORCPT invalide.", "Invalid ORCPT parameter.")
        # one row per mailbox: local parts differing only in case are the same in practice
        targets.setdefault(address.lower(), (address, domain, recipient))
    if not targets:
        raise InvalidInput("Aucun destinataire.", "No recipient.")
    when = (now or datetime.now(UTC)).astimezone(UTC)
    blob_id = new_blob_id()
    sealed = await _seal(app, blob_id, raw)
    committed = False
    try:
        await app.blobs.stage([(blob_id, sealed)])  # durable before the row naming it
        async with app.db.write() as conn:
            await app.blobs.record(conn, [(blob_id, sealed)])
            queue_id = await queue_repo.insert_message(
                conn,
                blob_id=blob_id,
                size=len(raw),
                mail_from=sender,
                envid=envid,
                ret=ret,
                origin=origin.actor,
                origin_account_id=origin.account_id,
                origin_mailbox_id=origin.mailbox_id,
                trace_key=trace_key,
                created_at=when,
            )
            await queue_repo.insert_recipients(
                conn,
                [
                    {
                        "message_id": queue_id,
                        "address": address,
                        "domain": domain,
                        "state": queue_repo.QUEUED,
                        "attempts": 0,
                        "next_attempt_at": when,
                        "notify": ",".join(_check_notify(recipient.notify)),
                        "orcpt": recipient.orcpt,
                    }
                    for address, domain, recipient in targets.values()
                ],
            )
            if trace_key is not None and origin.mailbox_id is not None:
                for address, _domain, _recipient in targets.values():
                    await trace.record(
                        app, conn, origin.mailbox_id, trace_key, address, "queued", now=when
                    )
            # The audit record last: its anchor is the one row every writer locks, and a
            # delivery locks the sender's mailbox before it (the trace rows above name that
            # mailbox); taken first, the two waited for each other (PostgreSQL deadlock).
            await append(
                conn,
                AuditEvent(
                    actor=origin.actor,
                    action="queue.enqueue",
                    target=sender or "<>",
                    source=origin.source,
                    details={"queue_id": queue_id, "recipients": len(targets), "size": len(raw)},
                ),
                now=when,
            )
            await _notify_nodes(app, conn)
        committed = True
    finally:
        if not committed:
            await app.blobs.remove_files([blob_id])
    queue_signal(app).wake()
    log.info("queued queue_id=%d recipients=%d size=%d", queue_id, len(targets), len(raw))
    return queue_id


async def read_content(app: App, row: QueueRow) -> bytes:
    """The raw bytes of a queued message (decrypted)."""
    if row.blob_id is None:
        raise NotFound(
            f"Le contenu du message {row.message_id} n'est plus conservé.",
            f"The content of message {row.message_id} is no longer kept.",
        )
    async with app.db.read() as conn:
        sealed = await app.blobs.get(conn, row.blob_id)
        return await app.keyring.open(conn, QUEUE_SCOPE, row.blob_id, "raw", sealed)


async def list_queue(app: App, *, include_finished: bool = False) -> list[QueueEntry]:
    """Recipients waiting for delivery (with ``include_finished``: the recent history too)."""
    async with app.db.read() as conn:
        rows = await queue_repo.list_rows(conn, include_finished=include_finished)
        return await queue_repo.reveal(conn, app.keyring, rows)


async def reveal(app: App, rows: Sequence[QueueRow]) -> list[QueueRow]:
    """The rows with the addresses of final recipients opened (for a delivery report)."""
    if not any(row.address_sealed is not None for row in rows):
        return list(rows)
    async with app.db.read() as conn:
        return await queue_repo.reveal(conn, app.keyring, rows)


async def _target(app: App, conn: AsyncConnection, address: str, mailbox_id: int | None) -> str:
    scope = QUEUE_SCOPE
    if mailbox_id is not None:
        mailbox = mailbox_scope(mailbox_id)
        if await queue_repo.has_data_key(conn, mailbox):
            scope = mailbox
    return "recipient:" + await trace.scope_pseudonym(app.keyring, conn, scope, address)


async def recipient_target(app: App, conn: AsyncConnection, row: QueueRow) -> str:
    """The audit target naming a recipient without its address: ``recipient:<pseudonym>``,
    keyed by the sender mailbox's data key (the same pseudonym as in that mailbox's trace, so
    the practice finds both from the address), else by the queue's key (delivery reports)."""
    return await _target(app, conn, row.address, row.origin_mailbox_id)


async def audit_target(app: App, address: str, mailbox_id: int | None = None) -> str:
    """What the audit log's ``queue.delivered|bounced|expired`` records name ``address`` by,
    for mail sent from ``mailbox_id`` (None: mail no mailbox of ours sent): search for it."""
    async with app.db.read() as conn:
        return await _target(app, conn, address, mailbox_id)


async def finish(app: App, conn: AsyncConnection, recipient_ids: Sequence[int]) -> None:
    """Recipients that just became final: their addresses leave the clear (same transaction)."""
    await queue_repo.conceal(conn, app.keyring, recipient_ids)


def _unknown(queue_id: int) -> NotFound:
    return NotFound(
        f"Aucun message n° {queue_id} dans la file d'attente (voir « caducee queue list »).",
        f"No message #{queue_id} in the queue (see 'caducee queue list').",
    )


async def retry(
    app: App,
    queue_id: int | None = None,
    *,
    actor: str = "cli",
    source: str = "cli",
    now: datetime | None = None,
) -> int:
    """Make the waiting recipients of one message (or of all, ``queue_id=None``) due now.
    Returns how many recipients were rescheduled."""
    when = (now or datetime.now(UTC)).astimezone(UTC)
    async with app.db.write() as conn:
        if queue_id is not None and not await queue_repo.message_exists(conn, queue_id):
            raise _unknown(queue_id)
        rows = await queue_repo.make_due(conn, when, queue_id)
        by_message: dict[int, list[QueueRow]] = {}
        for row in rows:
            by_message.setdefault(row.message_id, []).append(row)
        for message_id, recipients in by_message.items():
            await append(
                conn,
                AuditEvent(
                    actor=actor,
                    action="queue.retry",
                    target=recipients[0].mail_from or "<>",
                    source=source,
                    details={"queue_id": message_id, "recipients": len(recipients)},
                ),
            )
        await _notify_nodes(app, conn)
    queue_signal(app).wake()
    return len(rows)


#: RFC 3463 X.0.0 with an explanation: the administrator removed the message from the queue.
DELETED_STATUS = "5.0.0"
DELETED_REPLY = (
    "Message retiré de la file d'attente par l'administrateur / "
    "message deleted from the queue by the administrator"
)


async def delete(
    app: App,
    queue_id: int,
    *,
    bounce: bool = False,
    actor: str = "cli",
    source: str = "cli",
    now: datetime | None = None,
) -> int:
    """Remove a message from the queue; returns how many recipients had not been delivered.

    With ``bounce``, its waiting recipients are marked bounced instead and the sender gets a
    failure report (unless NOTIFY or a null sender rule it out); the worker sends it, then
    forgets the content.
    """
    when = (now or datetime.now(UTC)).astimezone(UTC)
    blob_id: str | None = None
    async with app.db.write() as conn:
        rows = await queue_repo.list_rows(conn, include_finished=True, message_id=queue_id)
        if not rows:
            raise _unknown(queue_id)
        waiting = [row for row in rows if row.state in queue_repo.ACTIVE]
        if bounce:
            bounced = await queue_repo.bounce_active(
                conn,
                queue_id,
                {
                    "finished_at": when,
                    "last_code": None,
                    "last_status": DELETED_STATUS,
                    "last_reply": DELETED_REPLY,
                },
            )
            for row in bounced:
                if wants_report(row.mail_from, row.notify, "FAILURE"):
                    await queue_repo.set_report(conn, row.id, "failed")
            await finish(app, conn, [row.id for row in bounced])
        else:
            blob_id = await queue_repo.delete_message(conn, queue_id)
            if blob_id is not None:
                await app.blobs.forget(conn, [blob_id])
        await append(
            conn,
            AuditEvent(
                actor=actor,
                action="queue.delete",
                target=rows[0].mail_from or "<>",
                source=source,
                details={"queue_id": queue_id, "recipients": len(waiting), "bounce": bounce},
            ),
        )
    if blob_id is not None:
        await app.blobs.remove_files([blob_id])
    if bounce:
        queue_signal(app).wake()
    return len(waiting)
