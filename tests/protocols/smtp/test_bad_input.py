"""Hostile and broken input on the SMTP doors, both backends: the right 5xx, no crash, the
connection still usable (or closed cleanly), and never anything partial in the store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from tests.protocols.conftest import sasl_plain
from tests.protocols.smtp.conftest import (
    LOGIN,
    TEST_MAX_BYTES,
    SmtpClient,
    SmtpServer,
)
from tests.protocols.smtp.helpers import message_count, stored_messages, used_bytes, without_trace

SENDER = "a@ailleurs.test"
HEAD = f"From: {SENDER}\r\nTo: {LOGIN}\r\nSubject: essai\r\n"


@dataclass
class Mx:
    server: SmtpServer
    client: SmtpClient
    count: int
    used: int

    async def unchanged(self) -> None:
        """Nothing was stored; the session still answers."""
        assert await message_count(self.server.app) == self.count
        assert await used_bytes(self.server.app) == self.used
        assert await self.client.command("NOOP") == ["250 2.0.0 Ok / Ok"]

    async def data(self, raw: bytes, *, mail_params: str = "") -> str:
        """MAIL, RCPT, DATA, then ``raw`` as is (no dot-stuffing) and the final dot."""
        assert (await self.client.code(f"MAIL FROM:<{SENDER}>{mail_params}")).startswith("250")
        assert (await self.client.code(f"RCPT TO:<{LOGIN}>")).startswith("250")
        assert (await self.client.code("DATA")).startswith("354")
        return await self.client.code(raw + b"\r\n.\r\n")

    async def still_delivers(self) -> None:
        good = (HEAD + "\r\nUn message correct.\r\n").encode()
        assert await self.client.send_message(SENDER, [LOGIN], good) == (
            "250 2.0.0 Message accepte / Message accepted"
        )
        assert await message_count(self.server.app) == self.count + 1


@pytest.fixture
async def mx(server: SmtpServer) -> AsyncIterator[Mx]:
    client = await server.client("smtp")
    await client.command("EHLO client.test")
    yield Mx(server, client, await message_count(server.app), await used_bytes(server.app))


# --- line endings, NUL, headers --------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"ligne 1\nligne 2",  # bare LF
        b"ligne 1\rligne 2",  # bare CR
        b"ligne 1\r\r\nligne 2",  # CR CR LF
        b"ligne 1\n\r\nligne 2",  # LF CR LF
    ],
)
async def test_bare_line_ends_are_refused(mx: Mx, body: bytes) -> None:
    reply = await mx.data(HEAD.encode() + b"\r\n" + body)
    assert reply.startswith("550 5.6.2 Fin de ligne isolee (LF ou CR sans CRLF)")
    await mx.unchanged()
    await mx.still_delivers()


async def test_smuggled_end_of_data_is_only_message_content(mx: Mx) -> None:
    """SMTP smuggling: "\\n.\\r\\n" must not end the data and start a second transaction."""
    smuggled = (
        HEAD.encode()
        + b"\r\nvisible\r\n\n.\r\nMAIL FROM:<admin@cabinet.test>\r\nRCPT TO:<"
        + LOGIN.encode()
        + b">\r\nDATA\r\nFrom: admin@cabinet.test\r\n\r\nfaux\r\n"
    )
    assert (await mx.data(smuggled)).startswith("550 5.6.2")
    await mx.unchanged()  # one reply only: the NOOP's comes next, nothing was stored


@pytest.mark.parametrize("ending", [b"\r\n.\n", b"\n.\r\n", b"\r.\r\n"])
async def test_lookalike_terminators_do_not_end_the_data(mx: Mx, ending: bytes) -> None:
    await mx.client.command(f"MAIL FROM:<{SENDER}>")
    await mx.client.command(f"RCPT TO:<{LOGIN}>")
    await mx.client.command("DATA")
    await mx.client.send(HEAD.encode() + b"\r\ncorps" + ending + b"NOOP\r\n")
    await mx.client.send(b"\r\n.\r\n")  # the real end
    [reply] = await mx.client.reply()
    assert reply.startswith("550 5.6.2")
    await mx.unchanged()


async def test_nul_byte_is_refused(mx: Mx) -> None:
    assert (await mx.data(HEAD.encode() + b"\r\navant\x00apres")).startswith(
        "550 5.6.0 Octet NUL dans le message"
    )
    await mx.unchanged()


async def test_ten_thousand_headers(mx: Mx) -> None:
    headers = b"".join(b"X-Champ-%d: valeur\r\n" % n for n in range(10_000))
    reply = await mx.data(HEAD.encode() + headers + b"\r\ncorps")
    assert reply == ("552 5.3.4 Trop de champs d'en-tete dans le message / Too many header fields")
    await mx.unchanged()
    await mx.still_delivers()


async def test_header_field_count_limit_is_exact(mx: Mx) -> None:
    base = HEAD.count("\r\n")
    fields = b"".join(b"X-N: %d\r\n" % n for n in range(1000 - base))
    assert (await mx.data(HEAD.encode() + fields + b"\r\nok")).startswith("250 2.0.0")
    assert (await mx.data(HEAD.encode() + fields + b"X-Un-De-Trop: 1\r\n\r\nko")).startswith(
        "552 5.3.4"
    )


async def test_two_megabyte_header_line(mx: Mx) -> None:
    huge = b"X-Enorme: " + b"a" * (2 * 1024 * 1024) + b"\r\n"
    reply = await mx.data(HEAD.encode() + huge + b"\r\ncorps")
    assert reply.startswith("550 5.6.0 Ligne d'en-tete de plus de 998 octets")
    await mx.unchanged()
    await mx.still_delivers()


async def test_header_line_length_limit_is_exact(mx: Mx) -> None:
    def line(total: int) -> bytes:
        return b"X-Long: " + b"b" * (total - len(b"X-Long: ")) + b"\r\n"

    assert (await mx.data(HEAD.encode() + line(998) + b"\r\nok")).startswith("250 2.0.0")
    assert (await mx.data(HEAD.encode() + line(999) + b"\r\nko")).startswith("550 5.6.0")
    # Body lines are not held to the header limit (long HTML lines are common).
    long_body = HEAD.encode() + b"\r\n" + b"c" * 5000
    assert (await mx.data(long_body)).startswith("250 2.0.0")


async def test_eight_bit_headers_need_smtputf8(mx: Mx) -> None:
    head = "From: Élodie <a@ailleurs.test>\r\nSubject: Résultats\r\n\r\ncorps".encode()
    assert await mx.data(head) == (
        "550 5.6.7 En-tetes non ASCII sans SMTPUTF8 (RFC 6531) "
        "/ Non-ASCII headers require SMTPUTF8 (RFC 6531)"
    )
    await mx.unchanged()
    assert (await mx.data(head, mail_params=" SMTPUTF8")).startswith("250 2.0.0")
    # 8-bit in the body only is fine (8BITMIME).
    assert (await mx.data(HEAD.encode() + "\r\nDonnées".encode())).startswith("250 2.0.0")


async def test_broken_mime_is_accepted_and_stored_as_is(mx: Mx) -> None:
    broken = (
        HEAD + "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="jamais-ferme"\r\n'
        "Content-Transfer-Encoding: quoted-printable\r\n"
        "\r\n"
        "--jamais-ferme\r\n"
        'Content-Type: application/pdf; name="cr.pdf\r\n'
        "Content-Transfer-Encoding: base64\r\n"
        "\r\n"
        "JVBERi0xLjQK%%%pas du base64===\r\n"
        "--autre-frontiere\r\n"
        "Content-Type: text/html; charset=inconnu-42\r\n"
        "\r\n"
        "<p>=E9=ZZ sans fin\r\n"
    ).encode()
    assert await mx.data(broken[:-2]) == "250 2.0.0 Message accepte / Message accepted"
    [stored] = await stored_messages(mx.server.app)
    assert without_trace(stored) == broken


async def test_empty_message_is_refused(mx: Mx) -> None:
    await mx.client.command(f"MAIL FROM:<{SENDER}>")
    await mx.client.command(f"RCPT TO:<{LOGIN}>")
    await mx.client.command("DATA")
    assert await mx.client.command(".") == ["550 5.6.0 Message vide / Empty message"]
    await mx.unchanged()


# --- size ------------------------------------------------------------------------------------


async def test_oversize_message_is_read_to_the_end_then_refused(mx: Mx) -> None:
    big = HEAD.encode() + b"\r\n" + (b"x" * 998 + b"\r\n") * (TEST_MAX_BYTES // 1000 + 10)
    reply = await mx.data(big[:-2])
    assert reply.startswith("552 5.3.4 Message trop volumineux")
    await mx.unchanged()
    await mx.still_delivers()


async def test_message_exactly_at_the_limit_is_accepted(mx: Mx) -> None:
    head = HEAD.encode() + b"\r\n"
    line = b"y" * 98 + b"\r\n"
    body = line * ((TEST_MAX_BYTES - len(head)) // len(line))
    raw = head + body + b"z" * (TEST_MAX_BYTES - len(head) - len(body) - 2) + b"\r\n"
    assert len(raw) == TEST_MAX_BYTES
    assert (await mx.data(raw[:-2])).startswith("250 2.0.0")
    assert (await mx.data(raw[:-2] + b"!")).startswith("552 5.3.4")


# --- command lines ---------------------------------------------------------------------------


async def test_over_long_command_lines(mx: Mx) -> None:
    client = mx.client
    assert await client.command("NOOP " + "a" * 600) == [
        "500 5.5.2 Ligne trop longue / Line too long"
    ]
    assert await client.command(b"NOOP " + b"b" * (2 * 1024 * 1024) + b"\r\n") == [
        "500 5.5.2 Ligne trop longue / Line too long"
    ]
    # MAIL and RCPT get room for their extension parameters (RFC 1870, RFC 3461).
    orcpt = "rfc822;" + "c" * 400 + "@cabinet.test"
    assert (await client.code(f"MAIL FROM:<{SENDER}> RET=HDRS ENVID={'e' * 100}")).startswith("250")
    assert (await client.code(f"RCPT TO:<{LOGIN}> NOTIFY=FAILURE ORCPT={orcpt}")).startswith("250")
    await mx.unchanged()


async def test_over_long_auth_exchange(server: SmtpServer) -> None:
    client = await server.client("submissions")
    await client.command("EHLO client.test")
    assert (await client.code("AUTH PLAIN")).startswith("334")
    assert await client.command("A" * 13_000) == [
        "500 5.5.6 Ligne d'authentification trop longue / Authentication exchange line too long"
    ]
    token = sasl_plain(LOGIN, server.password)
    assert (await client.code(f"AUTH PLAIN {token}")).startswith("235")


async def test_pipelined_garbage(mx: Mx) -> None:
    garbage = (
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n"  # a TLS ClientHello on plain text
        b"GET / HTTP/1.1\r\n"
        b"Host: mail\r\n"
        b"MAIL FROM:<a@ailleurs.test\r\n"
        b"\xff\xfe\xfd\r\n"
        b"RCPT TO:<" + LOGIN.encode() + b">\r\n"
        b"NOOP\r\n"
    )
    await mx.client.send(garbage)
    replies = [(await mx.client.reply())[0][:9] for _ in range(7)]
    assert replies == [
        "500 5.5.2",  # control characters
        "500 5.5.1",  # GET
        "500 5.5.1",  # Host:
        "501 5.1.7",  # unterminated path
        "500 5.5.2",  # not UTF-8
        "503 5.5.1",  # RCPT without MAIL
        "250 2.0.0",
    ]
    await mx.still_delivers()


async def test_binary_flood_closes_cleanly(mx: Mx) -> None:
    """Enough bad lines and the server says 421 and hangs up; nothing is stored."""
    await mx.client.send(b"\x00\x01garbage\r\n" * 50)
    lines = []
    while True:
        reply = await mx.client.reply()
        lines.append(reply[0])
        if reply[0].startswith("421"):
            break
    assert len(lines) == 11 and lines[-1].startswith("421 4.7.0")
    assert await mx.client.at_eof()
    assert await message_count(mx.server.app) == mx.count
