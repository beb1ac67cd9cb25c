"""POP3 transcripts over real loopback TLS, on both backends; poplib as a real client."""

from __future__ import annotations

import asyncio
import json
import poplib
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from caducee.app import App
from caducee.listeners import ListenAddress
from caducee.protocols.pop3.listener import pop3_listener
from caducee.protocols.tcp import StreamListener
from caducee.services import audit, mailboxes
from caducee.services.delivery import deliver_local
from tests.protocols.conftest import mail_practice, sasl_plain
from tests.services.helpers import PASSWORD

LOGIN = "dr@cabinet.test"


@dataclass
class Pop3Server:
    app: App
    plain: int
    implicit: int
    password: str
    client_tls: ssl.SSLContext


@pytest.fixture
async def server(app: App) -> AsyncIterator[Pop3Server]:
    people = await mail_practice(app, LOGIN)
    listeners: list[StreamListener] = []
    ports = []
    for implicit in (False, True):
        listener = pop3_listener(app, ListenAddress("127.0.0.1", 0), implicit_tls=implicit)
        ports.append((await listener.start()).port)
        listeners.append(listener)
    try:
        yield Pop3Server(app, ports[0], ports[1], people.passwords[LOGIN], people.client_tls)
    finally:
        for listener in listeners:
            await listener.stop(1)


class Client:
    """A transcript client: send a line, read the status line (and a multi-line body)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, port: int, tls: ssl.SSLContext | None = None) -> Client:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=tls, server_hostname="localhost" if tls else None
        )
        client = cls(reader, writer)
        assert (await client.line()).startswith("+OK")
        return client

    async def line(self) -> str:
        return (await asyncio.wait_for(self.reader.readline(), 5)).decode().rstrip("\r\n")

    async def send(self, command: str) -> str:
        self.writer.write(command.encode() + b"\r\n")
        await self.writer.drain()
        return await self.line()

    async def multi(self, command: str) -> tuple[str, list[str]]:
        status = await self.send(command)
        lines: list[str] = []
        if status.startswith("+OK"):
            while (line := await self.line()) != ".":
                lines.append(line)
        return status, lines

    async def starttls(self, context: ssl.SSLContext) -> None:
        assert (await self.send("STLS")).startswith("+OK")
        await self.writer.start_tls(context, server_hostname="localhost")

    async def close(self) -> None:
        self.writer.close()


def message(n: int, extra: str = "") -> bytes:
    return f"From: a@ailleurs.test\r\nSubject: m{n}\r\n\r\nligne 1\r\n{extra}ligne 3\r\n".encode()


async def test_transcript_from_plain_to_quit(server: Pop3Server) -> None:
    for n in range(3):
        await deliver_local(
            server.app, message(n, ".point en debut\r\n" if n == 1 else ""), [LOGIN]
        )
    c = await Client.connect(server.plain)
    status, caps = await c.multi("CAPA")
    assert "STLS" in caps and "USER" not in caps and "SASL PLAIN" not in caps
    assert (await c.send(f"USER {LOGIN}")).startswith("-ERR [AUTH]")
    await c.starttls(server.client_tls)
    _, caps = await c.multi("CAPA")
    assert "USER" in caps and "SASL PLAIN" in caps and "STLS" not in caps
    assert (await c.send(f"USER {LOGIN}")).startswith("+OK")
    assert (await c.send(f"PASS {PASSWORD}")).startswith("-ERR [AUTH]")  # account password
    await c.send(f"USER {LOGIN}")
    assert await c.send(f"PASS {server.password}") == "+OK 3 message(s)"
    sizes = [len(message(n, ".point en debut\r\n" if n == 1 else "")) for n in range(3)]
    assert await c.send("STAT") == f"+OK 3 {sum(sizes)}"
    _, listing = await c.multi("LIST")
    assert listing == [f"{n + 1} {size}" for n, size in enumerate(sizes)]
    _, uidls = await c.multi("UIDL")
    assert len({u.split()[1] for u in uidls}) == 3
    status, body = await c.multi("RETR 2")
    assert status.startswith("+OK") and "..point en debut" in body  # byte-stuffed
    assert body[-1] == "ligne 3" and body[:2] == ["From: a@ailleurs.test", "Subject: m1"]
    _, top = await c.multi("TOP 1 1")
    assert top == ["From: a@ailleurs.test", "Subject: m0", "", "ligne 1"]
    assert (await c.send("DELE 1")).startswith("+OK")
    assert (await c.send("DELE 1")).startswith("-ERR")
    assert (await c.send("RETR 1")).startswith("-ERR")
    assert await c.send("STAT") == f"+OK 2 {sizes[1] + sizes[2]}"
    await c.send("RSET")
    assert await c.send("STAT") == f"+OK 3 {sum(sizes)}"
    await c.send("DELE 3")
    assert (await c.send("QUIT")).startswith("+OK 1 message(s) supprime")
    box = await mailboxes.get_mailbox(server.app, LOGIN)
    assert box.used_bytes == sizes[0] + sizes[1]
    again = await Client.connect(server.implicit, server.client_tls)
    await again.send(f"USER {LOGIN}")
    assert await again.send(f"PASS {server.password}") == "+OK 2 message(s)"
    _, uidls_after = await again.multi("UIDL")
    assert [u.split()[1] for u in uidls_after] == [u.split()[1] for u in uidls[:2]]
    await again.send("QUIT")


async def test_sasl_plain_and_exclusive_access(server: Pop3Server) -> None:
    token = sasl_plain(LOGIN, server.password)
    first = await Client.connect(server.implicit, server.client_tls)
    assert (await first.send(f"AUTH PLAIN {token}")).startswith("+OK")
    second = await Client.connect(server.implicit, server.client_tls)
    assert await second.send("AUTH PLAIN") == "+ "
    assert (await second.send(token)).startswith("-ERR [IN-USE]")
    assert (await second.send("AUTH PLAIN *")).startswith("-ERR")
    await first.send("QUIT")
    assert (await second.send(f"AUTH PLAIN {token}")).startswith("+OK")
    await second.send("QUIT")


async def test_sasl_plain_malformed_is_refused_as_such(server: Pop3Server) -> None:
    """The one PLAIN decoder (RFC 4616 §2, framed by RFC 5034 §4): an empty password or the
    empty response "=" is malformed, never checked as a wrong password; another authzid is an
    [AUTH] refusal."""
    c = await Client.connect(server.implicit, server.client_tls)
    assert await c.send(f"AUTH PLAIN {sasl_plain(LOGIN, '')}") == (
        "-ERR Reponse PLAIN incomplete / Incomplete PLAIN response"
    )
    assert await c.send("AUTH PLAIN") == "+ "
    assert await c.send("=") == "-ERR Reponse PLAIN mal formee / Malformed PLAIN response"
    assert (await c.send(f"AUTH PLAIN {sasl_plain(LOGIN, 'pw', 'autre@x.test')}")).startswith(
        "-ERR [AUTH] Identite d'autorisation differente"
    )
    assert (await c.send(f"AUTH PLAIN {sasl_plain(LOGIN, server.password)}")).startswith("+OK")
    await c.send("QUIT")


async def test_bad_input_never_breaks_the_session(server: Pop3Server) -> None:
    c = await Client.connect(server.implicit, server.client_tls)
    assert (await c.send("X" * 300)).startswith("-ERR")
    assert (await c.send("STAT")).startswith("-ERR")  # not in AUTHORIZATION state
    assert (await c.send("AUTH PLAIN !!!notbase64")).startswith("-ERR")
    assert (await c.send("\x00\xff")).startswith("-ERR")
    await c.send(f"USER {LOGIN}")
    await c.send(f"PASS {server.password}")
    for bad in ("RETR", "RETR 0", "RETR 99999999999", "TOP 1", "LIST x", "DELE -1"):
        assert (await c.send(bad)).startswith("-ERR"), bad
    assert (await c.send("NOOP")) == "+OK"


async def test_message_deleted_elsewhere_is_reported(server: Pop3Server) -> None:
    [stored] = await deliver_local(server.app, message(1), [LOGIN])
    c = await Client.connect(server.implicit, server.client_tls)
    await c.send(f"USER {LOGIN}")
    await c.send(f"PASS {server.password}")
    from caducee.services.messages import expunge_messages

    assert (
        await expunge_messages(server.app, stored.folder_id, [stored.id], actor="imap", source="t")
        == 1
    )
    assert (await c.send("RETR 1")).startswith("-ERR message supprime")
    await c.send("DELE 1")
    assert (await c.send("QUIT")).startswith("+OK 0 message(s)")


async def test_deletions_at_quit_are_in_the_audit_trail(server: Pop3Server) -> None:
    # ANS CONF.17-18: a POP3 deletion (RFC 1939 §6, applied at QUIT) is audited: who, which
    # mailbox, which messages, when; never their content.
    stored = [(await deliver_local(server.app, message(n), [LOGIN]))[0] for n in range(3)]
    c = await Client.connect(server.implicit, server.client_tls)
    await c.send(f"USER {LOGIN}")
    await c.send(f"PASS {server.password}")
    await c.send("DELE 1")
    await c.send("DELE 3")
    assert (await c.send("QUIT")).startswith("+OK 2 message(s) supprime")
    [removed] = [r async for r in audit.iter_records(server.app.db) if r.action == "message.delete"]
    details = json.loads(removed.details)
    assert (removed.actor, removed.target, removed.source) == (LOGIN, LOGIN, "127.0.0.1")
    assert details["uids"] == f"{stored[0].uid},{stored[2].uid}"
    assert details["message_ids"] == f"{stored[0].id},{stored[2].id}"
    assert "ailleurs" not in removed.details and "ligne" not in removed.details
    assert (await audit.verify(server.app.db)).ok


async def test_poplib_over_stls_and_ssl(server: Pop3Server) -> None:
    await deliver_local(server.app, message(7), [LOGIN])

    def fetch_with_poplib() -> tuple[bytes, list[bytes], bytes]:
        plain = poplib.POP3("127.0.0.1", server.plain, timeout=5)
        plain.stls(server.client_tls)
        plain.user(LOGIN)
        plain.pass_(server.password)
        _, lines, _ = plain.retr(1)
        plain.quit()
        secure = poplib.POP3_SSL("127.0.0.1", server.implicit, context=server.client_tls, timeout=5)
        secure.user(LOGIN)
        secure.pass_(server.password)
        uidl = secure.uidl(1)
        secure.dele(1)
        secure.quit()
        return uidl, lines, secure.welcome

    uidl, lines, welcome = await asyncio.to_thread(fetch_with_poplib)
    assert lines[1] == b"Subject: m7" and welcome.startswith(b"+OK")
    assert uidl.startswith(b"+OK 1 ")
    assert (await mailboxes.get_mailbox(server.app, LOGIN)).used_bytes == 0


async def test_dele_of_a_lot_or_return_under_retention_is_refused(server: Pop3Server) -> None:
    # Issue 15: a télétransmission mailbox keeps its lots and returns 90 days. POP3 opens only
    # the account's own mailbox today (mailbox logins land separately): the test makes that
    # mailbox a TLT one. RFC 1939 §5: DELE answers -ERR at once, with the reason.
    from sqlalchemy import update

    from caducee.services.messages import store_message
    from caducee.store.tables import mailboxes as mailboxes_table

    box = await mailboxes.get_mailbox(server.app, LOGIN)
    async with server.app.db.write() as conn:
        await conn.execute(
            update(mailboxes_table).where(mailboxes_table.c.id == box.id).values(type="TLT")
        )
    now = datetime.now(UTC)
    for n, age in enumerate((2, 120)):
        when = now - timedelta(days=age)
        await store_message(server.app, box.id, "INBOX", message(n), internal_date=when)

    def with_poplib() -> tuple[str, bytes, int]:
        client = poplib.POP3_SSL("127.0.0.1", server.implicit, context=server.client_tls, timeout=5)
        client.user(LOGIN)
        client.pass_(server.password)
        try:
            client.dele(1)
        except poplib.error_proto as refused:
            reason = str(refused.args[0], "ascii")
        else:
            raise AssertionError("DELE of a young return accepted")
        answer = client.dele(2)  # past its retention: it may go
        count = len(client.list()[1])
        client.quit()
        return reason, answer, count

    reason, answer, count = await asyncio.to_thread(with_poplib)
    assert reason.startswith(f"-ERR 1 message(s) de la boite {LOGIN} (teletransmission")
    assert "conserves 90 jours" in reason and "a partir du" in reason
    assert answer.startswith(b"+OK") and count == 1
    assert (await mailboxes.get_mailbox(server.app, LOGIN)).used_bytes == len(message(0))
