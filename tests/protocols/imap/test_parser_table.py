"""The IMAP grammar as a table (in the manner of Stalwart's parser tests): each command line and
the typed command it parses into (RFC 3501 §9, RFC 9051 §9, and the extensions' grammars), then
lines that must be refused with BAD. A new command or argument form is one more row."""

from __future__ import annotations

import datetime

import pytest

from caducee.protocols.imap.parser import parse_command
from caducee.protocols.imap.protocol import (
    AppendItem,
    Command,
    FetchArgs,
    FetchAtt,
    ListArgs,
    ParseError,
    SearchArgs,
    Section,
    SelectArgs,
    StoreArgs,
)

PARSED: list[tuple[bytes, Command]] = [
    (b"a1 CAPABILITY", Command("a1", "CAPABILITY")),
    (b"a1 noop", Command("a1", "NOOP")),  # command names are case-insensitive
    (b"a1 LOGIN joe secret", Command("a1", "LOGIN", ("joe", "secret"))),
    (b'a1 LOGIN "joe" "se cret"', Command("a1", "LOGIN", ("joe", "se cret"))),
    (b"a1 LOGIN {3+}\r\njoe {6+}\r\nsecret", Command("a1", "LOGIN", ("joe", "secret"))),
    (b"a1 AUTHENTICATE PLAIN", Command("a1", "AUTHENTICATE", ("PLAIN", None))),
    (b"a1 AUTHENTICATE PLAIN AGFAYg==", Command("a1", "AUTHENTICATE", ("PLAIN", "AGFAYg=="))),
    (b"a1 AUTHENTICATE PLAIN =", Command("a1", "AUTHENTICATE", ("PLAIN", "="))),
    (b"a1 ENABLE CONDSTORE UTF8=ACCEPT", Command("a1", "ENABLE", ["CONDSTORE", "UTF8=ACCEPT"])),
    (b"a1 SELECT INBOX", Command("a1", "SELECT", SelectArgs("INBOX"))),
    (b"a1 select inbox", Command("a1", "SELECT", SelectArgs("inbox"))),  # the name as written
    (b"a1 EXAMINE Sent", Command("a1", "EXAMINE", SelectArgs("Sent"))),
    (b"a1 SELECT INBOX (CONDSTORE)", Command("a1", "SELECT", SelectArgs("INBOX", True))),
    (b"a1 CREATE &AMk-t&AOk-", Command("a1", "CREATE", "Été")),  # modified UTF-7 (§5.1.3)
    (b'a1 RENAME "Old" "New"', Command("a1", "RENAME", ("Old", "New"))),
    (b"a1 DELETE Archive", Command("a1", "DELETE", "Archive")),
    (
        b"a1 STATUS INBOX (MESSAGES UNSEEN)",
        Command("a1", "STATUS", ("INBOX", ["MESSAGES", "UNSEEN"])),
    ),
    (b'a1 LIST "" "*"', Command("a1", "LIST", ListArgs("", ["*"]))),
    (
        b'a1 LIST "" "*" RETURN (SPECIAL-USE)',  # RFC 5258 / RFC 6154
        Command("a1", "LIST", ListArgs("", ["*"], return_opts=["SPECIAL-USE"], extended=True)),
    ),
    (
        b"a1 APPEND INBOX (\\Seen) {3+}\r\nabc",
        Command("a1", "APPEND", ("INBOX", [AppendItem(["\\Seen"], None, b"abc")])),
    ),
    (
        b"a1 APPEND INBOX ~{3}\r\nabc",  # a literal8: binary content, refused later
        Command("a1", "APPEND", ("INBOX", [AppendItem([], None, b"abc", literal8=True)])),
    ),
    (
        b"a1 FETCH 1:* (FLAGS UID)",
        Command("a1", "FETCH", ([(1, None)], FetchArgs([FetchAtt("FLAGS"), FetchAtt("UID")]))),
    ),
    (
        b"a1 UID FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)]<0.100>) (CHANGEDSINCE 5)",
        Command(
            "a1",
            "UID FETCH",
            (
                [(1, None)],
                FetchArgs(
                    [
                        FetchAtt("FLAGS"),
                        FetchAtt(
                            "BODY.PEEK",
                            Section((), "HEADER.FIELDS", ["subject"], "[HEADER.FIELDS (SUBJECT)]"),
                            (0, 100),
                        ),
                    ],
                    changedsince=5,
                ),
            ),
        ),
    ),
    (
        b"a1 STORE 2,4:6 +FLAGS.SILENT (\\Seen)",
        Command("a1", "STORE", ([(2, 2), (4, 6)], StoreArgs("+", True, ["\\Seen"]))),
    ),
    (
        b"a1 UID STORE 1 (UNCHANGEDSINCE 7) FLAGS ($Label1)",
        Command("a1", "UID STORE", ([(1, 1)], StoreArgs("", False, ["$Label1"], 7))),
    ),
    (b"a1 COPY 1 Trash", Command("a1", "COPY", ([(1, 1)], "Trash"))),
    (b"a1 UID MOVE 3:2 Archive", Command("a1", "UID MOVE", ([(3, 2)], "Archive"))),
    (b"a1 UID EXPUNGE 3:5", Command("a1", "UID EXPUNGE", [(3, 5)])),
    (
        b'a1 SEARCH UNSEEN FROM "x" OR LARGER 10 NOT DELETED',
        Command(
            "a1",
            "SEARCH",
            SearchArgs(
                (
                    "and",
                    [
                        ("flag", "\\Seen", False),
                        ("header", "from", "x"),
                        ("or", ("size", "larger", 10), ("not", ("flag", "\\Deleted", True))),
                    ],
                )
            ),
        ),
    ),
    (
        b"a1 SEARCH RETURN (MIN COUNT) SINCE 1-Feb-1994",  # ESEARCH, RFC 4731
        Command(
            "a1",
            "SEARCH",
            SearchArgs(
                ("and", [("date", "since", datetime.date(1994, 2, 1), False)]),
                returns=["MIN", "COUNT"],
            ),
        ),
    ),
]


@pytest.mark.parametrize(("line", "expected"), PARSED, ids=[line.decode() for line, _ in PARSED])
def test_line_parses_into(line: bytes, expected: Command) -> None:
    assert parse_command(line) == expected


BAD: list[bytes] = [
    b"",
    b"a1",  # no command
    b"a1 ",
    b"* NOOP",  # "*" is not a tag
    b"a+1 NOOP",  # nor is "+" in one
    b"a1 FROBNICATE",
    b"a1 UID COPYX 1 Trash",
    b"a1 NOOP extra",
    b"a1  NOOP",  # two spaces
    b"a1 LOGIN joe",
    b'a1 LOGIN "joe secret',  # an unclosed quoted string
    b"a1 SELECT",
    b"a1 FETCH 0 FLAGS",  # message numbers start at 1
    b"a1 FETCH 1:x FLAGS",
    b"a1 FETCH 1 (FLAGS",
    b"a1 FETCH 1 BODY[HEADER.FIELDS]",
    b"a1 STORE 1 +FLAGS (a]b)",
    b"a1 STORE 1 FROB (\\Seen)",
    b"a1 SEARCH FROB",
    b"a1 SEARCH SINCE 31-Feb-1994",
    b"a1 SEARCH OR UNSEEN",
    b"a1 APPEND INBOX {5+}\r\nabc",  # a literal shorter than announced
    b"a1 APPEND INBOX {3+}\r\na\x00c",  # a NUL in an ordinary literal (RFC 9051 §4.3.1)
    b"a1 STATUS INBOX ()",
]


@pytest.mark.parametrize("line", BAD, ids=[repr(line) for line in BAD])
def test_line_is_bad(line: bytes) -> None:
    with pytest.raises(ParseError):
        parse_command(line)
