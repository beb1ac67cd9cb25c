"""STORE / UID STORE: flags and keywords, .SILENT, CONDSTORE UNCHANGEDSINCE and MODIFIED."""

from __future__ import annotations

from caducee.services.delivery import deliver_local
from tests.protocols.imap.conftest import LOGIN, ImapServer, message, transcript


async def test_flags_and_keywords(server: ImapServer) -> None:
    for n in range(3):
        await deliver_local(server.app, message(n), [LOGIN])
    c = await server.client()
    await c.ok("SELECT INBOX")
    await c.ok("SELECT INBOX")  # seen before: nothing is \\Recent any more
    # A new keyword is announced first (RFC 3501 §7.2.6); \\Recent is ignored (§2.3.2).
    await transcript(
        c,
        r"""
        C: s1 STORE 1 +FLAGS (\Seen $Label1)
        S: * FLAGS (\Seen \Answered \Flagged \Deleted \Draft $Label1)
        S: * OK [PERMANENTFLAGS (\Seen \Answered \Flagged \Deleted \Draft $Label1 \*)] drapeaux permanents
        S: * 1 FETCH (FLAGS (\Seen $Label1))
        S: s1 OK ...
        C: s2 STORE 1 -FLAGS ($label1)
        S: * 1 FETCH (FLAGS (\Seen))
        S: s2 OK ...
        C: s3 STORE 1 FLAGS (\Flagged \Answered)
        S: * 1 FETCH (FLAGS (\Answered \Flagged))
        S: s3 OK ...
        C: s4 STORE 2:3 +FLAGS.SILENT \Deleted
        S: s4 OK ...
        C: s5 UID STORE 2 -FLAGS (\Deleted)
        S: * 2 FETCH (UID 2 FLAGS ())
        S: s5 OK ...
        C: s6 STORE 1 +FLAGS (\Bogus)
        S: s6 BAD ...
        C: s7 STORE 1 +FLAGS (a]b)
        S: s7 BAD ...
        C: s8 STORE 1 +FLAGS (\Recent)
        S: * 1 FETCH (FLAGS (\Answered \Flagged))
        S: s8 OK ...
        C: s9 SELECT INBOX
        S: * OK [CLOSED] ...
        S: * FLAGS (\Seen \Answered \Flagged \Deleted \Draft)
        """,  # noqa: E501
    )


async def test_unchangedsince_and_modified(server: ImapServer) -> None:
    for n in range(2):
        await deliver_local(server.app, message(n), [LOGIN])
    c = await server.client()
    await c.ok("SELECT INBOX")
    lines = await c.ok("SELECT INBOX (CONDSTORE)")
    modseq = int(next(line for line in lines if "HIGHESTMODSEQ" in line).split()[3].rstrip("]"))
    await transcript(
        c,
        rf"""
        C: m1 STORE 1 (UNCHANGEDSINCE {modseq}) +FLAGS (\Seen)
        S: * 1 FETCH (FLAGS (\Seen) MODSEQ ({modseq + 1}))
        S: m1 OK ...
        C: m2 UID STORE 1:2 (UNCHANGEDSINCE {modseq}) +FLAGS (\Flagged)
        S: * 2 FETCH (UID 2 FLAGS (\Flagged) MODSEQ ({modseq + 2}))
        S: m2 OK [MODIFIED 1] STORE partiel
        C: m3 FETCH 1:2 (FLAGS) (CHANGEDSINCE {modseq + 1})
        S: * 2 FETCH (FLAGS (\Flagged) MODSEQ ({modseq + 2}))
        S: m3 OK ...
        C: m4 STORE 1 +FLAGS.SILENT (\Draft)
        S: * 1 FETCH (MODSEQ ({modseq + 3}))
        S: m4 OK ...
        C: m5 SEARCH MODSEQ {modseq + 2}
        S: * SEARCH 1 2 (MODSEQ {modseq + 3})
        S: m5 OK ...
        """,
    )
