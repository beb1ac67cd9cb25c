"""The antivirus at IMAP APPEND (issue 19): an infected message is refused (``NO``), nothing
stored, MULTIAPPEND all or nothing; clamd down → ``NO [UNAVAILABLE]``."""

from __future__ import annotations

from pathlib import Path

from tests.clamd import MARKER, Clamd
from tests.protocols.imap.conftest import ImapServer, message, tagged


async def test_append_is_scanned(server: ImapServer, clamd_server: Clamd, tmp_path: Path) -> None:
    server.app.settings.antivirus_clamd = clamd_server.address
    c = await server.client()
    clean, infected = message(1), message(2, body="piece " + MARKER.decode())
    tag = c.next_tag()
    await c.send_raw(
        f"{tag} APPEND INBOX {{{len(clean)}+}}\r\n".encode()
        + clean
        + f" {{{len(infected)}+}}\r\n".encode()
        + infected
        + b"\r\n"
    )
    refused = tagged(await c.until(tag))
    assert refused.startswith("NO [CANNOT] Message refuse : un virus a ete detecte"), refused
    status = await c.ok("STATUS INBOX (MESSAGES)")
    assert "MESSAGES 0" in status[0]  # all or nothing (RFC 3502)
    assert tagged(
        await c.command(f"APPEND INBOX {{{len(clean)}+}}\r\n".encode() + clean)
    ).startswith("OK")
    server.app.settings.antivirus_clamd = f"unix:{tmp_path / 'absent.sock'}"
    again = tagged(await c.command(f"APPEND INBOX {{{len(clean)}+}}\r\n".encode() + clean))
    assert again.startswith("NO [UNAVAILABLE] Analyse antivirus"), again
    assert "MESSAGES 1" in (await c.ok("STATUS INBOX (MESSAGES)"))[0]
