"""Folder commands: SELECT / EXAMINE (RFC 7162 CONDSTORE, QRESYNC), CREATE, DELETE, RENAME,
SUBSCRIBE, UNSUBSCRIBE, LIST (RFC 5258 LIST-EXTENDED, RFC 5819 LIST-STATUS, RFC 6154
SPECIAL-USE, RFC 3348 CHILDREN), LSUB, NAMESPACE (RFC 2342), STATUS (RFC 8438 SIZE),
UNSELECT (RFC 3691), CLOSE, CHECK.

Every folder is opened through ``services.mailstore`` (hence ``open_mailbox``): names are
resolved there, never trusted here.
"""

from __future__ import annotations

import bisect
import re

from caducee.domain.model import Flag, SpecialUse
from caducee.protocols.imap.protocol import Command, ListArgs, SelectArgs, format_set, resolve_set
from caducee.protocols.imap.session import Selected, Session, State, bad, error_response, no
from caducee.services import mailstore

SYSTEM_FLAGS = "(" + " ".join(Flag.NAMES) + ")"
STATUS_ITEMS = {
    "MESSAGES",
    "RECENT",
    "UIDNEXT",
    "UIDVALIDITY",
    "UNSEEN",
    "DELETED",
    "SIZE",
    "HIGHESTMODSEQ",
    "APPENDLIMIT",
}


async def cmd_select(session: Session, command: Command) -> None:
    args = command.args
    assert isinstance(args, SelectArgs)
    readonly = command.name == "EXAMINE"
    if session.selected is not None:  # RFC 7162 §3.2.11 / RFC 9051: the old one is closed
        session.deselect()
        session.untagged("OK [CLOSED] dossier precedent ferme")
    if args.qresync is not None and "QRESYNC" not in session.enabled:
        raise bad("QRESYNC doit d'abord etre active (ENABLE QRESYNC)")
    of = await mailstore.open_folder(
        session.app, session.login, args.name, source=session.conn.ip, recent=True
    )
    # the compact sequence map, copied from the node's cache while the folder is unchanged
    folder, rows = await mailstore.folder_index(session.app, of.folder.id, read=of.folder)
    if not of.rights.write:
        readonly = True
    if args.condstore:
        session.condstore = True
    selected = Selected(
        of=of,
        readonly=readonly,
        rows=rows,
        modseq=folder.highestmodseq,
        uidnext=folder.uidnext,
        uidvalidity=folder.uidvalidity,
    )
    selected.keywords = rows.keywords()
    first_recent = await mailstore.claim_recent(
        session.app,
        of.folder.id,
        folder.uidnext,
        claim=not readonly,
        known=of.first_recent,
    )
    uids = rows.uids
    selected.recent = set(uids[bisect.bisect_left(uids, first_recent) :])
    session.selected = selected
    session.announce_flags()
    session.untagged(f"{len(rows)} EXISTS")  # RFC 3501 §7.3.1
    if not session.rev2:
        session.untagged(f"{len(selected.recent)} RECENT")
        unseen = rows.first_without(Flag.SEEN)
        if unseen:
            session.untagged(f"OK [UNSEEN {unseen}] premier message non lu")
    session.untagged(f"OK [UIDVALIDITY {folder.uidvalidity}] UIDs valides")
    session.untagged(f"OK [UIDNEXT {folder.uidnext}] prochain UID")
    session.untagged(f"OK [HIGHESTMODSEQ {folder.highestmodseq}] modseq")
    session.state = State.SELECTED
    if args.qresync is not None:
        await _qresync(session, selected, *args.qresync)
    await session.tagged(
        command.tag, "OK", "dossier selectionne", "READ-ONLY" if readonly else "READ-WRITE"
    )


async def _qresync(
    session: Session, selected: Selected, uidvalidity: int, modseq: int, known: object
) -> None:
    """RFC 7162 §3.2.5.1: VANISHED (EARLIER) then FETCH of what changed since ``modseq``."""
    if uidvalidity != selected.uidvalidity:
        return
    changes = await mailstore.changes(session.app, selected.of.folder.id, modseq)
    vanished = changes.expunged
    if isinstance(known, list) and known:
        ranges = resolve_set(known, max(vanished, default=1))
        vanished = [u for u in vanished if any(a <= u <= b for a, b in ranges)]
    vanished = [u for u in vanished if u not in selected.rows]
    if vanished:
        session.untagged(f"VANISHED (EARLIER) {format_set(vanished)}")
    for row in changes.changed:
        if row.uid in selected.rows:
            session.untagged(session.fetch_line(selected.seq_of(row.uid), row, uid=True))


async def cmd_close(session: Session, command: Command) -> None:
    """RFC 3501 §6.4.2: expunge silently (read-write), then deselect.

    CLOSE has no NO: messages the retention rule keeps (télétransmission lots and returns) stay,
    the others go, and an untagged ``NO [CANNOT]`` (RFC 3501 §7.1.2, a warning) says why
    before the tagged OK, so that nothing is kept silently."""
    selected = session.selected
    assert selected is not None
    if not selected.readonly:
        current = await mailstore.index(session.app, selected.of.folder.id)
        deleted = [r.id for r in current[1] if r.flags & Flag.DELETED]
        _, held = await mailstore.expunge_what_may_go(session.app, selected.of, deleted)
        if held is not None:
            warning = error_response(held)
            session.untagged(f"NO [{warning.code}] {warning.text}")
    session.deselect()
    await session.tagged(command.tag, "OK", "CLOSE fait")


async def cmd_unselect(session: Session, command: Command) -> None:
    session.deselect()
    await session.tagged(command.tag, "OK", "UNSELECT fait")


async def cmd_check(session: Session, command: Command) -> None:
    await session.ok(command, "CHECK fait")


async def cmd_create(session: Session, command: Command) -> None:
    assert isinstance(command.args, str)
    await mailstore.create_folder(session.app, session.login, command.args, source=session.conn.ip)
    await session.ok(command, "CREATE fait")


async def cmd_delete(session: Session, command: Command) -> None:
    assert isinstance(command.args, str)
    name = command.args
    if session.selected is not None and _same(session, name):
        raise no("deselectionnez d'abord ce dossier", "INUSE")
    await mailstore.delete_folder(session.app, session.login, name, source=session.conn.ip)
    await session.ok(command, "DELETE fait")


def _same(session: Session, name: str) -> bool:
    assert session.selected is not None
    place = mailstore.resolve(session.login, name)
    of = session.selected.of
    return place.address == of.mailbox.address and place.folder == of.folder.name


async def cmd_rename(session: Session, command: Command) -> None:
    assert isinstance(command.args, tuple)
    old, new = command.args
    await mailstore.rename_folder(
        session.app, session.login, str(old), str(new), source=session.conn.ip
    )
    await session.ok(command, "RENAME fait")


async def cmd_subscribe(session: Session, command: Command) -> None:
    assert isinstance(command.args, str)
    await mailstore.set_subscribed(
        session.app,
        session.login,
        command.args,
        command.name == "SUBSCRIBE",
        source=session.conn.ip,
    )
    await session.ok(command, f"{command.name} fait")


async def cmd_namespace(session: Session, command: Command) -> None:
    shared = session.name_out(mailstore.SHARED_PREFIX + mailstore.DELIMITER).decode("latin-1")
    session.untagged(f'NAMESPACE (("" "/")) NIL (({shared} "/"))')
    await session.ok(command, "NAMESPACE fait")


# --- LIST ------------------------------------------------------------------------------------


def pattern_regex(reference: str, pattern: str) -> re.Pattern[str]:
    """RFC 3501 §6.3.8: '*' matches anything, '%' anything but the delimiter."""
    if pattern.startswith(mailstore.DELIMITER) or not reference:
        full = pattern if not reference else reference + pattern
    elif reference.endswith(mailstore.DELIMITER):
        full = reference + pattern
    else:
        full = reference + mailstore.DELIMITER + pattern
    full = mailstore.normalize_folder(full) if full.upper().startswith("INBOX") else full
    out = []
    for char in full:
        if char == "*":
            out.append(".*")
        elif char == "%":
            out.append("[^/]*")
        else:
            out.append(re.escape(char))
    return re.compile("".join(out), re.S)


def _matches(regexes: list[re.Pattern[str]], name: str) -> bool:
    return any(r.fullmatch(name) for r in regexes)


def _attributes(item: mailstore.Listed, *, special: bool) -> list[str]:
    attrs: list[str] = []
    if item.folder is None:
        attrs.append("\\Noselect")
    attrs.append("\\HasChildren" if item.has_children else "\\HasNoChildren")
    use = item.folder.special_use if item.folder else None
    if special and use and use != SpecialUse.INBOX.value:
        attrs.append(use)
    return attrs


async def cmd_list(session: Session, command: Command) -> None:
    args = command.args
    assert isinstance(args, ListArgs)
    lsub = command.name == "LSUB"
    if args.patterns == [""] and not args.extended:  # §6.3.8: the hierarchy delimiter
        session.untagged('LIST (\\Noselect) "/" ""')
        await session.ok(command, "LIST fait")
        return
    for option in args.select_opts:
        if option not in ("SUBSCRIBED", "REMOTE", "RECURSIVEMATCH", "SPECIAL-USE"):
            raise bad("option de selection inconnue")
    if "RECURSIVEMATCH" in args.select_opts and not (
        {"SUBSCRIBED", "SPECIAL-USE"} & set(args.select_opts)
    ):
        raise bad("RECURSIVEMATCH seul est interdit")
    for option in args.return_opts:
        if option not in ("SUBSCRIBED", "CHILDREN", "SPECIAL-USE"):
            raise bad("option de retour inconnue")
    if args.status_items is not None and not set(args.status_items) <= STATUS_ITEMS:
        raise bad("attribut STATUS inconnu")
    regexes = [pattern_regex(args.reference, p) for p in args.patterns if p != ""]
    items = await mailstore.list_folders(session.app, session.login)
    subscribed_only = lsub or "SUBSCRIBED" in args.select_opts
    special_only = "SPECIAL-USE" in args.select_opts
    show_subscribed = "SUBSCRIBED" in args.return_opts or "SUBSCRIBED" in args.select_opts
    show_special = not args.extended or "SPECIAL-USE" in args.return_opts or special_only
    recursive = "RECURSIVEMATCH" in args.select_opts
    word = "LSUB" if lsub else "LIST"
    by_name = {item.name: item for item in items}
    if lsub:
        _lsub_parents(session, items, regexes)
    for item in items:
        subscribed = item.subscribed
        if item.nonexistent and not subscribed_only:
            continue
        is_special = bool(
            item.folder and item.folder.special_use and item.folder.special_use != "\\Inbox"
        )
        extra = ""
        if not _matches(regexes, item.name):
            continue
        if subscribed_only and not subscribed:
            # RFC 5258 §3.5: CHILDINFO for a subscribed descendant not listed itself
            if recursive and any(
                other.startswith(item.name + "/")
                and by_name[other].subscribed
                and not _matches(regexes, other)
                for other in by_name
            ):
                extra = ' ("CHILDINFO" ("SUBSCRIBED"))'
            elif lsub and item.folder is None:
                continue
            else:
                continue
        if special_only and not is_special:
            continue
        attrs = _attributes(item, special=show_special)
        if item.nonexistent:
            attrs = ["\\NonExistent"]
        if lsub:
            attrs = [a for a in attrs if a == "\\Noselect"]
        if show_subscribed and subscribed and not lsub:
            attrs.append("\\Subscribed")
        name = session.name_out(item.name)
        session.untagged(f'{word} ({" ".join(attrs)}) "/" '.encode() + name + extra.encode())
        if args.status_items is not None and item.folder is not None:
            try:
                of = await mailstore.open_folder(
                    session.app, session.login, item.name, source=session.conn.ip
                )
            except mailstore.NonExistent:
                continue
            await _status_line(session, of, args.status_items)
        await session.maybe_flush()
    await session.ok(command, f"{word} fait")


def _lsub_parents(
    session: Session, items: list[mailstore.Listed], regexes: list[re.Pattern[str]]
) -> None:
    """RFC 3501 §6.3.9: with "%", an unsubscribed parent of a subscribed folder is listed
    with \\Noselect instead of the folder."""
    subscribed = {i.name for i in items if i.subscribed}
    shown: set[str] = set()
    for name in sorted(subscribed):
        if _matches(regexes, name):
            continue
        levels = name.split(mailstore.DELIMITER)
        for depth in range(len(levels) - 1, 0, -1):
            parent = mailstore.DELIMITER.join(levels[:depth])
            if parent in subscribed or parent in shown:
                break
            if _matches(regexes, parent):
                shown.add(parent)
                session.untagged(b'LSUB (\\Noselect) "/" ' + session.name_out(parent))
                break


# --- STATUS ----------------------------------------------------------------------------------


async def _status_line(session: Session, of: mailstore.OpenFolder, items: list[str]) -> None:
    folder, counts = await mailstore.status(session.app, of.folder.id)
    recent = await mailstore.recent_count(session.app, of.folder.id) if "RECENT" in items else 0
    values = {
        "MESSAGES": counts.messages,
        "RECENT": recent,
        "UIDNEXT": folder.uidnext,
        "UIDVALIDITY": folder.uidvalidity,
        "UNSEEN": counts.unseen,
        "DELETED": counts.deleted,
        "SIZE": counts.size,
        "HIGHESTMODSEQ": folder.highestmodseq,
        "APPENDLIMIT": session.config.max_message_bytes,
    }
    text = " ".join(f"{item} {values[item]}" for item in dict.fromkeys(items))
    session.untagged(b"STATUS " + session.name_out(of.name) + f" ({text})".encode())


async def cmd_status(session: Session, command: Command) -> None:
    assert isinstance(command.args, tuple)
    name, items = command.args
    assert isinstance(items, list)
    if not set(items) <= STATUS_ITEMS:
        raise bad("attribut STATUS inconnu")
    if "HIGHESTMODSEQ" in items:
        session.condstore = True
    of = await mailstore.open_folder(session.app, session.login, str(name), source=session.conn.ip)
    await _status_line(session, of, items)
    await session.ok(command, "STATUS fait")
