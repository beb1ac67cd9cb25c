"""The parser and the MIME scanner never crash: random and mutated input only ever gives
ParseError (BAD) or a structure whose offsets slice back into the message; a live session
answers garbage with BAD and keeps serving."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from caducee.domain.mime_structure import MESSAGE, MULTI, Part, parse_structure, section_span
from caducee.protocols.imap.parser import decode_mutf7, encode_mutf7, parse_command
from caducee.protocols.imap.protocol import ParseError
from tests.protocols.imap.conftest import ImapServer, tagged
from tests.protocols.imap.samples import NESTED

VALID = [
    b"a1 FETCH 1:* (UID FLAGS BODY.PEEK[1.2.MIME] BODY[HEADER.FIELDS (FROM TO)]<0.100>)\r\n",
    b"a2 UID SEARCH CHARSET UTF-8 OR (FROM x SUBJECT {3+}\r\nabc) NOT 1:5,7 SINCE 1-Jan-2024\r\n",
    b'a3 APPEND INBOX (\\Seen) "05-Mar-2024 14:30:00 +0100" {5+}\r\nhello\r\n',
    b"a4 STORE 1,2:* (UNCHANGEDSINCE 5) +FLAGS.SILENT (\\Deleted $x)\r\n",
    b'a5 LIST (SUBSCRIBED RECURSIVEMATCH) "" ("INBOX" %/*) RETURN (CHILDREN STATUS (SIZE))\r\n',
    b"a6 SELECT INBOX (QRESYNC (1 2 1:9))\r\n",
    b"a7 SEARCH RETURN (MIN COUNT) HEADER X-Test val LARGER 5 MODSEQ 3\r\n",
    b"a8 UID MOVE 1:3 R&AOk-sultats\r\n",
    b"a9 AUTHENTICATE PLAIN AGFAYg==\r\n",
    b"a10 RENAME {3}\r\nfoo bar\r\n",
]


@settings(max_examples=3000, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_never_crash_the_parser(data: bytes) -> None:
    try:
        parse_command(data)
        parse_command(data, utf8=True)
    except ParseError:
        pass


@settings(max_examples=3000, deadline=None)
@given(
    st.sampled_from(VALID),
    st.lists(st.tuples(st.integers(0, 200), st.binary(max_size=4)), max_size=4),
)
def test_mutated_commands_never_crash_the_parser(
    base: bytes, edits: list[tuple[int, bytes]]
) -> None:
    data = bytearray(base)
    for position, replacement in edits:
        cut = position % (len(data) + 1)
        data[cut : cut + len(replacement)] = replacement
    with contextlib.suppress(ParseError):
        parse_command(bytes(data))


def test_valid_commands_parse() -> None:
    for data in VALID:
        assert parse_command(data).tag.startswith("a")


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=30))
def test_modified_utf7_round_trip(name: str) -> None:
    name = "".join(c for c in name if not 0xD800 <= ord(c) <= 0xDFFF)
    assert decode_mutf7(encode_mutf7(name)) == name


def _check_tree(part: Part, size: int) -> None:
    assert 0 <= part.start <= part.body <= part.end <= size
    for child in part.children:
        assert part.body <= child.start and child.end <= part.end
        _check_tree(child, size)
    if part.kind == MESSAGE:
        assert len(part.children) == 1
    if part.kind == MULTI:
        assert part.children


def _mutations() -> st.SearchStrategy[bytes]:
    return st.lists(st.tuples(st.integers(0, len(NESTED)), st.binary(max_size=8)), max_size=6).map(
        lambda edits: _apply(NESTED, edits)
    )


def _apply(base: bytes, edits: list[tuple[int, bytes]]) -> bytes:
    data = bytearray(base)
    for position, replacement in edits:
        data[position : position + len(replacement)] = replacement
    return bytes(data)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.binary(max_size=2000), _mutations()))
def test_mime_scanner_never_crashes_and_offsets_hold(raw: bytes) -> None:
    structure = parse_structure(raw)
    _check_tree(structure.tree, len(raw))
    assert structure.bodystructure.startswith(b"(") and structure.envelope.startswith(b"(")
    assert structure.bodystructure.count(b"(") >= 1
    for path in [(), (1,), (1, 1), (2,), (2, 1), (3,), (9, 9)]:
        for text in ("", "MIME", "HEADER", "TEXT"):
            span = section_span(structure.tree, path, text)
            if span is not None:
                assert 0 <= span[0] <= span[1] <= len(raw)


def test_sections_slice_back_to_the_right_bytes() -> None:
    from tests.protocols.imap.samples import SECTIONS

    tree = parse_structure(NESTED).tree
    for section, expected in SECTIONS.items():
        *numbers, last = section.split(".")
        if last.isdigit():
            numbers.append(last)
            last = ""
        span = section_span(tree, tuple(int(n) for n in numbers), last)
        got = NESTED[span[0] : span[1]] if span else b""
        assert got == expected, section


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_garbage_on_a_live_session(server: ImapServer) -> None:
    c = await server.client()
    await c.ok("SELECT INBOX")
    for junk in (
        b"\x00\xff\xfe",
        b"a FETCH",
        b"FETCH 1 (BODY[1.2.3.4.5.6.7.8.9.10.MIME]<4294967296.1>)",
        b"SEARCH " + b"NOT " * 200 + b"ALL",
        b'LIST "" {999999999}',
        b"STORE 1:* +FLAGS (\\Seen",
        b'APPEND INBOX (\\Seen) "31-Feb-2024 10:00:00 +0100" {1+}\r\nx',
    ):
        lines = await c.command(junk)
        assert tagged(lines).startswith(("BAD", "NO")), (junk, lines)
    await c.ok("NOOP")
