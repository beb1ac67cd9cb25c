"""What the webmail reads and changes, with the same rules as IMAP: every mailbox is opened
through :func:`caducee.services.mailboxes.open_mailbox` (delegation rights, audit), folders must
belong to that mailbox, and changes go through :mod:`caducee.services.mailstore` (MODSEQ, quota,
IDLE wake-ups on every node)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from typing import Literal

from caducee.app import App
from caducee.domain.model import Flag, Folder, FolderCounts, Mailbox, MessageSummary, SpecialUse
from caducee.domain.triage_settings import URGENT_KEYWORD
from caducee.errors import AccessDenied, NotFound
from caducee.services import mailboxes, mailstore
from caducee.services.mailstore import OpenFolder, Rights
from caducee.store import directory_repo
from caducee.store import mailstore_repo as repo

PAGE_SIZE = 50
#: How many of the newest messages of a folder a conversation is looked for in.
CONVERSATION_WINDOW = 2000
SortKey = Literal["date", "expediteur", "objet", "taille"]
SORT_KEYS: tuple[str, ...] = ("date", "expediteur", "objet", "taille")


def _gone() -> NotFound:
    return NotFound("Message ou dossier introuvable.", "Message or folder not found.")


async def usable_mailboxes(app: App, login: str) -> list[Mailbox]:
    """The account's own mailbox first, then those it owns or is delegated (switcher)."""
    async with app.db.read() as conn:
        own = await directory_repo.mailbox_by_address(conn, login)
        account = await directory_repo.account_by_login(conn, login)
        if account is None:
            return []
        others = await repo.other_mailboxes(conn, account.id, login)
        found = [await directory_repo.mailbox_by_address(conn, a) for a in others]
    boxes = [own] if own is not None and not own.disabled else []
    return boxes + [b for b in found if b is not None and not b.disabled]


async def open_box(
    app: App, login: str, mailbox_id: int, *, source: str, need_send: bool = False
) -> mailboxes.Access:
    async with app.db.read() as conn:
        box = await directory_repo.mailbox_by_id(conn, mailbox_id)
    if box is None:
        raise AccessDenied("Accès refusé à cette boîte.", "Access to this mailbox is denied.")
    return await mailboxes.open_mailbox(app, login, box.address, need_send=need_send, source=source)


def rights_of(access: mailboxes.Access) -> Rights:
    if not access.delegated:
        return mailstore.OWNER
    return Rights(True, access.can_send, False)


def _who(access: mailboxes.Access) -> tuple[str, str]:
    """Who acts on folders opened by the webmail, for the audit trail."""
    return access.account.login, "web"


async def folders(app: App, mailbox: Mailbox) -> list[tuple[Folder, FolderCounts]]:
    async with app.db.read() as conn:
        found = await repo.list_folders(conn, mailbox.id)
        counted = [(folder, await repo.counts(conn, folder.id)) for folder in found]
    order = {use.value: n for n, use in enumerate(SpecialUse)}
    return sorted(counted, key=lambda fc: (order.get(fc[0].special_use or "", 99), fc[0].name))


async def open_folder(app: App, access: mailboxes.Access, folder_id: int) -> OpenFolder:
    """The folder ``folder_id`` of the mailbox ``access`` opened; an id no folder can have (out
    of the database's integer range, from a form or a JSON body) is just not found."""
    if not 0 < folder_id < 2**62:
        raise _gone()
    async with app.db.read() as conn:
        folder = await repo.folder_by_id(conn, folder_id)
    if folder is None or folder.mailbox_id != access.mailbox.id:
        raise _gone()
    return OpenFolder(access.mailbox, folder, rights_of(access), folder.name, *_who(access))


async def special_folder(app: App, access: mailboxes.Access, use: SpecialUse) -> OpenFolder:
    async with app.db.read() as conn:
        found = await repo.list_folders(conn, access.mailbox.id)
    for folder in found:
        if folder.special_use == use.value:
            return OpenFolder(access.mailbox, folder, rights_of(access), folder.name, *_who(access))
    raise _gone()


@dataclass(frozen=True)
class Item:
    uid: int
    id: int
    flags: int
    internal_date: datetime
    size: int
    subject: str
    sender: str
    to: str
    snippet: str
    #: IMAP keywords (the triage's ``$Caducee-*`` among them), from the row: no extra read.
    keywords: tuple[str, ...] = ()

    @property
    def seen(self) -> bool:
        return bool(self.flags & Flag.SEEN)

    @property
    def flagged(self) -> bool:
        return bool(self.flags & Flag.FLAGGED)


@dataclass(frozen=True)
class Search:
    text: str = ""
    field: Literal["objet", "expediteur", "texte", "tout"] = "tout"
    since: date | None = None
    until: date | None = None

    @property
    def active(self) -> bool:
        return bool(self.text or self.since or self.until)


@dataclass(frozen=True)
class Listing:
    items: list[Item]
    total: int
    page: int
    pages: int
    #: Unseen « Urgent ? » messages of an Inbox, shown above the page (first page only).
    urgent: list[Item] = field(default_factory=list)


def _item(row: MessageSummary, headers: dict[str, object]) -> Item:
    return Item(
        uid=row.uid,
        id=row.id,
        flags=row.flags,
        internal_date=row.internal_date,
        size=row.size,
        subject=str(headers.get("subject", "")),
        sender=str(headers.get("from", "")),
        to=str(headers.get("to", "")),
        snippet=str(headers.get("snippet", "")),
        keywords=tuple(row.keywords.split()),
    )


#: At most this many « Urgent ? » messages are pinned above an Inbox's list.
URGENT_PINNED = 50


async def _urgent(app: App, of: OpenFolder, page: int, search: Search) -> list[Item]:
    """The Inbox's unseen messages the triage found possibly urgent, newest first: one indexed
    query on the folder, read on the first page only, without a search."""
    if page > 1 or search.active or of.folder.special_use != SpecialUse.INBOX.value:
        return []
    async with app.db.read() as conn:
        rows = await repo.fetch_unseen_with_keyword(
            conn, of.folder.id, URGENT_KEYWORD, URGENT_PINNED
        )
    metas = await mailstore.load_meta(app, rows)
    return [_item(r, metas[r.id].headers if r.id in metas else {}) for r in rows]


def _pinned(listing: Listing, urgent: list[Item]) -> Listing:
    shown = {i.id for i in urgent}
    return replace(listing, items=[i for i in listing.items if i.id not in shown], urgent=urgent)


async def list_messages(
    app: App,
    of: OpenFolder,
    *,
    page: int = 1,
    sort: str = "date",
    descending: bool = True,
    search: Search | None = None,
    page_size: int = PAGE_SIZE,
) -> Listing:
    """One page of a folder, sorted and filtered. By date or size without a search, only the
    page is read (SQL order and limit); by sender or subject, and searching, every row's
    metadata comes from the per-node cache. An Inbox's first page has its unseen « Urgent ? »
    messages above the list (``urgent``), and not again in it."""
    search = search or Search()
    listing = await _list(app, of, page, sort, descending, search, page_size)
    return _pinned(listing, await _urgent(app, of, listing.page, search))


async def _list(
    app: App,
    of: OpenFolder,
    page: int,
    sort: str,
    descending: bool,
    search: Search,
    page_size: int,
) -> Listing:
    if not search.active and sort in ("date", "taille"):
        async with app.db.read() as conn:
            page_rows, total = await repo.fetch_page(
                conn,
                of.folder.id,
                by_size=sort == "taille",
                descending=descending,
                offset=(max(1, page) - 1) * page_size,
                limit=page_size,
            )
        pages = max(1, -(-total // page_size))
        if page > pages:
            return await _list(app, of, pages, sort, descending, search, page_size)
        metas = await mailstore.load_meta(app, page_rows)
        items = [_item(r, metas[r.id].headers if r.id in metas else {}) for r in page_rows]
        return Listing(items, total, max(1, page), pages)
    rows = list((await mailstore.fetch_rows(app, of.folder.id, None)).values())
    if search.since is not None:
        start = datetime.combine(search.since, time.min).astimezone()
        rows = [r for r in rows if r.internal_date.astimezone() >= start]
    if search.until is not None:
        end = datetime.combine(search.until + timedelta(days=1), time.min).astimezone()
        rows = [r for r in rows if r.internal_date.astimezone() < end]
    needs_meta = sort in ("expediteur", "objet") or bool(search.text)
    metas = await mailstore.load_meta(app, rows) if needs_meta else {}
    if search.text:
        needle = search.text.casefold()
        bodies: dict[int, bytes] = {}
        if search.field in ("texte", "tout"):
            bodies = await mailstore.load_raw(app, rows)

        def matches(row: MessageSummary) -> bool:
            headers = metas[row.id].headers if row.id in metas else {}
            subject = str(headers.get("subject", "")).casefold()
            sender = str(headers.get("from", "")).casefold()
            if search.field in ("objet", "tout") and needle in subject:
                return True
            if search.field in ("expediteur", "tout") and needle in sender:
                return True
            if search.field in ("texte", "tout"):
                body = bodies.get(row.id, b"").decode("utf-8", "replace").casefold()
                return needle in body
            return False

        rows = [r for r in rows if matches(r)]
    if sort == "taille":
        rows.sort(key=lambda r: (r.size, r.uid), reverse=descending)
    elif sort in ("expediteur", "objet"):
        name = "from" if sort == "expediteur" else "subject"
        rows.sort(
            key=lambda r: (
                (str(metas[r.id].headers.get(name, "")).casefold(), r.uid)
                if r.id in metas
                else ("", r.uid)
            ),
            reverse=descending,
        )
    else:
        rows.sort(key=lambda r: (r.internal_date, r.uid), reverse=descending)
    total = len(rows)
    pages = max(1, -(-total // page_size))
    page = min(max(1, page), pages)
    chosen = rows[(page - 1) * page_size : page * page_size]
    page_metas = {
        **metas,
        **(await mailstore.load_meta(app, [r for r in chosen if r.id not in metas])),
    }
    items = [_item(r, page_metas[r.id].headers if r.id in page_metas else {}) for r in chosen]
    return Listing(items, total, page, pages)


async def message(app: App, of: OpenFolder, uid: int) -> tuple[MessageSummary, bytes]:
    """One message of the folder by UID, decrypted."""
    async with app.db.read() as conn:
        found = await repo.fetch_by_uids(conn, of.folder.id, [uid])
    row = found[0] if found else None
    if row is None:
        raise _gone()
    raw = (await mailstore.load_raw(app, [row])).get(row.id)
    if raw is None:
        raise _gone()
    return row, raw


async def set_flags(app: App, of: OpenFolder, ids: list[int], flag: int, on: bool) -> None:
    await mailstore.store_flags(app, of, ids, "+" if on else "-", flag, ())


async def move(app: App, of: OpenFolder, ids: list[int], target: OpenFolder) -> None:
    await mailstore.move(app, of, ids, target)


async def delete(app: App, access: mailboxes.Access, of: OpenFolder, ids: list[int]) -> None:
    """To the Trash; from the Trash, for good."""
    if of.folder.special_use == SpecialUse.TRASH.value:
        await mailstore.expunge_deleted(app, of, ids)
        return
    await mailstore.move(app, of, ids, await special_folder(app, access, SpecialUse.TRASH))


async def conversation(app: App, of: OpenFolder, row: MessageSummary) -> list[Item]:
    """Messages of the same mailbox's Inbox, Sent and current folder linked to this one by
    Message-ID / In-Reply-To / References (RFC 5322 §3.6.4), oldest first."""
    metas = await mailstore.load_meta(app, [row])
    own = metas[row.id].headers if row.id in metas else {}
    thread_ids = {str(own.get("message-id", "")).strip()}
    thread_ids |= set(str(own.get("references", "")).split())
    thread_ids |= set(str(own.get("in-reply-to", "")).split())
    thread_ids.discard("")
    if not thread_ids:
        return []
    out: list[Item] = []
    async with app.db.read() as conn:
        found = await repo.list_folders(conn, of.mailbox.id)
    wanted = [
        f
        for f in found
        if f.id == of.folder.id or f.special_use in (SpecialUse.INBOX.value, SpecialUse.SENT.value)
    ]
    for folder in wanted:
        async with app.db.read() as conn:
            rows = await repo.fetch_recent(conn, folder.id, CONVERSATION_WINDOW)
        for other, meta in (await mailstore.load_meta(app, rows)).items():
            headers = meta.headers
            linked = {str(headers.get("message-id", "")).strip()}
            linked |= set(str(headers.get("references", "")).split())
            linked |= set(str(headers.get("in-reply-to", "")).split())
            if linked & thread_ids:
                match = next(r for r in rows if r.id == other)
                out.append(_item(match, headers))
    out.sort(key=lambda i: i.internal_date)
    return out if len(out) > 1 else []


async def rows_by_uid(app: App, of: OpenFolder, uids: set[int]) -> list[MessageSummary]:
    async with app.db.read() as conn:
        return await repo.fetch_by_uids(conn, of.folder.id, sorted(uids))
