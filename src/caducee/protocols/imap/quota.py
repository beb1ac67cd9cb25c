"""QUOTA (RFC 9208): GETQUOTAROOT, GETQUOTA; the STORAGE resource, in KiB, of each mailbox.

Quota roots: "" for the personal mailbox, ``Partagés/<address>`` for the others.
"""

from __future__ import annotations

from caducee.protocols.imap.protocol import Command
from caducee.protocols.imap.session import Session, no
from caducee.services import mailstore


def _root_of(of: mailstore.OpenFolder, login: str) -> str:
    if of.mailbox.address == login:
        return ""
    return f"{mailstore.SHARED_PREFIX}{mailstore.DELIMITER}{of.mailbox.address}"


async def _quota_line(session: Session, root: str, mailbox_id: int) -> None:
    used, limit = await mailstore.quota(session.app, mailbox_id)
    session.untagged(
        b"QUOTA " + session.name_out(root) + b" (STORAGE %d %d)" % (used // 1024, limit // 1024)
    )


async def cmd_getquotaroot(session: Session, command: Command) -> None:
    assert isinstance(command.args, str)
    of = await mailstore.open_folder(
        session.app, session.login, command.args, source=session.conn.ip
    )
    root = _root_of(of, session.login)
    session.untagged(b"QUOTAROOT " + session.name_out(command.args) + b" " + session.name_out(root))
    await _quota_line(session, root, of.mailbox.id)
    await session.ok(command, "GETQUOTAROOT fait")


async def cmd_getquota(session: Session, command: Command) -> None:
    assert isinstance(command.args, str)
    root = command.args
    name = "INBOX" if root == "" else root + mailstore.DELIMITER + "INBOX"
    try:
        of = await mailstore.open_folder(session.app, session.login, name, source=session.conn.ip)
    except mailstore.NonExistent:
        raise no("racine de quota inconnue", "NONEXISTENT") from None
    if _root_of(of, session.login) != root:
        raise no("racine de quota inconnue", "NONEXISTENT")
    await _quota_line(session, root, of.mailbox.id)
    await session.ok(command, "GETQUOTA fait")


async def cmd_setquota(session: Session, command: Command) -> None:
    raise no("les quotas se reglent par l'administrateur du cabinet", "NOPERM")
