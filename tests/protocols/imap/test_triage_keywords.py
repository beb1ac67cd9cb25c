"""The triage's keywords seen by an IMAP client (issue 16): a registered patient's urgent
message arrives on the MX, then Python's imaplib against the served listener sees the
``$Caducee-*`` keywords in FLAGS, in the folder's FLAGS and PERMANENTFLAGS (so Thunderbird
shows them as tags), and can search by them."""

from __future__ import annotations

import asyncio
import imaplib

from caducee.flows import inbound
from caducee.health import patients
from caducee.health.patients import PatientData
from caducee.services import practices
from caducee.services.envelope import ClientInfo, Envelope, EnvelopeRecipient
from tests.dnsserver import LocalDNS
from tests.protocols.imap.conftest import LOGIN, ImapServer

PATIENT = "paul.durand@patient-mail.test"
PATIENT_IP = "192.0.2.44"


async def test_fetch_flags_show_the_triage_keywords(server: ImapServer, test_dns: LocalDNS) -> None:
    app = server.app
    test_dns.add("patient-mail.test", "TXT", f"v=spf1 ip4:{PATIENT_IP} -all")
    practice = await practices.practice_of_domain(app, "cabinet.test")
    data = PatientData("Durand", "Paul", "14/07/1985", PATIENT)
    added = await patients.add_patient(app, practice.id, data, actor=LOGIN, source="test")
    link = await patients.send_verification(app, practice.id, added.id, actor=LOGIN, source="t")
    assert await patients.confirm_verification(app, link.rsplit("/", 1)[1], source="t")
    raw = (
        f"From: {PATIENT}\r\nTo: {LOGIN}\r\nSubject: Ordonnance\r\n\r\n"
        "Bonjour, je voudrais le renouvellement de mon ordonnance. Et depuis ce matin j'ai du "
        "mal a respirer, je m'etouffe.\r\n"
    ).encode()
    envelope = Envelope(PATIENT, (EnvelopeRecipient(LOGIN),))
    await inbound.receive(app, envelope, raw, ClientInfo(PATIENT_IP, "mx.patient-mail.test"))

    def scenario() -> None:
        client = imaplib.IMAP4_SSL(
            "localhost", server.implicit, ssl_context=server.client_tls, timeout=10
        )
        client.login(LOGIN, server.password)
        typ, _ = client.select("INBOX")
        assert typ == "OK"
        announced = b" ".join(client.untagged_responses.get("FLAGS", []))
        assert b"$Caducee-Urgent" in announced
        permanent = [r for r in client.untagged_responses.get("OK", []) if b"PERMANENTFLAGS" in r]
        assert permanent and b"\\*" in permanent[0]
        typ, fetched = client.fetch("1", "(FLAGS)")
        assert typ == "OK"
        flags = fetched[0]
        assert isinstance(flags, bytes)
        assert b"$Caducee-Urgent" in flags and b"$Caducee-" in flags.replace(b"Urgent", b"")
        typ, found = client.search(None, "KEYWORD", "$Caducee-Urgent")
        assert typ == "OK" and found == [b"1"]
        client.logout()

    await asyncio.to_thread(scenario)
