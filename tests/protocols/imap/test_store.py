"""STORE / UID STORE: flags and keywords, .SILENT, CONDSTORE UNCHANGEDSINCE and MODIFIED."""

from __future__ import annotations

from caducee.services.delivery import deliver_local
from tests.protocols.imap.conftest import LOGIN, ImapServer, message, tagged


async def test_flags_and_keywords(server: ImapServer) -> None:
    for n in range(3):
        await deliver_local(server.app, message(n), [LOGIN])
    c = await server.client()
    await c.ok("SELECT INBOX")
    await c.ok("SELECT INBOX")  # seen before: nothing is \\Recent any more
    lines = await c.ok("STORE 1 +FLAGS (\\Seen $Label1)")
    assert lines[:3] == [  # a new keyword is announced first (RFC 3501 §7.2.6)
        "* FLAGS (\\Seen \\Answered \\Flagged \\Deleted \\Draft $Label1)",
        "* OK [PERMANENTFLAGS (\\Seen \\Answered \\Flagged \\Deleted \\Draft $Label1 \\*)] "
        "drapeaux permanents",
        "* 1 FETCH (FLAGS (\\Seen $Label1))",
    ]
    assert (await c.ok("STORE 1 -FLAGS ($label1)"))[0] == "* 1 FETCH (FLAGS (\\Seen))"
    assert (await c.ok("STORE 1 FLAGS (\\Flagged \\Answered)"))[0] == (
        "* 1 FETCH (FLAGS (\\Answered \\Flagged))"
    )
    assert len(await c.ok("STORE 2:3 +FLAGS.SILENT \\Deleted")) == 1
    assert (await c.ok("UID STORE 2 -FLAGS (\\Deleted)"))[0] == "* 2 FETCH (UID 2 FLAGS ())"
    assert tagged(await c.command("STORE 1 +FLAGS (\\Bogus)")).startswith("BAD")
    assert tagged(await c.command("STORE 1 +FLAGS (a]b)")).startswith("BAD")
    await c.ok("STORE 1 +FLAGS (\\Recent)")  # ignored (RFC 3501 §2.3.2)
    lines = await c.ok("SELECT INBOX")
    assert lines[1] == "* FLAGS (\\Seen \\Answered \\Flagged \\Deleted \\Draft)"


async def test_unchangedsince_and_modified(server: ImapServer) -> None:
    for n in range(2):
        await deliver_local(server.app, message(n), [LOGIN])
    c = await server.client()
    await c.ok("SELECT INBOX")
    lines = await c.ok("SELECT INBOX (CONDSTORE)")
    modseq = int(next(line for line in lines if "HIGHESTMODSEQ" in line).split()[3].rstrip("]"))
    lines = await c.ok(f"STORE 1 (UNCHANGEDSINCE {modseq}) +FLAGS (\\Seen)")
    assert lines[0] == f"* 1 FETCH (FLAGS (\\Seen) MODSEQ ({modseq + 1}))"
    lines = await c.command(f"UID STORE 1:2 (UNCHANGEDSINCE {modseq}) +FLAGS (\\Flagged)")
    assert tagged(lines) == "OK [MODIFIED 1] STORE partiel"
    assert lines[0] == f"* 2 FETCH (UID 2 FLAGS (\\Flagged) MODSEQ ({modseq + 2}))"
    lines = await c.ok("FETCH 1:2 (FLAGS) (CHANGEDSINCE " + str(modseq + 1) + ")")
    assert lines[:-1] == [f"* 2 FETCH (FLAGS (\\Flagged) MODSEQ ({modseq + 2}))"]
    lines = await c.ok("STORE 1 +FLAGS.SILENT (\\Draft)")
    assert lines[0] == f"* 1 FETCH (MODSEQ ({modseq + 3}))"
    lines = await c.ok(f"SEARCH MODSEQ {modseq + 2}")
    assert lines[0] == f"* SEARCH 1 2 (MODSEQ {modseq + 3})"
