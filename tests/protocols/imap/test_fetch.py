"""FETCH: ENVELOPE, BODYSTRUCTURE, BODY[section]<partial> byte-exact, PEEK and \\Seen, RFC822.*,
BINARY, UID FETCH, MODSEQ."""

from __future__ import annotations

from caducee.services.delivery import deliver_local
from tests.protocols.imap.conftest import LOGIN, ImapServer, tagged
from tests.protocols.imap.samples import NESTED, SECTIONS


async def test_sections_are_byte_exact(server: ImapServer) -> None:
    await deliver_local(server.app, NESTED, [LOGIN])
    c = await server.client()
    await c.ok("SELECT INBOX")
    await c.ok("SELECT INBOX")  # nothing \\Recent any more
    for section, expected in SECTIONS.items():
        tag = c.next_tag()
        await c.send_raw(f"{tag} FETCH 1 BODY.PEEK[{section}]\r\n".encode())
        raw = await c.raw_line()
        head = f"* 1 FETCH (BODY[{section}] {{{len(expected)}}}\r\n".encode()
        assert raw == head + expected + b")\r\n", section
        assert (await c.line()).startswith(f"{tag} OK")
    tag = c.next_tag()
    await c.send_raw(f"{tag} FETCH 1 (BODY.PEEK[]<5.10> BODY.PEEK[HEADER]<0.4>)\r\n".encode())
    raw = await c.raw_line()
    assert raw == (
        b"* 1 FETCH (BODY[]<5> {10}\r\n" + NESTED[5:15] + b" BODY[HEADER]<0> {4}\r\nFrom)\r\n"
    )
    await c.until(tag)
    tag = c.next_tag()
    await c.send_raw(f"{tag} FETCH 1 (RFC822.SIZE BODY.PEEK[] FLAGS)\r\n".encode())
    raw = await c.raw_line()
    assert (
        raw
        == b"* 1 FETCH (RFC822.SIZE %d BODY[] {%d}\r\n"
        % (
            len(NESTED),
            len(NESTED),
        )
        + NESTED
        + b" FLAGS ())\r\n"
    )
    await c.until(tag)
    header_end = NESTED.index(b"\r\n\r\n") + 4
    tag = c.next_tag()
    await c.send_raw(f"{tag} FETCH 1 (RFC822.HEADER BODY.PEEK[TEXT]<0.8>)\r\n".encode())
    raw = await c.raw_line()
    assert raw.startswith(b"* 1 FETCH (RFC822.HEADER {%d}\r\n" % header_end + NESTED[:header_end])
    assert raw.endswith(b"BODY[TEXT]<0> {8}\r\n" + NESTED[header_end : header_end + 8] + b")\r\n")
    await c.until(tag)
    lines = await c.ok("FETCH 1 BODY.PEEK[HEADER.FIELDS (SUBJECT message-id)]")
    assert lines[0] == (
        "* 1 FETCH (BODY[HEADER.FIELDS (SUBJECT message-id)] {57}\r\n"
        "Subject: Compte rendu\r\nMessage-ID: <cr1@cabinet.test>\r\n\r\n)"
    )
    lines = await c.ok("FETCH 1 BODY.PEEK[HEADER.FIELDS.NOT (From To Subject Date Message-ID)]")
    assert "MIME-Version: 1.0\r\nContent-Type: multipart/mixed;" in lines[0]
    assert "Subject:" not in lines[0]
    assert tagged(await c.command("FETCH 1 BODY[1.MIME.TEXT]")).startswith("BAD")
    assert tagged(await c.command("FETCH 1 BODY[MIME]")).startswith("BAD")


async def test_envelope_and_bodystructure(server: ImapServer) -> None:
    await deliver_local(server.app, NESTED, [LOGIN])
    c = await server.client()
    await c.ok("EXAMINE INBOX")
    lines = await c.ok("FETCH 1 (ENVELOPE)")
    assert lines[0] == (
        '* 1 FETCH (ENVELOPE ("Tue, 3 Dec 2024 10:00:00 +0100" "Compte rendu" '
        '(("=?utf-8?q?Dr_M=C3=A9decin?=" NIL "dr" "cabinet.test")) '
        '(("=?utf-8?q?Dr_M=C3=A9decin?=" NIL "dr" "cabinet.test")) '
        '(("=?utf-8?q?Dr_M=C3=A9decin?=" NIL "dr" "cabinet.test")) '
        '((NIL NIL "Equipe" NIL)(NIL NIL "a" "b.test")("Q, R" NIL "q" "r.test")(NIL NIL NIL NIL)'
        '(NIL NIL "solo" "x.test")) NIL NIL NIL "<cr1@cabinet.test>"))'
    ).replace(")(", ") (")
    lines = await c.ok("FETCH 1 (BODYSTRUCTURE BODY)")
    assert lines[0] == (
        '* 1 FETCH (BODYSTRUCTURE ((("text" "plain" ("charset" "utf-8") NIL NIL '
        '"quoted-printable" 20 0 NIL NIL NIL NIL)("text" "html" ("charset" "utf-8") NIL NIL '
        '"7bit" 15 0 NIL NIL NIL NIL) "alternative" ("boundary" "inner") NIL NIL NIL)'
        '("message" "rfc822" NIL NIL "transfere" "7bit" 62 (NIL "analyse" '
        '((NIL NIL "labo" "ailleurs.test")) ((NIL NIL "labo" "ailleurs.test")) '
        '((NIL NIL "labo" "ailleurs.test")) NIL NIL NIL NIL NIL) ("text" "plain" '
        '("charset" "us-ascii") NIL NIL "7bit" 16 0 NIL NIL NIL NIL) 3 NIL NIL NIL NIL)'
        '("application" "pdf" ("name" "cr.pdf") NIL NIL "base64" 12 NIL ("attachment" '
        '("filename" "cr.pdf")) NIL NIL) "mixed" ("boundary" "outer") NIL NIL NIL) '
        'BODY ((("text" "plain" ("charset" "utf-8") NIL NIL "quoted-printable" 20 0)'
        '("text" "html" ("charset" "utf-8") NIL NIL "7bit" 15 0) "alternative")'
        '("message" "rfc822" NIL NIL "transfere" "7bit" 62 (NIL "analyse" '
        '((NIL NIL "labo" "ailleurs.test")) ((NIL NIL "labo" "ailleurs.test")) '
        '((NIL NIL "labo" "ailleurs.test")) NIL NIL NIL NIL NIL) ("text" "plain" '
        '("charset" "us-ascii") NIL NIL "7bit" 16 0) 3)("application" "pdf" '
        '("name" "cr.pdf") NIL NIL "base64" 12) "mixed"))'
    )


async def test_peek_seen_and_macros(server: ImapServer) -> None:
    await deliver_local(server.app, NESTED, [LOGIN])
    await deliver_local(server.app, NESTED, [LOGIN])
    c = await server.client()
    await c.ok("SELECT INBOX")
    assert (await c.ok("FETCH 1 FLAGS"))[0] == "* 1 FETCH (FLAGS (\\Recent))"
    await c.ok("SELECT INBOX")  # \\Recent is for the first session only
    lines = await c.ok("FETCH 1 (FLAGS BODY.PEEK[1.1])")
    assert lines[0].startswith("* 1 FETCH (FLAGS () ")
    assert (await c.ok("FETCH 1 FLAGS"))[0] == "* 1 FETCH (FLAGS ())"
    lines = await c.ok("FETCH 1 BODY[1.2]")
    assert lines[0].endswith(" FLAGS (\\Seen))")
    assert (await c.ok("FETCH 1 FLAGS"))[0] == "* 1 FETCH (FLAGS (\\Seen))"
    lines = await c.ok("FETCH 2 RFC822.TEXT")
    assert "FLAGS (\\Seen)" in lines[0]
    lines = await c.ok("FETCH 1:2 FAST")
    assert lines[0].startswith('* 1 FETCH (FLAGS (\\Seen) INTERNALDATE "')
    assert "RFC822.SIZE" in lines[1]
    lines = await c.ok("UID FETCH 2 (FLAGS)")
    assert lines[0] == "* 2 FETCH (UID 2 FLAGS (\\Seen))"
    assert len(await c.ok("UID FETCH 99:* UID")) == 2  # "*" is the largest UID: 2
    assert len(await c.ok("UID FETCH 50:60 UID")) == 1
    assert tagged(await c.command("FETCH 3 FLAGS")).startswith("BAD")
    assert tagged(await c.command("FETCH 0 FLAGS")).startswith("BAD")
    assert tagged(await c.command("FETCH 1 (FLAGS BOGUS)")).startswith("BAD")
    lines = await c.ok("FETCH 1 (MODSEQ)")
    assert lines[0].startswith("* OK [HIGHESTMODSEQ ")  # RFC 7162 §3.1: now enabled
    assert lines[1].startswith("* 1 FETCH (MODSEQ (")


async def test_binary(server: ImapServer) -> None:
    await deliver_local(server.app, NESTED, [LOGIN])
    c = await server.client()
    await c.ok("EXAMINE INBOX")
    lines = await c.ok("FETCH 1 (BINARY.PEEK[1.1] BINARY.SIZE[3] BINARY.PEEK[3]<0.4>)")
    assert "BINARY[1.1] {16}\r\nRésultat normal" in lines[0]
    assert "BINARY.SIZE[3] 9" in lines[0]
    assert lines[0].endswith("BINARY[3]<0> {4}\r\n%PDF)")
