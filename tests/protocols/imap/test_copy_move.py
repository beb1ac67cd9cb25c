"""COPY / MOVE (RFC 6851) with UIDPLUS COPYUID; into another mailbox: re-sealed, quota."""

from __future__ import annotations

from caducee.services import mailboxes
from caducee.services.delivery import deliver_local
from caducee.services.messages import read_message
from tests.protocols.imap.conftest import LOGIN, OTHER, ImapServer, message, tagged


async def test_copy_keeps_flags_and_dates(server: ImapServer) -> None:
    for n in range(3):
        await deliver_local(server.app, message(n), [LOGIN])
    c = await server.client()
    lines = await c.ok("SELECT INBOX")
    await c.ok("STORE 2 +FLAGS (\\Flagged $Urgent)")
    dates = await c.ok("FETCH 1:3 INTERNALDATE")
    lines = await c.ok("COPY 2:3 Archive")
    archive = await c.ok("STATUS Archive (UIDVALIDITY)")
    uidvalidity = archive[0].split("UIDVALIDITY ")[1].rstrip(")")
    assert tagged(lines) == f"OK [COPYUID {uidvalidity} 2:3 1:2] COPY fait"
    before = (await mailboxes.get_mailbox(server.app, LOGIN)).used_bytes
    await c.ok("SELECT Archive")
    lines = await c.ok("FETCH 1:2 (FLAGS INTERNALDATE)")
    assert lines[0].startswith("* 1 FETCH (FLAGS (\\Recent \\Flagged $Urgent) INTERNALDATE")
    assert lines[0].split("INTERNALDATE ")[1] == dates[1].split("INTERNALDATE ")[1]
    # Copies in one mailbox share the sealed blob: expunging one keeps the other readable.
    await c.ok("STORE 1 +FLAGS (\\Deleted)")
    await c.ok("EXPUNGE")
    await c.ok("SELECT INBOX")
    lines = await c.ok("FETCH 2 BODY.PEEK[]")
    assert "message 1" in lines[0]
    after = (await mailboxes.get_mailbox(server.app, LOGIN)).used_bytes
    assert after == before - len(message(1))
    assert tagged(await c.command("COPY 1 Nulle/Part")).startswith("NO [TRYCREATE]")


async def test_move_in_one_mailbox(server: ImapServer) -> None:
    for n in range(3):
        await deliver_local(server.app, message(n), [LOGIN])
    c = await server.client()
    await c.ok("SELECT INBOX")
    lines = await c.ok("MOVE 1:2 Trash")
    assert lines[0].startswith("* OK [COPYUID ") and lines[0].endswith(
        " 1:2 1:2] messages deplaces"
    )
    assert lines[1:3] == ["* 2 EXPUNGE", "* 1 EXPUNGE"]
    assert (await c.ok("FETCH 1 UID"))[0] == "* 1 FETCH (UID 3)"
    lines = await c.ok("UID MOVE 3 Trash")
    assert lines[1] == "* 1 EXPUNGE"
    lines = await c.ok("STATUS Trash (MESSAGES)")
    assert lines[0] == '* STATUS "Trash" (MESSAGES 3)'


async def test_copy_into_delegated_mailbox_reseals_and_counts(server: ImapServer) -> None:
    await mailboxes.delegate(server.app, OTHER, LOGIN, can_send=True)
    [stored] = await deliver_local(server.app, message(9), [LOGIN])
    c = await server.client()
    await c.ok("SELECT INBOX")
    shared = f'"Partag&AOk-s/{OTHER}/INBOX"'
    await c.ok(f"COPY 1 {shared}")
    other = await mailboxes.get_mailbox(server.app, OTHER)
    assert other.used_bytes == len(message(9))
    await c.ok(f"SELECT {shared}")
    lines = await c.ok("FETCH 1 (BODY.PEEK[] ENVELOPE)")
    assert "corps 9" in lines[0] and '"message 9"' in lines[0]
    copied = await c.ok("FETCH 1 UID")
    assert copied[0] == "* 1 FETCH (UID 1)"
    original, _ = await read_message(server.app, stored.id)
    assert original.mailbox_id != other.id
    await mailboxes.set_quota(server.app, OTHER, 1024 * 1024)
    big = b"Subject: gros\r\n\r\n" + b"x" * (1024 * 1024)
    await deliver_local(server.app, big, [LOGIN])
    await c.ok("SELECT INBOX")
    assert tagged(await c.command(f"COPY 2 {shared}")).startswith("NO [OVERQUOTA]")
