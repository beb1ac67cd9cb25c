"""Binary content and IMAP literals, driven by Python's imaplib against the served listener.

We do not offer BINARY (RFC 3516): a message goes in and comes out as text in ``{n}`` literals,
whose CHAR8 excludes NUL (RFC 9051 §4.3.1, §9). APPEND of binary content — a bare ``~{n}``
literal8, a NUL octet — is refused with ``NO [UNKNOWN-CTE]`` (RFC 3516 §4.3) and stores nothing;
a NUL already stored is never sent in a literal (0x80 instead, as Dovecot does)."""

from __future__ import annotations

import asyncio
import imaplib
import re

import pytest

from caducee.services.delivery import deliver_local
from tests.protocols.imap.conftest import LOGIN, ImapServer

BINARY_MESSAGE = (
    b"From: a@ailleurs.test\r\nSubject: binaire\r\nContent-Type: application/octet-stream\r\n"
    b"Content-Transfer-Encoding: binary\r\n\r\nPDF\x00\x01\x02fin\r\n"
)


def _connect(server: ImapServer) -> imaplib.IMAP4_SSL:
    client = imaplib.IMAP4_SSL(
        "localhost", server.implicit, ssl_context=server.client_tls, timeout=10
    )
    client.login(LOGIN, server.password)
    return client


def _tagged(client: imaplib.IMAP4, tag: bytes) -> bytes:
    while True:
        line = client.readline()
        if line.startswith(tag + b" "):
            return line.rstrip(b"\r\n")


def _append_literal8(client: imaplib.IMAP4, tag: bytes, before: bytes, after: bytes) -> bytes:
    """``tag APPEND INBOX <before>~{n}`` + the message + ``<after>``, through imaplib's own
    send/readline (its ``append`` only writes ``{n}`` literals); the tagged answer."""
    client.send(tag + b" APPEND INBOX " + before + b"~{%d}\r\n" % len(BINARY_MESSAGE))
    assert client.readline().startswith(b"+ ")  # a synchronising literal: the server asks
    client.send(BINARY_MESSAGE + after + b"\r\n")
    return _tagged(client, tag)


async def test_binary_content_is_refused_at_append(server: ImapServer) -> None:
    def scenario() -> None:
        client = _connect(server)
        typ, caps = client.capability()
        assert typ == "OK" and b"BINARY" not in caps[0].split()
        bare = _append_literal8(client, b"b1", b"", b"")
        assert bare.startswith(b"b1 NO [UNKNOWN-CTE] ") and b"RFC 3516" in bare
        # RFC 6855's UTF8 form takes a literal8 too, but a NUL in it is binary content.
        utf8 = _append_literal8(client, b"b2", b"UTF8 (", b")")
        assert utf8.startswith(b"b2 NO [UNKNOWN-CTE] ")
        # A NUL in an ordinary literal is not CHAR8: a syntax error (imaplib raises on BAD).
        with pytest.raises(imaplib.IMAP4.error, match="RFC 9051"):
            client.append("INBOX", None, None, BINARY_MESSAGE)
        # Nothing was stored, and the session goes on.
        typ, data = client.select("INBOX")
        assert typ == "OK" and data == [b"0"]
        client.logout()

    await asyncio.to_thread(scenario)


async def test_fetch_sends_no_nul_in_a_literal(server: ImapServer) -> None:
    # A message holding NUL octets, as APPEND stored them before it refused binary content.
    await deliver_local(server.app, BINARY_MESSAGE, [LOGIN])

    def scenario() -> None:
        client = _connect(server)
        client.select("INBOX", readonly=True)
        typ, data = client.fetch("1", "(RFC822.SIZE BODY.PEEK[] BODY.PEEK[TEXT])")
        assert typ == "OK"
        parts = [item for item in data if isinstance(item, tuple)]
        assert len(parts) == 2
        whole, text = parts[0][1], parts[1][1]
        assert b"\x00" not in whole and b"\x00" not in text
        assert whole.endswith(b"PDF\x80\x01\x02fin\r\n") and text == b"PDF\x80\x01\x02fin\r\n"
        size = re.search(rb"RFC822\.SIZE (\d+)", parts[0][0])
        assert size and int(size.group(1)) == len(whole)  # same size: sizes and offsets hold
        client.logout()

    await asyncio.to_thread(scenario)
