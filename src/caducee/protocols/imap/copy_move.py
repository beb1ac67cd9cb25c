"""COPY, UID COPY (RFC 3501 §6.4.7, RFC 4315 COPYUID) and MOVE, UID MOVE (RFC 6851)."""

from __future__ import annotations

from caducee.protocols.imap.protocol import Command, format_set
from caducee.protocols.imap.session import Session, no
from caducee.services import mailstore


async def _target(session: Session, name: str) -> mailstore.OpenFolder:
    try:
        return await mailstore.open_folder(
            session.app, session.login, name, source=session.conn.ip, write=True
        )
    except mailstore.NonExistent:
        # RFC 3501 §6.4.7: TRYCREATE when the folder could be created (own namespace only)
        place = mailstore.resolve(session.login, name)
        code = "NONEXISTENT" if place.shared else "TRYCREATE"
        raise no("dossier de destination inexistant", code) from None


async def cmd_copy(session: Session, command: Command) -> None:
    by_uid = command.name.startswith("UID ")
    move = command.name.endswith("MOVE")
    assert isinstance(command.args, tuple)
    ranges, name = command.args
    selected = session.selected
    assert selected is not None
    if move and selected.readonly:
        raise no("dossier ouvert en lecture seule", "CANNOT")
    targets = selected.resolve(ranges, by_uid)
    target = await _target(session, str(name))
    ids = [row.id for _, row in targets]
    if not ids:
        await session.ok(command, f"{'MOVE' if move else 'COPY'} fait (aucun message)")
        return
    if move:
        pairs = await mailstore.move(session.app, selected.of, ids, target)
    else:
        pairs = await mailstore.copy(session.app, selected.of, ids, target)
    target_state = await mailstore.folder_state(session.app, target.folder.id)
    code = ""
    if pairs:
        code = (
            f"COPYUID {target_state.uidvalidity} {format_set([a for a, _ in pairs])} "
            f"{format_set([b for _, b in pairs])}"
        )
    if move:
        # RFC 6851 §4.3: COPYUID in an untagged OK, then the expunges, then the tagged OK.
        if code:
            session.untagged(f"OK [{code}] messages deplaces")
        session.report_expunges([a for a, _ in pairs])
        await session.ok(command, "MOVE fait")
        return
    await session.ok(command, "COPY fait", code)
