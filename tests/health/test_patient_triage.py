"""Triage of incoming patient mail at each door (issue 16), both backends: an e-mail from a
registered patient on the MX, a Mon espace santé reply, a portal reply. Each is classified
before it is stored (its keywords are in the messages row, on that practice's copies only), and
an urgent one sets off the practice's alert at once: an SMS on the test provider's server and an
e-mail, neither carrying anything of the message."""

from __future__ import annotations

from email.parser import BytesParser
from email.policy import default

import pytest
from sqlalchemy import select

from caducee.app import App
from caducee.domain.triage_settings import TriageSettings, from_dict, to_dict
from caducee.errors import InvalidInput
from caducee.flows import inbound
from caducee.health import patient_triage, patients, pickup
from caducee.health.patients import PatientData
from caducee.services import mailboxes
from caducee.services.envelope import ClientInfo, Envelope, EnvelopeRecipient
from caducee.store.tables import messages
from tests.dnsserver import LocalDNS
from tests.health.pickups import DOCTOR, PATIENT, Cabinet, cabinet, deposit, inbox
from tests.health.sms_provider_server import ProviderServer
from tests.services.helpers import person, practice
from tests.web.helpers import audit_actions

SECRETARIAT = "secretariat@cabinet.test"
OTHER_DOCTOR = "dr@autre.test"
PATIENT_IP = "192.0.2.44"
URGENT_TEXT = "Bonjour, j'ai une douleur dans la poitrine qui serre et irradie dans le bras."
RENEWAL_TEXT = "Bonjour docteur, pourriez-vous renouveler mon ordonnance de Levothyrox ?"


@pytest.fixture
async def cab(app: App, test_dns: LocalDNS) -> Cabinet:
    app.settings.deployment = "development"
    test_dns.add("patient-mail.test", "TXT", f"v=spf1 ip4:{PATIENT_IP} -all")
    found = await cabinet(app)
    await person(app, SECRETARIAT)
    await practice(app, "autre.test")
    await person(app, OTHER_DOCTOR)
    return found


async def verified_patient(app: App, cab: Cabinet) -> patients.Patient:
    data = PatientData("Durand", "Paul", "14/07/1985", PATIENT, mobile="06 12 34 56 78")
    added = await patients.add_patient(app, cab.practice.id, data, actor=DOCTOR, source="test")
    link = await patients.send_verification(
        app, cab.practice.id, added.id, actor=DOCTOR, source="test"
    )
    confirmed = await patients.confirm_verification(app, link.rsplit("/", 1)[1], source="test")
    assert confirmed is not None and confirmed.address_status == "verified"
    return confirmed


async def with_alerts(app: App, cab: Cabinet) -> None:
    await patient_triage.save(
        app,
        cab.practice.id,
        TriageSettings(alert_email=SECRETARIAT, alert_mobile="06 11 22 33 44"),
        actor=DOCTOR,
        source="test",
    )


def mail(sender: str, subject: str, body: str, to: str = DOCTOR, extra: str = "") -> bytes:
    return (
        f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\n{extra}"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n"
        f"{body}\r\n"
    ).encode()


async def keywords_by_mailbox(app: App) -> dict[int, list[str]]:
    async with app.db.read() as conn:
        rows = (await conn.execute(select(messages.c.mailbox_id, messages.c.keywords))).all()
    found: dict[int, list[str]] = {}
    for mailbox_id, keywords in rows:
        found.setdefault(int(mailbox_id), []).append(str(keywords))
    return found


async def receive(app: App, sender: str, raw: bytes, *recipients: str) -> None:
    envelope = Envelope(sender, tuple(EnvelopeRecipient(r) for r in recipients))
    await inbound.receive(app, envelope, raw, ClientInfo(PATIENT_IP, "mx.patient-mail.test"))


def alert_texts(server: ProviderServer) -> list[str]:
    return [str(r.json()["text"]) for r in server.received]  # type: ignore[index]


async def test_mx_mail_from_a_registered_patient_is_labelled_and_urgent_alerts(
    app: App, cab: Cabinet, sms_server: ProviderServer
) -> None:
    await verified_patient(app, cab)
    await with_alerts(app, cab)
    raw = mail(PATIENT, "Douleur", URGENT_TEXT, to=f"{DOCTOR}, {OTHER_DOCTOR}")
    await receive(app, PATIENT, raw, DOCTOR, OTHER_DOCTOR)
    boxes = await keywords_by_mailbox(app)
    [doctor_copy] = boxes[cab.mailbox.id]
    assert "$Caducee-Urgent" in doctor_copy.split()
    assert "$Caducee-HorsChamp" in doctor_copy.split()
    # The other practice does not know this sender as its patient: no triage on its copy.
    assert boxes[(await mailboxes.get_mailbox(app, OTHER_DOCTOR)).id] == [""]
    # The SMS, at once: the mailbox only — no name, no content.
    [sms] = alert_texts(sms_server)
    assert DOCTOR in sms and "urgent possible" in sms
    assert "durand" not in sms.lower() and "poitrine" not in sms
    # The e-mail stays on this server: it may name the patient, never the content.
    [alert] = [m for m in await inbox(app, SECRETARIAT) if b"urgent possible" in m]
    parsed = BytesParser(policy=default).parsebytes(alert)
    body = parsed.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    assert "DURAND Paul" in str(parsed["Subject"]) and "poitrine" not in text
    assert "ne pose aucun diagnostic" in text
    actions = [(a, t, r) for _actor, a, t, r in await audit_actions(app)]
    assert ("triage.alert", f"practice:{cab.practice.id}", "ok") in actions
    assert ("sms.sent", "+33 6 ** ** ** 44", "ok") in actions


async def test_non_patient_mail_is_not_triaged_and_calm_mail_alerts_nobody(
    app: App, cab: Cabinet, sms_server: ProviderServer
) -> None:
    await verified_patient(app, cab)
    await with_alerts(app, cab)
    stranger = "inconnu@patient-mail.test"
    await receive(app, stranger, mail(stranger, "Douleur", URGENT_TEXT), DOCTOR)
    await receive(app, PATIENT, mail(PATIENT, "Ordonnance", RENEWAL_TEXT), DOCTOR)
    copies = (await keywords_by_mailbox(app))[cab.mailbox.id]
    assert copies == ["", "$Caducee-Renouvellement"]
    assert sms_server.received == []
    assert not [m for m in await inbox(app, SECRETARIAT) if b"urgent possible" in m]


async def test_mon_espace_sante_reply_is_triaged(
    app: App, cab: Cabinet, sms_server: ProviderServer, test_dns: LocalDNS
) -> None:
    from tests.health.test_mon_espace_sante import PATIENT_MES, send

    await with_alerts(app, cab)
    await send(app, "<mes-t@cabinet.test>")
    reply = mail(
        PATIENT_MES,
        "Re: Résultats",
        "Mon père ne respire plus bien, il a les lèvres bleues.",
        extra="In-Reply-To: <mes-t@cabinet.test>\r\nReferences: <mes-t@cabinet.test>\r\n",
    )
    await receive(app, PATIENT_MES, reply, DOCTOR)
    [copy] = (await keywords_by_mailbox(app))[cab.mailbox.id]
    assert "$Caducee-Urgent" in copy.split()
    [sms] = alert_texts(sms_server)
    assert "respire" not in sms and PATIENT_MES not in sms
    # A Mon espace santé address is not in the registry: the e-mail names nobody.
    [alert] = [m for m in await inbox(app, SECRETARIAT) if b"urgent possible" in m]
    assert str(BytesParser(policy=default).parsebytes(alert)["Subject"]).startswith(
        "Message urgent possible /"
    )


async def test_portal_reply_is_triaged_with_the_practice_types(
    app: App, cab: Cabinet, sms_server: ProviderServer
) -> None:
    settings = from_dict(
        {
            "types": [
                {"id": "renouvellement", "label_fr": "Ordonnances", "enabled": True},
                {"id": "resultats", "enabled": False},
                {"id": "vaccination", "label_fr": "Vaccins", "keywords": ["vaccin", "grippe"]},
            ],
            "alert_mobile": "06 11 22 33 44",
        }
    )
    await patient_triage.save(app, cab.practice.id, settings, actor=DOCTOR, source="test")
    found = await deposit(app, cab)
    await pickup.reply(
        app, found, "Quand puis-je faire mon vaccin contre la grippe ?", [], source="ip"
    )
    [copy] = (await keywords_by_mailbox(app))[cab.mailbox.id]
    assert copy == "$Caducee-Vaccination"
    assert sms_server.received == []  # not urgent: no alert
    await pickup.reply(
        app, found, "Ma fille de 2 mois a 39 de fievre depuis ce matin", [], source="ip"
    )
    last = (await keywords_by_mailbox(app))[cab.mailbox.id][-1].split()
    assert "$Caducee-Urgent" in last
    [sms] = alert_texts(sms_server)
    assert "fievre" not in sms and "fièvre" not in sms


async def test_hostile_input_never_raises_and_settings_are_checked(app: App, cab: Cabinet) -> None:
    for raw in (
        b"",
        b"\xff\xfe\x00" * 1000,
        b"Subject: =?bad?=\r\n\r\n" + b"\x00" * 10,
        b"a" * 300_000,
    ):
        verdict = await patient_triage.classify_message(app, cab.practice.id, raw)
        assert verdict.type
    with pytest.raises(InvalidInput, match=r"mobile|téléphone"):
        await patient_triage.save(
            app,
            cab.practice.id,
            TriageSettings(alert_mobile="01 23 45 67 89"),
            actor=DOCTOR,
            source="test",
        )
    saved = await patient_triage.save(
        app,
        cab.practice.id,
        TriageSettings(alert_mobile="06 11 22 33 44"),
        actor=DOCTOR,
        source="test",
    )
    assert saved.alert_mobile == "+33611223344"
    assert (await patient_triage.settings_of(app, cab.practice.id)) == from_dict(to_dict(saved))
    assert ("triage.update", "ok") in [(a, r) for _x, a, _t, r in await audit_actions(app)]
