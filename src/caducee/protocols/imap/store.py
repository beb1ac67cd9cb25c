"""STORE and UID STORE (RFC 3501 §6.4.6; RFC 7162 §3.1.3 UNCHANGEDSINCE and MODIFIED)."""

from __future__ import annotations

from caducee.domain.model import Flag
from caducee.protocols.imap.protocol import Command, StoreArgs, format_set
from caducee.protocols.imap.session import Session, bad, no
from caducee.services import mailstore

_KEYWORD_FORBIDDEN = set(' (){%*"]\\') | {chr(c) for c in range(0x20)} | {"\x7f"}


def split_flags(names: list[str]) -> tuple[int, list[str]]:
    """System flags as a bit mask, keywords as they are; BAD for unknown system flags."""
    bits = 0
    keywords: list[str] = []
    lower = {name.lower(): bit for name, bit in Flag.NAMES.items()}
    for name in names:
        if name.startswith("\\"):
            if name.lower() == "\\recent":
                continue  # RFC 3501 §2.3.2: \Recent cannot be set by a client
            bit = lower.get(name.lower())
            if bit is None:
                raise bad("drapeau systeme inconnu")
            bits |= bit
        else:
            if not name or any(c in _KEYWORD_FORBIDDEN for c in name) or len(name) > 100:
                raise bad("mot-cle invalide")
            keywords.append(name)
    return bits, keywords


async def cmd_store(session: Session, command: Command) -> None:
    by_uid = command.name == "UID STORE"
    assert isinstance(command.args, tuple)
    ranges, args = command.args
    assert isinstance(args, StoreArgs)
    selected = session.selected
    assert selected is not None
    if selected.readonly:
        raise no("dossier ouvert en lecture seule", "CANNOT")
    bits, keywords = split_flags(args.flags)
    if args.unchangedsince is not None:
        session.condstore = True
    targets = selected.resolve(ranges, by_uid)
    seq_of = {row.id: seq for seq, row in targets}
    current, refused = await mailstore.store_flags(
        session.app,
        selected.of,
        [row.id for _, row in targets],
        args.mode,
        bits,
        keywords,
        unchangedsince=args.unchangedsince,
    )
    refused_set = set(refused)
    for row in current:
        old = selected.rows.get(row.uid)
        selected.rows[row.uid] = row
        if row.id in refused_set:
            continue
        changed = old is None or (old.flags, old.keywords) != (row.flags, row.keywords)
        # .SILENT: no FETCH, except that with CONDSTORE the new MODSEQ is still sent
        # (RFC 7162 §3.1.3) when the message changed.
        if not args.silent or (session.condstore and changed):
            if args.silent:
                line = f"{seq_of[row.id]} FETCH ("
                line += f"UID {row.uid} " if by_uid else ""
                session.untagged(line + f"MODSEQ ({row.modseq}))")
            else:
                session.untagged(session.fetch_line(seq_of[row.id], row, uid=by_uid))
    if refused:
        numbers = [r.uid if by_uid else seq_of[r.id] for r in current if r.id in refused_set]
        await session.ok(command, "STORE partiel", f"MODIFIED {format_set(numbers)}")
        return
    await session.ok(command, "STORE fait")
