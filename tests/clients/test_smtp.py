"""The SMTP client (``caducee.clients.smtp``): reply classification, then sessions against a
scripted SMTP server on 127.0.0.1 (a real socket; each test reads as what it answers).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiosmtplib.protocol import PERIOD_REGEX, normalize_message_line_endings
from hypothesis import given
from hypothesis import strategies as st

from caducee.clients.smtp import (
    REPLY_MAX,
    DeliveryFailure,
    Recipient,
    SmtpClient,
    Target,
    Transaction,
    data_bytes,
    local_reply,
    smtp_reply,
    tls_context,
)

# ----- DATA bytes (RFC 5321 §4.5.2, §4.1.1.4) -------------------------------------------------


@given(
    st.lists(st.sampled_from([b"a", b".", b"\r", b"\n", b"\r\n", b".."]), max_size=60).map(
        b"".join
    ),
    st.integers(min_value=1, max_value=9),
)
def test_data_bytes_are_those_aiosmtplib_sends(raw: bytes, slice_bytes: int) -> None:
    """Prepared a slice at a time (off the event loop for big messages), the DATA bytes are
    exactly those aiosmtplib sends for the whole message at once: every line ended by CRLF,
    leading dots doubled, the end-of-data line — whatever the slices' size."""
    whole = PERIOD_REGEX.sub(b"..", normalize_message_line_endings(raw)) + b".\r\n"
    assert data_bytes(raw, slice_bytes) == whole


# ----- reply classification (RFC 5321 §4.2.1, RFC 3463, RFC 2034) ------------------------------

CLASSIFIED = [
    # code, text, status, kind
    (250, "2.0.0 Ok: queued as 12345", "2.0.0", "delivered"),
    (251, "User not local; will forward", "2.0.0", "delivered"),
    (250, "Ok", "2.0.0", "delivered"),
    (550, "5.1.1 <x@partner.test>: Recipient address rejected", "5.1.1", "permanent"),
    (552, "5.3.4 Message too big for system", "5.3.4", "permanent"),
    (554, "Transaction failed", "5.0.0", "permanent"),
    (450, "4.2.0 Mailbox busy", "4.2.0", "temporary"),
    (451, "Local error in processing", "4.0.0", "temporary"),
    (421, "4.3.2 Service shutting down", "4.3.2", "temporary"),
    # an enhanced code of another class than the reply's is ignored (RFC 3463 §2)
    (550, "4.7.1 greylisted", "5.0.0", "permanent"),
    (250, "5.0.0 odd", "2.0.0", "delivered"),
    # a reply code outside 2xx/4xx/5xx is never taken for a verdict
    (354, "End data with <CR><LF>.<CR><LF>", "4.0.0", "temporary"),
    (999, "5.1.1 nonsense", "4.0.0", "temporary"),
    (-1, "Connection lost", "4.0.0", "temporary"),
    # the status must be at the start, with 1-3 digit subjects and details
    (550, "rejected: 5.1.1 unknown", "5.0.0", "permanent"),
    (550, "5.1234.1 bad", "5.0.0", "permanent"),
]


@pytest.mark.parametrize(("code", "text", "status", "kind"), CLASSIFIED)
def test_remote_reply_classified(code: int, text: str, status: str, kind: str) -> None:
    reply = smtp_reply(code, text, "mx.partner.test")
    assert (reply.code, reply.status, reply.kind) == (code, status, kind)
    assert reply.remote_mta == "mx.partner.test"


def test_multiline_reply_kept_on_one_line_and_bounded() -> None:
    reply = smtp_reply(550, "5.7.1 first line\nsecond   line\n" + "x" * 2000, None)
    assert reply.text.startswith("5.7.1 first line second line x")
    assert "\n" not in reply.text
    assert len(reply.text) == REPLY_MAX
    assert reply.status == "5.7.1"


def test_local_reply_french_then_english() -> None:
    reply = local_reply("4.4.1", "connexion impossible", "cannot connect", "mx.partner.test")
    assert reply.text == "connexion impossible / cannot connect"
    assert (reply.code, reply.status, reply.kind) == (None, "4.4.1", "temporary")


# ----- sessions against a scripted server -------------------------------------------------------


@dataclass
class Script:
    """What the remote server answers; it records every command it reads."""

    greeting: str = "220 mx.partner.test ESMTP"
    extensions: list[str] = field(default_factory=lambda: ["SIZE 10000000", "8BITMIME"])
    mail: str = "250 2.1.0 Ok"
    #: address → reply to RCPT TO (default 250 2.1.5)
    rcpt: dict[str, str] = field(default_factory=dict)
    data: str = "250 2.0.0 Ok: queued"
    commands: list[str] = field(default_factory=list)
    messages: list[bytes] = field(default_factory=list)


class ScriptedServer:
    def __init__(self) -> None:
        self.script = Script()
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._session, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        script = self.script

        try:
            writer.write(script.greeting.encode() + b"\r\n")
            if not script.greeting.startswith("220"):
                await writer.drain()
                return
            while line := await reader.readline():
                command = line.decode().rstrip("\r\n")
                script.commands.append(command)
                verb = command.split(" ", 1)[0].upper()
                if verb == "EHLO":
                    lines = ["mx.partner.test", *script.extensions]
                    for index, text in enumerate(lines):
                        sep = " " if index == len(lines) - 1 else "-"
                        writer.write(f"250{sep}{text}\r\n".encode())
                elif verb == "MAIL":
                    writer.write(script.mail.encode() + b"\r\n")
                elif verb == "RCPT":
                    address = command.split("<", 1)[1].split(">", 1)[0]
                    reply = script.rcpt.get(address, "250 2.1.5 Ok")
                    writer.write(reply.encode() + b"\r\n")
                    if reply.startswith("421"):
                        await writer.drain()
                        return
                elif verb == "DATA":
                    writer.write(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    await writer.drain()
                    body = bytearray()
                    while (chunk := await reader.readline()) != b".\r\n":
                        body += chunk
                    script.messages.append(bytes(body))
                    writer.write(script.data.encode() + b"\r\n")
                elif verb == "QUIT":
                    writer.write(b"221 2.0.0 Bye\r\n")
                    await writer.drain()
                    return
                else:  # RSET, NOOP
                    writer.write(b"250 2.0.0 Ok\r\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def remote() -> AsyncIterator[ScriptedServer]:
    server = ScriptedServer()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def client() -> SmtpClient:
    return SmtpClient("mail.cabinet.test", tls_context, connect_timeout=5, command_timeout=5)


def target(server: ScriptedServer, tls: str = "opportunistic") -> Target:
    return Target("mx.partner.test", server.port, "127.0.0.1", tls)


RAW = b"From: dr.martin@cabinet.test\r\nTo: a@partner.test\r\nSubject: CR\r\n\r\nBonjour\r\n"


def transaction(*addresses: str, first_key: int = 1) -> Transaction:
    return Transaction(
        "dr.martin@cabinet.test",
        [Recipient(key, address) for key, address in enumerate(addresses, first_key)],
        RAW,
    )


async def test_each_recipient_gets_its_reply(remote: ScriptedServer) -> None:
    remote.script.rcpt = {
        "unknown@partner.test": "550 5.1.1 No such user",
        "busy@partner.test": "450 4.2.1 Try again later",
    }
    results = await client().deliver(
        target(remote),
        [transaction("a@partner.test", "unknown@partner.test", "busy@partner.test")],
    )
    got = {key: (r.reply.code, r.reply.status, r.reply.kind) for key, r in results.items()}
    assert got == {
        1: (250, "2.0.0", "delivered"),
        2: (550, "5.1.1", "permanent"),
        3: (450, "4.2.1", "temporary"),
    }
    assert results[1].reply.remote_mta == "mx.partner.test"
    assert remote.script.messages == [RAW]
    assert remote.script.commands[0] == "EHLO mail.cabinet.test"
    assert remote.script.commands[1] == f"MAIL FROM:<dr.martin@cabinet.test> SIZE={len(RAW)}"


async def test_refused_sender_is_every_recipient_reply_then_rset(remote: ScriptedServer) -> None:
    remote.script.mail = "553 5.7.1 Sender refused"
    results = await client().deliver(
        target(remote), [transaction("a@partner.test", "b@partner.test")]
    )
    assert {key: r.reply.status for key, r in results.items()} == {1: "5.7.1", 2: "5.7.1"}
    assert "RSET" in remote.script.commands
    assert not any(command.startswith("RCPT") for command in remote.script.commands)


async def test_closing_421_answers_what_was_not_yet_answered(remote: ScriptedServer) -> None:
    remote.script.rcpt = {"b@partner.test": "421 4.3.2 Shutting down"}
    results = await client().deliver(
        target(remote),
        [
            transaction("a@partner.test", "b@partner.test", "c@partner.test"),
            transaction("d@partner.test", first_key=4),  # the session is gone before it
        ],
    )
    # a was accepted but DATA never came; c and d were never asked
    assert {key: (r.reply.code, r.reply.status) for key, r in results.items()} == {
        key: (421, "4.3.2") for key in (1, 2, 3, 4)
    }
    assert all(r.reply.kind == "temporary" for r in results.values())
    assert remote.script.messages == []


async def test_greeting_refused_is_a_delivery_failure(remote: ScriptedServer) -> None:
    remote.script.greeting = "554 5.7.1 No SMTP service here"
    with pytest.raises(DeliveryFailure) as caught:
        await client().deliver(target(remote), [transaction("a@partner.test")])
    assert (caught.value.reply.code, caught.value.reply.status) == (554, "5.7.1")
    assert caught.value.reply.kind == "permanent"


async def test_required_tls_without_starttls_is_a_temporary_failure(
    remote: ScriptedServer,
) -> None:
    with pytest.raises(DeliveryFailure) as caught:
        await client().deliver(target(remote, "required"), [transaction("a@partner.test")])
    reply = caught.value.reply
    assert (reply.code, reply.status, reply.kind) == (None, "4.7.10", "temporary")
    assert reply.text.startswith("TLS exigé pour ce domaine")
    assert not any(command.startswith("MAIL") for command in remote.script.commands)


async def test_nobody_listening_is_a_temporary_failure(remote: ScriptedServer) -> None:
    await remote.stop()
    with pytest.raises(DeliveryFailure) as caught:
        await client().deliver(target(remote), [transaction("a@partner.test")])
    assert (caught.value.reply.status, caught.value.reply.kind) == ("4.4.1", "temporary")


async def test_smtputf8_address_refused_when_not_offered(remote: ScriptedServer) -> None:
    results = await client().deliver(target(remote), [transaction("éloïse@partner.test")])
    assert (results[1].reply.status, results[1].reply.kind) == ("5.6.7", "permanent")
    assert not any(command.startswith("MAIL") for command in remote.script.commands)


async def test_dsn_parameters_only_to_a_next_hop_that_offers_dsn(remote: ScriptedServer) -> None:
    sent = Transaction(
        "dr.martin@cabinet.test",
        [Recipient(1, "a@partner.test", ("SUCCESS", "FAILURE"), "rfc822;a@partner.test")],
        RAW,
        ret="HDRS",
        envid="QQ+2B1",
    )
    results = await client().deliver(target(remote), [sent])
    assert results[1].next_hop_dsn is False
    assert [c for c in remote.script.commands if c.startswith(("MAIL", "RCPT"))] == [
        f"MAIL FROM:<dr.martin@cabinet.test> SIZE={len(RAW)}",
        "RCPT TO:<a@partner.test>",
    ]
    remote.script.commands.clear()
    remote.script.extensions.append("DSN")
    results = await client().deliver(target(remote), [sent])
    assert results[1].next_hop_dsn is True
    assert [c for c in remote.script.commands if c.startswith(("MAIL", "RCPT"))] == [
        f"MAIL FROM:<dr.martin@cabinet.test> SIZE={len(RAW)} RET=HDRS ENVID=QQ+2B1",
        "RCPT TO:<a@partner.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a@partner.test",
    ]


def test_tls_contexts_of_the_policies() -> None:
    with pytest.raises(DeliveryFailure) as caught:
        tls_context("required", "/nonexistent/ca.pem")
    assert caught.value.reply.status == "4.7.5"
    assert tls_context("opportunistic").verify_mode == ssl.CERT_NONE
    assert tls_context("required").verify_mode == ssl.CERT_REQUIRED
