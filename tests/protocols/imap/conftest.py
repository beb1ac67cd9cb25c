"""An in-process IMAP server on loopback (both doors, both backends), a client and
:func:`transcript`, which plays a test written as the exchange itself (C:/S: lines)."""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from caducee.app import App
from caducee.listeners import ListenAddress
from caducee.protocols.imap.listener import imap_listener
from caducee.protocols.tcp import ClientLimits, StreamListener
from tests.protocols.conftest import mail_practice, play

LOGIN = "dr@cabinet.test"
OTHER = "autre@cabinet.test"


@dataclass
class ImapServer:
    app: App
    plain: int
    implicit: int
    password: str
    other_password: str
    client_tls: ssl.SSLContext
    clients: list[Client] = field(default_factory=list)

    async def client(self, login: str = LOGIN, *, password: str | None = None) -> Client:
        """A client logged in over implicit TLS."""
        client = await Client.connect(self.implicit, self.client_tls)
        self.clients.append(client)
        secret = password or (self.password if login == LOGIN else self.other_password)
        response = await client.ok(f"LOGIN {login} {secret}")
        assert "CAPABILITY" in response[-1]
        return client


@pytest.fixture
async def server(app: App) -> AsyncIterator[ImapServer]:
    people = await mail_practice(app, LOGIN, OTHER)
    listeners: list[StreamListener] = []
    ports = []
    for implicit in (False, True):
        listener = imap_listener(
            app,
            ListenAddress("127.0.0.1", 0),
            implicit_tls=implicit,
            limits=ClientLimits(max_connections_per_ip=100, connections_per_minute=6000),
        )
        ports.append((await listener.start()).port)
        listeners.append(listener)
    password, other_password = people.passwords[LOGIN], people.passwords[OTHER]
    imap = ImapServer(app, ports[0], ports[1], password, other_password, people.client_tls)
    try:
        yield imap
    finally:
        for client in imap.clients:
            await client.close()
        for listener in listeners:
            await listener.stop(1)


_LITERAL = re.compile(rb"~?\{(\d+)\}\r\n$")


class Client:
    """A transcript client: send a tagged command, read until its tagged response."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.counter = 0
        self.greeting = ""

    @classmethod
    async def connect(cls, port: int, tls: ssl.SSLContext | None = None) -> Client:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=tls, server_hostname="localhost" if tls else None
        )
        client = cls(reader, writer)
        client.greeting = await client.line()
        assert client.greeting.startswith("* OK")
        return client

    async def raw_line(self, timeout: float = 5) -> bytes:
        """One response line with its literals inlined (as bytes)."""
        data = await asyncio.wait_for(self.reader.readline(), timeout)
        if not data:
            raise ConnectionError("closed")
        while (match := _LITERAL.search(data)) is not None:
            data += await asyncio.wait_for(self.reader.readexactly(int(match.group(1))), timeout)
            data += await asyncio.wait_for(self.reader.readline(), timeout)
        return data

    async def line(self, timeout: float = 5) -> str:
        return (await self.raw_line(timeout)).decode("utf-8", "replace").rstrip("\r\n")

    def next_tag(self) -> str:
        self.counter += 1
        return f"a{self.counter}"

    async def send_raw(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def command(self, text: str | bytes, timeout: float = 10) -> list[str]:
        """Send ``tag text``; every line until the tagged response (included, last)."""
        tag = self.next_tag()
        data = text.encode() if isinstance(text, str) else text
        await self.send_raw(tag.encode() + b" " + data + b"\r\n")
        return await self.until(tag, timeout)

    async def until(self, tag: str, timeout: float = 10) -> list[str]:
        lines = []
        while True:
            line = await self.line(timeout)
            lines.append(line)
            if line.startswith(tag + " "):
                return lines

    async def ok(self, text: str | bytes) -> list[str]:
        lines = await self.command(text)
        assert lines[-1].split(" ", 2)[1] == "OK", lines
        return lines

    async def close(self) -> None:
        self.writer.close()


def tagged(lines: list[str]) -> str:
    """The status and text of the tagged line: "OK ...", "NO ...", "BAD ..."."""
    return lines[-1].split(" ", 1)[1]


def message(n: int, subject: str = "", body: str = "") -> bytes:
    return (
        f"From: Expediteur <a@ailleurs.test>\r\nTo: {LOGIN}\r\n"
        f"Subject: {subject or f'message {n}'}\r\nMessage-ID: <m{n}@ailleurs.test>\r\n"
        f"Date: Mon, 7 Feb 1994 21:52:25 -0800\r\n\r\n{body or f'corps {n}'}\r\n"
    ).encode()


async def transcript(client: Client, script: str) -> list[str]:
    """Play ``script``, in the manner of Dovecot's imaptest scripts and of the SMTP tests'
    ``transcript()``: ``C: line`` is sent as written, tag included (consecutive C: lines go in
    one write: pipelining); each ``S: pattern`` must match the server's next line (literals
    inlined), where ``...`` matches anything (``*`` and ``\\*`` stay literal: IMAP's untagged
    marker and a flag) and ``<SP>`` is a trailing space; ``CLOSED`` expects the server to hang
    up. Returns the server's lines, for the rare value a test must reuse."""

    async def closed() -> None:
        assert await client.reader.read() == b"", "the server should have hung up"

    return await play(
        script, send=client.send_raw, line=client.line, wildcard="...", steps={"CLOSED": closed}
    )
