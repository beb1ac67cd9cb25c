"""The recipient rule of a mailbox holds for everything that leaves in its name — what its
users submit from every door (SMTP submission, webmail, REST API) and what the server writes for
it (read receipts) — and the pipeline is all or nothing for the sender (size, recipient count).
Both backends, real stores, queue, SMTP listener and web app."""

from __future__ import annotations

import base64
import email
import email.policy
import re
import ssl
from dataclasses import dataclass
from email.header import Header
from email.message import EmailMessage

import pytest

from caducee.app import App
from caducee.domain.model import MailboxType, SpecialUse
from caducee.errors import LimitReached, MessageTooLarge, PolicyRejected
from caducee.flows import inbound, submission
from caducee.health import patient_settings, patients, trust_list
from caducee.health.patients import PatientData
from caducee.services import api_tokens, mailboxes, queue, webmail
from caducee.services.app_passwords import create_app_password
from caducee.services.envelope import ClientInfo, Envelope, EnvelopeRecipient
from caducee.tls import create_dev_ca
from tests.health.whitelists import operator_dn, whitelist_xml
from tests.protocols.smtp.conftest import SmtpClient, limits_for_tests, port_of, start_listeners
from tests.web.conftest import People, WebClient
from tests.web.helpers import audit_dump

DOCTOR = "dr.martin@cabinet-a.test"
SECRETARY = "secretariat@cabinet-a.test"
PATIENT = "paul.durand@patient-mail.test"
OUTSIDER = "quelquun@ailleurs.test"
CLIENT = ClientInfo(ip="192.0.2.10", helo="poste", login=DOCTOR, protocol="ESMTPSA")
MX_CLIENT = ClientInfo(ip="192.0.2.99", helo="mx.ailleurs.test", protocol="ESMTPS")


async def _list_practice_a(app: App) -> None:
    """cabinet-a.test becomes a domain of the MSSanté trust space."""
    await trust_list.import_whitelist(
        app,
        whitelist_xml([("cabinet-a.test", operator_dn(1)), ("chu.mssante.test", operator_dn(2))]),
    )


async def _verified_patient(app: App, people: People) -> patients.Patient:
    app.settings.deployment = "development"
    app.settings.sms_provider = "fichier"
    patient = await patients.add_patient(
        app,
        people.practice_a.id,
        PatientData(
            last_name="Durand",
            first_name="Paul",
            birth_date="14/07/1985",
            email=PATIENT,
            mobile="06 12 34 56 78",
        ),
        actor=DOCTOR,
        source="test",
    )
    link = await patients.send_verification(
        app, people.practice_a.id, patient.id, actor=DOCTOR, source="test"
    )
    confirmed = await patients.confirm_verification(app, link.rsplit("/", 1)[1], source="test")
    assert confirmed is not None
    await _clear_queue(app)  # the verification message is not what these tests look at
    return confirmed


async def _clear_queue(app: App) -> None:
    for message_id in {entry.message_id for entry in await queue.list_queue(app)}:
        await queue.delete(app, message_id, actor="test", source="test")


def _health_message(sender: str, to: str, subject: str = "Vos résultats HbA1c 9,1 %") -> bytes:
    message = EmailMessage(policy=email.policy.SMTP)
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = email.utils.make_msgid(domain="cabinet-a.test")
    message.set_content("Bonjour, votre HbA1c est à 9,1 %.")
    return message.as_bytes()


async def _queued(app: App) -> dict[str, bytes]:
    return {e.address: await queue.read_content(app, e) for e in await queue.list_queue(app)}


async def _inbox_count(app: App, address: str) -> int:
    access = await mailboxes.open_mailbox(app, address, address)
    inbox = await webmail.special_folder(app, access, SpecialUse.INBOX)
    return len(await webmail.rows_by_uid(app, inbox, set(range(1, 50))))


# --- read receipts (RFC 8098) --------------------------------------------------------------


async def _receive(app: App, mail_from: str, dnt: str, subject: str) -> None:
    """A message arrives on the MX for the doctor, asking for a receipt."""
    encoded_subject = Header(subject, "utf-8").encode()
    raw = (
        f"From: {mail_from}\r\nTo: {DOCTOR}\r\nSubject: {encoded_subject}\r\n"
        f"Disposition-Notification-To: {dnt}\r\n"
        f"Message-ID: <{abs(hash(subject))}@ailleurs.test>\r\n"
        "Date: Mon, 07 Dec 2026 09:00:00 +0100\r\n\r\nBonjour docteur.\r\n"
    ).encode()
    envelope = Envelope(mail_from, (EnvelopeRecipient(DOCTOR),))
    await inbound.receive(app, envelope, raw, MX_CLIENT)


async def _open_in_webmail(app: App, web: WebClient, subject: str) -> str:
    """Open the message in the doctor's webmail (receipts on); return its trace page."""
    box = await mailboxes.get_mailbox(app, DOCTOR)
    await web.post(f"/courrier/b/{box.id}/reglages", {"accuses": "oui"})
    inbox = {f.special_use: f for f, _ in await webmail.folders(app, box)}[SpecialUse.INBOX.value]
    listing = await web.get(f"/courrier/b/{box.id}/d/{inbox.id}")
    link = re.search(rf'href="([^"]+/m/\d+)">{re.escape(subject)}<', listing.text)
    assert link, listing.text
    assert (await web.get(link.group(1))).status_code == 200
    return (await web.get(link.group(1) + "/trace")).text


async def test_receipt_from_a_trust_space_mailbox_never_leaves_the_trust_space(
    app: App, web: WebClient, people: People
) -> None:
    await _list_practice_a(app)
    await _receive(app, OUTSIDER, OUTSIDER, "Mon diagnostic de diabète")
    await web.login(DOCTOR)
    trace_page = await _open_in_webmail(app, web, "Mon diagnostic de diabète")
    assert await queue.list_queue(app) == []  # nothing went outside the trust space
    assert "accusé de lecture non envoyé" in trace_page
    assert "règle d&#39;envoi de la boîte" in trace_page


async def test_receipt_outside_the_trust_space_does_not_repeat_the_subject(
    app: App, web: WebClient, people: People
) -> None:
    await _receive(app, OUTSIDER, OUTSIDER, "Mon diagnostic de diabète")
    await web.login(DOCTOR)
    trace_page = await _open_in_webmail(app, web, "Mon diagnostic de diabète")
    receipt = (await _queued(app))[OUTSIDER]
    parsed = email.message_from_bytes(receipt, policy=email.policy.default)
    assert parsed.get_content_type() == "multipart/report"
    assert str(parsed["Subject"]) == "Accusé de lecture / Read receipt"
    assert "diabète" not in receipt.decode("utf-8", "replace")
    assert b"diab" not in receipt
    assert "accusé de lecture envoyé" in trace_page


async def test_inside_the_trust_space_the_receipt_keeps_the_subject(
    app: App, web: WebClient, people: People
) -> None:
    await _list_practice_a(app)
    confrere = "confrere@chu.mssante.test"
    await _receive(app, confrere, confrere, "Compte rendu opératoire")
    await web.login(DOCTOR)
    await _open_in_webmail(app, web, "Compte rendu opératoire")
    receipt = (await _queued(app))[confrere]
    subject = str(email.message_from_bytes(receipt, policy=email.policy.default)["Subject"])
    assert subject == "Accusé de lecture / Read receipt: Compte rendu opératoire"


async def test_no_automatic_receipt_when_the_request_differs_from_the_return_path(
    app: App, web: WebClient, people: People
) -> None:
    await _receive(app, OUTSIDER, "piege@collecte.test", "Question")
    await web.login(DOCTOR)
    trace_page = await _open_in_webmail(app, web, "Question")
    assert await queue.list_queue(app) == []
    assert "Return-Path" in trace_page and "accusé de lecture non envoyé" in trace_page


async def test_a_patient_gets_no_receipt_outside_the_patient_channel(
    app: App, web: WebClient, people: People
) -> None:
    await _verified_patient(app, people)
    await _receive(app, PATIENT, PATIENT, "Ma question")
    await web.login(DOCTOR)
    trace_page = await _open_in_webmail(app, web, "Ma question")
    # Only the practice's auto-reply (RFC 3834, no health content) went to the patient: no
    # read receipt.
    for entry in await queue.list_queue(app):
        content = await queue.read_content(app, entry)
        assert b"Auto-Submitted: auto-replied" in content
        assert b"disposition-notification" not in content.lower()
    assert "canal patient" in trace_page


# --- a trust-space mailbox writes to a verified patient, from every door ----------------------


def _assert_notice_only(queued: dict[str, bytes]) -> None:
    assert list(queued) == [PATIENT]
    notice = queued[PATIENT].decode("utf-8", "replace")
    assert "HbA1c" not in notice and "9,1" not in notice  # no health content leaves
    assert "/portail/" in notice


async def test_trust_space_mailbox_writes_to_a_verified_patient_by_submit(
    app: App, people: People
) -> None:
    await _list_practice_a(app)
    await _verified_patient(app, people)
    envelope = Envelope(DOCTOR, (EnvelopeRecipient(PATIENT),))
    await submission.check_submission_recipient(app, PATIENT, {"cabinet-a.test"}, DOCTOR)
    await submission.submit(app, DOCTOR, envelope, _health_message(DOCTOR, PATIENT), CLIENT)
    _assert_notice_only(await _queued(app))
    with pytest.raises(PolicyRejected, match="espace de confiance"):  # others stay refused
        await submission.check_submission_recipient(app, OUTSIDER, {"cabinet-a.test"}, DOCTOR)


async def _smtp_submitter(app: App, login: str) -> SmtpClient:
    create_dev_ca(app.settings.tls_dir, app.settings.hostname)
    password = await create_app_password(app, login, "poste")
    listeners = await start_listeners(app, limits_for_tests(), ("submission",))
    context = ssl.create_default_context(cafile=str(app.settings.tls_dir / "ca.crt"))
    client = await SmtpClient.connect(port_of(listeners["submission"]))
    client.listeners = listeners  # type: ignore[attr-defined]
    assert (await client.reply())[0].startswith("220 ")
    await client.command("EHLO poste.test")
    assert (await client.code("STARTTLS")).startswith("220 ")
    await client.starttls(context)
    await client.command("EHLO poste.test")
    token = base64.b64encode(f"\0{login}\0{password}".encode()).decode()
    assert (await client.code(f"AUTH PLAIN {token}")).startswith("235 ")
    return client


async def _stop(client: SmtpClient) -> None:
    await client.close()
    for listener in client.listeners.values():  # type: ignore[attr-defined]
        await listener.stop(1)


async def test_trust_space_mailbox_writes_to_a_verified_patient_over_smtp(
    app: App, people: People
) -> None:
    await _list_practice_a(app)
    await _verified_patient(app, people)
    client = await _smtp_submitter(app, DOCTOR)
    try:
        reply = await client.send_message(DOCTOR, [PATIENT], _health_message(DOCTOR, PATIENT))
        assert reply.startswith("250 "), reply
        assert (await client.code(f"MAIL FROM:<{DOCTOR}>")).startswith("250")
        refusal = await client.code(f"RCPT TO:<{OUTSIDER}>")
        assert refusal.startswith("550-5.7.1") and "espace de confiance" in refusal, refusal
    finally:
        await _stop(client)
    _assert_notice_only(await _queued(app))


async def test_trust_space_mailbox_writes_to_a_verified_patient_from_the_webmail(
    app: App, web: WebClient, people: People
) -> None:
    await _list_practice_a(app)
    await _verified_patient(app, people)
    await web.login(DOCTOR)
    box = await mailboxes.get_mailbox(app, DOCTOR)
    data = {
        "csrf": web.csrf,
        "a": PATIENT,
        "objet": "Vos résultats",
        "corps": "Votre HbA1c est à 9,1 %.",
        "confirmer": "oui",
    }
    response = await web.http.post(f"/courrier/b/{box.id}/envoyer", data=data)
    assert response.status_code == 303, response.text
    _assert_notice_only(await _queued(app))


async def test_trust_space_mailbox_writes_to_a_verified_patient_through_the_api(
    app: App, web: WebClient, people: People
) -> None:
    await _list_practice_a(app)
    await _verified_patient(app, people)
    token, _created = await api_tokens.create_token(
        app, DOCTOR, "Logiciel", [DOCTOR], ["envoi"], actor="t", source="t"
    )
    box = await mailboxes.get_mailbox(app, DOCTOR)
    response = await web.http.post(
        f"/api/v1/boites/{box.id}/envoyer",
        json={"a": [PATIENT], "objet": "Vos résultats", "texte": "Votre HbA1c est à 9,1 %."},
        headers={"authorization": f"Bearer {token}"},
    )
    assert response.status_code == 202, response.text
    _assert_notice_only(await _queued(app))


# --- all or nothing: size and recipient count before anything is stored --------------------


async def test_oversize_message_is_refused_before_any_copy_is_stored(
    app: App, people: People
) -> None:
    app.settings.max_message_bytes = 1024 * 1024
    big = _health_message(DOCTOR, SECRETARY) + b"x" * (2 * 1024 * 1024) + b"\r\n"
    envelope = Envelope(DOCTOR, (EnvelopeRecipient(SECRETARY), EnvelopeRecipient(OUTSIDER)))
    for _attempt in range(3):  # the client retries: still nothing stored anywhere
        with pytest.raises(MessageTooLarge, match="trop volumineux"):
            await submission.submit(app, DOCTOR, envelope, big, CLIENT)
    assert await _inbox_count(app, SECRETARY) == 0
    assert await queue.list_queue(app) == []
    too_many = Envelope(DOCTOR, tuple(EnvelopeRecipient(f"r{i}@ailleurs.test") for i in range(101)))
    with pytest.raises(LimitReached, match="100 au plus"):
        await submission.submit(app, DOCTOR, too_many, _health_message(DOCTOR, OUTSIDER), CLIENT)
    assert await queue.list_queue(app) == []


async def test_webmail_counts_the_encoded_size(app: App, web: WebClient, people: People) -> None:
    """0.9 MB of attachment is 1.2 MB once in base64: over a 1 MB limit, nothing is stored."""
    app.settings.max_message_bytes = 1024 * 1024
    await web.login(DOCTOR)
    box = await mailboxes.get_mailbox(app, DOCTOR)
    response = await web.http.post(
        f"/courrier/b/{box.id}/envoyer",
        data={"csrf": web.csrf, "a": f"{SECRETARY}, {OUTSIDER}", "objet": "Scan", "corps": "."},
        files={"pieces": ("scan.pdf", b"%PDF" + b"\x00" * 900_000, "application/pdf")},
    )
    assert response.status_code == 400
    assert "trop volumineux" in response.text
    assert await _inbox_count(app, SECRETARY) == 0
    assert await queue.list_queue(app) == []


# --- the patient-facing mailbox ---------------------------------------------------------------


@dataclass
class PatientDesk:
    address: str


@pytest.fixture
async def desk(app: App, people: People) -> PatientDesk:
    address = "patients@cabinet-a.test"
    await mailboxes.add_mailbox(app, address, MailboxType.ORG, DOCTOR)
    await patient_settings.save_settings(
        app,
        people.practice_a.id,
        dlp_policy="avertir",
        patient_mailbox=address,
        actor="admin@cabinet-a.test",
        source="test",
    )
    return PatientDesk(address)


async def test_patient_mailbox_writes_outside_only_to_verified_patients(
    app: App, web: WebClient, people: People, desk: PatientDesk
) -> None:
    await _verified_patient(app, people)
    envelope = Envelope(desk.address, (EnvelopeRecipient(OUTSIDER),))
    with pytest.raises(PolicyRejected, match="boîte des patients"):
        await submission.submit(
            app, DOCTOR, envelope, _health_message(desk.address, OUTSIDER), CLIENT
        )
    with pytest.raises(PolicyRejected, match="boîte des patients"):  # at RCPT too
        await submission.check_submission_recipient(app, OUTSIDER, {"cabinet-a.test"}, desk.address)
    # the webmail door says the same
    await web.login(DOCTOR)
    box = await mailboxes.get_mailbox(app, desk.address)
    response = await web.http.post(
        f"/courrier/b/{box.id}/envoyer",
        data={
            "csrf": web.csrf,
            "a": OUTSIDER,
            "objet": "Bonjour",
            "corps": ".",
            "confirmer": "oui",
        },
    )
    assert response.status_code == 400 and "boîte des patients" in response.text
    assert await queue.list_queue(app) == []
    # a verified patient, through the patient channel, and a trust-space or local address: yes
    to_patient = Envelope(desk.address, (EnvelopeRecipient(PATIENT), EnvelopeRecipient(SECRETARY)))
    await submission.submit(app, DOCTOR, to_patient, _health_message(desk.address, PATIENT), CLIENT)
    _assert_notice_only(await _queued(app))
    assert await _inbox_count(app, SECRETARY) == 1


async def test_practice_may_open_its_patient_mailbox_to_ordinary_mail_audited(
    app: App, web: WebClient, people: People, desk: PatientDesk
) -> None:
    await web.login("admin@cabinet-a.test")
    response = await web.post(
        "/admin/cabinet/patients",
        {"politique": "avertir", "boite_patients": desk.address, "boite_patients_ouverte": "oui"},
    )
    assert response.status_code in (200, 303)
    assert (await patient_settings.settings_of(app, people.practice_a.id)).patient_mailbox_open
    assert '"mailbox_open": true' in await audit_dump(app)
    envelope = Envelope(desk.address, (EnvelopeRecipient(OUTSIDER),))
    await submission.submit(app, DOCTOR, envelope, _health_message(desk.address, OUTSIDER), CLIENT)
    assert list(await _queued(app)) == [OUTSIDER]
