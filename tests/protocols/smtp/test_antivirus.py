"""The antivirus on the SMTP wire (issue 19): an infected message is refused at the final dot
with ``554 5.7.1`` and nothing is stored; clamd down → ``451 4.7.1``, the client retries."""

from __future__ import annotations

from pathlib import Path

from caducee.app import App
from tests.clamd import MARKER, Clamd
from tests.protocols.smtp.conftest import SmtpServer, dot_stuff
from tests.protocols.smtp.helpers import message_count

BODY = (
    b"From: <a@ailleurs.test>\r\nTo: <dr@cabinet.test>\r\nSubject: Resultats\r\n"
    b"Message-ID: <av-smtp@ailleurs.test>\r\n\r\n"
)


async def _data(server: SmtpServer, body: bytes) -> str:
    client = await server.client("smtp")
    await client.command("EHLO mx.ailleurs.test")
    assert (await client.code("MAIL FROM:<a@ailleurs.test>")).startswith("250")
    assert (await client.code("RCPT TO:<dr@cabinet.test>")).startswith("250")
    assert (await client.code("DATA")).startswith("354")
    return await client.code(dot_stuff(body) + b".\r\n")


async def test_mx_refuses_infected_and_tempfails_without_clamd(
    server: SmtpServer, clamd_server: Clamd, tmp_path: Path
) -> None:
    app: App = server.app
    app.settings.antivirus_clamd = clamd_server.address
    reply = await _data(server, BODY + b"piece " + MARKER + b"\r\n")
    assert reply.startswith("554 5.7.1 Message refuse : un virus a ete detecte"), reply
    assert "Caducee.Test.Marker" in reply and await message_count(app) == 0
    assert (await _data(server, BODY + b"sain\r\n")).startswith("250 ")
    assert await message_count(app) == 1
    app.settings.antivirus_clamd = f"unix:{tmp_path / 'absent.sock'}"
    reply = await _data(server, BODY + b"sain\r\n")
    assert reply.startswith("451 4.7.1 Analyse antivirus momentanement impossible"), reply
    assert await message_count(app) == 1
