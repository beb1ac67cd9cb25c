"""APPEND: flags, dates, APPENDUID, MULTIAPPEND, LITERAL+, APPENDLIMIT, TRYCREATE, quota."""

from __future__ import annotations

from caducee.services import mailboxes
from tests.protocols.imap.conftest import LOGIN, ImapServer, message, tagged


async def test_append_with_flags_and_date(server: ImapServer) -> None:
    c = await server.client()
    data = message(1)
    tag = c.next_tag()
    await c.send_raw(
        f'{tag} APPEND Drafts (\\Draft \\Seen $Brouillon) "05-Mar-2024 14:30:00 +0100" '
        f"{{{len(data)}}}\r\n".encode()
    )
    assert (await c.line()).startswith("+ ")
    await c.send_raw(data + b"\r\n")
    lines = await c.until(tag)
    status = await c.ok("STATUS Drafts (UIDVALIDITY)")
    uidvalidity = status[0].split("UIDVALIDITY ")[1].rstrip(")")
    assert tagged(lines) == f"OK [APPENDUID {uidvalidity} 1] APPEND fait"
    await c.ok("SELECT Drafts")
    lines = await c.ok("FETCH 1 (FLAGS INTERNALDATE RFC822.SIZE)")
    assert lines[0] == (
        "* 1 FETCH (FLAGS (\\Recent \\Seen \\Draft $Brouillon) "
        'INTERNALDATE "05-Mar-2024 13:30:00 +0000" '
        f"RFC822.SIZE {len(data)})"
    )
    assert (await mailboxes.get_mailbox(server.app, LOGIN)).used_bytes == len(data)


async def test_multiappend_and_literal_plus(server: ImapServer) -> None:
    c = await server.client()
    await c.ok("SELECT INBOX")
    one, two = message(1), message(2)
    tag = c.next_tag()
    await c.send_raw(
        f"{tag} APPEND INBOX {{{len(one)}+}}\r\n".encode()
        + one
        + f" (\\Seen) {{{len(two)}+}}\r\n".encode()
        + two
        + b"\r\n"
    )
    lines = await c.until(tag)
    assert lines[0] == "* 2 EXISTS"
    assert tagged(lines).startswith("OK [APPENDUID ") and " 1:2] " in lines[-1]


async def test_append_refusals(server: ImapServer) -> None:
    c = await server.client()
    caps = (await c.ok("CAPABILITY"))[0]
    limit = int(caps.split("APPENDLIMIT=")[1].split()[0])
    assert limit == server.app.settings.max_message_bytes
    assert tagged(await c.command(f"APPEND Inconnu {{{3}+}}\r\nabc")).startswith("NO [TRYCREATE]")
    tag = c.next_tag()
    await c.send_raw(f"{tag} APPEND INBOX {{{limit + 1}}}\r\n".encode())
    assert (await c.line()) == f"{tag} NO [TOOBIG] litteral trop grand"
    await mailboxes.set_quota(server.app, LOGIN, 1024 * 1024)
    big = b"Subject: x\r\n\r\n" + b"y" * (1024 * 1024)
    tag = c.next_tag()
    await c.send_raw(f"{tag} APPEND INBOX {{{len(big)}+}}\r\n".encode() + big + b"\r\n")
    assert tagged(await c.until(tag)).startswith("NO [OVERQUOTA]")
    assert tagged(await c.command("APPEND INBOX {0+}\r\n")).startswith("NO")
    await c.ok("NOOP")
