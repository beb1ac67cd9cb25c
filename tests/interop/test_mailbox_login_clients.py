"""A TLT mailbox logging in with its own address (issue 15): real clients (poplib, fetchmail,
imaplib, smtplib) against a real ``caducee serve`` process, the app password made by the CLI.

The billing software of a télétransmission mailbox uses the mailbox's address as its login and
one of the mailbox's app passwords: it reaches that mailbox alone, and neither it nor its
owner's account can borrow the other's app passwords.
"""

from __future__ import annotations

import asyncio
import base64
import imaplib
import os
import poplib
import smtplib
import ssl
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from caducee.app import open_app
from caducee.config import Settings
from caducee.domain.model import MailboxType
from caducee.domain.pop3_octets import pop3_size
from caducee.services import mailboxes, queue
from caducee.services.app_passwords import create_app_password, list_app_passwords
from caducee.services.delivery import deliver_local
from caducee.services.messages import store_message
from tests.services.helpers import person, practice
from tests.serving import clean_env, prepare, serve_process, wait_listeners

FUND = "01422@422.01.rss.fr"
OWNER = "dr@cabinet.test"
TLT = "tlt-dupont@cabinet.test"
#: Stored as an IMAP APPEND may leave it: a bare LF, a line starting with ".", no final CRLF.
RAGGED = (
    b"From: cpam@ailleurs.test\r\nSubject: ARL\r\n\r\nAccuse de reception\nlot 42\r\n"
    b".point\r\nsans fin de ligne"
)
pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


@dataclass
class Server:
    settings: Settings
    ports: dict[str, int]
    ca: Path
    tlt_password: str
    owner_password: str

    def context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca))

    def pop3(self) -> poplib.POP3_SSL:
        return poplib.POP3_SSL("localhost", self.ports["pop3s"], context=self.context(), timeout=10)


def cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "caducee", "app-password", *args, "--data", str(settings.data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(),
        check=False,
    )


@pytest.fixture
def server(settings: Settings, tmp_path: Path) -> Iterator[Server]:
    listeners = ("pop3s", "imaps", "submissions")
    prepare(settings, {name: "127.0.0.1:0" for name in listeners})

    async def setup() -> str:
        async with open_app(settings) as app:
            await practice(app)
            await person(app, OWNER)
            tlt = await mailboxes.add_mailbox(app, TLT, MailboxType.TLT, OWNER)
            body = b"From: cpam@ailleurs.test\r\nSubject: NOEMIE\r\n\r\nRetour 1\r\n"
            await deliver_local(app, body, [TLT])
            await store_message(app, tlt.id, "INBOX", RAGGED)
            await deliver_local(app, b"Subject: pour le compte\r\n\r\nPersonnel\r\n", [OWNER])
            return await create_app_password(app, OWNER, "Thunderbird")

    owner_password = asyncio.run(setup())
    created = cli(settings, "create", TLT, "--label", "Logiciel de facturation")
    assert created.returncode == 0, created.stderr
    with serve_process(settings, tmp_path) as proc:
        bound = wait_listeners(settings, proc, tmp_path)
        ports = {name: int(address.rsplit(":", 1)[1]) for name, address in bound.items()}
        yield Server(
            settings, ports, settings.tls_dir / "ca.crt", created.stdout.strip(), owner_password
        )
        proc.terminate()
        proc.wait(15)


def test_poplib_list_and_stat_are_what_retr_sends(server: Server) -> None:
    pop = server.pop3()
    pop.user(TLT)
    pop.pass_(server.tlt_password)
    count, total = pop.stat()
    assert count == 2
    _, listing, _ = pop.list()
    sizes = [int(line.split()[1]) for line in listing]
    received = []
    for number in (1, 2):
        _, lines, octets = pop.retr(number)  # octets: what was sent, byte-stuffing removed
        assert octets == sizes[number - 1]
        received.append(lines)
    assert total == sum(sizes)
    # The ragged message: LIST counts the CRLF RETR adds, its stored bytes are unchanged.
    assert sizes[1] == pop3_size(RAGGED) == len(RAGGED) + 1 + 2
    assert received[1][-3:] == [b"lot 42", b".point", b"sans fin de ligne"]
    assert any(b"NOEMIE" in line for line in received[0])
    pop.quit()


def test_sasl_plain_logins_on_pop3_and_imap(server: Server) -> None:
    """RFC 5034 AUTH PLAIN (POP3) and RFC 3501 AUTHENTICATE PLAIN (IMAP), authcid = the
    mailbox address, authzid empty or the same address (RFC 4616 §2)."""
    for authzid in ("", TLT):
        token = base64.b64encode(f"{authzid}\0{TLT}\0{server.tlt_password}".encode()).decode()
        pop = server.pop3()
        assert pop._shortcmd(f"AUTH PLAIN {token}").startswith(b"+OK")
        assert pop.stat()[0] == 2
        pop.quit()
    client = imaplib.IMAP4_SSL(
        "localhost", server.ports["imaps"], ssl_context=server.context(), timeout=10
    )
    client.authenticate("PLAIN", lambda _: f"\0{TLT}\0{server.tlt_password}".encode())
    assert client.select("INBOX") == ("OK", [b"2"])
    client.logout()
    # Naming the owner as the authorization identity is refused: no borrowing that way either.
    token = base64.b64encode(f"{OWNER}\0{TLT}\0{server.tlt_password}".encode()).decode()
    pop = server.pop3()
    with pytest.raises(poplib.error_proto, match="AUTH"):
        pop._shortcmd(f"AUTH PLAIN {token}")
    pop.quit()


def test_owner_and_mailbox_never_borrow_each_others_passwords(server: Server) -> None:
    for login, password in ((TLT, server.owner_password), (OWNER, server.tlt_password)):
        pop = server.pop3()
        pop.user(login)
        with pytest.raises(poplib.error_proto, match="AUTH"):
            pop.pass_(password)
        pop.quit()
    # The owner's own login with its own password is its own Inbox, not the TLT one.
    pop = server.pop3()
    pop.user(OWNER)
    pop.pass_(server.owner_password)
    assert pop.stat()[0] == 1
    assert any(b"Personnel" in line for line in pop.retr(1)[1])
    pop.quit()


def test_fetchmail_collects_the_tlt_inbox(server: Server, tmp_path: Path) -> None:
    mbox = tmp_path / "mbox"
    rc = tmp_path / "fetchmailrc"
    rc.write_text(
        f'poll localhost protocol pop3 port {server.ports["pop3s"]} user "{TLT}" '
        f'password "{server.tlt_password}" ssl sslcertck sslcertfile "{server.ca}" keep '
        f'mda "cat >> {mbox}"\n'
    )
    rc.chmod(0o600)
    result = subprocess.run(
        ["fetchmail", "-f", str(rc), "--nodetach", "--nosyslog", "-v"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "HOME": str(tmp_path), "FETCHMAILHOME": str(tmp_path)},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    fetched = mbox.read_text()
    assert "Retour 1" in fetched and "sans fin de ligne" in fetched
    assert "Personnel" not in fetched
    # fetchmail compares what it read with LIST: a mismatch is reported as a wrong length.
    assert "not the expected length" not in result.stdout + result.stderr


def test_imaplib_sees_only_the_tlt_mailbox(server: Server) -> None:
    client = imaplib.IMAP4_SSL(
        "localhost", server.ports["imaps"], ssl_context=server.context(), timeout=10
    )
    client.login(TLT, server.tlt_password)
    _, listed = client.list()
    names = sorted(line.decode().rsplit(' "/" ', 1)[1].strip('"') for line in listed)  # type: ignore[union-attr]
    assert names == ["Archive", "Drafts", "INBOX", "Junk", "Sent", "Trash"]
    status, data = client.select("INBOX")
    assert status == "OK" and data == [b"2"]
    _, fetched = client.fetch("2", "(RFC822)")
    assert fetched[0][1] == RAGGED  # type: ignore[index]  # byte for byte
    # Its owner's Inbox, by the shared namespace ("Partagés" in modified UTF-7, RFC 3501 §5.1.3).
    status, _ = client.select(f'"Partag&AOk-s/{OWNER}/INBOX"')
    assert status == "NO"
    status, _ = client.select("INBOX")  # still its own after the refusal
    assert status == "OK"
    client.logout()
    client = imaplib.IMAP4_SSL(
        "localhost", server.ports["imaps"], ssl_context=server.context(), timeout=10
    )
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        client.login(TLT, server.owner_password)
    client.logout()


def test_smtplib_sends_as_the_tlt_address_only(server: Server) -> None:
    def message(sender: str) -> bytes:
        return (
            f"From: <{sender}>\r\nTo: <{OWNER}>\r\nSubject: lot 43\r\n"
            "Date: Mon, 02 Mar 2026 10:00:00 +0100\r\nMessage-ID: <lot43@interop.test>\r\n"
            "\r\nLot 43 transmis.\r\n"
        ).encode()

    with smtplib.SMTP_SSL(
        "127.0.0.1", server.ports["submissions"], context=server.context(), timeout=10
    ) as smtp:
        smtp.login(TLT, server.tlt_password)
        assert smtp.sendmail(TLT, [FUND], message(TLT)) == {}
        with pytest.raises(smtplib.SMTPSenderRefused):
            smtp.sendmail(OWNER, [FUND], message(OWNER))
        with pytest.raises(smtplib.SMTPDataError):  # the envelope may not hide another From
            smtp.sendmail(TLT, [FUND], message(OWNER))
        # A TLT mailbox writes to the insurers only (health.insurers), not to its owner.
        with pytest.raises(smtplib.SMTPRecipientsRefused, match="teletransmission"):
            smtp.sendmail(TLT, [OWNER], message(TLT))

    async def queued() -> list[str]:
        async with open_app(server.settings) as app:
            return [entry.address for entry in await queue.list_queue(app, include_finished=True)]

    assert asyncio.run(queued()) == [FUND]  # the TLT's lot, once


def test_revoked_with_the_cli_then_refused(server: Server) -> None:
    listed = cli(server.settings, "list", TLT)
    assert listed.returncode == 0 and "Logiciel de facturation" in listed.stdout
    assert "cli" in listed.stdout  # who created it

    async def tlt_password_id() -> int:
        async with open_app(server.settings) as app:
            [info] = await list_app_passwords(app, TLT)
            assert info.created_by == "cli"
            return info.id

    revoked = cli(server.settings, "revoke", TLT, str(asyncio.run(tlt_password_id())))
    assert revoked.returncode == 0, revoked.stderr
    pop = server.pop3()
    pop.user(TLT)
    with pytest.raises(poplib.error_proto, match="AUTH"):
        pop.pass_(server.tlt_password)
    pop.quit()
