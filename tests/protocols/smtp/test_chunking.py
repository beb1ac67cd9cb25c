"""CHUNKING (RFC 3030): BDAT transcripts over a real loopback socket, both backends."""

from __future__ import annotations

from tests.protocols.smtp.conftest import LOGIN, TEST_MAX_BYTES, SmtpClient, SmtpServer
from tests.protocols.smtp.helpers import message_count, stored_messages, without_trace

MESSAGE = (
    f"From: Dr Externe <a@ailleurs.test>\r\nTo: {LOGIN}\r\nSubject: BDAT\r\n\r\n"
    "ligne 1\r\n.un point en debut de ligne reste tel quel\r\nfin\r\n"
).encode()


async def _transaction(server: SmtpServer) -> SmtpClient:
    client = await server.client("smtp")
    await client.command("EHLO mx.ailleurs.test")
    assert (await client.command("MAIL FROM:<a@ailleurs.test>"))[0].startswith("250")
    assert (await client.command(f"RCPT TO:<{LOGIN}>"))[0].startswith("250")
    return client


async def test_message_in_several_chunks_is_stored_byte_for_byte(server: SmtpServer) -> None:
    client = await _transaction(server)
    first, second = MESSAGE[:40], MESSAGE[40:]
    assert await client.command(f"BDAT {len(first)}\r\n".encode() + first) == [
        f"250 2.0.0 {len(first)} octets recus / {len(first)} octets received"
    ]
    assert await client.command(f"BDAT {len(second)} LAST\r\n".encode() + second) == [
        "250 2.0.0 Message accepte / Message accepted"
    ]
    [stored] = await stored_messages(server.app)
    assert without_trace(stored) == MESSAGE  # no dot-unstuffing with BDAT


async def test_pipelined_chunks_and_an_empty_last_chunk(server: SmtpServer) -> None:
    client = await _transaction(server)
    half = len(MESSAGE) // 2
    await client.send(
        f"BDAT {half}\r\n".encode()
        + MESSAGE[:half]
        + f"BDAT {len(MESSAGE) - half}\r\n".encode()
        + MESSAGE[half:]
        + b"BDAT 0 LAST\r\n"
    )
    codes = [(await client.reply())[0][:9] for _ in range(3)]
    assert codes == ["250 2.0.0"] * 3
    [stored] = await stored_messages(server.app)
    assert without_trace(stored) == MESSAGE


async def test_bdat_errors_keep_the_stream_in_step(server: SmtpServer) -> None:
    client = await server.client("smtp")
    await client.command("EHLO mx.ailleurs.test")
    # Without MAIL: refused, but its octets are consumed, not read as commands.
    assert (await client.command(b"BDAT 6 LAST\r\nQUIT\r\n"))[0].startswith("503 5.5.1")
    assert (await client.command("NOOP"))[0].startswith("250")
    assert (await client.command("BDAT douze"))[0].startswith("501 5.5.4")
    assert (await client.command("BDAT 12 FIN"))[0].startswith("501 5.5.4")
    # DATA after BDAT in one transaction is a sequence error.
    assert (await client.command("MAIL FROM:<a@ailleurs.test>"))[0].startswith("250")
    assert (await client.command(f"RCPT TO:<{LOGIN}>"))[0].startswith("250")
    assert (await client.command(b"BDAT 3\r\nabc"))[0].startswith("250")
    assert (await client.command("DATA"))[0].startswith("503 5.5.1")
    assert await message_count(server.app) == 0


async def test_oversized_chunks_are_read_and_refused_with_nothing_stored(
    server: SmtpServer,
) -> None:
    client = await _transaction(server)
    big = b"x" * (TEST_MAX_BYTES + 10)
    reply = await client.command(f"BDAT {len(big)} LAST\r\n".encode() + big)
    assert reply[0].startswith("552 5.3.4")
    assert (await client.command("NOOP"))[0].startswith("250")  # still in step
    assert await message_count(server.app) == 0


async def test_bare_line_feed_in_chunks_is_refused(server: SmtpServer) -> None:
    client = await _transaction(server)
    bad = b"Subject: x\r\n\r\nligne\nsans CR\r\n"
    reply = await client.command(f"BDAT {len(bad)} LAST\r\n".encode() + bad)
    assert reply[0].startswith("550 5.6.2")
    assert await message_count(server.app) == 0
