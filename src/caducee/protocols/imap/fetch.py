"""FETCH and UID FETCH (RFC 3501 §6.4.5, RFC 9051 §6.4.5 BINARY, RFC 7162 CHANGEDSINCE and
VANISHED).

ENVELOPE, BODYSTRUCTURE and section offsets come from the compact structure sealed at delivery
(``domain/mime_structure``, ``mailstore.load_structures``): a full sync parses nothing.
Sections are slices of the stored bytes; bodies are decrypted only when a section of them is
asked for. A non-PEEK BODY[...] on a
read-write selection sets \\Seen (§6.4.5) and reports the new FLAGS.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import math
import quopri
import time
from collections.abc import Mapping

from caducee.domain.mime_structure import (
    Structure,
    filter_header,
    find_part,
    header_fields,
    section_span,
)
from caducee.domain.model import Flag, IndexEntry, MessageSummary
from caducee.protocols.imap.protocol import Command, FetchArgs, FetchAtt, format_set
from caducee.protocols.imap.session import Session, bad, no
from caducee.services import mailstore, memory_trim

META_BATCH = 500
RAW_BATCH = 50
_META_ATTS = {"ENVELOPE", "BODYSTRUCTURE", "BODY"}
_RAW_ATTS = {
    "RFC822",
    "RFC822.HEADER",
    "RFC822.TEXT",
    "BODY",
    "BODY.PEEK",
    "BINARY",
    "BINARY.PEEK",
    "BINARY.SIZE",
}
_RFC822 = {"RFC822", "RFC822.HEADER", "RFC822.TEXT"}
_SETS_SEEN = {"RFC822", "RFC822.TEXT", "BODY", "BINARY"}
_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


_MONTH_BYTES = [month.encode() for month in _MONTHS]


#: The date part of INTERNALDATE by day since the epoch (bounded: cleared when full).
_DAY_PREFIXES: dict[int, bytes] = {}
_DAY_PREFIXES_MAX = 4096


def internal_date(row: MessageSummary) -> bytes:
    """RFC 3501 §9 date-time, in UTC. Paid once per message in a full sync: the date part is
    kept by day, the time is three divisions (a third of the cost of ``astimezone`` and
    ``strftime``)."""
    seconds = math.floor(row.internal_date.timestamp())
    day, rest = divmod(seconds, 86400)
    prefix = _DAY_PREFIXES.get(day)
    if prefix is None:
        if len(_DAY_PREFIXES) >= _DAY_PREFIXES_MAX:
            _DAY_PREFIXES.clear()
        t = time.gmtime(day * 86400)
        prefix = b'"%02d-%s-%04d ' % (t.tm_mday, _MONTH_BYTES[t.tm_mon - 1], t.tm_year)
        _DAY_PREFIXES[day] = prefix
    hour, rest = divmod(rest, 3600)
    minute, second = divmod(rest, 60)
    return prefix + b'%02d:%02d:%02d +0000"' % (hour, minute, second)


def _literal(data: bytes, *, binary: bool = False) -> bytes:
    """A literal of ``data``. Only BINARY[...] answers may carry NUL octets, in a literal8
    (RFC 9051 §4.3.1, §6.4.5); elsewhere a literal is CHAR8 (RFC 9051 §9), so a NUL in a message
    stored before APPEND refused them is sent as 0x80, as Dovecot does (same size: RFC822.SIZE
    and partial offsets stay true)."""
    if b"\x00" not in data:
        return b"{%d}\r\n" % len(data) + data
    if binary:
        return b"~{%d}\r\n" % len(data) + data
    return b"{%d}\r\n" % len(data) + data.replace(b"\x00", b"\x80")


class UnknownCte(Exception):
    pass


def decode_cte(raw: bytes, part_start: int, part_body: int, body: bytes) -> bytes:
    """RFC 9051 §6.4.5 BINARY: the content transfer decoding of a part's body."""
    encoding = ""
    for name, value in header_fields(raw[part_start:part_body]):
        if name == "content-transfer-encoding":
            encoding = value.strip().lower()
            break
    if encoding in ("", "7bit", "8bit", "binary"):
        return body
    if encoding == "base64":
        try:
            return base64.b64decode(b"".join(body.split()) + b"==", validate=False)
        except (binascii.Error, ValueError):
            return b""
    if encoding == "quoted-printable":
        return quopri.decodestring(body)
    raise UnknownCte(encoding)


def _needs(atts: list[FetchAtt]) -> tuple[bool, bool, bool]:
    meta = raw = seen = False
    for att in atts:
        if att.name in _META_ATTS and att.section is None:
            meta = True
        if att.name in _RAW_ATTS and (att.section is not None or att.name in _RFC822):
            raw = meta = True
            if att.name in _SETS_SEEN and att.name != "RFC822.HEADER":
                seen = True
    return meta, raw, seen


async def cmd_fetch(session: Session, command: Command) -> None:
    by_uid = command.name == "UID FETCH"
    assert isinstance(command.args, tuple)
    ranges, args = command.args
    assert isinstance(args, FetchArgs)
    selected = session.selected
    assert selected is not None
    atts = list(args.atts)
    if by_uid and not any(a.name == "UID" for a in atts):
        atts.insert(0, FetchAtt("UID"))
    if args.changedsince is not None or any(a.name == "MODSEQ" for a in atts):
        session.condstore = True  # RFC 7162 §3.1: CONDSTORE-enabling
    if args.changedsince is not None and not any(a.name == "MODSEQ" for a in atts):
        atts.append(FetchAtt("MODSEQ"))
    if args.vanished and (not by_uid or args.changedsince is None or not session.qresync):
        raise bad("VANISHED demande UID FETCH, CHANGEDSINCE et QRESYNC")
    positions = selected.positions(ranges, by_uid)
    if args.vanished:
        changes = await mailstore.changes(
            session.app, selected.of.folder.id, args.changedsince or 0
        )
        from caducee.protocols.imap.protocol import contains, resolve_set

        # "*" is the largest UID ever given here (UIDNEXT - 1), expunged ones included
        wanted = resolve_set(ranges, max(selected.uidnext - 1, 1))
        gone = [u for u in changes.expunged if contains(wanted, u) and u not in selected.rows]
        if gone:
            session.untagged(f"VANISHED (EARLIER) {format_set(gone)}")
    if args.changedsince is not None:
        since, modseq_at = args.changedsince, selected.rows.modseq_at
        positions = [index for index in positions if modseq_at(index) > since]
    ids = selected.rows.message_ids
    targets = [(index + 1, ids[index]) for index in positions]
    need_meta, need_raw, sets_seen = _needs(atts)
    sets_seen = sets_seen and not selected.readonly
    batch = RAW_BATCH if need_raw else META_BATCH
    # Most of the folder (a full sync): one query for every row rather than one per batch.
    preloaded = (
        await mailstore.fetch_rows(session.app, selected.of.folder.id, None)
        if len(targets) > max(len(selected.uids) // 2, META_BATCH)
        else None
    )
    produced = 0
    keep = mailstore.structures_fit(len(targets))
    batches = [targets[start : start + batch] for start in range(0, len(targets), batch)]

    def load(part: list[tuple[int, int]]) -> asyncio.Future[_Loaded]:
        return asyncio.ensure_future(
            _load_batch(session, part, need_meta, need_raw, preloaded, keep)
        )

    # The next batch is read and decrypted (worker threads, the database's) while this one is
    # written out; not with bodies, whose batches are already as large as memory should hold.
    ahead = not need_raw
    loading = load(batches[0]) if batches else None
    try:
        for number, part in enumerate(batches):
            assert loading is not None
            loaded = await loading
            following = batches[number + 1] if number + 1 < len(batches) else None
            loading = load(following) if following is not None and ahead else None
            before = len(session.out)
            await _emit_batch(session, part, atts, sets_seen, *loaded)
            produced += len(session.out) - before
            await session.maybe_flush()
            if following is not None and not ahead:
                loading = load(following)
    finally:
        if loading is not None:  # this command failed: the batch read ahead is not wanted
            loading.cancel()
            if loading.done() and not loading.cancelled():
                loading.exception()  # retrieved: its error is this command's, already raised
    # a full sync of a large folder reads and writes ~2 kB a message: the allocator's freed
    # pages go back to the system once the burst is over
    memory_trim.note(produced)
    await session.ok(command, "FETCH fait")


#: A batch's rows, IMAP structures and raw messages, by message id.
_Loaded = tuple[Mapping[int, MessageSummary], Mapping[int, Structure], Mapping[int, bytes]]


async def _load_batch(
    session: Session,
    targets: list[tuple[int, int]],
    need_meta: bool,
    need_raw: bool,
    preloaded: Mapping[int, MessageSummary] | None,
    keep: bool,
) -> _Loaded:
    selected = session.selected
    assert selected is not None
    app = session.app
    rows: Mapping[int, MessageSummary]
    if preloaded is not None:
        rows = {}
        for _, message_id in targets:
            summary = preloaded.get(message_id)  # one lookup (FolderRows builds the row)
            if summary is not None:
                rows[message_id] = summary
    else:
        rows = await mailstore.fetch_rows(app, selected.of.folder.id, [m for _, m in targets])
    metas = (
        await mailstore.load_structures(
            app, list(rows.values()), keep=keep, folder=selected.of.folder
        )
        if need_meta
        else {}
    )
    raws = await mailstore.load_raw(app, list(rows.values())) if need_raw else {}
    return rows, metas, raws


async def _emit_batch(
    session: Session,
    targets: list[tuple[int, int]],
    atts: list[FetchAtt],
    sets_seen: bool,
    rows: Mapping[int, MessageSummary],
    metas: Mapping[int, Structure],
    raws: Mapping[int, bytes],
) -> None:
    selected = session.selected
    assert selected is not None
    app = session.app
    flagged_now: set[int] = set()
    if sets_seen:
        unseen = [r.id for r in rows.values() if not r.flags & Flag.SEEN]
        if unseen:
            current, _ = await mailstore.store_flags(app, selected.of, unseen, "+", Flag.SEEN, [])
            for updated in current:
                if updated.id in rows:
                    row = rows[updated.id]
                    row.flags, row.modseq = updated.flags, updated.modseq
                    flagged_now.add(updated.id)
    known = selected.rows
    for seq, message_id in targets:
        found = rows.get(message_id)
        if found is None:  # expunged by another session, not reported yet (RFC 2180 §4.1.1)
            continue
        row = found
        # what this session knows of the message is now what it is told
        if known.uids[seq - 1] == row.uid:
            known.refresh_at(seq - 1, row.flags, row.keywords, row.modseq)
        elif row.uid in known:
            known[row.uid] = _index(row)
        items: list[bytes] = []
        flags_sent = False
        for att in atts:
            name = att.name
            if name == "UID":
                items.append(b"UID %d" % row.uid)
            elif name == "FLAGS":
                items.append(b"FLAGS " + session.flags_of(row).encode())
                flags_sent = True
            elif name == "INTERNALDATE":
                items.append(b"INTERNALDATE " + internal_date(row))
            elif name == "RFC822.SIZE":
                items.append(b"RFC822.SIZE %d" % row.size)
            elif name == "MODSEQ":
                items.append(b"MODSEQ (%d)" % row.modseq)
            elif name in ("ENVELOPE", "BODYSTRUCTURE") or (name == "BODY" and att.section is None):
                structure = metas.get(row.id)
                if structure is None:
                    continue
                value = {
                    "ENVELOPE": structure.envelope,
                    "BODYSTRUCTURE": structure.bodystructure,
                    "BODY": structure.body,
                }[name]
                items.append(name.encode() + b" " + value)
            else:
                raw = raws.get(row.id)
                structure = metas.get(row.id)
                if raw is None or structure is None:
                    continue
                items.append(_section_item(att, raw, structure.tree))
        if row.id in flagged_now and not flags_sent:
            items.append(b"FLAGS " + session.flags_of(row).encode())
        if (
            session.condstore
            and row.id in flagged_now
            and not any(a.name == "MODSEQ" for a in atts)
        ):
            items.append(b"MODSEQ (%d)" % row.modseq)
        session.untagged(b"%d FETCH (" % seq + b" ".join(items) + b")")


def _index(row: MessageSummary) -> IndexEntry:
    return IndexEntry(row.uid, row.id, row.flags, row.keywords, row.modseq)


def _section_item(att: FetchAtt, raw: bytes, tree: object) -> bytes:
    from caducee.domain.mime_structure import Part

    assert isinstance(tree, Part)
    name = att.name
    if name == "RFC822":
        return b"RFC822 " + _literal(raw)
    if name == "RFC822.HEADER":
        return b"RFC822.HEADER " + _literal(raw[tree.start : tree.body])
    if name == "RFC822.TEXT":
        return b"RFC822.TEXT " + _literal(raw[tree.body : tree.end])
    section = att.section
    assert section is not None
    if name.startswith("BINARY"):
        part = find_part(tree, section.path)
        if part is None:
            raise no("section inexistante", "NONEXISTENT")
        if section.path:
            try:
                data = decode_cte(raw, part.start, part.body, raw[part.body : part.end])
            except UnknownCte:
                raise no("encodage de transfert inconnu", "UNKNOWN-CTE") from None
        else:
            data = raw
        label = ("BINARY.SIZE" if name == "BINARY.SIZE" else "BINARY").encode()
        label += section.raw.encode()
        if name == "BINARY.SIZE":
            return label + b" %d" % len(data)
        if att.partial is not None:
            offset, length = att.partial
            data = data[offset : offset + length]
            label += b"<%d>" % offset
        return label + b" " + _literal(data, binary=True)
    text = section.text
    kind = "HEADER" if text.startswith("HEADER") else text
    span = section_span(tree, section.path, kind)
    data = raw[span[0] : span[1]] if span else b""
    if text in ("HEADER.FIELDS", "HEADER.FIELDS.NOT") and span:
        data = filter_header(data, set(section.fields), text.endswith(".NOT"))
    label = b"BODY" + section.raw.encode()
    if att.partial is not None:
        offset, length = att.partial
        data = data[offset : offset + length]
        label += b"<%d>" % offset
    return label + b" " + _literal(data)
