"""Disabling an account or a mailbox (issue 19), through a real ``caducee serve`` process and
real clients: imaplib, poplib, smtplib (submission and MX), the REST API and the web login over
HTTPS. The CLI disables; every door refuses at once; mail keeps arriving unless
``[lifecycle] disabled_mailbox_mail = "refuse"`` (550 5.2.1)."""

from __future__ import annotations

import asyncio
import imaplib
import poplib
import re
import smtplib
import ssl
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from caducee.app import open_app
from caducee.config import Settings
from caducee.domain.model import MailboxType, Role
from caducee.services import api_tokens, mailboxes, mfa
from caducee.services.app_passwords import create_app_password
from tests.services.auth_helpers import PASSWORD
from tests.services.helpers import person, practice
from tests.serving import clean_env, prepare, serve_process, wait_listeners

OWNER = "dr@cabinet.test"
ADMIN = "admin@cabinet.test"
SHARED = "accueil@cabinet.test"
CSRF_FIELD = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass
class Server:
    settings: Settings
    ports: dict[str, int]
    owner_password: str  # the owner's app password (IMAP, POP3, SMTP)
    shared_password: str  # the shared mailbox's own app password (its address as login)
    token: str  # the owner's API token, on both mailboxes

    def context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.settings.tls_dir / "ca.crt"))

    def imap(self, login: str, password: str) -> imaplib.IMAP4_SSL:
        client = imaplib.IMAP4_SSL(
            "localhost", self.ports["imaps"], ssl_context=self.context(), timeout=10
        )
        client.login(login, password)
        return client

    def pop3(self, login: str, password: str) -> poplib.POP3_SSL:
        client = poplib.POP3_SSL(
            "localhost", self.ports["pop3s"], context=self.context(), timeout=10
        )
        client.user(login)
        client.pass_(password)
        return client

    def smtp_auth(self, login: str, password: str) -> None:
        with smtplib.SMTP_SSL(
            "localhost", self.ports["submissions"], context=self.context(), timeout=10
        ) as client:
            client.login(login, password)

    def mx(self, to: str) -> tuple[int, bytes]:
        """RCPT TO ``to`` on the MX; the whole message if accepted: (code, text) of the last."""
        with smtplib.SMTP("localhost", self.ports["smtp"], timeout=10) as client:
            client.ehlo("labo.ailleurs.test")
            client.mail("labo@ailleurs.test")
            code, text = client.rcpt(to)
            if code != 250:
                return code, text
            return client.data(
                f"From: labo@ailleurs.test\r\nTo: {to}\r\nSubject: Resultats\r\n\r\nNormal.\r\n"
            )

    def https(self) -> httpx.Client:
        return httpx.Client(
            base_url=f"https://localhost:{self.ports['https']}", verify=self.context()
        )

    def api_status(self, path: str) -> int:
        with self.https() as http:
            return http.get(path, headers={"authorization": f"Bearer {self.token}"}).status_code


def caducee(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "caducee", *args, "--data", str(settings.data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(),
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def web_login(http: httpx.Client, login: str) -> int:
    page = http.get("/connexion")
    found = CSRF_FIELD.search(page.text)
    assert found, page.text[:500]
    answer = http.post(
        "/connexion",
        data={"identifiant": login, "mot_de_passe": PASSWORD, "csrf": found.group(1)},
    )
    return answer.status_code


@pytest.fixture
def server(settings: Settings, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Server]:
    settings.hostname = "localhost"
    settings.disabled_mailbox_mail = getattr(request, "param", "accept")
    listeners = ("imaps", "pop3s", "submissions", "smtp", "https")
    prepare(settings, {name: "127.0.0.1:0" for name in listeners})

    async def setup() -> tuple[str, str, str]:
        async with open_app(settings) as app:
            place = await practice(app)
            await mfa.set_second_factor_required(app, place.id, False, actor="t", source="t")
            await person(app, OWNER)
            await person(app, ADMIN, Role.ADMIN)
            await mailboxes.add_mailbox(app, SHARED, MailboxType.ORG, OWNER)
            token, _ = await api_tokens.create_token(
                app, OWNER, "Logiciel", [OWNER, SHARED], ["lecture"], actor="t", source="t"
            )
            return (
                await create_app_password(app, OWNER, "Thunderbird"),
                await create_app_password(app, SHARED, "Accueil"),
                token,
            )

    owner_password, shared_password, token = asyncio.run(setup())
    with serve_process(settings, tmp_path) as proc:
        bound = wait_listeners(settings, proc, tmp_path)
        ports = {name: int(address.rsplit(":", 1)[1]) for name, address in bound.items()}
        yield Server(settings, ports, owner_password, shared_password, token)
        proc.terminate()
        proc.wait(15)


def _box_id(settings: Settings, address: str) -> int:
    async def go() -> int:
        async with open_app(settings) as app:
            return (await mailboxes.get_mailbox(app, address)).id

    return asyncio.run(go())


def test_a_disabled_account_is_refused_at_every_door_at_once(server: Server) -> None:
    imap = server.imap(OWNER, server.owner_password)
    imap.logout()
    server.pop3(OWNER, server.owner_password).quit()
    server.smtp_auth(OWNER, server.owner_password)
    assert server.api_status("/api/v1/boites") == 200
    with server.https() as browser:
        assert web_login(browser, OWNER) == 303
        assert browser.get("/accueil").status_code == 200

        caducee(server.settings, "user", "disable", OWNER)

        # The open web session stops working at its next request.
        assert browser.get("/accueil").status_code == 303
    with server.https() as other:
        assert web_login(other, OWNER) == 401
    with pytest.raises(imaplib.IMAP4.error):
        server.imap(OWNER, server.owner_password)
    with pytest.raises(poplib.error_proto):
        server.pop3(OWNER, server.owner_password)
    with pytest.raises(smtplib.SMTPAuthenticationError):
        server.smtp_auth(OWNER, server.owner_password)
    assert server.api_status("/api/v1/boites") == 401
    # The mailbox login of a mailbox whose owner is disabled is refused too.
    with pytest.raises(imaplib.IMAP4.error):
        server.imap(SHARED, server.shared_password)
    # Mail to the disabled account's mailbox is still received (the default)...
    assert server.mx(OWNER)[0] == 250

    caducee(server.settings, "user", "enable", OWNER)
    # ... and read once it is enabled again; the web session ended with the disabling.
    imap = server.imap(OWNER, server.owner_password)
    assert imap.select("INBOX") == ("OK", [b"1"])
    imap.logout()
    with server.https() as browser:
        assert web_login(browser, OWNER) == 303


def test_a_disabled_mailbox_is_refused_to_its_owner_and_its_own_login(server: Server) -> None:
    shared_id = _box_id(server.settings, SHARED)
    folders = f"/api/v1/boites/{shared_id}/dossiers"
    server.imap(SHARED, server.shared_password).logout()
    assert server.api_status(folders) == 200

    caducee(server.settings, "mailbox", "disable", SHARED)

    with pytest.raises(imaplib.IMAP4.error):
        server.imap(SHARED, server.shared_password)
    with pytest.raises(poplib.error_proto):
        server.pop3(SHARED, server.shared_password)
    with pytest.raises(smtplib.SMTPAuthenticationError):
        server.smtp_auth(SHARED, server.shared_password)
    assert server.api_status(folders) == 403
    # The owner's own mailbox is untouched.
    server.imap(OWNER, server.owner_password).logout()
    assert server.mx(SHARED)[0] == 250

    caducee(server.settings, "mailbox", "enable", SHARED)
    imap = server.imap(SHARED, server.shared_password)
    assert imap.select("INBOX") == ("OK", [b"1"])
    imap.logout()


@pytest.mark.parametrize("server", ["refuse"], indirect=True)
def test_mail_to_a_disabled_mailbox_refused_when_configured(server: Server) -> None:
    caducee(server.settings, "mailbox", "disable", SHARED)
    code, text = server.mx(SHARED)
    assert code == 550 and text.startswith(b"5.2.1"), text
    assert "désactivée".encode() in text or b"desactivee" in text or b"disabled" in text
    assert server.mx(OWNER)[0] == 250
