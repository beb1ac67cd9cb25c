"""CONDSTORE and QRESYNC (RFC 7162): HIGHESTMODSEQ, CHANGEDSINCE, VANISHED, SELECT QRESYNC."""

from __future__ import annotations

from caducee.services.delivery import deliver_local
from tests.protocols.imap.conftest import LOGIN, ImapServer, message, tagged


def code_value(lines: list[str], code: str) -> int:
    line = next(line for line in lines if f"[{code} " in line)
    return int(line.split(f"[{code} ")[1].split("]")[0])


async def test_qresync_resynchronises_after_another_client(server: ImapServer) -> None:
    for n in range(5):
        await deliver_local(server.app, message(n), [LOGIN])
    a = await server.client()
    lines = await a.ok("SELECT INBOX")
    uidvalidity, modseq = code_value(lines, "UIDVALIDITY"), code_value(lines, "HIGHESTMODSEQ")
    await a.ok("LOGOUT")
    b = await server.client()
    await b.ok("SELECT INBOX")
    await b.ok("STORE 2 +FLAGS (\\Answered)")
    await b.ok("STORE 4:5 +FLAGS.SILENT (\\Deleted)")
    await b.ok("EXPUNGE")
    c = await server.client()
    assert tagged(await c.command(f"SELECT INBOX (QRESYNC ({uidvalidity} {modseq}))")).startswith(
        "BAD"
    )
    assert (await c.ok("ENABLE QRESYNC"))[0] == "* ENABLED QRESYNC"
    lines = await c.ok(f"SELECT INBOX (QRESYNC ({uidvalidity} {modseq} 1:5))")
    assert "* VANISHED (EARLIER) 4:5" in lines
    assert "* 2 FETCH (UID 2 FLAGS (\\Answered) MODSEQ (" in "\n".join(lines)
    assert "* 3 EXISTS" in lines
    new_modseq = code_value(lines, "HIGHESTMODSEQ")
    assert new_modseq > modseq
    await b.ok("STORE 1 +FLAGS (\\Seen)")
    lines = await c.ok(f"UID FETCH 1:* (FLAGS) (CHANGEDSINCE {new_modseq} VANISHED)")
    assert lines[0].startswith("* 1 FETCH (UID 1 FLAGS (\\Seen) MODSEQ (")
    await b.ok("STORE 3 +FLAGS.SILENT (\\Deleted)")
    await b.ok("EXPUNGE")
    assert (await c.ok("NOOP"))[0] == "* VANISHED 3"
    lines = await c.ok(f"UID FETCH 1:* (FLAGS) (CHANGEDSINCE {modseq} VANISHED)")
    assert lines[0] == "* VANISHED (EARLIER) 3:5"
    lines = await c.ok("STATUS INBOX (HIGHESTMODSEQ)")
    assert "HIGHESTMODSEQ" in lines[0]
