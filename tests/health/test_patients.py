"""The patient registry, address verification, and the one sending pipeline to patients — on
both backends, with the real store, queue, portal and SMS (file provider)."""

from __future__ import annotations

import json
from email.parser import BytesParser
from email.policy import default

import pikepdf
import pytest

from caducee.app import App
from caducee.errors import AlreadyExists, InvalidInput, PolicyRejected
from caducee.flows import channels, submission
from caducee.health import patients, pickup
from caducee.health.patients import PatientData
from caducee.health.sms_providers import outbox_path
from caducee.services import address_books, queue
from caducee.services.envelope import ClientInfo, Envelope, EnvelopeRecipient
from tests.health.pickups import DOCTOR, MARKER, PATIENT, Cabinet, cabinet, health_message
from tests.web.helpers import audit_dump

# 1 85 05 78 006 084 + key 91 — a valid NIR (key = 97 − n mod 97).
INS = "185057800608491"


@pytest.fixture
async def cab(app: App) -> Cabinet:
    app.settings.deployment = "development"
    app.settings.sms_provider = "fichier"
    return await cabinet(app)


def paul(**changes: object) -> PatientData:
    values: dict[str, object] = {
        "last_name": "Durand",
        "first_name": "Paul",
        "birth_date": "14/07/1985",
        "email": PATIENT,
        "mobile": "06 12 34 56 78",
        "ins": INS,
    }
    values.update(changes)
    return PatientData(**values)  # type: ignore[arg-type]


async def add(app: App, cab: Cabinet, **changes: object) -> patients.Patient:
    return await patients.add_patient(
        app, cab.practice.id, paul(**changes), actor=DOCTOR, source="test"
    )


async def verified(app: App, cab: Cabinet, **changes: object) -> patients.Patient:
    patient = await add(app, cab, **changes)
    link = await patients.send_verification(
        app, cab.practice.id, patient.id, actor=DOCTOR, source="test"
    )
    confirmed = await patients.confirm_verification(app, link.rsplit("/", 1)[1], source="test")
    assert confirmed is not None
    return confirmed


def sms_sent(app: App) -> list[dict[str, str]]:
    path = outbox_path(app.settings)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_registry_validates_and_seals(app: App, cab: Cabinet) -> None:
    patient = await add(app, cab)
    assert patient.data.mobile == "+33612345678" and patient.data.birth_date == "1985-07-14"
    assert patient.address_status == "unverified"
    [listed] = await patients.list_patients(app, cab.practice.id, "durand")
    assert listed.data == patient.data
    assert await patients.list_patients(app, cab.practice.id, "martin") == []
    dump = await audit_dump(app)
    assert "Durand" not in dump and PATIENT not in dump  # audit: ids only
    for bad, message in [
        ({"ins": "185057800608490"}, "INS invalide"),
        ({"mobile": "01 23 45 67 89"}, "mobile"),
        ({"birth_date": "31/02/1985"}, "Date de naissance invalide"),
        ({"last_name": " "}, "obligatoire"),
        ({"delivery_mode": "fax"}, "Mode d'envoi"),
    ]:
        with pytest.raises(InvalidInput, match=message):
            await add(app, cab, email="autre@patient-mail.test", **bad)


async def test_one_address_one_patient_never_a_professional(app: App, cab: Cabinet) -> None:
    await add(app, cab)
    with pytest.raises(AlreadyExists, match="autre patient"):
        await add(app, cab, first_name="Marie")
    await address_books.add_contact(
        app, cab.practice.id, "pro", "Dr Confrère", "confrere@ailleurs.test", actor=DOCTOR,
        source="test",
    )  # fmt: skip
    with pytest.raises(AlreadyExists, match="professionnels"):
        await add(app, cab, email="confrere@ailleurs.test")
    with pytest.raises(InvalidInput, match="notre messagerie"):
        await add(app, cab, email=DOCTOR)
    assert await channels.classify(app, cab.practice.id, PATIENT) == "patient"


async def test_double_opt_in(app: App, cab: Cabinet) -> None:
    patient = await add(app, cab)
    link = await patients.send_verification(
        app, cab.practice.id, patient.id, actor=DOCTOR, source="test"
    )
    token = link.rsplit("/", 1)[1]
    assert link.startswith("https://mail.test.example/patient/verifier/")
    [entry] = await queue.list_queue(app)
    assert entry.address == PATIENT
    notice = BytesParser(policy=default).parsebytes(await queue.read_content(app, entry))
    assert "Cabinet Test" in str(notice["Subject"]) and link in notice.get_body().get_content()  # type: ignore[union-attr]
    assert (
        await patients.get_patient(app, cab.practice.id, patient.id)
    ).address_status == "pending"
    assert token not in await audit_dump(app)
    assert await patients.confirm_verification(app, "inconnu" * 4, source="test") is None
    confirmed = await patients.confirm_verification(app, token, source="test")
    assert confirmed is not None and confirmed.address_status == "verified"
    assert await patients.confirm_verification(app, token, source="test") is None  # single use
    # a new address starts over
    changed = await patients.update_patient(
        app, cab.practice.id, patient.id, paul(email="paul.d@patient-mail.test"), actor=DOCTOR,
        source="test",
    )  # fmt: skip
    assert changed.address_status == "unverified"


async def test_odd_verification_tokens_are_unknown_links(app: App, cab: Cabinet) -> None:
    """A verification token is looked up like every other token (one store helper): one that
    is not encodable text, empty or over-long is an unknown link (audited as denied), never
    an error."""
    patient = await add(app, cab)
    await patients.send_verification(app, cab.practice.id, patient.id, actor=DOCTOR, source="t")
    for odd in ("\ud800" * 8, "", "x" * 101):
        assert await patients.pending_verification(app, odd) is None
        assert await patients.confirm_verification(app, odd, source="test") is None
    assert (
        await patients.get_patient(app, cab.practice.id, patient.id)
    ).address_status == "pending"


async def submit_to(app: App, recipient: str, raw: bytes | None = None) -> None:
    envelope = Envelope(DOCTOR, (EnvelopeRecipient(recipient),))
    await submission.submit(
        app, DOCTOR, envelope, raw or health_message(), ClientInfo("127.0.0.1", login=DOCTOR)
    )


async def test_unverified_shared_and_conflicting_addresses_are_refused(
    app: App, cab: Cabinet
) -> None:
    patient = await add(app, cab)
    with pytest.raises(PolicyRejected, match=f"pas encore vérifiée.*/patients/{patient.id}"):
        await submit_to(app, PATIENT)
    with pytest.raises(PolicyRejected, match="pas encore vérifiée"):  # at RCPT too
        await submission.check_submission_recipient(app, PATIENT, {"cabinet.test"}, DOCTOR)
    shared = await add(app, cab, email="famille@patient-mail.test", shared_address=True)
    with pytest.raises(PolicyRejected, match="partagée ou familiale"):
        await submit_to(app, shared.data.email)
    with pytest.raises(InvalidInput, match="partagée"):
        await patients.send_verification(app, cab.practice.id, shared.id, actor=DOCTOR, source="t")
    assert await queue.list_queue(app) == []  # nothing left


async def test_verified_patient_gets_a_portal_notice_not_the_message(
    app: App, cab: Cabinet
) -> None:
    patient = await verified(app, cab)
    await submit_to(app, PATIENT)
    entries = [e for e in await queue.list_queue(app) if e.address == PATIENT]
    contents = [await queue.read_content(app, e) for e in entries]
    assert all(MARKER.encode() not in raw for raw in contents)  # no health content leaves
    [made] = await pickup.list_pickups(app, cab.mailbox.id)
    assert made.patient_id == patient.id


async def test_pdf_mode_sends_an_encrypted_pdf_and_the_password_by_sms(
    app: App, cab: Cabinet
) -> None:
    await verified(app, cab, delivery_mode="pdf")
    await submit_to(app, PATIENT)
    [entry] = [e for e in await queue.list_queue(app) if e.address == PATIENT][-1:]
    notice = BytesParser(policy=default).parsebytes(await queue.read_content(app, entry))
    [attachment] = list(notice.iter_attachments())  # type: ignore[attr-defined]
    data = attachment.get_payload(decode=True)
    assert MARKER.encode() not in data and MARKER not in notice.get_body().get_content()  # type: ignore[union-attr]
    [sms] = sms_sent(app)[-1:]
    password = sms["text"].rsplit(" ", 1)[1]
    with pytest.raises(pikepdf.PasswordError):
        pikepdf.open(__import__("io").BytesIO(data))
    with pikepdf.open(__import__("io").BytesIO(data), password=password) as pdf:
        assert len(pdf.pages) >= 1


async def test_patient_without_mobile_cannot_be_written_to(app: App, cab: Cabinet) -> None:
    await verified(app, cab, mobile="")
    with pytest.raises(PolicyRejected, match="mobile"):
        await submit_to(app, PATIENT)


def message_with(body: str, to: str = "confrere@ailleurs.test") -> bytes:
    return (
        f"From: {DOCTOR}\r\nTo: {to}\r\nSubject: Avis\r\nMessage-ID: <dlp-1@cabinet.test>\r\n\r\n"
        f"{body}\r\n"
    ).encode()


NIR_TEXT = f"Patient NIR {INS[:13]} {INS[13:]}, né le 14/07/1985."


async def test_sensitive_data_policy_warn_block_or_pickup(app: App, cab: Cabinet) -> None:
    from caducee.health import patient_settings
    from caducee.services import trace

    # avertir (default): the message leaves with a header naming kinds and counts only
    await submit_to(app, "confrere@ailleurs.test", message_with(NIR_TEXT))
    [entry] = await queue.list_queue(app)
    raw = await queue.read_content(app, entry)
    header = BytesParser(policy=default).parsebytes(raw)["X-Caducee-DLP"]
    assert header.startswith("avertissement;") and "nir=1" in header
    assert INS[:13] not in header
    steps = await trace.events(app, cab.mailbox.id, "<dlp-1@cabinet.test>")
    assert "sensitive" in [s.event for s in steps]
    # inside our own domains nothing is scanned
    await submit_to(app, DOCTOR, message_with(NIR_TEXT, DOCTOR))
    # bloquer: refused with the kinds found, never the values
    await patient_settings.save_settings(
        app, cab.practice.id, dlp_policy="bloquer", actor=DOCTOR, source="test"
    )
    with pytest.raises(PolicyRejected, match=r"(?i)nir") as refused:
        await submit_to(app, "confrere@ailleurs.test", message_with(NIR_TEXT))
    assert INS[:13] not in str(refused.value)
    # retrait: a patient in PDF mode gets the portal instead; a non-patient cannot
    await patient_settings.save_settings(
        app, cab.practice.id, dlp_policy="retrait", actor=DOCTOR, source="test"
    )
    await verified(app, cab, delivery_mode="pdf")
    await submit_to(app, PATIENT, message_with(NIR_TEXT, PATIENT))
    assert len(await pickup.list_pickups(app, cab.mailbox.id)) == 1
    assert sms_sent(app) == []  # no PDF password was sent
    with pytest.raises(PolicyRejected, match="portail"):
        await submit_to(app, "confrere@ailleurs.test", message_with(NIR_TEXT))
