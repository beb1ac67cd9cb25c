"""IDLE (RFC 2177): new mail by local delivery or APPEND is reported within one second."""

from __future__ import annotations

import time

from caducee.services.delivery import deliver_local
from tests.protocols.imap.conftest import LOGIN, ImapServer, message


async def test_idle_wakes_up_on_delivery_and_append(server: ImapServer) -> None:
    c = await server.client()
    await c.ok("SELECT INBOX")
    tag = c.next_tag()
    await c.send_raw(f"{tag} IDLE\r\n".encode())
    assert (await c.line()).startswith("+ ")
    start = time.monotonic()
    await deliver_local(server.app, message(1), [LOGIN])
    assert await c.line(timeout=1) == "* 1 EXISTS"
    assert await c.line(timeout=1) == "* 1 RECENT"
    assert time.monotonic() - start < 1
    other = await server.client()
    data = message(2)
    start = time.monotonic()
    await other.ok(f"APPEND INBOX {{{len(data)}+}}\r\n".encode().decode() + data.decode())
    assert await c.line(timeout=1) == "* 2 EXISTS"
    assert await c.line(timeout=1) == "* 2 RECENT"
    await other.ok("SELECT INBOX")
    await other.ok("STORE 1 +FLAGS (\\Seen)")
    assert await c.line(timeout=1) == "* 1 FETCH (UID 1 FLAGS (\\Recent \\Seen))"
    await other.ok("STORE 2 +FLAGS.SILENT (\\Deleted)")
    await other.ok("EXPUNGE")
    lines = [await c.line(timeout=1)]
    if lines[0].startswith("* 2 FETCH"):  # the flag change may come before the expunge
        lines.append(await c.line(timeout=1))
    assert lines[-1] == "* 2 EXPUNGE"
    await c.send_raw(b"DONE\r\n")
    assert (await c.line()) == f"{tag} OK IDLE termine"
    tag = c.next_tag()
    await c.send_raw(f"{tag} IDLE\r\n".encode())
    await c.line()
    await c.send_raw(b"NOTDONE\r\n")
    assert (await c.line()).startswith(f"{tag} BAD")
