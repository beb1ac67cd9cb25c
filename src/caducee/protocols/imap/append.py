"""APPEND (RFC 3501 §6.3.11) with MULTIAPPEND (RFC 3502), APPENDLIMIT (RFC 7889), UIDPLUS
APPENDUID (RFC 4315) and RFC 6855 ``UTF8 (literal8)``; TRYCREATE for a missing folder.
BINARY (RFC 3516) is not offered: binary content (a bare ``~{n}``, a NUL octet) is refused
with ``NO [UNKNOWN-CTE]``, so every stored message can be sent back in ``{n}`` literals.

Messages go in through :func:`caducee.flows.append.append` (the antivirus, then the delivery
path, ``services.messages.store_batch`` via ``services.mailstore.append``): scanned, sealed,
quota checked, durably stored before the OK.
"""

from __future__ import annotations

from caducee.flows import append
from caducee.protocols.imap.copy_move import _target
from caducee.protocols.imap.protocol import AppendItem, Command, format_set
from caducee.protocols.imap.session import Session, no
from caducee.protocols.imap.store import split_flags
from caducee.services import mailstore


async def cmd_append(session: Session, command: Command) -> None:
    assert isinstance(command.args, tuple)
    name, items = command.args
    assert isinstance(items, list)
    appended: list[mailstore.Appended] = []
    total = 0
    for item in items:
        assert isinstance(item, AppendItem)
        if len(item.data) > session.config.max_message_bytes:
            raise no("message trop volumineux", "TOOBIG")
        if not item.data:
            raise no("message vide", "CANNOT")
        # No BINARY (RFC 3516) here: a message is stored as text, as RFC 9051 §4.3.1 wants it
        # (binary content goes base64-encoded). A bare literal8, or a NUL octet in the literal8
        # of RFC 6855's UTF8 form, is binary content: NO [UNKNOWN-CTE] (RFC 3516 §4.3).
        if item.literal8:
            raise no(
                "BINARY (RFC 3516) non pris en charge : envoyez un litteral ordinaire / "
                "BINARY not supported: send an ordinary literal",
                "UNKNOWN-CTE",
            )
        if b"\x00" in item.data:
            raise no(
                "octet nul dans le message : encodez les parties binaires en base64 / "
                "NUL octet in the message: encode binary parts in base64",
                "UNKNOWN-CTE",
            )
        total += len(item.data)
        bits, keywords = split_flags(item.flags)
        appended.append(mailstore.Appended(item.data, bits, tuple(keywords), item.date))
    target = await _target(session, str(name))
    uids = await append.append(session.app, target, appended)
    await session.ok(
        command,
        "APPEND fait",
        f"APPENDUID {target.folder.uidvalidity} {format_set(uids)}",
    )
