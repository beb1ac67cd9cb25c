"""Real SMTP clients (swaks, msmtp, curl, smtplib) against a real ``caducee serve`` process:
MX delivery with STARTTLS, submission on 587 (STARTTLS) and 465 (implicit TLS) with app
passwords, pipelining, DSN parameters, and the refusals a user can meet.

After each send the mailbox is read back through the services: the exact bytes the client sent
are there, behind our Received header.
"""

from __future__ import annotations

import asyncio
import os
import re
import smtplib
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from caducee.app import open_app
from caducee.config import Settings, TransportRoute
from caducee.services import mailboxes, queue
from tests.protocols.smtp.helpers import stored_messages, without_trace
from tests.services.helpers import person, practice
from tests.serving import clean_env, prepare, serve_process, wait_listeners

LOGIN = "dr@cabinet.test"
OTHER = "confrere@cabinet.test"
EXTERNAL = "a@ailleurs.test"
TIMEOUT = 30
pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


@dataclass
class Server:
    settings: Settings
    ports: dict[str, int]
    password: str
    ca: Path
    tmp: Path

    def context(self) -> ssl.SSLContext:
        """A client context trusting only the test CA."""
        return ssl.create_default_context(cafile=str(self.ca))

    def messages(self) -> list[bytes]:
        async def go() -> list[bytes]:
            async with open_app(self.settings) as app:
                return await stored_messages(app)

        return asyncio.run(go())

    def message_file(self, name: str, content: bytes) -> Path:
        path = self.tmp / name
        path.write_bytes(content)
        return path


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def create_app_password_with_cli(settings: Settings) -> str:
    result = subprocess.run(
        [
            *(sys.executable, "-m", "caducee", "app-password", "create", LOGIN),
            *("--label", "interop", "--scope", "smtp", "--data", str(settings.data_dir)),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(),
        check=True,
    )
    return result.stdout.strip()


@pytest.fixture
def server(settings: Settings, tmp_path: Path) -> Iterator[Server]:
    # Remote mail is queued towards a port where nothing listens: it stays in the queue.
    settings.transport = {"ailleurs.test": TransportRoute("127.0.0.1", closed_port(), "none")}
    prepare(settings, {d: "127.0.0.1:0" for d in ("smtp", "submission", "submissions")})

    async def accounts() -> None:
        async with open_app(settings) as app:
            await practice(app)
            await person(app, LOGIN)
            await person(app, OTHER)

    asyncio.run(accounts())
    password = create_app_password_with_cli(settings)
    with serve_process(settings, tmp_path) as proc:
        bound = wait_listeners(settings, proc, tmp_path)
        ports = {name: int(address.rsplit(":", 1)[1]) for name, address in bound.items()}
        yield Server(settings, ports, password, settings.tls_dir / "ca.crt", tmp_path)
        proc.terminate()
        proc.wait(15)


def message(sender: str, subject: str, to: str = LOGIN) -> bytes:
    return (
        f"From: <{sender}>\r\nTo: <{to}>\r\nSubject: {subject}\r\n"
        f"Date: Mon, 02 Mar 2026 10:00:00 +0100\r\nMessage-ID: <{subject}@interop.test>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        f"Compte rendu {subject}.\r\n.ligne qui commence par un point\r\nFin.\r\n"
    ).encode()


def assert_stored(server: Server, sent: list[bytes]) -> None:
    """The mailboxes hold exactly ``sent`` (in order), each behind the Return-Path of final
    delivery (RFC 5321 §4.4) and our Received header."""
    stored = server.messages()
    assert [without_trace(raw) for raw in stored] == sent
    for raw in stored:
        assert re.match(rb"Return-Path: <[^<>\r\n]+>\r\nReceived: from ", raw), raw[:200]
        assert f"by {server.settings.hostname}".encode() in raw.split(b"\r\n\r\n")[0]


def run(command: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=TIMEOUT, check=False, **kwargs
    )  # type: ignore[call-overload]
    assert result.returncode == 0, f"{command[0]} failed:\n{result.stdout}\n{result.stderr}"
    return result  # type: ignore[no-any-return]


# --- swaks -------------------------------------------------------------------------------------


def swaks(server: Server, *args: str) -> str:
    return run(["swaks", "--server", "127.0.0.1", "--timeout", "20", *args]).stdout


def swaks_data(server: Server, name: str, body: bytes) -> str:
    """swaks sends its data followed by CRLF "." CRLF: give it the message without its last
    CRLF."""
    path = server.message_file(name, body.removesuffix(b"\r\n"))
    return f"@{path}"


def test_swaks(server: Server) -> None:
    sent = []
    # The MX, with STARTTLS and a verified certificate.
    mx = message(EXTERNAL, "swaks-mx")
    out = swaks(
        server,
        *("--port", str(server.ports["smtp"]), "--ehlo", "mx.ailleurs.test"),
        *("--from", EXTERNAL, "--to", LOGIN, "--tls", "--tls-verify"),
        *("--tls-ca-path", str(server.ca), "--data", swaks_data(server, "mx.eml", mx)),
    )
    assert "<-  220 2.0.0 Pret pour TLS" in out and "TLS started" in out
    sent.append(mx)
    # The MX, pipelined (RFC 2920), in clear.
    piped = message(EXTERNAL, "swaks-pipeline")
    out = swaks(
        server,
        *("--port", str(server.ports["smtp"]), "--from", EXTERNAL, "--to", LOGIN),
        *("--pipeline", "--data", swaks_data(server, "p.eml", piped)),
    )
    # The three commands went out together, then the three replies came back in order.
    assert (
        f" -> MAIL FROM:<{EXTERNAL}>\n -> RCPT TO:<{LOGIN}>\n -> DATA\n"
        "<-  250 2.1.0 Expediteur accepte / Sender OK\n"
        "<-  250 2.1.5 Destinataire accepte / Recipient OK\n<-  354 "
    ) in out
    sent.append(piped)
    # Submission on 587: STARTTLS, then AUTH PLAIN and AUTH LOGIN with the app password.
    for mechanism in ("PLAIN", "LOGIN"):
        body = message(LOGIN, f"swaks-587-{mechanism}", OTHER)
        out = swaks(
            server,
            *("--port", str(server.ports["submission"]), "--tls", "--auth", mechanism),
            *("--auth-user", LOGIN, "--auth-password", server.password),
            *("--from", LOGIN, "--to", OTHER, "--tls-verify", "--tls-ca-path", str(server.ca)),
            *("--data", swaks_data(server, "s.eml", body)),
        )
        assert "235 2.7.0 Authentification reussie" in out
        sent.append(body)
    # Submission on 465: implicit TLS (RFC 8314), pipelined.
    body = message(LOGIN, "swaks-465", OTHER)
    out = swaks(
        server,
        *("--port", str(server.ports["submissions"]), "--tlsc", "--auth", "PLAIN"),
        *("--auth-user", LOGIN, "--auth-password", server.password, "--pipeline"),
        *("--from", LOGIN, "--to", OTHER, "--tls-verify", "--tls-ca-path", str(server.ca)),
        *("--data", swaks_data(server, "t.eml", body)),
    )
    assert "TLS started" in out
    sent.append(body)
    assert_stored(server, sent)


# --- msmtp -------------------------------------------------------------------------------------


def test_msmtp(server: Server) -> None:
    config = server.tmp / "msmtprc"
    config.write_text(
        "defaults\n"
        "auth on\n"
        "tls on\n"
        f"tls_trust_file {server.ca}\n"
        f"logfile {server.tmp / 'msmtp.log'}\n"
        "\n"
        "account starttls\n"
        "host 127.0.0.1\n"
        f"port {server.ports['submission']}\n"
        "tls_starttls on\n"
        f"from {LOGIN}\n"
        f"user {LOGIN}\n"
        f"password {server.password}\n"
        "\n"
        "account implicit : starttls\n"
        f"port {server.ports['submissions']}\n"
        "tls_starttls off\n"
        "\n"
        "account login : starttls\n"
        "auth login\n"
    )
    config.chmod(0o600)
    sent = []
    for account in ("starttls", "implicit", "login"):
        body = message(LOGIN, f"msmtp-{account}", OTHER)
        run(["msmtp", "-C", str(config), "-a", account, OTHER], input=body.decode())
        sent.append(body)
    assert_stored(server, sent)
    log = (server.tmp / "msmtp.log").read_text()
    assert server.password not in log


# --- curl --------------------------------------------------------------------------------------


def test_curl(server: Server) -> None:
    sent = []
    for url in (
        f"smtp://127.0.0.1:{server.ports['submission']}",
        f"smtps://127.0.0.1:{server.ports['submissions']}",
    ):
        body = message(LOGIN, f"curl-{url.split(':')[0]}", OTHER)
        run(
            [
                *("curl", "-sS", "--max-time", "20", url, "--ssl-reqd", "--cacert", str(server.ca)),
                *("--user", f"{LOGIN}:{server.password}", "--mail-from", LOGIN),
                *("--mail-rcpt", OTHER, "--upload-file", str(server.message_file("c.eml", body))),
            ]
        )
        sent.append(body)
    assert_stored(server, sent)
    # curl over 587 without TLS is refused before any password is sent.
    result = subprocess.run(
        [
            *("curl", "-sS", "--max-time", "20", f"smtp://127.0.0.1:{server.ports['submission']}"),
            *("--user", f"{LOGIN}:{server.password}", "--mail-from", LOGIN, "--mail-rcpt", OTHER),
            *("--upload-file", str(server.tmp / "c.eml")),
        ],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert result.returncode != 0
    assert len(server.messages()) == len(sent)


# --- smtplib -----------------------------------------------------------------------------------


def test_smtplib_mx_and_submission(server: Server) -> None:
    sent = []
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], local_hostname="mx.ailleurs.test") as mx:
        mx.starttls(context=server.context())
        body = message(EXTERNAL, "smtplib-mx")
        assert mx.sendmail(EXTERNAL, [LOGIN], body) == {}
        sent.append(body)
    with smtplib.SMTP("127.0.0.1", server.ports["submission"]) as smtp:
        smtp.starttls(context=server.context())
        smtp.login(LOGIN, server.password)
        body = message(LOGIN, "smtplib-587", OTHER)
        assert smtp.sendmail(LOGIN, [OTHER], body) == {}
        sent.append(body)
    with smtplib.SMTP_SSL(
        "127.0.0.1", server.ports["submissions"], context=server.context()
    ) as smtps:
        smtps.login(LOGIN, server.password)
        body = message(LOGIN, "smtplib-465", OTHER)
        assert smtps.sendmail(LOGIN, [OTHER, LOGIN], body) == {}
        sent += [body, body]  # one copy per mailbox
    assert_stored(server, sent)


def test_smtplib_dsn_parameters_reach_the_queue(server: Server) -> None:
    with smtplib.SMTP_SSL(
        "127.0.0.1", server.ports["submissions"], context=server.context()
    ) as smtps:
        smtps.login(LOGIN, server.password)
        refused = smtps.sendmail(
            LOGIN,
            ["Confrere@Ailleurs.test"],
            message(LOGIN, "dsn", "confrere@ailleurs.test"),
            mail_options=["RET=HDRS", "ENVID=Dossier+2B42-AbC"],
            rcpt_options=["NOTIFY=SUCCESS,DELAY", "ORCPT=rfc822;Confrere+2BX@Ailleurs.test"],
        )
        assert refused == {}

    async def rows() -> list[queue.QueueEntry]:
        async with open_app(server.settings) as app:
            return await queue.list_queue(app, include_finished=True)

    [row] = asyncio.run(rows())
    assert (row.envid, row.ret, row.notify) == ("Dossier+42-AbC", "HDRS", ("SUCCESS", "DELAY"))
    assert row.orcpt == "rfc822;Confrere+2BX@Ailleurs.test"
    # (flows.submission normalises recipient addresses to lower case)
    assert row.address == "confrere@ailleurs.test"


def test_smtplib_refusals(server: Server) -> None:
    # AUTH on plain 587: not offered, and refused if tried anyway.
    with smtplib.SMTP("127.0.0.1", server.ports["submission"]) as smtp:
        smtp.ehlo()
        assert not smtp.has_extn("auth")
        code, text = smtp.docmd("AUTH", "PLAIN AGRyQGNhYmluZXQudGVzdAB4")
        assert (code, text[:6]) == (538, b"5.7.11")
    with smtplib.SMTP_SSL(
        "127.0.0.1", server.ports["submissions"], context=server.context()
    ) as smtps:
        smtps.login(LOGIN, server.password)
        # Sending as someone else's address.
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:
            smtps.sendmail(OTHER, [LOGIN], message(OTHER, "usurpation"))
        assert refused.value.smtp_code == 553
        assert refused.value.smtp_error.startswith(
            b"5.7.1 Le compte dr@cabinet.test n'a pas le droit d'envoyer en tant que "
            b"confrere@cabinet.test"
        )
        # An unknown local recipient.
        with pytest.raises(smtplib.SMTPRecipientsRefused) as unknown:
            smtps.sendmail(LOGIN, ["personne@cabinet.test"], message(LOGIN, "inconnu"))
        code, text = unknown.value.recipients["personne@cabinet.test"]
        assert code == 550 and text.startswith(b"5.1.1 Destinataire inconnu")
        # A size announced over the limit (RFC 1870).
        smtps.ehlo()
        code, text = smtps.mail(LOGIN, ["SIZE=999999999"])
        assert (code, text[:6]) == (552, b"5.3.4 ")
        smtps.rset()

    # A full mailbox: 452 4.2.2 at RCPT (the SIZE smtplib announces does not fit).
    async def shrink() -> None:
        async with open_app(server.settings) as app:
            await mailboxes.set_quota(app, OTHER, 1024 * 1024)

    asyncio.run(shrink())
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"]) as mx:
        mx.starttls(context=server.context())
        big = (
            message(EXTERNAL, "gros", OTHER)
            + b"x" * 998
            + b"\r\n" * 1
            + (b"y" * 998 + b"\r\n") * 1100
        )
        with pytest.raises(smtplib.SMTPRecipientsRefused) as full:
            mx.sendmail(EXTERNAL, [OTHER], big)
        code, text = full.value.recipients[OTHER]
        assert code == 452 and text.startswith(b"4.2.2 La boite confrere@cabinet.test est pleine")
    assert server.messages() == []


def test_clients_refuse_an_untrusted_certificate(server: Server) -> None:
    """Sanity check of the trust setup: with the system CAs only, TLS fails."""
    with smtplib.SMTP("127.0.0.1", server.ports["submission"]) as smtp:  # noqa: SIM117
        with pytest.raises(ssl.SSLCertVerificationError):
            smtp.starttls(context=ssl.create_default_context())
    assert os.path.exists(server.ca)
