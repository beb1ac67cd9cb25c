"""A POP3 maildrop (RFC 1939): the Inbox of the login's own mailbox, as a snapshot.

The snapshot is taken at login; messages deleted meanwhile by an IMAP client are reported as
gone, never served half. Deletions marked during the session are applied at QUIT, through the
same expunge as IMAP, so both protocols can use one mailbox at once.
"""

from __future__ import annotations

from dataclasses import dataclass

from caducee.app import App
from caducee.domain.addresses import normalize_address
from caducee.domain.pop3_octets import pop3_size
from caducee.errors import NotFound
from caducee.services import mailboxes
from caducee.services.messages import expunge_messages, read_message, retained, retention_hold
from caducee.store import directory_repo, mailstore_repo


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
    """The maildrops open in a POP3 session on this node: one session per maildrop at a time
    (RFC 1939 §8, exclusive access). Held by the node's app, not by the module, so that two
    apps in one process (tests, several nodes) do not share it."""

    def __init__(self, _app: App | None = None) -> None:
        self._open: set[int] = set()

    def acquire(self, mailbox_id: int) -> bool:
        """Take the maildrop of ``mailbox_id``; False when another session holds it."""
        if mailbox_id in self._open:
            return False
        self._open.add(mailbox_id)
        return True

    def release(self, mailbox_id: int) -> None:
        self._open.discard(mailbox_id)


def open_maildrops(app: App) -> OpenMaildrops:
    return app.component(OpenMaildrops, OpenMaildrops)
