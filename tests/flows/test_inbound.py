"""The MX policy: SPF/DKIM/DMARC verdicts decide refusal, Junk or Inbox; headers prepended."""

from __future__ import annotations

import json
from email.parser import BytesHeaderParser

import pytest

from caducee.app import App
from caducee.errors import PolicyRejected, TemporaryFailure
from caducee.flows import inbound
from caducee.services import audit
from caducee.services.envelope import ClientInfo, Envelope, EnvelopeRecipient
from caducee.services.messages import read_message
from caducee.store import directory_repo
from tests.dnsserver import LocalDNS
from tests.services.helpers import person, practice

OUTSIDE_IP = "192.0.2.10"


def envelope(mail_from: str) -> Envelope:
    return Envelope(mail_from, (EnvelopeRecipient("dr@cabinet.test"),))


def message(sender: str, marker: str) -> bytes:
    return (
        f"From: {sender}\r\nTo: dr@cabinet.test\r\nSubject: {marker}\r\n"
        "Authentication-Results: mail.test.example; spf=pass (forged)\r\n\r\ncorps\r\n"
    ).encode()


async def folder_of(app: App, message_id: int) -> str:
    stored, _ = await read_message(app, message_id)
    async with app.db.read() as conn:
        folders = await directory_repo.list_folders(conn, stored.mailbox_id)
    return next(f.name for f in folders if f.id == stored.folder_id)


async def inbox_rows(app: App) -> list[int]:
    from sqlalchemy import select

    from caducee.store.tables import messages

    async with app.db.read() as conn:
        return list((await conn.scalars(select(messages.c.id).order_by(messages.c.id))).all())


@pytest.fixture
async def ready(app: App) -> App:
    await practice(app)
    await person(app, "dr@cabinet.test")
    return app


async def test_plain_mail_is_delivered_with_our_verdict(ready: App, test_dns: LocalDNS) -> None:
    test_dns.add("expediteur.test", "TXT", f"v=spf1 ip4:{OUTSIDE_IP} -all")
    client = ClientInfo(OUTSIDE_IP, "mx.expediteur.test")
    await inbound.receive(
        ready, envelope("a@expediteur.test"), message("a@expediteur.test", "ok"), client
    )
    [message_id] = await inbox_rows(ready)
    _, raw = await read_message(ready, message_id)
    head = raw.split(b"\r\n\r\n")[0].decode()
    # RFC 5321 §4.4: final delivery puts the reverse-path on top, then our trace header.
    assert head.startswith(
        "Return-Path: <a@expediteur.test>\r\nReceived: from mx.expediteur.test ([192.0.2.10])"
    )
    parsed = BytesHeaderParser().parsebytes(raw)
    results = [" ".join(str(v).split()) for v in parsed.get_all("Authentication-Results") or []]
    assert len(results) == 1 and "(forged)" not in head
    assert results[0].startswith("mail.test.example;") and "spf=pass" in results[0]
    assert await folder_of(ready, message_id) == "INBOX"


async def test_spoofing_our_domain_from_outside_is_refused(ready: App) -> None:
    with pytest.raises(PolicyRejected, match="domaine de ce serveur"):
        await inbound.receive(
            ready,
            envelope("boss@cabinet.test"),
            message("Le Docteur <dr@cabinet.test>", "spoof"),
            ClientInfo(OUTSIDE_IP, "evil.test"),
        )
    assert await inbox_rows(ready) == []


async def test_dmarc_reject_and_quarantine(ready: App, test_dns: LocalDNS) -> None:
    test_dns.add("strict.test", "TXT", "v=spf1 -all")
    test_dns.add("_dmarc.strict.test", "TXT", "v=DMARC1; p=reject")
    test_dns.add("doux.test", "TXT", "v=spf1 -all")
    test_dns.add("_dmarc.doux.test", "TXT", "v=DMARC1; p=quarantine")
    client = ClientInfo(OUTSIDE_IP, "relay.test")
    with pytest.raises(PolicyRejected, match="DMARC"):
        await inbound.receive(
            ready, envelope("x@strict.test"), message("x@strict.test", "r"), client
        )
    await inbound.receive(ready, envelope("x@doux.test"), message("x@doux.test", "q"), client)
    [message_id] = await inbox_rows(ready)
    assert await folder_of(ready, message_id) == "Junk"


async def test_dns_trouble_on_our_domain_is_temporary(ready: App, test_dns: LocalDNS) -> None:
    test_dns.fail("cabinet.test", "SERVFAIL")
    with pytest.raises(TemporaryFailure):
        await inbound.receive(
            ready,
            envelope("dr@cabinet.test"),
            message("dr@cabinet.test", "t"),
            ClientInfo(OUTSIDE_IP, "x"),
        )
    assert await inbox_rows(ready) == []


async def test_inbound_delivery_is_in_the_audit_trail(ready: App, test_dns: LocalDNS) -> None:
    # ANS CONF.17-18: each copy delivered is traced — the sender's domain (never the address),
    # the SMTP client, the mailbox, the message's ids — in the delivery's own transaction.
    test_dns.add("expediteur.test", "TXT", f"v=spf1 ip4:{OUTSIDE_IP} -all")
    client = ClientInfo(OUTSIDE_IP, "mx.expediteur.test")
    await inbound.receive(
        ready, envelope("a@expediteur.test"), message("a@expediteur.test", "ok"), client
    )
    [message_id] = await inbox_rows(ready)
    [delivered] = [r async for r in audit.iter_records(ready.db) if r.action == "message.deliver"]
    assert (delivered.actor, delivered.target, delivered.source) == (
        "domain:expediteur.test",
        "dr@cabinet.test",
        OUTSIDE_IP,
    )
    details = json.loads(delivered.details)
    assert details["message_id"] == message_id and details["folder"] == "INBOX"
    assert details["uid"] == 1
    assert "a@expediteur.test" not in delivered.details
    assert (await audit.verify(ready.db)).ok
