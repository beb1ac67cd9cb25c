"""An in-process SMTP server on loopback (the three doors, both backends) and a transcript
client: what the client sends (``C:``), what the server must answer (``S:``)."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from caducee.app import App
from caducee.listeners import ListenAddress
from caducee.protocols.smtp.limits import SmtpLimits
from caducee.protocols.smtp.listener import SmtpListener
from tests.protocols.conftest import mail_practice, play, sasl_plain

LOGIN = "dr@cabinet.test"
OTHER = "confrere@cabinet.test"
HOST = "mail.test.example"
#: Small enough for tests to exceed quickly, large enough for a 2 MB header line.
TEST_MAX_BYTES = 4 * 1024 * 1024


@dataclass
class SmtpServer:
    app: App
    ports: dict[str, int]
    password: str
    client_tls: ssl.SSLContext
    listeners: dict[str, SmtpListener] = field(default_factory=dict)
    clients: list[SmtpClient] = field(default_factory=list)

    async def client(self, door: str = "smtp", *, greeting: bool = True) -> SmtpClient:
        tls = self.client_tls if door == "submissions" else None
        client = await SmtpClient.connect(self.ports[door], tls)
        self.clients.append(client)
        if greeting:
            assert (await client.reply())[0].startswith("220 ")
        return client

    async def submitter(self, door: str = "submission") -> SmtpClient:
        """A client authenticated on a submission door (after STARTTLS on 587)."""
        client = await self.client(door)
        await client.command("EHLO client.test")
        if door == "submission":
            assert (await client.command("STARTTLS"))[0].startswith("220 ")
            await client.starttls(self.client_tls)
            await client.command("EHLO client.test")
        token = sasl_plain(LOGIN, self.password)
        assert (await client.command(f"AUTH PLAIN {token}")) == [
            "235 2.7.0 Authentification reussie / Authentication succeeded"
        ]
        return client


def limits_for_tests(**overrides: float) -> SmtpLimits:
    values: dict[str, float] = {
        "max_message_bytes": TEST_MAX_BYTES,
        "max_connections_per_ip": 200,
        "connections_per_minute": 60_000,
    }
    values.update(overrides)
    return SmtpLimits(**values)  # type: ignore[arg-type]


async def start_listeners(
    app: App, limits: SmtpLimits, doors: tuple[str, ...] = ("smtp", "submission", "submissions")
) -> dict[str, SmtpListener]:
    started = {}
    for door in doors:
        listener = SmtpListener(app, door, ListenAddress("127.0.0.1", 0), limits=limits)
        await listener.start()
        started[door] = listener
    return started


def port_of(listener: SmtpListener) -> int:
    server = listener._tcp._server
    assert server is not None
    return int(server.sockets[0].getsockname()[1])


@pytest.fixture
async def server(app: App) -> AsyncIterator[SmtpServer]:
    people = await mail_practice(app, LOGIN, OTHER, app_passwords=[LOGIN])
    listeners = await start_listeners(app, limits_for_tests())
    smtp = SmtpServer(
        app,
        {d: port_of(lst) for d, lst in listeners.items()},
        people.passwords[LOGIN],
        people.client_tls,
        listeners,
    )
    try:
        yield smtp
    finally:
        for client in smtp.clients:
            await client.close()
        for listener in listeners.values():
            await listener.stop(1)


class SmtpClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, port: int, tls: ssl.SSLContext | None = None) -> SmtpClient:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=tls, server_hostname="localhost" if tls else None, limit=2**24
        )
        return cls(reader, writer)

    async def line(self, timeout: float = 10) -> str:
        data = await asyncio.wait_for(self.reader.readline(), timeout)
        if not data:
            raise ConnectionError("closed by the server")
        assert data.endswith(b"\r\n"), data
        return data[:-2].decode("ascii")

    async def reply(self, timeout: float = 10) -> list[str]:
        """Every line of one (possibly multiline) reply."""
        lines = [await self.line(timeout)]
        while lines[-1][3:4] == "-":
            lines.append(await self.line(timeout))
        return lines

    async def send(self, data: str | bytes) -> None:
        self.writer.write(data.encode() + b"\r\n" if isinstance(data, str) else data)
        await self.writer.drain()

    async def command(self, data: str | bytes) -> list[str]:
        await self.send(data)
        return await self.reply()

    async def code(self, data: str | bytes) -> str:
        """The first line of the reply to ``data``."""
        return (await self.command(data))[0]

    async def starttls(self, context: ssl.SSLContext) -> None:
        await self.writer.start_tls(context, server_hostname="localhost")

    async def at_eof(self, timeout: float = 5) -> bool:
        data = await asyncio.wait_for(self.reader.read(), timeout)
        return data == b""

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):  # already gone
            await asyncio.wait_for(self.writer.wait_closed(), 2)

    async def send_message(
        self, mail_from: str, rcpts: list[str], body: bytes, *, mail_params: str = ""
    ) -> str:
        """MAIL, RCPT…, DATA, the (dot-stuffed) body; the reply to the final dot."""
        assert (await self.code(f"MAIL FROM:<{mail_from}>{mail_params}")).startswith("250")
        for rcpt in rcpts:
            assert (await self.code(f"RCPT TO:<{rcpt}>")).startswith("250")
        assert (await self.code("DATA")).startswith("354")
        return await self.code(dot_stuff(body) + b".\r\n")


def dot_stuff(body: bytes) -> bytes:
    stuffed = (b"\r\n" + body).replace(b"\r\n.", b"\r\n..")[2:]
    return stuffed if stuffed.endswith(b"\r\n") or not stuffed else stuffed + b"\r\n"


async def transcript(client: SmtpClient, script: str, tls: ssl.SSLContext | None = None) -> None:
    """Play ``script``: ``C: text`` lines are sent (consecutive ones in one write: pipelining),
    ``S: pattern`` lines must match the server's lines in order (``*`` matches anything,
    ``<SP>`` is a space that would be invisible at the end of a line), ``TLS`` upgrades the
    connection, ``CLOSED`` expects the server to hang up."""

    async def upgrade() -> None:
        assert tls is not None
        await client.starttls(tls)

    async def closed() -> None:
        assert await client.at_eof(), "the server should have closed the connection"

    await play(
        script,
        send=client.send,
        line=client.line,
        wildcard="*",
        steps={"TLS": upgrade, "CLOSED": closed},
    )
