"""IMAP APPEND (RFC 3501 §6.3.11) as a flow: the messages a client puts into a folder are
scanned by the antivirus (:mod:`caducee.flows.antivirus`) before they are stored through
:func:`caducee.services.mailstore.append` (sealed, quota checked, durably stored). All or
nothing: one infected message refuses the whole command (RFC 3502 MULTIAPPEND is atomic)."""

from __future__ import annotations

from collections.abc import Sequence

from caducee.app import App
from caducee.domain.model import MailboxType
from caducee.flows import antivirus
from caducee.services import mailstore


async def append(
    app: App,
    target: mailstore.OpenFolder,
    items: Sequence[mailstore.Appended],
) -> list[int]:
    """Scan, then store ``items`` in ``target``; returns their UIDs."""
    for item in items:
        await antivirus.check(
            app,
            item.raw,
            door="imap-append",
            source=target.source,
            actor=target.actor,
            teletransmission=target.mailbox.type is MailboxType.TLT,
        )
    return await mailstore.append(app, target, items)
