"""A POP3 maildrop (RFC 1939): the Inbox of the login's own mailbox, as a snapshot.

The snapshot is taken at login; messages deleted meanwhile by an IMAP client are reported as
gone, never served half. Deletions marked during the session are applied at QUIT, through the
same expunge as IMAP, so both protocols can use one mailbox at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from caducee.app import App
from caducee.domain.addresses import normalize_address
from caducee.domain.pop3_octets import pop3_size
from caducee.errors import NotFound
from caducee.services import mailboxes
from caducee.services.messages import expunge_messages, read_message, retained, retention_hold
from caducee.store import directory_repo, lease_repo, mailstore_repo

log = logging.getLogger(__name__)

#: A POP3 session's lease on its maildrop lasts this long unless refreshed (the time another
#: session waits for the maildrop of a process that was killed).
LEASE_SECONDS = 60.0
LEASE_REFRESH_SECONDS = 20.0


@dataclass(frozen=True)
class DropMessage:
    message_id: int
    size: int  # the octets RETR sends (RFC 1939 §5 "exact size"), not the stored size
    uidl: str  # RFC 1939 §7: unique, persistent, 1–70 printable characters


@dataclass(frozen=True)
class Maildrop:
    mailbox_id: int
    folder_id: int
    messages: tuple[DropMessage, ...]
    login: str  # who opened it, audited with the deletions at QUIT
    source: str


async def open_maildrop(app: App, login: str, source: str) -> Maildrop:
    """The Inbox of the mailbox whose address is ``login``: an account's personal mailbox, or
    the mailbox a mailbox login names (``open_mailbox`` decides)."""
    login = normalize_address(login)
    access = await mailboxes.open_mailbox(app, login, login, source=source)
    async with app.db.read() as conn:
        inbox = await directory_repo.folder_by_name(conn, access.mailbox.id, "INBOX")
        if inbox is None:
            raise NotFound("Boîte de réception introuvable.", "Inbox not found.")
        rows = await mailstore_repo.uids_and_sizes(conn, inbox.id)
    missing = await _missing_sizes(app, [id_ for id_, _, size in rows if size is None])
    return Maildrop(
        access.mailbox.id,
        inbox.id,
        tuple(
            DropMessage(id_, known, f"{inbox.uidvalidity}.{uid}")
            for id_, uid, size in rows
            # None: expunged while its size was being computed, so not in the snapshot
            if (known := size if size is not None else missing.get(id_)) is not None
        ),
        login,
        source,
    )


async def _missing_sizes(app: App, message_ids: list[int]) -> dict[int, int]:
    """The POP3 size of messages stored before it was recorded at delivery (migration 0021):
    read once, counted, and recorded, so that the next login reads the column alone. A
    message deleted meanwhile is left out (RETR will answer that it is gone)."""
    if not message_ids:
        return {}
    sizes: dict[int, int] = {}
    for message_id in message_ids:
        try:
            _, raw = await read_message(app, message_id)
        except NotFound:
            continue
        sizes[message_id] = pop3_size(raw)
    async with app.db.write() as conn:
        await mailstore_repo.set_pop3_sizes(conn, sizes)
    return sizes


async def retrieve(app: App, drop: Maildrop, message: DropMessage) -> bytes:
    """The raw message, or NotFound if another client deleted it since the snapshot."""
    stored, raw = await read_message(app, message.message_id)
    if stored.folder_id != drop.folder_id:
        raise NotFound("Message supprimé entre-temps.", "Message deleted meanwhile.")
    return raw


async def may_delete(app: App, drop: Maildrop, message: DropMessage) -> None:
    """Raise :class:`~caducee.errors.RetentionHold` when the retention rule keeps ``message``
    (a télétransmission lot or return younger than the retention period): POP3 DELE refuses
    it at once (RFC 1939 §5) instead of failing at QUIT."""
    held = await retained(app, drop.folder_id, [message.message_id])
    if held:
        async with app.db.read() as conn:
            mailbox = await directory_repo.mailbox_by_id(conn, drop.mailbox_id)
        address = mailbox.address if mailbox is not None else drop.login
        raise retention_hold(address, held, app.settings.tlt_retention_days)


async def delete(app: App, drop: Maildrop, doomed: list[DropMessage]) -> int:
    """Apply the deletions of the session (RFC 1939 §6 UPDATE state, DELE'd messages) through
    the audited expunge. Returns how many."""
    return await expunge_messages(
        app,
        drop.folder_id,
        [m.message_id for m in doomed],
        actor=drop.login,
        source=drop.source,
    )


class OpenMaildrops:
    """The maildrops open in a POP3 session: one session per maildrop at a time (RFC 1939 §8,
    exclusive access), across every worker process and node sharing the database.

    A session holds a lease in the database (``store.lease_repo``), taken by one atomic
    insert-or-take-over-if-expired statement, refreshed every :data:`LEASE_REFRESH_SECONDS`
    while the session lives and deleted when it ends; a process killed with its sessions leaves
    leases that expire on their own after :data:`LEASE_SECONDS`. Held by the node's app (the
    maildrops this process holds, so that a second session here is refused without a query)."""

    def __init__(self, app: App) -> None:
        self.app = app
        self._held: dict[int, tuple[str, asyncio.Task[None] | None]] = {}

    async def acquire(self, mailbox_id: int) -> bool:
        """Take the maildrop of ``mailbox_id``; False when another session holds it."""
        if mailbox_id in self._held:
            return False
        holder = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(8)}"[-100:]
        self._held[mailbox_id] = (holder, None)  # this process's other sessions: refused now
        try:
            now = datetime.now(UTC)
            async with self.app.db.write() as conn:
                taken = await lease_repo.take_pop3(
                    conn, mailbox_id, holder, now, now + timedelta(seconds=LEASE_SECONDS)
                )
        except BaseException:
            del self._held[mailbox_id]
            raise
        if not taken:
            del self._held[mailbox_id]
            return False
        keeper = asyncio.create_task(self._keep(mailbox_id, holder), name="pop3-lease")
        self._held[mailbox_id] = (holder, keeper)
        return True

    async def _keep(self, mailbox_id: int, holder: str) -> None:
        while True:
            await asyncio.sleep(LEASE_REFRESH_SECONDS)
            try:
                async with self.app.db.write() as conn:
                    kept = await lease_repo.refresh_pop3(
                        conn,
                        mailbox_id,
                        holder,
                        datetime.now(UTC) + timedelta(seconds=LEASE_SECONDS),
                    )
            except Exception:
                log.warning("pop3 lease not refreshed mailbox=%d, retrying", mailbox_id)
                continue
            if not kept:
                log.warning("pop3 lease lost mailbox=%d", mailbox_id)
                return

    async def release(self, mailbox_id: int) -> None:
        holder, keeper = self._held.pop(mailbox_id, ("", None))
        if keeper is not None:
            keeper.cancel()
        if holder:
            async with self.app.db.write() as conn:
                await lease_repo.release_pop3(conn, mailbox_id, holder)


def open_maildrops(app: App) -> OpenMaildrops:
    return app.component(OpenMaildrops, OpenMaildrops)
