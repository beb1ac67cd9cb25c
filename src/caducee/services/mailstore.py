"""What IMAP needs on folders and messages, with the rules: names, rights, MODSEQ, quota.

Names: the account's personal mailbox is the personal namespace (``INBOX``, ``Sent``, ...,
hierarchy delimiter ``/``); every other mailbox it may open (owned ORG/APP/TLT mailboxes,
delegations) appears under the shared namespace ``Partagés/<address>/...`` (RFC 2342). A
mailbox login (a TLT mailbox's address, logged in with its own app password) has that mailbox
as its personal namespace and no shared one. Every
name is resolved to (mailbox address, folder) and **every** access goes through
:func:`caducee.services.mailboxes.open_mailbox`, which decides and audits; an unknown mailbox and
a forbidden one get the same answer.

Rights: the owner has every right; a delegate with send-on-behalf may read, change flags,
append, copy in and expunge; a read-only delegate may only read. Only the owner creates,
deletes or renames folders.

After every change, ``services.events`` wakes the IDLE sessions of the mailbox on every node.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import functools
import json
import logging
import unicodedata
import weakref
from array import array
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple, TypeVar

from caducee.app import App
from caducee.domain.folder_index import FolderIndex
from caducee.domain.message_meta import (
    compact_structures,
    header_texts,
    parsed_parts,
    split_meta,
)
from caducee.domain.message_text import searchable_fields
from caducee.domain.mime_structure import Structure, parse_addresses
from caducee.domain.model import Flag, Folder, FolderCounts, IndexEntry, Mailbox, MessageSummary
from caducee.errors import (
    AccessDenied,
    AlreadyExists,
    CaduceeError,
    IntegrityError,
    InvalidInput,
    NotFound,
    QuotaExceeded,
    RetentionHold,
)
from caducee.ids import new_blob_id
from caducee.services import bounded_cache, cpu_pool, mailboxes, structure_blocks
from caducee.services.bounded_cache import BoundedCache
from caducee.services.events import mailbox_events
from caducee.services.messages import (
    DELETE,
    MOVE_OUT,
    UNDO_APPEND,
    Delivery,
    check_retention,
    expunge_messages,
    retained,
    retention_hold,
    store_batch,
)
from caducee.store import crypto, directory_repo
from caducee.store import mailstore_repo as repo
from caducee.store.connection import AsyncConnection
from caducee.store.keyring import mailbox_scope

log = logging.getLogger(__name__)
T = TypeVar("T")

DELIMITER = "/"
SHARED_PREFIX = "Partagés"
MAX_NAME_CHARS = 200
MAX_DEPTH = 16
META_CACHE_ENTRIES = 50_000
META_CACHE_BYTES = 64 * 1024 * 1024


class NoPermission(AccessDenied):
    """Allowed to see the folder, not to do this (IMAP ``NO [NOPERM]``)."""


class NonExistent(NotFound):
    """No such folder, or none the user may see (IMAP ``NO [NONEXISTENT]``)."""


class HasChildren(InvalidInput):
    """RFC 5530 ``HASCHILDREN``."""


def nonexistent(name: str) -> NonExistent:
    return NonExistent(
        f"Dossier inexistant ou inaccessible : {name}.", f"No such folder or no access: {name}."
    )


def no_permission() -> NoPermission:
    return NoPermission(
        "Votre délégation ne permet pas cette opération.", "Your delegation does not allow this."
    )


@dataclass(frozen=True)
class Rights:
    read: bool = True
    write: bool = False  # flags, expunge, append, copy into
    manage: bool = False  # create, delete, rename folders


OWNER = Rights(True, True, True)


@dataclass(frozen=True)
class Place:
    """A name resolved: the mailbox address, the folder name inside it (None: a namespace
    level that holds no messages), and the IMAP name it was given as."""

    address: str
    folder: str | None
    shared: bool


@dataclass(frozen=True)
class OpenFolder:
    mailbox: Mailbox
    folder: Folder
    rights: Rights
    name: str  # the IMAP name (personal or shared namespace)
    actor: str  # the login that opened it (audited with what it removes)
    source: str  # where from: client address, "web", ...
    first_recent: int | None = None  # read when asked (SELECT): see claim_recent


@dataclass(frozen=True)
class Listed:
    name: str
    folder: Folder | None  # None: \Noselect level (shared namespace roots) or nonexistent
    has_children: bool
    mailbox_address: str
    subscribed: bool = False
    nonexistent: bool = False  # only a subscription left (RFC 5258 \NonExistent)


# --- names -----------------------------------------------------------------------------------


def normalize_folder(name: str) -> str:
    """INBOX is case-insensitive (RFC 3501 §5.1), also as the first level of a path."""
    head, sep, rest = name.partition(DELIMITER)
    if head.upper() == "INBOX":
        return "INBOX" + sep + rest
    return name


def check_folder_name(name: str) -> str:
    """A folder name we accept to create: NFC, bounded, no empty / dot levels, no wildcards,
    no control characters, not in the shared namespace."""
    name = normalize_folder(unicodedata.normalize("NFC", name))
    levels = name.split(DELIMITER)
    bad = (
        not name
        or len(name) > MAX_NAME_CHARS
        or len(levels) > MAX_DEPTH
        or any(level in ("", ".", "..") or level != level.strip() for level in levels)
        or any(c in '%*\\"' or ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in name)
        or levels[0].casefold() == SHARED_PREFIX.casefold()
    )
    if bad:
        raise InvalidInput(
            "Nom de dossier invalide (niveaux vides, « . », « .. », caractères de contrôle, "
            f"jokers ou préfixe « {SHARED_PREFIX} » interdits).",
            "Invalid folder name (empty levels, '.', '..', control characters, wildcards or "
            f"the '{SHARED_PREFIX}' prefix are not allowed).",
        )
    return name


def resolve(login: str, name: str) -> Place:
    """Where an IMAP name points: the personal mailbox or one under ``Partagés/<address>``."""
    name = unicodedata.normalize("NFC", name)
    head, _, rest = name.partition(DELIMITER)
    if head.casefold() == SHARED_PREFIX.casefold():
        address, _, folder = rest.partition(DELIMITER)
        return Place(address.lower(), normalize_folder(folder) if folder else None, True)
    return Place(login, normalize_folder(name), False)


def shared_name(address: str, folder: str) -> str:
    return f"{SHARED_PREFIX}{DELIMITER}{address}{DELIMITER}{folder}"


def _rights(access: mailboxes.Access) -> Rights:
    if not access.delegated:
        return OWNER
    return Rights(True, access.can_send, False)


async def _access(app: App, login: str, place: Place, source: str) -> tuple[Mailbox, Rights]:
    mailbox, rights, _ = await _access_reading(app, login, place, source, mailboxes.read_nothing)
    return mailbox, rights


async def _access_reading(
    app: App,
    login: str,
    place: Place,
    source: str,
    read: Callable[[AsyncConnection, Mailbox], Awaitable[T]],
) -> tuple[Mailbox, Rights, T]:
    """The mailbox of ``place`` if ``login`` may use it, and ``read`` of it in the same
    transaction (``mailboxes.open_mailbox_reading``)."""
    if not place.address or any(c in place.address for c in '%*\\"') or len(place.address) > 320:
        raise nonexistent(place.address)
    try:
        access, got = await mailboxes.open_mailbox_reading(
            app, login, place.address, read, source=source
        )
    except (AccessDenied, InvalidInput):
        # Unknown and forbidden look the same: nothing is learnt about other mailboxes.
        raise nonexistent(place.address) from None
    return access.mailbox, _rights(access), got


async def open_folder(
    app: App, login: str, name: str, *, source: str, write: bool = False, recent: bool = False
) -> OpenFolder:
    """Open a folder for SELECT/EXAMINE/STATUS/APPEND/COPY (authorized and audited), in one
    read transaction; with ``recent``, the first UID still \\Recent is read in it too
    (``OpenFolder.first_recent``, for :func:`claim_recent`)."""
    place = resolve(login, name)
    if place.folder is None:
        raise nonexistent(name)
    folder_name = place.folder

    async def read(conn: AsyncConnection, mailbox: Mailbox) -> tuple[Folder | None, int | None]:
        folder = await repo.folder_by_name(conn, mailbox.id, folder_name)
        first_recent = (
            await repo.recent_uid(conn, folder.id) if recent and folder is not None else None
        )
        return folder, first_recent

    mailbox, rights, (folder, first_recent) = await _access_reading(app, login, place, source, read)
    if write and not rights.write:
        raise no_permission()
    if folder is None:
        raise nonexistent(name)
    return OpenFolder(mailbox, folder, rights, name, login, source, first_recent)


async def _mailbox_login_folders(conn: AsyncConnection, own: Mailbox | None) -> list[Folder]:
    """The folders a mailbox login sees: its mailbox's, while it and its owner are enabled
    (what ``open_mailbox`` grants it), and no shared namespace."""
    if own is None or own.disabled:
        return []
    owner = await directory_repo.account_by_id(conn, own.owner_account_id)
    if owner is None or owner.disabled:
        return []
    return await repo.list_folders(conn, own.id)


async def list_folders(app: App, login: str) -> list[Listed]:
    """Every folder the account may see: personal ones, then the shared namespace. A mailbox
    login (the address of a mailbox that is no account's) sees that mailbox's folders only."""
    async with app.db.read() as conn:
        account = await directory_repo.account_by_login(conn, login)
        own = await directory_repo.mailbox_by_address(conn, login)
        if account is None:
            folders = await _mailbox_login_folders(conn, own)
            return _tree([(f.name, f) for f in folders], login, set(), own=True)
        if account.disabled:
            return []
        others = await repo.other_mailboxes(conn, account.id, login)
        own_folders = await repo.list_folders(conn, own.id) if own and not own.disabled else []
        shared: dict[str, list[Folder]] = {}
        for address in others:
            box = await directory_repo.mailbox_by_address(conn, address)
            if box is not None:
                shared[address] = await repo.list_folders(conn, box.id)
        names = await repo.subscriptions(conn, account.id)
    out = _tree([(f.name, f) for f in own_folders], login, names, own=True)
    if shared:
        out.append(Listed(SHARED_PREFIX, None, True, ""))
        for address, found in shared.items():
            out.append(Listed(f"{SHARED_PREFIX}{DELIMITER}{address}", None, bool(found), address))
            out += _tree([(shared_name(address, f.name), f) for f in found], address, names)
    listed = {item.name for item in out}
    out += [Listed(n, None, False, "", True, True) for n in sorted(names) if n not in listed]
    return out


def _tree(
    items: list[tuple[str, Folder]], address: str, names: set[str], *, own: bool = False
) -> list[Listed]:
    present = {name for name, _ in items}
    parents = {name.rsplit(DELIMITER, 1)[0] for name in present if DELIMITER in name}
    return [
        Listed(
            name,
            folder,
            name in parents,
            address,
            folder.subscribed if own else name in names,
        )
        for name, folder in sorted(items, key=lambda i: (i[0] != "INBOX", i[0]))
    ]


# --- folder management (owner only) ----------------------------------------------------------


async def _own_place(app: App, login: str, name: str, source: str) -> tuple[Mailbox, str]:
    place = resolve(login, name)
    if place.folder is None:
        raise no_permission()
    mailbox, rights = await _access(app, login, place, source)
    if not rights.manage:
        raise no_permission()
    return mailbox, place.folder


async def create_folder(app: App, login: str, name: str, *, source: str) -> None:
    """RFC 3501 §6.3.3 CREATE; missing superior levels are created too."""
    mailbox, folder = await _own_place(app, login, name.rstrip(DELIMITER), source)
    folder = check_folder_name(folder)
    levels = folder.split(DELIMITER)
    async with app.db.write() as conn:
        if await repo.folder_by_name(conn, mailbox.id, folder) is not None:
            raise AlreadyExists(f"Le dossier {name} existe déjà.", f"Folder {name} exists.")
        for depth in range(1, len(levels) + 1):
            path = DELIMITER.join(levels[:depth])
            if await repo.folder_by_name(conn, mailbox.id, path) is None:
                await repo.insert_folder(conn, mailbox.id, path, None)
        if mailbox.address == login:  # a subscription kept from before comes back to it
            account = await directory_repo.account_by_login(conn, login)
            if account is not None and folder in await repo.subscriptions(conn, account.id):
                created = await repo.folder_by_name(conn, mailbox.id, folder)
                assert created is not None
                await repo.set_subscribed(conn, created.id, True)
                await repo.subscribe_name(conn, account.id, folder, False)
    await _publish(app, {mailbox.id})


async def delete_folder(app: App, login: str, name: str, *, source: str) -> None:
    """RFC 3501 §6.3.4 DELETE: never INBOX; not a folder with children."""
    mailbox, folder = await _own_place(app, login, name, source)
    if folder == "INBOX":
        raise InvalidInput(
            "La boîte de réception ne peut pas être supprimée.", "INBOX cannot be deleted."
        )
    async with app.db.write() as conn:
        found = await repo.folder_by_name(conn, mailbox.id, folder, for_update=True)
        if found is None:
            raise nonexistent(name)
        children = [
            f
            for f in await repo.list_folders(conn, mailbox.id)
            if f.name.startswith(folder + DELIMITER)
        ]
        if children:
            raise HasChildren(
                "Ce dossier contient des sous-dossiers : supprimez-les d'abord.",
                "This folder has subfolders: delete them first.",
            )
        await check_retention(app, conn, found.id, None)  # its messages would go with it
        if found.subscribed and mailbox.address == login:  # RFC 3501 §6.3.6: it stays
            account = await directory_repo.account_by_login(conn, login)
            if account is not None:
                await repo.subscribe_name(conn, account.id, folder, True)
        gone = await repo.delete_folder(conn, found.id)
        await app.blobs.forget(conn, gone)
    await _drop_blobs(app, gone)
    await _publish(app, {mailbox.id})


async def rename_folder(app: App, login: str, old: str, new: str, *, source: str) -> None:
    """RFC 3501 §6.3.5 RENAME (children follow; renaming INBOX moves its messages)."""
    mailbox, source_name = await _own_place(app, login, old, source)
    target_box, target_name = await _own_place(app, login, new.rstrip(DELIMITER), source)
    if target_box.id != mailbox.id:
        raise no_permission()
    target_name = check_folder_name(target_name)
    async with app.db.write() as conn:
        existing = {f.name: f for f in await repo.list_folders(conn, mailbox.id)}
        if source_name not in existing:
            raise nonexistent(old)
        if target_name in existing:
            raise AlreadyExists(f"Le dossier {new} existe déjà.", f"Folder {new} exists.")
        if target_name.startswith(source_name + DELIMITER):
            raise InvalidInput(
                "Un dossier ne peut pas devenir son propre sous-dossier.",
                "A folder cannot become its own subfolder.",
            )
        levels = target_name.split(DELIMITER)
        for depth in range(1, len(levels)):
            path = DELIMITER.join(levels[:depth])
            if path not in existing:
                await repo.insert_folder(conn, mailbox.id, path, None)
        if source_name == "INBOX":
            await repo.insert_folder(conn, mailbox.id, target_name, None)
            created = await repo.folder_by_name(conn, mailbox.id, target_name)
            assert created is not None
            await repo.move_all(conn, existing["INBOX"].id, created.id)
        else:
            moving = [
                f
                for name, f in existing.items()
                if name == source_name or name.startswith(source_name + DELIMITER)
            ]
            for folder in moving:
                renamed = target_name + folder.name[len(source_name) :]
                await repo.rename_folder(conn, folder.id, renamed, new_uidvalidity=True)
    await _publish(app, {mailbox.id})


async def set_subscribed(app: App, login: str, name: str, subscribed: bool, *, source: str) -> None:
    """RFC 3501 §6.3.6-7. The account's own folders carry their flag; any other name (shared
    namespace, or a folder that does not exist) is kept per account: a delegate's
    subscription never changes the owner's."""
    del source  # subscribing reads nothing: no access check, nothing to audit
    place = resolve(login, name)
    name = unicodedata.normalize("NFC", name)
    if any(ord(c) < 0x20 for c in name) or len(name) > MAX_NAME_CHARS * 2:
        raise nonexistent(name)
    async with app.db.write() as conn:
        account = await directory_repo.account_by_login(conn, login)
        if account is None:  # a mailbox login: its own folders' flags, nothing kept by name
            own = await directory_repo.mailbox_by_address(conn, login)
            found = None
            if own is not None and not place.shared and place.folder is not None:
                found = await repo.folder_by_name(conn, own.id, place.folder, for_update=True)
            if found is None:
                raise nonexistent(name)
            await repo.set_subscribed(conn, found.id, subscribed)
            return
        folder = None
        if not place.shared and place.folder is not None:
            own = await directory_repo.mailbox_by_address(conn, login)
            if own is not None:
                folder = await repo.folder_by_name(conn, own.id, place.folder, for_update=True)
        if folder is not None:
            await repo.set_subscribed(conn, folder.id, subscribed)
            await repo.subscribe_name(conn, account.id, place.folder or name, False)
        else:
            await repo.subscribe_name(conn, account.id, name, subscribed)


# --- state of a folder -----------------------------------------------------------------------


async def folder_state(app: App, folder_id: int) -> Folder:
    async with app.db.read() as conn:
        folder = await repo.folder_by_id(conn, folder_id)
    if folder is None:
        raise nonexistent(str(folder_id))
    return folder


async def status(app: App, folder_id: int) -> tuple[Folder, FolderCounts]:
    async with app.db.read() as conn:
        folder = await repo.folder_by_id(conn, folder_id)
        counts = await repo.counts(conn, folder_id)
    if folder is None:
        raise nonexistent(str(folder_id))
    return folder, counts


async def index(app: App, folder_id: int) -> tuple[Folder, list[IndexEntry]]:
    """A folder's state and every message's (uid, id, flags, keywords, modseq)."""
    async with app.db.read() as conn:
        folder = await repo.folder_by_id(conn, folder_id)  # first: see repo docstring
        rows = await repo.message_index(conn, folder_id)
    if folder is None:
        raise nonexistent(str(folder_id))
    return folder, rows


class FolderIndexCache(BoundedCache[int, tuple[int, FolderIndex]]):
    """Per node: the compact sequence map of recently selected folders, each valid for one
    HIGHESTMODSEQ (every change to a folder's messages takes a new MODSEQ, and the folder row
    is read before the messages, so a copy is never older than the MODSEQ it is filed under).
    A SELECT of an unchanged folder then copies arrays instead of reading every row."""

    def __init__(self, _app: App) -> None:
        super().__init__("sequence-maps", lambda entry: entry[1].nbytes, FOLDER_INDEX_CACHE_BYTES)

    def get_at(self, folder_id: int, modseq: int) -> FolderIndex | None:
        found = self.get(folder_id)
        if found is None or found[0] != modseq:
            return None
        return found[1]


#: Memory for cached sequence maps per node (a 100,000-message folder's is 3.2 MB).
FOLDER_INDEX_CACHE_BYTES = 32 * 1024 * 1024


async def folder_index(
    app: App, folder_id: int, *, read: Folder | None = None
) -> tuple[Folder, FolderIndex]:
    """A folder's state and its compact sequence map (the caller's own copy, to change as
    its session learns of changes): from the node's cache while the folder is unchanged,
    else one query. ``read``: the folder's row as just read by the caller (SELECT's
    ``open_folder``), whose HIGHESTMODSEQ names the cached map to use without reading it
    again."""
    cache = app.component(FolderIndexCache, FolderIndexCache)
    if read is not None:
        cached = cache.get_at(folder_id, read.highestmodseq)
        if cached is not None:
            return read, cached.copy()
    async with app.db.read() as conn:
        folder = await repo.folder_by_id(conn, folder_id)  # first: see repo docstring
        if folder is None:
            raise nonexistent(str(folder_id))
        cached = cache.get_at(folder_id, folder.highestmodseq)
        if cached is not None:
            return folder, cached.copy()
        columns = await repo.index_columns(conn, folder_id)
    built = (
        await asyncio.to_thread(FolderIndex, columns)
        if len(columns) > 1000
        else FolderIndex(columns)
    )
    cache.put(folder_id, (folder.highestmodseq, built))
    return folder, built.copy()


@dataclass(frozen=True)
class Changes:
    folder: Folder | None  # None: the folder was deleted or renamed away
    changed: list[IndexEntry]
    expunged: list[int]


async def changes(app: App, folder_id: int, since: int) -> Changes:
    """What changed in a folder after MODSEQ ``since``: new or re-flagged messages, expunged
    UIDs. The folder row is read first (a concurrent commit is seen twice, never missed)."""
    async with app.db.read() as conn:
        folder = await repo.folder_by_id(conn, folder_id)
        if folder is None or folder.highestmodseq <= since:
            return Changes(folder, [], [])
        changed = await repo.changed_since(conn, folder_id, since)
        expunged = await repo.expunged_since(conn, folder_id, since)
    return Changes(folder, changed, expunged)


async def claim_recent(
    app: App, folder_id: int, uidnext: int, *, claim: bool, known: int | None = None
) -> int:
    """RFC 3501 §2.3.2 \\Recent: the first UID recent for this session (claimed unless
    ``claim`` is false, as for EXAMINE); ``known``: that UID as read earlier in this command
    (``open_folder(recent=True)``), which only a claim may have raised since."""
    if known is not None:
        first = known
    else:
        async with app.db.read() as conn:
            first = await repo.recent_uid(conn, folder_id)
    if not claim or first >= uidnext:
        # nothing new to claim (the UIDs only grow): no write transaction, whose commit (an
        # fsync) was most of a SELECT's time (issue 17)
        return first
    async with app.db.write() as conn:
        return await repo.claim_recent(conn, folder_id, uidnext)


async def recent_count(app: App, folder_id: int) -> int:
    async with app.db.read() as conn:
        first = await repo.recent_uid(conn, folder_id)
        return await repo.count_from_uid(conn, folder_id, first)


# --- flags -----------------------------------------------------------------------------------


def keywords_of(text: str) -> tuple[str, ...]:
    return tuple(text.split())


async def store_flags(
    app: App,
    of: OpenFolder,
    ids: Sequence[int],
    mode: str,
    flags: int,
    keywords: Sequence[str],
    *,
    unchangedsince: int | None = None,
) -> tuple[list[IndexEntry], list[int]]:
    """RFC 3501 §6.4.6 STORE (``mode``: "+", "-" or ""), RFC 7162 §3.1.3 UNCHANGEDSINCE.

    One new MODSEQ for the messages this changes. Returns the current state of every message
    still there, and the ids refused because they changed after ``unchangedsince``."""
    if not of.rights.write:
        raise no_permission()
    current: list[IndexEntry] = []
    refused: list[int] = []
    async with app.db.write() as conn:
        state = await repo.lock_folder(conn, of.folder.id)
        if state is None:
            raise nonexistent(of.name)
        uidnext, modseq = state
        wanted = set(ids)
        rows = {r.id: r for r in await repo.message_index(conn, of.folder.id) if r.id in wanted}
        new_modseq = modseq + 1
        updates: list[tuple[int, int, str, int]] = []
        for message_id in ids:
            row = rows.get(message_id)
            if row is None:
                continue
            if unchangedsince is not None and row.modseq > unchangedsince:
                refused.append(message_id)
                current.append(row)
                continue
            old_keywords = keywords_of(row.keywords)
            if mode == "+":
                new_flags = row.flags | flags
                new_keywords = tuple(dict.fromkeys([*old_keywords, *keywords]))
            elif mode == "-":
                new_flags = row.flags & ~flags
                drop = {k.lower() for k in keywords}
                new_keywords = tuple(k for k in old_keywords if k.lower() not in drop)
            else:
                new_flags, new_keywords = flags, tuple(dict.fromkeys(keywords))
            text = " ".join(new_keywords)
            if new_flags == row.flags and text == row.keywords:
                current.append(row)
                continue
            updates.append((row.id, new_flags, text, new_modseq))
            current.append(IndexEntry(row.uid, row.id, new_flags, text, new_modseq))
        if updates:
            await repo.update_flags(conn, updates)
            await repo.set_modseq(conn, of.folder.id, new_modseq, uidnext)
    if updates:
        await _publish(app, {of.mailbox.id})
    return current, refused


# --- expunge, copy, move, append -------------------------------------------------------------


async def _drop_blobs(app: App, blob_ids: Sequence[str]) -> None:
    """After the commit (a crash before leaves a harmless orphan file)."""
    await app.blobs.remove_files(blob_ids)


async def _publish(app: App, mailbox_ids: set[int]) -> None:
    try:
        await mailbox_events(app).publish(mailbox_ids)
    except Exception:  # a lost wake-up only delays IDLE sessions
        log.exception("could not publish mailbox events")


async def expunge(
    app: App, of: OpenFolder, message_ids: Sequence[int], *, action: str | None = DELETE
) -> int:
    """Remove messages of an open folder for good, recording their UIDs for QRESYNC and
    auditing the removal by whoever opened it (the same expunge as POP3's). Rights are the
    caller's job."""
    return await expunge_messages(
        app, of.folder.id, list(message_ids), actor=of.actor, source=of.source, action=action
    )


async def expunge_deleted(app: App, of: OpenFolder, ids: Sequence[int]) -> int:
    """RFC 3501 §6.4.3 EXPUNGE, RFC 4315 §2.1 UID EXPUNGE; webmail deletion. All or nothing:
    :class:`~caducee.errors.RetentionHold` when some are under retention."""
    if not of.rights.write:
        raise no_permission()
    return await expunge(app, of, ids)


async def expunge_what_may_go(
    app: App, of: OpenFolder, ids: Sequence[int]
) -> tuple[int, RetentionHold | None]:
    """RFC 3501 §6.4.2 CLOSE, which cannot fail: remove those of ``ids`` the retention rule
    lets go, keep the others; how many went, and the refusal naming those kept (None: none)."""
    if not of.rights.write:
        raise no_permission()
    held = await retained(app, of.folder.id, ids)
    free = [i for i in ids if i not in held]
    removed = await expunge(app, of, free) if free else 0
    if not held:
        return removed, None
    return removed, retention_hold(of.mailbox.address, held, app.settings.tlt_retention_days)


def _archive_only(of: OpenFolder) -> NoPermission:
    return NoPermission(
        f"Le dossier {of.name} est rempli par le serveur seul (archives hors quota) : "
        "vous pouvez en lire, déplacer ou supprimer les messages, pas en ajouter.",
        f"Folder {of.name} is filled by the server only (archives outside the quota): you may "
        "read, move or delete its messages, not add any.",
    )


def _quota_error(box: Mailbox) -> QuotaExceeded:
    return QuotaExceeded(
        f"La boîte {box.address} est pleine (quota dépassé).",
        f"Mailbox {box.address} is full (over quota).",
    )


async def copy(
    app: App, source: OpenFolder, ids: Sequence[int], target: OpenFolder
) -> list[tuple[int, int]]:
    """RFC 3501 §6.4.7 COPY, all or nothing: flags, keywords and internal dates kept, new UIDs
    (RFC 4315 COPYUID pairs returned). In one mailbox the sealed blob is shared; into another
    mailbox the message is re-sealed with that mailbox's key; the copies count in the
    target's quota either way (RFC 9208: the sum of its messages' sizes)."""
    if not target.rights.write:
        raise no_permission()
    if target.folder.quota_exempt:
        raise _archive_only(target)
    same_box = source.mailbox.id == target.mailbox.id
    prepared: list[tuple[Any, str, bytes, bytes, bytes | None]] = []
    async with app.db.read() as conn:
        rows = await repo.source_rows(conn, source.folder.id, ids)
        if not same_box:
            src_scope, dst_scope = (
                mailbox_scope(source.mailbox.id),
                mailbox_scope(target.mailbox.id),
            )
            for row in rows:
                raw = await app.keyring.open(
                    conn, src_scope, row.blob_id, "raw", await app.blobs.get(conn, row.blob_id)
                )
                meta = await app.keyring.open(
                    conn, src_scope, row.blob_id, "meta", bytes(row.meta_sealed)
                )
                imap = (
                    None
                    if row.imap_sealed is None
                    else await app.keyring.open(
                        conn, src_scope, row.blob_id, "imap", bytes(row.imap_sealed)
                    )
                )
                blob_id = new_blob_id()
                prepared.append(
                    (
                        row,
                        blob_id,
                        await app.keyring.seal(conn, dst_scope, blob_id, "raw", raw),
                        await app.keyring.seal(conn, dst_scope, blob_id, "meta", meta),
                        None
                        if imap is None
                        else await app.keyring.seal(conn, dst_scope, blob_id, "imap", imap),
                    )
                )
    if not rows:
        return []
    new_rows: list[dict[str, Any]] = []
    blobs: list[tuple[str, bytes]] = []
    if same_box:  # the same blob id and scope: the sealed metadata stays valid
        for row in rows:
            imap_sealed = None if row.imap_sealed is None else bytes(row.imap_sealed)
            new_rows.append(
                _copied(row, target.mailbox.id, row.blob_id, bytes(row.meta_sealed), imap_sealed)
            )
    else:
        for row, blob_id, sealed_raw, sealed_meta, sealed_imap in prepared:
            new_rows.append(_copied(row, target.mailbox.id, blob_id, sealed_meta, sealed_imap))
            blobs.append((blob_id, sealed_raw))
    committed = False
    try:
        await app.blobs.stage(blobs)  # durable before the rows naming them
        async with app.db.write() as conn:
            used, quota = await repo.lock_mailbox_usage(conn, target.mailbox.id)
            total = sum(int(r.size) for r in rows)
            if used + total > quota:
                raise _quota_error(target.mailbox)
            await repo.add_used_bytes(conn, target.mailbox.id, total)
            if not same_box:
                await app.blobs.record(conn, blobs)
            uids = await repo.copy_rows(conn, target.folder.id, new_rows)
        committed = True
    finally:
        if not committed and blobs:
            await _drop_blobs(app, [b for b, _ in blobs])
    await _publish(app, {target.mailbox.id})
    return list(zip([int(r.uid) for r in rows], uids, strict=True))


def _copied(
    row: Any, mailbox_id: int, blob_id: str, meta_sealed: bytes, imap_sealed: bytes | None
) -> dict[str, Any]:
    return {
        "mailbox_id": mailbox_id,
        "flags": row.flags,
        "keywords": row.keywords,
        "internal_date": row.internal_date,
        "size": row.size,
        "blob_id": blob_id,
        "meta_sealed": meta_sealed,
        "imap_sealed": imap_sealed,
        "pop3_size": row.pop3_size,  # the same bytes (NULL stays NULL: computed when listed)
    }


async def move(
    app: App, source: OpenFolder, ids: Sequence[int], target: OpenFolder
) -> list[tuple[int, int]]:
    """RFC 6851 MOVE. In one mailbox, rows change folder in one transaction (atomic); across
    mailboxes, a copy then an expunge of the originals — refused before the copy when the
    retention rule keeps them in their mailbox."""
    if not source.rights.write or not target.rights.write:
        raise no_permission()
    if target.folder.quota_exempt:
        raise _archive_only(target)
    if source.mailbox.id == target.mailbox.id:
        async with app.db.write() as conn:
            pairs = await repo.move_rows(conn, source.folder.id, target.folder.id, ids)
        if pairs:
            await _publish(app, {source.mailbox.id})
        return pairs
    held = await retained(app, source.folder.id, ids)
    if held:
        raise retention_hold(source.mailbox.address, held, app.settings.tlt_retention_days)
    pairs = await copy(app, source, ids, target)
    # Not a deletion by the user, but the messages leave this mailbox: audited as such.
    await expunge(app, source, ids, action=MOVE_OUT)
    return pairs


@dataclass
class Appended:
    raw: bytes
    flags: int = 0
    keywords: tuple[str, ...] = ()
    internal_date: datetime | None = None


async def append(app: App, target: OpenFolder, items: Sequence[Appended]) -> list[int]:
    """RFC 3501 §6.3.11 APPEND / RFC 3502 MULTIAPPEND (all or nothing): stored, sealed and
    counted in the quota through the delivery path. Returns the new UIDs."""
    if not target.rights.write:
        raise no_permission()
    if target.folder.quota_exempt:
        raise _archive_only(target)
    deliveries = [
        Delivery(
            item.raw,
            [target.mailbox.id],
            target.folder.name,
            item.flags & sum(Flag.NAMES.values()),
            item.keywords,
            item.internal_date,
        )
        for item in items
    ]
    results = await store_batch(app, deliveries)
    stored = [r[0] for r in results if not isinstance(r, CaduceeError)]
    errors = [r for r in results if isinstance(r, CaduceeError)]
    if errors:
        if stored:  # MULTIAPPEND is all or nothing: undo the ones that went in
            await expunge(app, target, [m.id for m in stored], action=UNDO_APPEND)
        raise errors[0]
    return [m.uid for m in stored]


async def quota(app: App, mailbox_id: int) -> tuple[int, int]:
    """(used bytes, quota bytes) of a mailbox (RFC 9208 STORAGE)."""
    async with app.db.read() as conn:
        box = await directory_repo.mailbox_by_id(conn, mailbox_id)
    if box is None:
        raise nonexistent(str(mailbox_id))
    return box.used_bytes, box.quota_bytes


# --- reading for FETCH and SEARCH ------------------------------------------------------------
#
# A message's metadata is sealed in two records (issue 17): ``meta_sealed``, a JSON document of
# decoded headers, snippet and header fields (the webmail's lists, SEARCH), and
# ``imap_sealed``, the IMAP structure in compact form (FETCH ENVELOPE / BODYSTRUCTURE / BODY
# and section offsets: what a full sync reads). Messages stored before migration 0039 have
# their structure inside ``meta_sealed`` (or, before META_VERSION 2, nowhere: it is computed
# from the raw message); they are read as they are until :func:`reseal` splits them.


@dataclass
class Meta:
    """Opened metadata of a message: decoded headers (search, webmail lists); with ``fields``
    (when asked for: :func:`load_meta` ``header_fields``), every top-level header field in the
    form SEARCH HEADER matches (``message_text.searchable_fields``)."""

    headers: dict[str, Any]
    fields: dict[str, str] | None = None
    #: SEARCH FROM / TO / CC's address forms by header name (``imap.search``), computed once
    forms: dict[str, str] = field(default_factory=dict)


def _weight(meta: Meta) -> int:
    """About what a cached metadata costs in memory (bytes): ~1.5 kB of Python objects for
    the decoded headers and snippet (measured with tracemalloc on the shared corpus), plus
    its header fields when a search asked for them."""
    fields = meta.fields
    return 1536 + (sum(len(k) + len(v) for k, v in fields.items()) if fields else 0)


class MetaCache(BoundedCache[str, Meta]):
    """Per node: opened metadata by blob id (a blob id names one content in one mailbox). In
    memory only; bounded in entries and in bytes (header fields, kept only once a search asked
    for them, may weigh up to 64 kB each)."""

    def __init__(self, _app: App) -> None:
        super().__init__("metadata", _weight, META_CACHE_BYTES, META_CACHE_ENTRIES)


def meta_cache(app: App) -> MetaCache:
    return app.component(MetaCache, MetaCache)


class RowColumns(NamedTuple):
    """A :class:`FolderRows`' columns themselves, in ascending message-id order: position ``i``
    of each is one message (keywords by message id, only where set). Read only."""

    ids: array[int]
    uids: array[int]
    flags: array[int]
    keywords: dict[int, str]
    modseqs: array[int]
    dates: list[datetime]
    sizes: array[int]
    blobs: list[str]


class FolderRows(Mapping[int, MessageSummary]):
    """The clear columns of a whole folder, kept compactly: typed arrays by message id, the
    dates and blob ids in lists (~190 bytes a message instead of ~370 for a
    ``MessageSummary`` and its objects: 19 MB instead of 37 at 100,000 messages, issue 17; 8
    more once searched, for :attr:`heads`). A row is built when it is read; each read gives a
    new one, which its caller may change; :attr:`columns` are read without building one."""

    __slots__ = (
        "__weakref__",
        "_blobs",
        "_dates",
        "_flags",
        "_ids",
        "_keywords",
        "_mailboxes",
        "_modseqs",
        "_sizes",
        "_uids",
        "heads",
    )

    def __init__(self, rows: Sequence[MessageSummary]) -> None:
        ordered = sorted(rows, key=lambda r: r.id)
        self._ids = array("q", [r.id for r in ordered])
        self._uids = array("q", [r.uid for r in ordered])
        self._flags = array("q", [r.flags for r in ordered])
        self._modseqs = array("q", [r.modseq for r in ordered])
        self._sizes = array("q", [r.size for r in ordered])
        self._mailboxes = array("q", [r.mailbox_id for r in ordered])
        self._dates = [r.internal_date for r in ordered]
        self._blobs = [r.blob_id for r in ordered]
        self._keywords = {r.id: r.keywords for r in ordered if r.keywords}
        #: The :data:`Heads` of each position as far as known (None: not known), references to
        #: the strings :class:`HeadsCache` holds: see :meth:`HeadsCache.column`.
        self.heads: list[Heads | None] | None = None

    def _index(self, message_id: int) -> int:
        ids = self._ids
        index = bisect.bisect_left(ids, message_id)
        if index < len(ids) and ids[index] == message_id:
            return index
        return -1

    def _row(self, i: int, message_id: int) -> MessageSummary:
        return MessageSummary(
            message_id,
            self._uids[i],
            self._flags[i],
            self._keywords.get(message_id, "") if self._keywords else "",
            self._modseqs[i],
            self._dates[i],
            self._sizes[i],
            self._blobs[i],
            self._mailboxes[i],
        )

    def __getitem__(self, message_id: int) -> MessageSummary:
        i = self._index(message_id)
        if i < 0:
            raise KeyError(message_id)
        return self._row(i, message_id)

    def get(self, message_id: int, default: Any = None) -> Any:  # one search, not two
        ids = self._ids
        i = bisect.bisect_left(ids, message_id)
        if i == len(ids) or ids[i] != message_id:
            return default
        return self._row(i, message_id)

    def __contains__(self, message_id: object) -> bool:
        return isinstance(message_id, int) and self._index(message_id) >= 0

    def __iter__(self) -> Iterator[int]:
        return iter(self._ids)

    def __len__(self) -> int:
        return len(self._ids)

    def values(self) -> list[MessageSummary]:  # type: ignore[override]
        return [self._row(i, message_id) for i, message_id in enumerate(self._ids)]

    @property
    def columns(self) -> RowColumns:
        """The arrays themselves, without building a row (SEARCH on the cached heads reads
        them in a worker thread: nothing changes them once built, a folder's change makes a
        new :class:`FolderRows`)."""
        return RowColumns(
            self._ids,
            self._uids,
            self._flags,
            self._keywords,
            self._modseqs,
            self._dates,
            self._sizes,
            self._blobs,
        )

    def at(self, index: int) -> MessageSummary:
        """The row at position ``index`` of :attr:`columns` (a new one)."""
        return self._row(index, self._ids[index])


#: A folder of this many messages or more is kept as :class:`FolderRows` (smaller ones as a
#: dict of rows: reading a row from the arrays costs ~1 µs more, 0.1 s per pass over 100,000
#: messages, for 18 MB less).
COMPACT_ROWS = 20_000


class FolderRowsCache:
    """Per node: the clear columns of whole folders (:class:`FolderRows` for large ones, a
    dict of rows for the others), each valid for one
    HIGHESTMODSEQ (every change to a folder's messages takes a new MODSEQ, so a stale copy is
    never used). Searches and sorted lists of a large folder then skip re-reading and
    re-parsing every row. Bounded in folders and rows; ``size`` estimates its bytes (for
    ``caducee_cache_bytes``)."""

    name = "folder-rows"

    def __init__(self, _app: App) -> None:
        self.entries: OrderedDict[int, tuple[int, Mapping[int, MessageSummary]]] = OrderedDict()
        self.size = 0
        bounded_cache.track(self)

    def get(self, folder_id: int, modseq: int) -> Mapping[int, MessageSummary] | None:
        found = self.entries.get(folder_id)
        if found is None or found[0] != modseq:
            return None
        self.entries.move_to_end(folder_id)
        return found[1]

    def put(self, folder_id: int, modseq: int, rows: Mapping[int, MessageSummary]) -> None:
        old = self.entries.pop(folder_id, None)
        if old is not None:
            self.size -= _rows_bytes(old[1])
        self.entries[folder_id] = (modseq, rows)
        self.size += _rows_bytes(rows)
        while len(self.entries) > 1 and (
            len(self.entries) > FOLDER_ROWS_CACHED
            or sum(len(r) for _, r in self.entries.values()) > FOLDER_ROWS_MAX
        ):
            _, (_, gone) = self.entries.popitem(last=False)
            self.size -= _rows_bytes(gone)


#: What a cached row costs: in :class:`FolderRows` (with its column of heads, once searched),
#: and as a ``MessageSummary`` in a dict.
COMPACT_ROW_BYTES = 198
ROW_BYTES = 370


def _rows_bytes(rows: Mapping[int, MessageSummary]) -> int:
    return len(rows) * (COMPACT_ROW_BYTES if isinstance(rows, FolderRows) else ROW_BYTES)


#: Whole folders whose rows a node keeps in memory (a 10,000-message folder is ~3.7 MB)...
FOLDER_ROWS_CACHED = 32
#: ... and their messages in all (the last folder read stays, whatever its size).
FOLDER_ROWS_MAX = 150_000


async def fetch_rows(
    app: App, folder_id: int, ids: Sequence[int] | None
) -> Mapping[int, MessageSummary]:
    """Clear columns of messages by id (the whole folder in one query when ``ids`` is None;
    served from the node's cache while the folder's HIGHESTMODSEQ is unchanged)."""
    async with app.db.read() as conn:
        if ids is not None:
            return {r.id: r for r in await repo.fetch_rows(conn, folder_id, ids)}
        folder = await repo.folder_by_id(conn, folder_id)  # first: see repo docstring
        cache = app.component(FolderRowsCache, FolderRowsCache)
        modseq = folder.highestmodseq if folder is not None else -1
        cached = cache.get(folder_id, modseq)
        if cached is not None:
            return cached
        listed = await repo.fetch_rows(conn, folder_id, None)
    rows: Mapping[int, MessageSummary]
    if len(listed) >= COMPACT_ROWS:
        rows = await asyncio.to_thread(FolderRows, listed)
    else:
        rows = {r.id: r for r in listed}
    if folder is not None:
        cache.put(folder_id, modseq, rows)
    return rows


@dataclass
class _Opened:
    """A message's metadata as opened in a worker thread; ``fields`` None while asked for:
    stored before META_VERSION 3 (computed from the raw message)."""

    headers: dict[str, Any]
    fields: dict[str, str] | None


def _open_metas(
    keys: dict[int, bytes],
    sealed: dict[int, bytes],
    rows: Sequence[MessageSummary],
    header_fields: bool,
) -> dict[int, _Opened]:
    """Decrypt and decode sealed metadata (CPU work: run in a worker thread)."""
    out: dict[int, _Opened] = {}
    for row in rows:
        data = sealed.get(row.id)
        if data is None:
            continue
        scope = mailbox_scope(row.mailbox_id)
        opened = crypto.open_sealed(
            keys[row.mailbox_id], data, crypto.aad_for(scope, row.blob_id, "meta")
        )
        headers = json.loads(opened)
        headers.pop("imap", None)  # before the split (0039): read apart, load_structures
        listed = headers.pop("fields", None)
        fields = None
        if header_fields and isinstance(listed, list):
            fields = searchable_fields(listed)
        out[row.id] = _Opened(headers, fields)
    return out


def _complete(opened: dict[int, _Opened], raws: dict[int, bytes]) -> None:
    """Header fields old metadata lacks, from the raw messages (a worker thread's job)."""
    for message_id, raw in raws.items():
        opened[message_id].fields = searchable_fields(header_texts(raw))


async def load_meta(
    app: App, rows: Sequence[MessageSummary], *, header_fields: bool = False
) -> dict[int, Meta]:
    """Opened metadata for messages (cache, else one query and one data key per mailbox);
    with ``header_fields``, each with every top-level header field (SEARCH HEADER).

    Decrypting and decoding run in a worker thread, never on the event loop. Metadata from
    before META_VERSION 3 lacks the header fields: they are computed from the raw message
    then, in a worker thread, and cached."""
    cache = meta_cache(app)
    out: dict[int, Meta] = {}
    missing: list[MessageSummary] = []
    for row in rows:
        found = cache.get(row.blob_id)
        if found is None or (header_fields and found.fields is None):
            missing.append(row)
        else:
            out[row.id] = found
    if not missing:
        return out
    async with app.db.read() as conn:
        sealed = await repo.sealed_meta(conn, [r.id for r in missing])
        keys = await _keys(app, conn, missing)
    opened = await asyncio.to_thread(_open_metas, keys, sealed, missing, header_fields)
    old = [r for r in missing if header_fields and r.id in opened and opened[r.id].fields is None]
    if old:
        raws = await load_raw(app, old)
        await asyncio.to_thread(_complete, opened, raws)
    for row in missing:
        item = opened.get(row.id)
        if item is None or (header_fields and item.fields is None):  # gone meanwhile
            continue
        meta = Meta(item.headers, item.fields)
        cache.put(row.blob_id, meta)
        out[row.id] = meta
    return out


async def _keys(
    app: App, conn: AsyncConnection, rows: Sequence[MessageSummary]
) -> dict[int, bytes]:
    """The data key of each mailbox of ``rows``."""
    return {
        mid: await app.keyring.data_key(conn, mailbox_scope(mid))
        for mid in {r.mailbox_id for r in rows}
    }


# --- the IMAP structure (FETCH) --------------------------------------------------------------

#: Per node, for :func:`load_structures`: the compact structures (~1 kB a message on the
#: shared corpus) of a 10,000-message folder fit; a 100,000-message one is read again.
STRUCTURE_CACHE_BYTES = 16 * 1024 * 1024
#: What a cached structure costs on the shared corpus (its bytes and the entry; tracemalloc).
STRUCTURE_BYTES = 1100
#: What a cached entry costs beyond its bytes (the bytes object, its key, the dict's slot).
_ENTRY_OVERHEAD = 150


def _structure_weight(compact: bytes) -> int:
    return len(compact) + _ENTRY_OVERHEAD


class StructureCache(BoundedCache[str, bytes]):
    """Per node: compact structures (``Structure.to_compact``: bytes, not object graphs) by
    blob id, in memory only, bounded in bytes, least recently used first out."""

    def __init__(self, _app: App) -> None:
        super().__init__("structures", _structure_weight, STRUCTURE_CACHE_BYTES)


def structure_cache(app: App) -> StructureCache:
    return app.component(StructureCache, StructureCache)


def _open_structures(
    keys: dict[int, bytes],
    sealed: dict[int, tuple[bytes | None, bytes | None]],
    rows: Sequence[MessageSummary],
) -> tuple[dict[int, bytes], list[int]]:
    """Compact structures of messages from their sealed records (CPU work: a worker thread's);
    the ids of those whose metadata holds none (before META_VERSION 2: the raw message's)."""
    out: dict[int, bytes] = {}
    lacking: list[int] = []
    ciphers: dict[int, crypto.Opener] = {}
    for row in rows:
        found = sealed.get(row.id)
        if found is None:  # expunged meanwhile
            continue
        imap_sealed, meta_sealed = found
        opener = ciphers.get(row.mailbox_id)
        if opener is None:
            opener = ciphers[row.mailbox_id] = crypto.Opener(keys[row.mailbox_id])
        scope = mailbox_scope(row.mailbox_id)
        if imap_sealed is not None:
            out[row.id] = opener.open(imap_sealed, crypto.aad_for(scope, row.blob_id, "imap"))
            continue
        assert meta_sealed is not None
        meta = json.loads(opener.open(meta_sealed, crypto.aad_for(scope, row.blob_id, "meta")))
        imap = meta.get("imap")
        if isinstance(imap, dict):
            out[row.id] = Structure.from_meta(imap).to_compact()
        else:
            lacking.append(row.id)
    return out, lacking


def structures_fit(count: int) -> bool:
    """Whether the structures of ``count`` messages fit the node's cache: a FETCH of more (a
    full sync of a folder larger than it) reads them without keeping them — they would
    evict each other before any reuse, and every other folder's with them."""
    return count * STRUCTURE_BYTES <= STRUCTURE_CACHE_BYTES


async def load_structures(
    app: App,
    rows: Sequence[MessageSummary],
    *,
    keep: bool = True,
    folder: Folder | None = None,
) -> dict[int, Structure]:
    """The IMAP structure of messages (FETCH ENVELOPE, BODYSTRUCTURE, BODY, sections): the
    node's cache, else one query for the compact records and one data key per mailbox;
    decrypting (and, for messages stored before the split, decoding) in a worker thread.
    With ``keep`` False (:func:`structures_fit`), what is read is not kept in the per-message
    cache, but, given the ``folder`` of ``rows``, in its compressed blocks
    (``services.structure_blocks``), which the next full sync reads instead."""
    cache = structure_cache(app)
    found: dict[int, bytes] = {}
    missing: list[MessageSummary] = []
    in_blocks = not keep and folder is not None
    held: dict[int, bytes] = {}
    if in_blocks:
        assert folder is not None
        blocks = structure_blocks.structure_blocks(app).of(folder.id, folder.uidvalidity)
        if blocks.blocks:
            held = await asyncio.to_thread(blocks.find, [r.uid for r in rows])
    for row in rows:
        compact = held.get(row.uid) if in_blocks else cache.get(row.blob_id)
        if compact is None:
            missing.append(row)
        else:
            found[row.id] = compact
    if missing:
        async with app.db.read() as conn:
            sealed = await repo.sealed_structures(conn, [r.id for r in missing])
            keys = await _keys(app, conn, missing)
        opened, lacking = await asyncio.to_thread(_open_structures, keys, sealed, missing)
        if lacking:
            wanted = set(lacking)
            raws = await load_raw(app, [r for r in missing if r.id in wanted])
            size = sum(len(raw) for raw in raws.values())
            opened.update(await cpu_pool.run_sized(size, compact_structures, raws))
        for row in missing:
            compact = opened.get(row.id)
            if compact is not None:
                if keep:
                    cache.put(row.blob_id, compact)
                found[row.id] = compact
        if in_blocks:
            assert folder is not None
            read = {row.uid: found[row.id] for row in missing if row.id in found}
            built = await asyncio.to_thread(structure_blocks.build_blocks, read)
            structure_blocks.structure_blocks(app).add(folder.id, folder.uidvalidity, built)
    return {message_id: Structure.from_compact(data) for message_id, data in found.items()}


# --- re-sealing metadata stored before the split (0039) --------------------------------------

#: Messages re-sealed per transaction by :func:`reseal`.
RESEAL_BATCH = 200


@dataclass
class _Reseal:
    """Where :func:`reseal` got to in this process (ids below are done or were never old)."""

    after: int = 0


#: What metadata stored before format 3 lacks, parsed from the raw message.
OldParts = tuple[dict[str, object], list[list[str]]]


def _split_old(
    keys: dict[int, bytes], rows: Sequence[Any], parts: Mapping[int, OldParts]
) -> tuple[list[tuple[int, bytes, bytes]], list[int]]:
    """(id, sealed metadata, sealed structure) of old rows, split (a worker thread's job); the
    ids that lack what only their raw message gives (``parts``, parsed from it in a worker
    process, has them on the second call)."""
    out: list[tuple[int, bytes, bytes]] = []
    lacking: list[int] = []
    for row in rows:
        scope, key = mailbox_scope(row.mailbox_id), keys[row.mailbox_id]
        aad = crypto.aad_for(scope, row.blob_id, "meta")
        try:
            meta = json.loads(crypto.open_sealed(key, bytes(row.meta_sealed), aad))
        except (IntegrityError, ValueError):  # left as it is: its readers report it
            continue
        if not isinstance(meta.get("imap"), dict) or not isinstance(meta.get("fields"), list):
            parsed = parts.get(row.id)
            if parsed is None:
                lacking.append(row.id)
                continue
            imap, fields = parsed
            if not isinstance(meta.get("imap"), dict):
                meta["imap"] = imap
            if not isinstance(meta.get("fields"), list):
                meta["fields"] = fields
        meta_bytes, imap_bytes = split_meta(meta)
        out.append(
            (
                row.id,
                crypto.seal(key, meta_bytes, crypto.aad_for(scope, row.blob_id, "meta")),
                crypto.seal(key, imap_bytes, crypto.aad_for(scope, row.blob_id, "imap")),
            )
        )
    return out, lacking


async def reseal(app: App, *, limit: int = 100_000) -> int:
    """Split the metadata of messages stored before migration 0039 (up to ``limit`` of them,
    :data:`RESEAL_BATCH` per transaction): the IMAP structure goes to ``imap_sealed`` in compact
    form, the rest stays in ``meta_sealed`` (version 4); what a version 1 or 2 document lacks
    is computed from the raw message. The same content, sealed with the same key and record:
    nothing a reader sees changes, no cache is invalidated. A row another node split
    meanwhile is left as it is, and so is one that does not open (its readers report it) or
    whose mailbox is being deleted. This process remembers where it got to; once done, it
    looks only at messages stored since (those of a node of the previous revision during a
    rolling upgrade). Returns how many messages were re-sealed (a maintenance task).
    """
    state = app.component(_Reseal, lambda _app: _Reseal())
    done = 0
    while done < limit:
        async with app.db.read() as conn:
            rows = await repo.unsplit_metadata(conn, state.after, min(RESEAL_BATCH, limit - done))
            if not rows:  # the next rounds look at messages stored since only
                state.after = max(state.after, await repo.last_message_id(conn))
                return done
            keys: dict[int, bytes] = {}
            for mid in {int(r.mailbox_id) for r in rows}:
                with contextlib.suppress(IntegrityError):  # a mailbox being deleted: no key
                    keys[mid] = await app.keyring.data_key(conn, mailbox_scope(mid))
        state.after = max(int(r.id) for r in rows)
        rows = [r for r in rows if int(r.mailbox_id) in keys]
        split, lacking = await asyncio.to_thread(_split_old, keys, rows, {})
        if lacking:
            wanted = set(lacking)
            old = [r for r in rows if r.id in wanted]
            raws = await load_raw(app, [_summary(r) for r in old])
            size = sum(len(raw) for raw in raws.values())
            parsed = await cpu_pool.run_sized(size, parsed_parts, raws)
            more, _ = await asyncio.to_thread(_split_old, keys, old, parsed)
            split += more
        async with app.db.write() as conn:
            await repo.set_split_metadata(conn, split)
        done += len(split)
    return done


def _summary(row: Any) -> MessageSummary:
    """Enough of a message row for :func:`load_raw`."""
    return MessageSummary(
        int(row.id), 0, 0, "", 0, datetime.min, 0, str(row.blob_id), int(row.mailbox_id)
    )


# --- SEARCH SUBJECT / FROM / TO / CC ---------------------------------------------------------

#: Address field values whose :func:`address_forms` a process keeps, and the longest kept
#: (4,096 × ~2 × 1,000 characters at most: a few MB).
ADDRESS_FORMS_CACHED = 4096
ADDRESS_FORMS_CACHED_CHARS = 1000
#: The header fields a search reads from :class:`Heads` (``imap.search``).
HEAD_NAMES = ("subject", "from", "to", "cc")
#: Per node, for :func:`load_heads` (about 350 bytes a message: a 100,000-message folder fits).
HEADS_CACHE_BYTES = 48 * 1024 * 1024

#: Subject, From, To, Cc of a message, casefolded, as a search matches them, in one string
#: (one object a message, not five: ~120 bytes a message less, issue 17), each field ended by
#: :data:`HEADS_END`: for the address fields, the value then NUL then its addresses as "name
#: local@host" (comments and routes dropped, so that FROM user@domain matches ``<user
#: (comment)@ (comment) domain>``), one a line; nothing for a field the message lacks. NULs
#: the values held are dropped. No search string holds a NUL (RFC 9051 §4.3 CHAR8), so a
#: match never spans two fields; :func:`head_contains` looks in one.
Heads = str
HEADS_END = "\x00\x00"
NO_HEADS: Heads = HEADS_END * len(HEAD_NAMES)


def heads_of(headers: dict[str, Any]) -> Heads:
    """What SEARCH SUBJECT / FROM / TO / CC match, from decoded headers (CPU work)."""
    out = []
    for name in HEAD_NAMES:
        value = headers.get(name)
        if not isinstance(value, str) or not value:
            out.append("")
            continue
        text = value.casefold().replace("\x00", "")
        if name != "subject":
            text += "\x00" + address_forms(value).replace("\x00", "")
        out.append(text)
    return "".join(field + HEADS_END for field in out)


def head_contains(heads: Heads, index: int, needle: str) -> bool:
    """Whether field ``index`` (of :data:`HEAD_NAMES`) of ``heads`` holds ``needle`` (no NUL).
    An address field without addresses ends with its NUL, which the end marker then follows:
    the first two NULs end it, the third begins the next field, where it matches nothing."""
    start = 0
    for _ in range(index):
        start = heads.find(HEADS_END, start) + len(HEADS_END)
    end = heads.find(HEADS_END, start)
    return heads.find(needle, start, end) >= 0


def address_forms(value: str) -> str:
    """The addresses of an address field as SEARCH FROM / TO / CC match them: "name
    local@host", one a line, casefolded (comments and routes dropped). Those of the last
    values seen are kept (short values only, so that the cache stays a few MB whatever the
    headers): the same correspondents and the mailbox's own address recur from message to
    message, and parsing was most of the first search's work (~60 µs of ~115 a message,
    issue 17)."""
    if len(value) <= ADDRESS_FORMS_CACHED_CHARS:
        return _kept_address_forms(value)
    return _address_forms(value)


@functools.lru_cache(maxsize=ADDRESS_FORMS_CACHED)
def _kept_address_forms(value: str) -> str:
    return _address_forms(value)  # lru_cache: thread-safe (searches match in worker threads)


def _address_forms(value: str) -> str:
    forms = [
        f"{display or ''} {local or ''}@{host or ''}"
        for display, _adl, local, host in parse_addresses(value)
    ]
    return "\n".join(forms).casefold()


def _heads_weight(heads: Heads) -> int:
    return 150 + len(heads)


class HeadsCache(BoundedCache[str, Heads]):
    """Per node: :data:`Heads` by blob id, in memory only, bounded in bytes. A search on
    Subject or addresses then matches short strings instead of decrypting and decoding every
    message's whole metadata (whose cache does not hold a large folder: issue 17).

    A large folder's rows (:class:`FolderRows`) may carry a *column* of the same strings in
    the order of their arrays (:meth:`column`): a search then reads them in sequence, without a
    look-up in this dict per message — at 100,000 entries each look-up misses the processor's
    caches (~0.45 µs against ~0.07 at 10,000). A column holds no string of its own: whenever
    this cache drops an entry (eviction, :meth:`discard`, :meth:`clear`) every column is
    dropped, so it never keeps alive what the cache let go."""

    def __init__(self, _app: App) -> None:
        super().__init__("headers", _heads_weight, HEADS_CACHE_BYTES)
        # by id(): a Mapping is not hashable
        self._columns: weakref.WeakValueDictionary[int, FolderRows] = weakref.WeakValueDictionary()

    def column(self, rows: FolderRows) -> list[Heads | None]:
        """``rows``' column (made empty if it has none); the event loop's call. A worker
        thread may fill it, one position at a time, with strings read from this cache."""
        if rows.heads is None:
            rows.heads = [None] * len(rows)
            self._columns[id(rows)] = rows
        return rows.heads

    def dropped(self) -> None:
        if not self._columns:  # the common case while a folder larger than the cache is read
            return
        for rows in list(self._columns.values()):
            rows.heads = None
        self._columns = weakref.WeakValueDictionary()


def heads_cache(app: App) -> HeadsCache:
    return app.component(HeadsCache, HeadsCache)


def _open_heads(
    keys: dict[int, bytes],
    sealed: dict[int, bytes],
    rows: Sequence[MessageSummary],
    cached: dict[int, dict[str, Any]],
) -> dict[int, Heads]:
    """Decrypt what is not decoded yet and extract :data:`Heads` (a worker thread's job)."""
    out = {message_id: heads_of(headers) for message_id, headers in cached.items()}
    for row in rows:
        data = sealed.get(row.id)
        if data is None or row.id in out:
            continue
        scope = mailbox_scope(row.mailbox_id)
        opened = crypto.open_sealed(
            keys[row.mailbox_id], data, crypto.aad_for(scope, row.blob_id, "meta")
        )
        out[row.id] = heads_of(json.loads(opened))
    return out


async def load_heads(app: App, rows: Sequence[MessageSummary]) -> dict[int, Heads]:
    """:data:`Heads` of messages: the node's cache, else decoded metadata already cached,
    else one query and one data key per mailbox; the CPU work in a worker thread."""
    cache = heads_cache(app)
    metas = meta_cache(app)
    out: dict[int, Heads] = {}
    missing: list[MessageSummary] = []
    decoded: dict[int, dict[str, Any]] = {}
    for row in rows:
        found = cache.get(row.blob_id)
        if found is not None:
            out[row.id] = found
            continue
        meta = metas.entries.get(row.blob_id)  # no reordering: not a use of the metadata
        if meta is not None:
            decoded[row.id] = meta.headers
        else:
            missing.append(row)
    if not missing and not decoded:
        return out
    sealed: dict[int, bytes] = {}
    keys: dict[int, bytes] = {}
    if missing:
        async with app.db.read() as conn:
            sealed = await repo.sealed_meta(conn, [r.id for r in missing])
            keys = {
                mid: await app.keyring.data_key(conn, mailbox_scope(mid))
                for mid in {r.mailbox_id for r in missing}
            }
    opened = await asyncio.to_thread(_open_heads, keys, sealed, missing, decoded)
    for row in rows:
        heads = opened.get(row.id)
        if heads is not None:
            cache.put(row.blob_id, heads)
            out[row.id] = heads
    return out


async def load_raw(app: App, rows: Sequence[MessageSummary]) -> dict[int, bytes]:
    """Decrypted raw messages (bodies for FETCH BODY[...] and SEARCH BODY/TEXT): read in one
    go, decrypted in one worker thread (a FETCH of 100 bodies decrypted 2 MB on the event loop,
    one cipher set up per message)."""
    async with app.db.read() as conn:
        sealed = await app.blobs.get_many(conn, list({row.blob_id for row in rows}))
        present = [row for row in rows if row.blob_id in sealed]  # else expunged meanwhile
        keys = await _keys(app, conn, present)
    if not present:
        return {}
    return await asyncio.to_thread(_open_raws, keys, sealed, present)


def _open_raws(
    keys: dict[int, bytes], sealed: Mapping[str, bytes], rows: Sequence[MessageSummary]
) -> dict[int, bytes]:
    """Decrypt raw messages (a worker thread's job): one cipher per mailbox."""
    openers: dict[int, crypto.Opener] = {}
    out: dict[int, bytes] = {}
    for row in rows:
        opener = openers.get(row.mailbox_id)
        if opener is None:
            opener = openers[row.mailbox_id] = crypto.Opener(keys[row.mailbox_id])
        aad = crypto.aad_for(mailbox_scope(row.mailbox_id), row.blob_id, "raw")
        out[row.id] = opener.open(sealed[row.blob_id], aad)
    return out
