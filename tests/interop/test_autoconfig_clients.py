"""Mail clients configure themselves (issue 21): what Thunderbird, Outlook and an Apple device do.

Each test fetches its document over HTTPS from a real ``caducee serve`` (every mail door on),
parses it as the client would, then configures Python's imaplib, poplib and smtplib from the
announced host, ports and TLS modes alone, and logs in with an app password. Every door is
configured on port 0: what is announced is the port each door is bound to.
"""

from __future__ import annotations

import asyncio
import imaplib
import plistlib
import poplib
import re
import smtplib
import ssl
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from caducee.app import open_app
from caducee.config import Settings
from caducee.services import mfa
from caducee.services.app_passwords import create_app_password
from tests.services.auth_helpers import PASSWORD
from tests.services.helpers import person, practice
from tests.serving import prepare, serve_process, wait_listeners

OWNER = "dr@cabinet.test"
NOBODY = "personne-ici@cabinet.test"
FOREIGN = "dr@ailleurs.test"
DOORS = ("imaps", "imap", "pop3s", "pop3", "submissions", "submission", "smtp", "https")
CSRF_FIELD = re.compile(r'name="csrf" value="([^"]+)"')
AUTODISCOVER_REQUEST = """<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">
  <Request>
    <EMailAddress>{address}</EMailAddress>
    <AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema>
  </Request>
</Autodiscover>"""
RESPONSE_NS = "{http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a}"


@dataclass
class Server:
    settings: Settings
    ports: dict[str, int]
    app_password: str

    def context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.settings.tls_dir / "ca.crt"))

    def http(self) -> httpx.Client:
        return httpx.Client(
            base_url=f"https://localhost:{self.ports['https']}", verify=self.context(), timeout=10
        )


@pytest.fixture
def server(settings: Settings, tmp_path: Path) -> Iterator[Server]:
    settings.hostname = "localhost"  # what the documents name, and what the clients reach
    prepare(settings, {name: "127.0.0.1:0" for name in DOORS})

    async def setup() -> str:
        async with open_app(settings) as app:
            place = await practice(app)
            await mfa.set_second_factor_required(app, place.id, False, actor="t", source="t")
            await person(app, OWNER)
            return await create_app_password(app, OWNER, "Thunderbird")

    app_password = asyncio.run(setup())
    with serve_process(settings, tmp_path) as proc:
        bound = wait_listeners(settings, proc, tmp_path)
        ports = {name: int(address.rsplit(":", 1)[1]) for name, address in bound.items()}
        yield Server(settings, ports, app_password)
        proc.terminate()
        proc.wait(15)


def log_in(server: Server, kind: str, host: str, port: int, security: str) -> None:
    """Configure the client library as announced, log in with the app password, check it works."""
    context = server.context()
    if kind == "imap":
        imap = (
            imaplib.IMAP4_SSL(host, port, ssl_context=context, timeout=10)
            if security == "SSL"
            else imaplib.IMAP4(host, port, timeout=10)
        )
        if security == "STARTTLS":
            imap.starttls(context)
        imap.login(OWNER, server.app_password)
        assert imap.select("INBOX")[0] == "OK"
        imap.logout()
    elif kind == "pop3":
        pop = (
            poplib.POP3_SSL(host, port, context=context, timeout=10)
            if security == "SSL"
            else poplib.POP3(host, port, timeout=10)
        )
        if security == "STARTTLS":
            pop.stls(context)
        pop.user(OWNER)
        pop.pass_(server.app_password)
        assert pop.stat()[0] >= 0
        pop.quit()
    else:
        assert kind == "smtp"
        smtp = (
            smtplib.SMTP_SSL(host, port, context=context, timeout=10)
            if security == "SSL"
            else smtplib.SMTP(host, port, timeout=10)
        )
        if security == "STARTTLS":
            smtp.starttls(context=context)
        smtp.login(OWNER, server.app_password)
        smtp.quit()


def thunderbird_servers(document: bytes) -> list[tuple[str, str, int, str, str]]:
    root = ET.fromstring(document)
    assert root.tag == "clientConfig" and root.get("version") == "1.1"
    provider = root.find("emailProvider")
    assert provider is not None and provider.findtext("domain") == "cabinet.test"
    return [
        (
            str(element.get("type")),
            str(element.findtext("hostname")),
            int(str(element.findtext("port"))),
            str(element.findtext("socketType")),
            str(element.findtext("username")),
        )
        for element in provider
        if element.tag in ("incomingServer", "outgoingServer")
    ]


def test_thunderbird_autoconfig_configures_imap_pop3_and_smtp(server: Server) -> None:
    with server.http() as http:
        answer = http.get("/mail/config-v1.1.xml", params={"emailaddress": OWNER})
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"].startswith("application/xml")
        servers = thunderbird_servers(answer.content)
        # Implicit TLS first (RFC 8314 §3.3); never the MX door (port 25).
        assert [(kind, port, security) for kind, _, port, security, _ in servers] == [
            ("imap", server.ports["imaps"], "SSL"),
            ("imap", server.ports["imap"], "STARTTLS"),
            ("pop3", server.ports["pop3s"], "SSL"),
            ("pop3", server.ports["pop3"], "STARTTLS"),
            ("smtp", server.ports["submissions"], "SSL"),
            ("smtp", server.ports["submission"], "STARTTLS"),
        ]
        for kind, host, port, security, username in servers:
            assert (host, username) == ("localhost", "%EMAILADDRESS%")
            log_in(server, kind, host, port, security)

        # The same bytes for an address that does not exist, and on the well-known path (asked
        # of the domain itself, Thunderbird's second try): nothing tells a mailbox exists.
        nobody = http.get("/mail/config-v1.1.xml", params={"emailaddress": NOBODY})
        well_known = http.get(
            "/.well-known/autoconfig/mail/config-v1.1.xml", params={"emailaddress": NOBODY}
        )
        by_host = http.get("/mail/config-v1.1.xml", headers={"Host": "autoconfig.cabinet.test"})
        assert nobody.content == well_known.content == by_host.content == answer.content
        # A domain we do not serve: 404, whatever the address.
        for address in (FOREIGN, "ailleurs.test", "pas une adresse", ""):
            refused = http.get("/mail/config-v1.1.xml", params={"emailaddress": address})
            assert refused.status_code == 404, address


def test_outlook_autodiscover_configures_the_preferred_doors(server: Server) -> None:
    with server.http() as http:
        answer = http.post(
            "/autodiscover/autodiscover.xml",
            content=AUTODISCOVER_REQUEST.format(address=OWNER),
            headers={"Content-Type": "text/xml"},
        )
        assert answer.status_code == 200, answer.text
        account = ET.fromstring(answer.content).find(f"{RESPONSE_NS}Response/{RESPONSE_NS}Account")
        assert account is not None
        assert account.findtext(f"{RESPONSE_NS}Action") == "settings"
        protocols = {
            str(p.findtext(f"{RESPONSE_NS}Type")): p for p in account.iter(f"{RESPONSE_NS}Protocol")
        }
        assert sorted(protocols) == ["IMAP", "POP3", "SMTP"]
        expected = {"IMAP": "imaps", "POP3": "pop3s", "SMTP": "submissions"}
        for kind, protocol in protocols.items():
            port = int(str(protocol.findtext(f"{RESPONSE_NS}Port")))
            assert port == server.ports[expected[kind]]
            assert protocol.findtext(f"{RESPONSE_NS}LoginName") == OWNER
            encryption = protocol.findtext(f"{RESPONSE_NS}Encryption")
            security = {"SSL": "SSL", "TLS": "STARTTLS"}[str(encryption)]
            host = str(protocol.findtext(f"{RESPONSE_NS}Server"))
            log_in(server, kind.lower(), host, port, security)

        # An address that does not exist: the same answer but for the login echoed back.
        nobody = http.post(
            "/autodiscover/autodiscover.xml", content=AUTODISCOVER_REQUEST.format(address=NOBODY)
        )
        assert nobody.status_code == 200
        assert nobody.content.replace(NOBODY.encode(), OWNER.encode()) == answer.content
        foreign = http.post(
            "/autodiscover/autodiscover.xml", content=AUTODISCOVER_REQUEST.format(address=FOREIGN)
        )
        assert foreign.status_code == 404
        # Entities are refused, not expanded (defusedxml): no file read, no billion laughs.
        hostile = (
            '<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
            + AUTODISCOVER_REQUEST.format(address="&x;").split("?>", 1)[1]
        )
        refused = http.post("/autodiscover/autodiscover.xml", content=hostile)
        assert refused.status_code == 400 and "root:" not in refused.text
        assert (
            http.post("/autodiscover/autodiscover.xml", content=b"<pas du xml").status_code == 400
        )


def web_login(http: httpx.Client) -> None:
    page = http.get("/connexion")
    found = CSRF_FIELD.search(page.text)
    assert found, page.text[:500]
    answer = http.post(
        "/connexion",
        data={"identifiant": OWNER, "mot_de_passe": PASSWORD, "csrf": found.group(1)},
    )
    assert answer.status_code == 303, answer.text


def test_apple_profile_from_the_mail_clients_page(server: Server) -> None:
    with server.http() as http:
        anonymous = http.get("/compte/applications/apple.mobileconfig")
        assert anonymous.status_code == 303 and "/connexion" in anonymous.headers["location"]
        web_login(http)
        page = http.get("/compte/applications")
        assert 'href="/compte/applications/apple.mobileconfig"' in page.text
        answer = http.get("/compte/applications/apple.mobileconfig")
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "application/x-apple-aspen-config"
    assert server.app_password.encode() not in answer.content
    assert PASSWORD.encode() not in answer.content
    profile = plistlib.loads(answer.content)
    assert profile["PayloadType"] == "Configuration"
    (mail,) = profile["PayloadContent"]
    assert mail["PayloadType"] == "com.apple.mail.managed"
    assert mail["EmailAddress"] == OWNER
    assert not any(
        "Password" in key and key != "OutgoingPasswordSameAsIncomingPassword" for key in mail
    )
    assert mail["EmailAccountType"] == "EmailTypeIMAP"
    assert mail["IncomingMailServerPortNumber"] == server.ports["imaps"]
    assert mail["OutgoingMailServerPortNumber"] == server.ports["submissions"]
    assert mail["IncomingMailServerUseSSL"] and mail["OutgoingMailServerUseSSL"]
    log_in(
        server,
        "imap",
        mail["IncomingMailServerHostName"],
        mail["IncomingMailServerPortNumber"],
        "SSL",
    )
    log_in(
        server,
        "smtp",
        mail["OutgoingMailServerHostName"],
        mail["OutgoingMailServerPortNumber"],
        "SSL",
    )
