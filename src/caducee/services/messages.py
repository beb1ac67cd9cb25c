"""Storing and reading messages, sealed at rest.

The raw message is sealed into a blob (scope: its mailbox; record: its blob id; field "raw") and
its metadata — decoded headers, snippet, header fields — into ``messages.meta_sealed`` (same scope
and record, field "meta"), and the precomputed IMAP ENVELOPE, BODYSTRUCTURE and entity tree
apart, in compact form, into ``messages.imap_sealed`` (field "imap", see
``domain.message_meta.split_meta``). A message is
stored (blob durable, row committed) before these functions return: callers acknowledge only
after.

:func:`store_batch` stores many deliveries in one transaction (group commit): each delivery is
all-or-nothing across its mailboxes, and one delivery's failure (a full mailbox) does not fail
the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from caducee.app import App
from caducee.domain.message_meta import extract_meta, split_meta
from caducee.domain.model import Flag, MailboxType, StoredMessage
from caducee.domain.pop3_octets import pop3_size
from caducee.domain.working_days import PARIS
from caducee.errors import (
    CaduceeError,
    InvalidInput,
    MailboxDisabled,
    MessageTooLarge,
    NotFound,
    QuotaExceeded,
    RetentionHold,
)
from caducee.ids import new_blob_id
from caducee.services import audit, text_index
from caducee.services.events import mailbox_events
from caducee.services.recipient_cache import recipient_cache
from caducee.store import delivery_repo, directory_repo, mailstore_repo, messages_repo
from caducee.store.crypto import aad_for, seal
from caducee.store.keyring import mailbox_scope

if TYPE_CHECKING:  # the store's connection types, in annotations only
    from caducee.store.connection import AsyncConnection, Connection

MAX_MESSAGE_BYTES = 50 * 1024 * 1024
#: A delivery parsed already (its metadata given) is sealed on the event loop below this size.
SEAL_OFF_LOOP_BYTES = 256 * 1024
log = logging.getLogger(__name__)

__all__ = ["Delivery", "extract_meta", "read_message", "store_batch", "store_message"]


def _keywords_text(keywords: tuple[str, ...]) -> str:
    for keyword in keywords:
        if not keyword or keyword.startswith("\\") or any(c in keyword for c in ' (){%*"]\\'):
            raise InvalidInput(
                f"Mot-clé IMAP invalide : {keyword!r}.", f"Invalid IMAP keyword: {keyword!r}."
            )
    return " ".join(keywords)


def _check_message(raw: bytes, flags: int) -> None:
    if not raw:
        raise InvalidInput("Message vide.", "Empty message.")
    if len(raw) > MAX_MESSAGE_BYTES:
        raise MessageTooLarge(
            f"Message trop volumineux : {MAX_MESSAGE_BYTES // (1024 * 1024)} Mo au plus.",
            f"Message too large: at most {MAX_MESSAGE_BYTES // (1024 * 1024)} MB.",
        )
    if flags & ~sum(Flag.NAMES.values()):
        raise InvalidInput("Drapeaux inconnus.", "Unknown flags.")


@dataclass
class Delivery:
    """One message to store in one folder of each of several mailboxes.

    Recipients are given as mailbox ids, or as addresses resolved when the group is stored.
    """

    raw: bytes
    mailbox_ids: Sequence[int] = ()
    folder: str = "INBOX"
    flags: int = 0
    keywords: tuple[str, ...] = ()
    internal_date: datetime | None = None
    addresses: Sequence[str] = ()
    #: Keywords for the copies of some of ``addresses`` only, beside ``keywords`` (a patient's
    #: message is stored with its triage keywords in its practice's mailboxes only).
    address_keywords: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    meta: dict[str, Any] | None = None
    #: Who delivers, for the audit trail (``message.deliver`` per mailbox, in the group's
    #: transaction); None: not a delivery to trace (IMAP APPEND and COPY store the user's own).
    audit_actor: str | None = None
    audit_source: str = ""
    #: The mailboxes take it even past their quota: a télétransmission mailbox never refuses
    #: a return, nor the Sent copy of a lot it sent (``health.teletransmission``).
    past_quota: bool = False


@dataclass
class Prepared:
    """A delivery ready to commit: recipients resolved, copies sealed, blobs staged."""

    delivery: Delivery
    mailbox_ids: list[int]
    # the address each mailbox was found by, checked again when committing
    addressed: dict[int, str] = field(default_factory=dict)
    # (mailbox id, blob id, sealed raw, sealed meta) per mailbox
    #: (mailbox id, blob id, sealed raw, sealed metadata, sealed IMAP structure)
    copies: list[tuple[int, str, bytes, bytes, bytes]] = field(default_factory=list)

    @property
    def blobs(self) -> list[tuple[str, bytes]]:
        return [(blob_id, raw) for _, blob_id, raw, _, _ in self.copies]


def _unknown(address: str) -> NotFound:
    return NotFound(f"Destinataire inconnu : {address}.", f"Unknown recipient: {address}.")


def _check_delivery(delivery: Delivery) -> None:
    _check_message(delivery.raw, delivery.flags)
    _keywords_text(delivery.keywords)
    for extra in delivery.address_keywords.values():
        _keywords_text(extra)
    if not delivery.mailbox_ids and not delivery.addresses:
        raise InvalidInput("Aucun destinataire.", "No recipient.")


def _extract_metas(deliveries: Sequence[Delivery]) -> None:
    """The metadata of each delivery that has none yet (CPU work: a worker thread's job)."""
    for delivery in deliveries:
        if delivery.meta is None:
            delivery.meta = extract_meta(delivery.raw)


async def _with_metas(deliveries: Sequence[Delivery]) -> None:
    """:func:`_extract_metas` off the event loop (MIME scanning of big or hostile messages)."""
    if any(delivery.meta is None for delivery in deliveries):
        await asyncio.to_thread(_extract_metas, deliveries)


def refuses_disabled(app: App) -> bool:
    """Whether mail to a disabled mailbox is refused (``[lifecycle] disabled_mailbox_mail``);
    by default it is received and kept for when the mailbox is enabled again."""
    return app.settings.disabled_mailbox_mail == "refuse"


def _resolved(
    delivery: Delivery, known: dict[str, tuple[int, bool]], refuse_disabled: bool
) -> Prepared:
    ids = list(delivery.mailbox_ids)
    addressed: dict[int, str] = {}
    for address in delivery.addresses:
        found = known.get(address)
        if found is None:
            raise _unknown(address)
        if found[1] and refuse_disabled:
            raise MailboxDisabled(address)
        ids.append(found[0])
        addressed[found[0]] = address
    return Prepared(delivery, list(dict.fromkeys(ids)), addressed)


def _seal_copies(item: Prepared, keys: dict[int, bytes]) -> None:
    assert item.delivery.meta is not None
    meta_bytes, imap_bytes = split_meta(item.delivery.meta)
    for mailbox_id in item.mailbox_ids:
        scope, blob_id = mailbox_scope(mailbox_id), new_blob_id()
        key = keys[mailbox_id]
        item.copies.append(
            (
                mailbox_id,
                blob_id,
                seal(key, item.delivery.raw, aad_for(scope, blob_id, "raw")),
                seal(key, meta_bytes, aad_for(scope, blob_id, "meta")),
                seal(key, imap_bytes, aad_for(scope, blob_id, "imap")),
            )
        )


async def _data_keys(
    app: App, conn: AsyncConnection | None, ids: Iterable[int]
) -> dict[int, bytes]:
    """The data key of each mailbox: from the keyring's cache, else read with ``conn``."""
    keys: dict[int, bytes] = {}
    missing: list[int] = []
    for mailbox_id in ids:
        cached = app.keyring.cached_key(mailbox_scope(mailbox_id))
        if cached is None:
            missing.append(mailbox_id)
        else:
            keys[mailbox_id] = cached
    if missing:
        async with contextlib.AsyncExitStack() as stack:
            if conn is None:
                conn = await stack.enter_async_context(app.db.read())
            for mailbox_id in missing:
                keys[mailbox_id] = await app.keyring.data_key(conn, mailbox_scope(mailbox_id))
    return keys


async def prepare_delivery(app: App, delivery: Delivery) -> Prepared:
    """Validate, resolve, parse and seal one delivery, and stage its blobs (large: on disk).

    Runs in the caller's task, before the delivery joins a group commit, so that the group's
    serial part is only the database transaction. Needs no database round trip when the
    recipients and their data keys are in the node's caches. Raises :class:`CaduceeError`.
    """
    _check_delivery(delivery)
    known: dict[str, tuple[int, bool]] = {}
    unresolved = []
    cache = recipient_cache(app)
    for address in delivery.addresses:
        mailbox = cache.cached(address)
        if mailbox is None:
            unresolved.append(address)
        else:
            known[address] = (mailbox.id, mailbox.disabled)
    if unresolved:
        async with app.db.read() as conn:
            known.update(await delivery_repo.mailbox_ids_by_address(conn, unresolved))
    item = _resolved(delivery, known, refuses_disabled(app))
    keys = await _data_keys(app, None, item.mailbox_ids)
    if delivery.meta is None or len(delivery.raw) >= SEAL_OFF_LOOP_BYTES:
        # one hand-over to a thread for both (each one waits for the event loop twice)
        await asyncio.to_thread(_parsed_and_sealed, item, keys)
    else:
        _seal_copies(item, keys)
    await write_blobs(app, [item])
    return item


def _parsed_and_sealed(item: Prepared, keys: dict[int, bytes]) -> None:
    """The delivery's metadata if it has none yet, then its sealed copies: the MIME scan, the
    metadata's serialisation and the encryption (~0.15 ms of a 20 kB message's, once on the
    event loop) in one worker thread."""
    _extract_metas([item.delivery])
    _seal_copies(item, keys)


async def write_blobs(app: App, items: Sequence[Prepared]) -> None:
    """What the blob store needs on disk before the commit (large blobs: fsynced files)."""
    try:
        await app.blobs.stage([blob for item in items for blob in item.blobs])
    except BaseException:
        await discard_blobs(app, items)
        raise


async def discard_blobs(app: App, items: Sequence[Prepared]) -> None:
    """Remove the staged blobs of deliveries that will not be committed."""
    await app.blobs.remove_files(blob_id for item in items for blob_id, _ in item.blobs)


async def _prepare(
    app: App, deliveries: Sequence[Delivery], results: list[Result]
) -> list[tuple[int, Prepared]]:
    """Validate, resolve addresses (one query), parse and seal; outside any write lock."""
    checked: list[tuple[int, Delivery]] = []
    for index, delivery in enumerate(deliveries):
        try:
            _check_delivery(delivery)
        except CaduceeError as error:
            results[index] = error
            continue
        checked.append((index, delivery))
    await _with_metas([delivery for _, delivery in checked])
    prepared: list[tuple[int, Prepared]] = []
    async with app.db.read() as conn:
        known = await delivery_repo.mailbox_ids_by_address(
            conn, (a for _, d in checked for a in d.addresses)
        )
        for index, delivery in checked:
            try:
                item = _resolved(delivery, known, refuses_disabled(app))
            except CaduceeError as error:
                results[index] = error
                continue
            _seal_copies(item, await _data_keys(app, conn, item.mailbox_ids))
            prepared.append((index, item))
    return prepared


Result = list[StoredMessage] | CaduceeError


async def store_batch(app: App, deliveries: Sequence[Delivery]) -> list[Result]:
    """Store every delivery in one transaction; per delivery, its messages or its error.

    Each delivery is all or nothing across its mailboxes; a refused delivery (unknown or
    disabled mailbox, full mailbox, missing folder) does not affect the others.
    """
    results: list[Result] = [[] for _ in deliveries]
    prepared = await _prepare(app, deliveries, results)
    await write_blobs(app, [item for _, item in prepared])
    outcomes = await commit_prepared(app, [item for _, item in prepared])
    for (index, _), outcome in zip(prepared, outcomes, strict=True):
        results[index] = outcome
    return results


#: Quota thresholds (per cent) whose crossing the owner is told of (``services.quota_notices``);
#: 100 means past the quota (only a télétransmission mailbox goes there: it never refuses a
#: return).
QUOTA_THRESHOLDS = (80, 95, 100)


def quota_level(used: int, quota: int) -> int:
    """The highest threshold of :data:`QUOTA_THRESHOLDS` ``used`` bytes reach (0: none)."""
    if quota <= 0:
        return 100 if used > 0 else 0
    if used > quota:
        return 100
    return max((t for t in QUOTA_THRESHOLDS[:-1] if used * 100 >= t * quota), default=0)


async def commit_prepared(app: App, items: Sequence[Prepared]) -> list[Result]:
    """Commit prepared deliveries in one transaction (group commit); per delivery, its stored
    messages or why it was refused. Staged blobs no committed row names are removed."""
    return (await commit_group(app, items))[0]


async def commit_group(app: App, items: Sequence[Prepared]) -> tuple[list[Result], set[int]]:
    """:func:`commit_prepared`, and the mailboxes whose usage this group took across a quota
    threshold (:func:`quota_level`), found from the rows the group locks anyway: no query."""
    commit = group_commit(app, items, await group_audit_key(app, items))
    try:
        ids = await app.db.write_sync(commit.run)
    except BaseException:
        await abandon_group(app, commit)
        raise
    return await settle_group(app, commit, ids)


async def group_audit_key(app: App, items: Sequence[Prepared]) -> bytes:
    """The audit chain's key if the group's deliveries are audited (cached: no database read)."""
    audited = any(item.delivery.audit_actor is not None for item in items)
    return await audit.chain_key(app.db) if audited else b""


def group_commit(app: App, items: Sequence[Prepared], audit_key: bytes) -> GroupCommit:
    """The transaction of a group of prepared deliveries: its :meth:`GroupCommit.run` goes to
    ``Database.write_sync`` (or a series of them), then :func:`settle_group` or, if it did not
    commit, :func:`abandon_group`."""
    return GroupCommit(app, list(items), [[] for _ in items], audit_key)


async def abandon_group(app: App, commit: GroupCommit) -> None:
    """The group did not commit: its staged blobs are removed."""
    await app.blobs.remove_files(blob_id for item in commit.prepared for blob_id, _ in item.blobs)


async def settle_group(
    app: App, commit: GroupCommit, ids: list[int]
) -> tuple[list[Result], set[int]]:
    """After the group's commit (``ids``: its rows): the staged blobs of refused deliveries
    removed, IDLE sessions told, the text index offered the messages; per delivery its stored
    messages or its refusal, and the mailboxes taken across a quota threshold."""
    items, results = commit.prepared, commit.results
    unused = [
        blob_id for item in items for blob_id, _ in item.blobs if blob_id not in commit.stored_blobs
    ]
    if unused:
        await app.blobs.remove_files(unused)
    made = commit.made
    # Deliveries past the quota (télétransmission) are checked by their flow, after it has
    # archived what it could.
    flowed = {m for item in items if item.delivery.past_quota for m in item.mailbox_ids}
    crossed = {
        mailbox_id
        for mailbox_id, delta in commit.deltas.items()
        if mailbox_id not in flowed
        and quota_level((box := commit.boxes[mailbox_id]).used_bytes - delta, box.quota_bytes)
        < quota_level(box.used_bytes, box.quota_bytes)
    }
    for index, row_index, message in made:
        entry = results[index]
        assert isinstance(entry, list)
        entry.append(dataclasses.replace(message, id=ids[row_index]))
    if made:
        try:
            await mailbox_events(app).publish({message.mailbox_id for _, _, message in made})
        except Exception:  # stored is stored: a lost wake-up only delays IDLE sessions
            log.exception("could not publish mailbox events")
        text_index.indexer(app).offer(
            (ids[row_index], message.blob_id, message.mailbox_id, items[index].delivery.raw)
            for index, row_index, message in made
        )
    return results, crossed


def _copy_keywords(delivery: Delivery, address: str) -> tuple[str, ...]:
    extra = delivery.address_keywords.get(address, ()) if address else ()
    return tuple(dict.fromkeys((*delivery.keywords, *extra)))


class GroupCommit:
    """The write transaction of one group: plain synchronous code, run in one go."""

    def __init__(
        self, app: App, prepared: list[Prepared], results: list[Result], audit_key: bytes
    ) -> None:
        self.app, self.prepared, self.results = app, prepared, results
        self.audit_key = audit_key
        self.stored_blobs: set[str] = set()
        self.made: list[tuple[int, int, StoredMessage]] = []  # (result index, row, message)
        self.boxes: dict[int, delivery_repo.MailboxState] = {}  # as left by the group
        self.deltas: dict[int, int] = {}  # bytes the group added per mailbox

    def run(self, conn: Connection) -> list[int]:
        prepared = self.prepared
        boxes, folders = delivery_repo.lock_group_state(
            conn,
            (m for item in prepared for m in item.mailbox_ids),
            {item.delivery.folder for item in prepared},
        )
        rows: list[dict[str, Any]] = []
        touched: dict[int, delivery_repo.FolderState] = {}
        deltas: dict[int, int] = {}
        self.boxes, self.deltas = boxes, deltas
        for index, item in enumerate(prepared):
            delivery = item.delivery
            try:
                _admit(item, boxes, folders, deltas, refuses_disabled(self.app))
            except CaduceeError as error:
                self.results[index] = error
                continue
            when = (delivery.internal_date or datetime.now(UTC)).astimezone(UTC)
            size = len(delivery.raw)
            sent_size = pop3_size(delivery.raw)  # what POP3 will announce (RFC 1939 §5)
            for mailbox_id, blob_id, _, sealed_meta, sealed_imap in item.copies:
                folder = folders[(mailbox_id, delivery.folder)]
                keywords = _copy_keywords(delivery, item.addressed.get(mailbox_id, ""))
                if folder.id not in touched:  # one new MODSEQ per folder per group
                    folder.highestmodseq += 1
                    touched[folder.id] = folder
                uid, folder.uidnext = folder.uidnext, folder.uidnext + 1
                deltas[mailbox_id] = deltas.get(mailbox_id, 0) + size
                boxes[mailbox_id].used_bytes += size
                rows.append(
                    {
                        "mailbox_id": mailbox_id,
                        "folder_id": folder.id,
                        "uid": uid,
                        "modseq": folder.highestmodseq,
                        "flags": delivery.flags,
                        "keywords": " ".join(keywords),
                        "internal_date": when,
                        "size": size,
                        "blob_id": blob_id,
                        "meta_sealed": sealed_meta,
                        "imap_sealed": sealed_imap,
                        "pop3_size": sent_size,
                    }
                )
                self.made.append(
                    (
                        index,
                        len(rows) - 1,
                        StoredMessage(
                            id=0,
                            mailbox_id=mailbox_id,
                            folder_id=folder.id,
                            uid=uid,
                            modseq=folder.highestmodseq,
                            flags=delivery.flags,
                            keywords=keywords,
                            internal_date=when,
                            size=size,
                            blob_id=blob_id,
                            meta=delivery.meta or {},
                        ),
                    )
                )
                self.stored_blobs.add(blob_id)
        self.app.blobs.record_sync(
            conn, [b for item in prepared for b in item.blobs if b[0] in self.stored_blobs]
        )
        ids = delivery_repo.insert_messages(conn, rows)
        delivery_repo.save_folders(conn, list(touched.values()))
        delivery_repo.add_used_bytes(conn, deltas)
        self._audit(conn, boxes, ids)
        return ids

    def _audit(
        self, conn: Connection, boxes: dict[int, delivery_repo.MailboxState], ids: list[int]
    ) -> None:
        """One ``message.deliver`` record per stored copy (ANS CONF.17-18), all in one
        multi-row INSERT: who delivered, to which mailbox, which message — no content."""
        events = [
            audit.AuditEvent(
                actor=delivery.audit_actor,
                action="message.deliver",
                target=boxes[message.mailbox_id].address,
                source=delivery.audit_source,
                details={
                    "folder": delivery.folder,
                    "uid": message.uid,
                    "message_id": ids[row_index],
                    "size": message.size,
                },
            )
            for index, row_index, message in self.made
            if (delivery := self.prepared[index].delivery).audit_actor is not None
        ]
        audit.append_sync(conn, self.audit_key, events)


def _admit(
    item: Prepared,
    boxes: dict[int, delivery_repo.MailboxState],
    folders: dict[tuple[int, str], delivery_repo.FolderState],
    deltas: dict[int, int],
    refuse_disabled: bool,
) -> None:
    """Refuse the delivery if any of its mailboxes cannot take it (nothing is changed then)."""
    size = len(item.delivery.raw)
    for mailbox_id in item.mailbox_ids:
        box = boxes.get(mailbox_id)
        if box is None:
            raise NotFound("Boîte aux lettres introuvable.", "Mailbox not found.")
        if box.disabled and refuse_disabled:
            raise MailboxDisabled(box.address)
        if item.addressed.get(mailbox_id, box.address) != box.address:  # renamed meanwhile
            raise _unknown(item.addressed[mailbox_id])
        if box.used_bytes + size > box.quota_bytes and not item.delivery.past_quota:
            raise QuotaExceeded(
                f"La boîte {box.address} est pleine (quota dépassé).",
                f"Mailbox {box.address} is full (over quota).",
            )
        if (mailbox_id, item.delivery.folder) not in folders:
            raise NotFound(
                f"Dossier « {item.delivery.folder} » introuvable.",
                f"Folder '{item.delivery.folder}' not found.",
            )


async def store_message(
    app: App,
    mailbox_id: int,
    folder_name: str,
    raw: bytes,
    *,
    flags: int = 0,
    keywords: tuple[str, ...] = (),
    internal_date: datetime | None = None,
) -> StoredMessage:
    """Seal and store one message in a folder; returns once it is durably committed."""
    delivery = Delivery(raw, [mailbox_id], folder_name, flags, keywords, internal_date)
    [result] = await store_batch(app, [delivery])
    if isinstance(result, CaduceeError):
        raise result
    return result[0]


async def read_message(app: App, message_id: int) -> tuple[StoredMessage, bytes]:
    """A stored message, its metadata opened and its raw bytes decrypted.

    Authorization is the caller's job (``services.mailboxes.open_mailbox``).
    """
    async with app.db.read() as conn:
        row = await messages_repo.message_row(conn, message_id)
        if row is None:
            raise NotFound("Message introuvable.", "Message not found.")
        scope = mailbox_scope(row.mailbox_id)
        meta = json.loads(
            await app.keyring.open(conn, scope, row.blob_id, "meta", bytes(row.meta_sealed))
        )
        sealed_raw = await app.blobs.get(conn, row.blob_id)
        raw = await app.keyring.open(conn, scope, row.blob_id, "raw", sealed_raw)
    internal_date = row.internal_date
    if internal_date.tzinfo is None:
        internal_date = internal_date.replace(tzinfo=UTC)
    message = StoredMessage(
        id=row.id,
        mailbox_id=row.mailbox_id,
        folder_id=row.folder_id,
        uid=row.uid,
        modseq=row.modseq,
        flags=row.flags,
        keywords=tuple(row.keywords.split()),
        internal_date=internal_date,
        size=row.size,
        blob_id=row.blob_id,
        meta=meta,
    )
    return message, raw


#: Audit actions of :func:`expunge_messages` (ANS CONF.17-18: deletions are traced).
DELETE = "message.delete"  # the user removed messages for good (IMAP, POP3, webmail)
MOVE_OUT = "message.move_out"  # moved to another mailbox: gone from this one
UNDO_APPEND = None  # a MULTIAPPEND refused as a whole: never acknowledged, nothing to trace


# --- retention -------------------------------------------------------------------------------
#
# A télétransmission (TLT) mailbox holds only lots (the Sent copy kept by record_lot) and
# returns (every message the MX delivers to it): each is kept ``[teletransmission]
# retention_days`` (90) from its internal date, whatever the door asks (IMAP EXPUNGE, CLOSE,
# MOVE to another mailbox, DELETE of a folder; POP3 DELE; webmail; REST API). Moving it to
# another folder of the same mailbox is no deletion and stays allowed.


async def _held(
    app: App,
    conn: AsyncConnection,
    folder_id: int,
    message_ids: Sequence[int] | None,
    now: datetime | None = None,
) -> dict[int, datetime]:
    keep = timedelta(days=app.settings.tlt_retention_days)
    since = (now or datetime.now(UTC)) - keep
    rows = await mailstore_repo.retained(conn, folder_id, message_ids, MailboxType.TLT.value, since)
    return {message_id: received + keep for message_id, received in rows}


async def retained(
    app: App, folder_id: int, message_ids: Sequence[int] | None, *, now: datetime | None = None
) -> dict[int, datetime]:
    """The messages of ``folder_id`` (of ``message_ids``; all when None) that may not be
    deleted yet, each with the moment from which it may. A door asks this to refuse at once
    (POP3 DELE) or to remove only what it may (IMAP CLOSE); :func:`expunge_messages` checks
    it again in its own transaction."""
    async with app.db.read() as conn:
        return await _held(app, conn, folder_id, message_ids, now)


async def held_in_folder(
    app: App, conn: AsyncConnection, folder_id: int, now: datetime | None = None
) -> dict[int, datetime]:
    """Every message of ``folder_id`` under the retention rule, in the caller's transaction
    (a mailbox's deletion, ``services.lifecycle``)."""
    return await _held(app, conn, folder_id, None, now)


def retention_hold(address: str, held: dict[int, datetime], days: int) -> RetentionHold:
    """The refusal naming how many messages are held and from when all may be deleted."""
    until = max(held.values())
    local = until.astimezone(PARIS)
    count = len(held)
    return RetentionHold(
        f"{count} message(s) de la boîte {address} (télétransmission : lots et retours) "
        f"doivent être conservés {days} jours : suppression possible à partir du "
        f"{local:%d/%m/%Y à %H:%M}.",
        f"{count} message(s) of mailbox {address} (télétransmission: lots and returns) must "
        f"be kept {days} days: they can be deleted from {local:%Y-%m-%d %H:%M} (Paris time).",
        count=count,
        until=until,
    )


async def check_retention(
    app: App,
    conn: AsyncConnection,
    folder_id: int,
    message_ids: Sequence[int] | None,
    now: datetime | None = None,
) -> None:
    """Raise :class:`RetentionHold` if any of the messages (all of the folder's when None) may
    not be deleted yet; in the caller's transaction ``conn``."""
    held = await _held(app, conn, folder_id, message_ids, now)
    if held:
        folder = await mailstore_repo.folder_by_id(conn, folder_id)
        mailbox = await directory_repo.mailbox_by_id(conn, folder.mailbox_id) if folder else None
        address = mailbox.address if mailbox is not None else f"#{folder_id}"
        raise retention_hold(address, held, app.settings.tlt_retention_days)


async def expunge_messages(
    app: App,
    folder_id: int,
    message_ids: list[int],
    *,
    actor: str,
    source: str,
    action: str | None = DELETE,
    now: datetime | None = None,
) -> int:
    """Remove messages from a folder for good (IMAP EXPUNGE, CLOSE and MOVE's source, POP3
    UPDATE, webmail): rows, bytes used, blobs no other copy shares; their UIDs are recorded for
    IMAP QRESYNC (RFC 7162 VANISHED). Messages already gone are skipped. Returns how many were
    removed.

    Every door removes messages here, and the removal is audited here, in its transaction:
    ``action`` by ``actor`` (the login) from ``source``, target the mailbox's address, details
    the folder id, the UIDs and message ids — never a subject, an address or any content.

    The retention rule is checked here too, in the same transaction: if any of the messages
    is a télétransmission lot or return younger than the retention period, nothing is removed
    and :class:`RetentionHold` is raised (all or nothing: a refused command changes nothing,
    and the reason names how many are held and until when). Only the undoing of a MULTIAPPEND
    that was never acknowledged (``action`` None) is exempt.
    """
    if not message_ids:
        return 0
    async with app.db.write() as conn:
        if action is not UNDO_APPEND:
            await check_retention(app, conn, folder_id, message_ids, now)
        removed, gone = await mailstore_repo.expunge(conn, folder_id, message_ids)
        await app.blobs.forget(conn, gone)
        if removed and action is not None:
            mailbox = await directory_repo.mailbox_by_id(conn, removed[0][0])
            await audit.append(
                conn,
                audit.AuditEvent(
                    actor=actor,
                    action=action,
                    target=mailbox.address if mailbox is not None else f"mailbox:{removed[0][0]}",
                    source=source,
                    details={
                        "folder_id": folder_id,
                        "count": len(removed),
                        "uids": ",".join(str(uid) for _, uid, _ in removed),
                        "message_ids": ",".join(str(mid) for _, _, mid in removed),
                    },
                ),
            )
    await app.blobs.remove_files(gone)  # after the commit: a crash leaves a harmless orphan
    if removed:
        try:
            await mailbox_events(app).publish({mailbox_id for mailbox_id, _, _ in removed})
        except Exception:
            log.exception("could not publish mailbox events")
    return len(removed)
