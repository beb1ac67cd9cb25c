"""EXPUNGE (RFC 3501 §6.4.3) and UID EXPUNGE (RFC 4315 §2.1)."""

from __future__ import annotations

from caducee.domain.model import Flag
from caducee.protocols.imap.protocol import Command, contains, resolve_set
from caducee.protocols.imap.session import Session, no
from caducee.services import mailstore


async def cmd_expunge(session: Session, command: Command) -> None:
    selected = session.selected
    assert selected is not None
    if selected.readonly:
        raise no("dossier ouvert en lecture seule", "CANNOT")
    _, rows = await mailstore.index(session.app, selected.of.folder.id)
    doomed = [r for r in rows if r.flags & Flag.DELETED]
    if command.name == "UID EXPUNGE":
        assert isinstance(command.args, list)
        ranges = resolve_set(command.args, rows[-1].uid if rows else 1)
        doomed = [r for r in doomed if contains(ranges, r.uid)]
    await mailstore.expunge_deleted(session.app, selected.of, [r.id for r in doomed])
    # Reported now, with whatever else is pending (the session's next sync sees them).
    await session.ok(command, "EXPUNGE fait")
