"""The SMTP command grammar (RFC 5321 §4.1), extension parameters, xtext, reply rendering;
fuzzing: no input makes the parser (or the content checks) raise anything but a parse error."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from caducee.protocols.smtp import data as smtp_data
from caducee.protocols.smtp.data import check_content, unstuff
from caducee.protocols.smtp.parser import (
    Auth,
    Hello,
    Mail,
    MailParams,
    ParseError,
    Path,
    Rcpt,
    RcptParams,
    Simple,
    parse_command,
    xtext_decode,
)
from caducee.protocols.smtp.replies import REPLY_LINE_MAX, ascii_text, bilingual, reply
from caducee.services.dsn import xtext_encode


def parse(line: str) -> object:
    return parse_command(line.encode())


def error(line: str | bytes) -> str:
    """The first line of the reply a bad ``line`` gets."""
    with pytest.raises(ParseError) as caught:
        parse_command(line if isinstance(line, bytes) else line.encode())
    return caught.value.reply.render().decode().splitlines()[0]


# --- verbs -----------------------------------------------------------------------------------


def test_verbs_are_case_insensitive_and_arguments_checked() -> None:
    assert parse("ehlo Client.Example") == Hello("EHLO", "Client.Example")
    assert parse("HELO [192.0.2.1]") == Hello("HELO", "[192.0.2.1]")
    assert parse("data") == Simple("DATA")
    assert parse("Quit") == Simple("QUIT")
    assert parse("NOOP anything at all") == Simple("NOOP", "anything at all")
    assert parse("VRFY dr") == Simple("VRFY", "dr")
    assert parse("RSET ") == Simple("RSET")
    assert (
        error("RSET now")
        == "501 5.5.4 Cette commande ne prend pas d'argument / No argument expected"
    )
    assert error("STARTTLS x").startswith("501 5.5.4")
    assert error("EHLO").startswith("501 5.5.4 Syntaxe : EHLO <nom de domaine>")
    assert error("EHLO two words").startswith("501 5.5.4")
    assert error("TURN") == "500 5.5.1 Commande inconnue / Unknown command"
    assert error("") == "500 5.5.1 Commande inconnue / Unknown command"


def test_auth_arguments() -> None:
    assert parse("AUTH plain") == Auth("PLAIN", None)
    assert parse("AUTH PLAIN dGVzdA==") == Auth("PLAIN", "dGVzdA==")
    assert parse("AUTH LOGIN =") == Auth("LOGIN", "=")
    assert parse("AUTH XOAUTH2 abc") == Auth("XOAUTH2", "abc")
    assert error("AUTH").startswith("501 5.5.4 Syntaxe : AUTH")
    assert error("AUTH PLAIN a b").startswith("501 5.5.4")


def test_lines_that_are_not_text() -> None:
    assert (
        error(b"MAIL FROM:<\xff@x.test>") == "500 5.5.2 Ligne non UTF-8 / Command line is not UTF-8"
    )
    assert error(b"NOOP \x00").startswith("500 5.5.2 Caractere de controle interdit")
    assert error(b"NOOP a\rb").startswith("500 5.5.2")


# --- paths (RFC 5321 §4.1.2) -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "address"),
    [
        ("MAIL FROM:<Dr.Martin@Cabinet.Example>", "Dr.Martin@Cabinet.Example"),  # case kept
        ("mail from:<a@b.example>", "a@b.example"),
        ("MAIL FROM: <a@b.example>", "a@b.example"),  # tolerated space
        ("MAIL FROM:<>", ""),
        ("MAIL FROM:<@relay.example,@r2.example:a@b.example>", "a@b.example"),  # route dropped
        ('MAIL FROM:<"jean dupont"@b.example>', '"jean dupont"@b.example'),
        ('MAIL FROM:<"a>b"@b.example>', '"a>b"@b.example'),
        ('MAIL FROM:<"a\\"b"@b.example>', '"a\\"b"@b.example'),
        ("MAIL FROM:<a@[192.0.2.1]>", "a@[192.0.2.1]"),
        ("MAIL FROM:<a@[IPv6:2001:db8::1]>", "a@[IPv6:2001:db8::1]"),
        ("MAIL FROM:<a+tag@sub-domain.b.example>", "a+tag@sub-domain.b.example"),
        ("MAIL FROM:<élise@exemple.fr>", "élise@exemple.fr"),  # RFC 6531 (checked later)
    ],
)
def test_reverse_paths(line: str, address: str) -> None:
    parsed = parse(line)
    assert isinstance(parsed, Mail)
    assert parsed.path.address == address
    assert parsed.path.is_ascii == address.isascii()


@pytest.mark.parametrize(
    "line",
    [
        "MAIL FROM:a@b.example",
        "MAIL FROM:<a@b.example",
        "MAIL FROM:<a@@b.example>",
        "MAIL FROM:<a@b..example>",
        "MAIL FROM:<a@-b.example>",
        "MAIL FROM:<.a@b.example>",
        "MAIL FROM:<a.@b.example>",
        "MAIL FROM:<a b@b.example>",
        "MAIL FROM:<a@b.example>SIZE=1",
        "MAIL FROM:<a@[300.1.1.1]>",
        "MAIL FROM:<a@[IPv6:zz::1]>",
        "MAIL FROM:<@relay.example:>",
        "MAIL TO:<a@b.example>",
        "MAIL FROM:<" + "l" * 65 + "@b.example>",
        "MAIL FROM:<a@" + "d" * 63 + "." + ("e" * 63 + ".") * 3 + "example>",
        "MAIL FROM:<Postmaster>",
    ],
)
def test_bad_reverse_paths(line: str) -> None:
    assert error(line)[:9] in ("501 5.1.7", "501 5.5.4")


def test_forward_paths() -> None:
    assert parse("RCPT TO:<Postmaster>") == Rcpt(Path("Postmaster", postmaster=True))
    assert parse("rcpt to:<postmaster@b.example>") == Rcpt(Path("postmaster@b.example"))
    assert (
        error("RCPT TO:<>") == "501 5.1.3 Syntaxe : RCPT TO:<adresse> / Syntax: RCPT TO:<address>"
    )
    assert error("RCPT FROM:<a@b.example>").startswith("501 5.1.3")
    assert error("RCPT TO:<" + "a" * 250 + "@b.example>").startswith("501 5.1.3 Adresse trop")


# --- ESMTP parameters --------------------------------------------------------------------------


def test_mail_parameters() -> None:
    parsed = parse("MAIL FROM:<a@b.example> size=1024 Body=8bitmime SMTPUTF8 RET=hdrs ENVID=Ab+2BC")
    assert isinstance(parsed, Mail)
    assert parsed.params == MailParams(
        size=1024, body="8BITMIME", smtputf8=True, ret="HDRS", envid="Ab+C"
    )
    assert parsed.keywords == {"SIZE", "BODY", "SMTPUTF8", "RET", "ENVID"}
    auth = parse("MAIL FROM:<a@b.example> AUTH=<>")
    assert isinstance(auth, Mail) and auth.params.auth == "<>"
    auth = parse("MAIL FROM:<a@b.example> AUTH=dr+40b.example")
    assert isinstance(auth, Mail) and auth.params.auth == "dr@b.example"


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ("SIZE=", "501 5.5.4"),
        ("SIZE=-1", "501 5.5.4"),
        ("SIZE=1" + "0" * 20, "501 5.5.4"),
        ("SIZE=١٢", "501 5.5.4"),  # digits, but not ASCII ones
        ("BODY=BINARYMIME", "555 5.5.4"),
        ("BODY=9BIT", "555 5.5.4"),
        ("SMTPUTF8=yes", "501 5.5.4"),
        ("RET=ALL", "501 5.5.4"),
        ("ENVID=" + "e" * 101, "501 5.5.4"),
        ("ENVID=a+4", "501 5.5.4"),
        ("ENVID=a+ZZb", "501 5.5.4"),
        ("ENVID=+00", "501 5.5.4"),  # decodes to a control character
        ("ENVID=+C3", "501 5.5.4"),  # not UTF-8
        ("SIZE=1 SIZE=2", "501 5.5.4"),
        ("SIZE=1  BODY=7BIT", "501 5.5.4"),
        ("NOTIFY=NEVER", "555 5.5.4"),  # an RCPT parameter
        ("X-UNKNOWN", "555 5.5.4"),
        ("-BAD=1", "501 5.5.4"),
        ("KEY=a=b", "501 5.5.4"),
    ],
)
def test_bad_mail_parameters(params: str, expected: str) -> None:
    assert error(f"MAIL FROM:<a@b.example> {params}")[:9] == expected


def test_rcpt_parameters_keep_their_case() -> None:
    parsed = parse("RCPT TO:<a@b.example> NOTIFY=success,Delay ORCPT=rfc822;Jean+2BX@B.example")
    assert parsed == Rcpt(
        Path("a@b.example"),
        RcptParams(("SUCCESS", "DELAY"), "rfc822;Jean+2BX@B.example"),
        frozenset({"NOTIFY", "ORCPT"}),
    )
    never = parse("RCPT TO:<a@b.example> NOTIFY=never")
    assert isinstance(never, Rcpt) and never.params.notify == ("NEVER",)
    utf8 = parse("RCPT TO:<a@b.example> ORCPT=utf-8;a\\x{E9}@b.example")
    assert isinstance(utf8, Rcpt) and utf8.params.orcpt == "utf-8;a\\x{E9}@b.example"


@pytest.mark.parametrize(
    "params",
    [
        "NOTIFY=NEVER,FAILURE",
        "NOTIFY=SUCCESS,SUCCESS",
        "NOTIFY=",
        "NOTIFY=ALWAYS",
        "ORCPT=a@b.example",
        "ORCPT=rfc822;",
        "ORCPT=rfc 822;a",
        "ORCPT=rfc822;a+4",
        "ORCPT=rfc822;" + "a" * 500,
    ],
)
def test_bad_rcpt_parameters(params: str) -> None:
    assert error(f"RCPT TO:<a@b.example> {params}")[:9] == "501 5.5.4"


@given(st.text(max_size=60))
def test_xtext_decodes_what_the_queue_encodes(text: str) -> None:
    assert xtext_decode(xtext_encode(text)) == text


# --- replies -----------------------------------------------------------------------------------


def test_replies_are_ascii_and_fit_the_line_limit() -> None:
    assert ascii_text("Destinataire inconnu : « é » — œuvre") == (
        'Destinataire inconnu : " e " - oeuvre'
    )
    assert ascii_text("ligne\r\ninjectée") == "ligne  injectee"
    short = bilingual(550, "5.1.1", "Destinataire inconnu", "Unknown recipient")
    assert short.render() == b"550 5.1.1 Destinataire inconnu / Unknown recipient\r\n"
    long = reply(553, "5.7.1", "é" * 400, "e" * 400)
    rendered = long.render().split(b"\r\n")[:-1]
    assert [line[:10] for line in rendered] == [b"553-5.7.1 ", b"553 5.7.1 "]
    assert all(len(line) + 2 <= REPLY_LINE_MAX for line in rendered)
    assert all(line.isascii() for line in rendered)


# --- fuzzing -----------------------------------------------------------------------------------

VALID_LINES = [
    b"EHLO client.example",
    b"HELO [192.0.2.7]",
    b"MAIL FROM:<dr.martin@cabinet.example> SIZE=12345 BODY=8BITMIME RET=HDRS ENVID=x+2By",
    b"MAIL FROM:<> SMTPUTF8",
    b'MAIL FROM:<@a.example,@b.example:"q s"@c.example> AUTH=<>',
    b"RCPT TO:<confrere@cabinet.example> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;c+40d.example",
    b"RCPT TO:<Postmaster>",
    b"RCPT TO:<\xc3\xa9lise@exemple.fr>",
    b"AUTH PLAIN AGRyAHNlY3JldA==",
    b"DATA",
    b"RSET",
    b"NOOP",
    b"STARTTLS",
    b"VRFY dr",
    b"QUIT",
]


def parses_or_refuses(line: bytes) -> None:
    try:
        parsed = parse_command(line)
    except ParseError as refused:
        assert 500 <= refused.reply.code < 600
        assert refused.reply.render().isascii()
    else:
        assert isinstance(parsed, Hello | Mail | Rcpt | Auth | Simple)


def test_valid_lines_parse() -> None:
    for line in VALID_LINES:
        parse_command(line)


@given(st.binary(max_size=300))
@settings(max_examples=2000, suppress_health_check=[HealthCheck.too_slow])
def test_random_bytes_never_crash_the_parser(line: bytes) -> None:
    parses_or_refuses(line)


@st.composite
def mutated_lines(draw: st.DrawFn) -> bytes:
    line = bytearray(draw(st.sampled_from(VALID_LINES)))
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["insert", "delete", "replace", "duplicate", "case"]))
        at = draw(st.integers(0, len(line)))
        if kind == "insert":
            interesting = b'<>@:;,=+" \\[].\x00\r\n\xc3\xff'
            pieces = [bytes([c]) for c in interesting]
            line[at:at] = draw(st.binary(min_size=1, max_size=3) | st.sampled_from(pieces))
        elif kind == "delete" and line:
            del line[at : at + draw(st.integers(1, 5))]
        elif kind == "replace" and at < len(line):
            line[at] = draw(st.integers(0, 255))
        elif kind == "duplicate":
            line[at:at] = line[: draw(st.integers(0, len(line)))]
        elif kind == "case":
            line = bytearray(line.swapcase())
    return bytes(line)


@given(mutated_lines())
@settings(max_examples=3000, suppress_health_check=[HealthCheck.too_slow])
def test_mutated_valid_lines_never_crash_the_parser(line: bytes) -> None:
    parses_or_refuses(line)


@given(st.binary(max_size=2000), st.booleans())
@settings(max_examples=500)
def test_content_checks_never_crash(raw: bytes, smtputf8: bool) -> None:
    verdict = check_content(raw, smtputf8=smtputf8)
    assert verdict is None or verdict.code >= 500


@given(st.lists(st.binary(max_size=30).filter(lambda b: b"\r" not in b and b"\n" not in b)))
def test_unstuffing_undoes_stuffing(lines: list[bytes]) -> None:
    message = b"".join(line + b"\r\n" for line in lines)
    stuffed = (b"\r\n" + message).replace(b"\r\n.", b"\r\n..")
    assert unstuff(stuffed) == message


@given(
    st.lists(st.sampled_from([b"", b".", b"..", b"a", b".b", b"\r", b"\n", b"\r\n"]), max_size=60)
)
def test_a_big_message_is_unstuffed_and_checked_slice_by_slice_as_a_whole(
    parts: list[bytes],
) -> None:
    """A big message is unstuffed and its line ends counted a slice at a time (issue 17): a
    CRLF "." or a CRLF across two slices is found as in one piece (slices of 1 to 4 octets)."""
    stuffed = b"\r\n" + b"".join(parts)
    whole = stuffed.replace(b"\r\n.", b"\r\n")[2:]
    raw = b"x" + stuffed
    bare = raw.count(b"\n") != raw.count(b"\r\n") or raw.count(b"\r") != raw.count(b"\r\n")
    for size in (1, 2, 3, 4):
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(smtp_data, "SLICE", size)
            assert unstuff(stuffed) == whole
            assert smtp_data._bare_line_end(raw) is bare
