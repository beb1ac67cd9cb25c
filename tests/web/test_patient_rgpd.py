"""A patient's rights (RGPD, issue 19): the practice's answer to an access request (a ZIP of the
registry entry, the pickups and their trace, the patient's replies through the portal) and the
erasure from the registry, from the patients pages and the CLI. After the erasure the patient
is found by no door (registry pages, API, CLI), nothing more can be left for them, the audit
chain verifies and names nobody. Both backends, real stores, web app and CLI processes."""

from __future__ import annotations

import asyncio
import email
import email.policy
import io
import json
import os
import subprocess
import sys
import time
import zipfile
from email.message import EmailMessage
from pathlib import Path

import pytest

from caducee.app import App
from caducee.domain.model import SpecialUse
from caducee.errors import PolicyRejected
from caducee.flows import portal_reply, submission
from caducee.health import patient_rgpd, patients, pickup, trust_list
from caducee.health.patients import PatientData
from caducee.health.pickup_store import contact
from caducee.services import api_tokens, audit, mailboxes, queue, webmail
from caducee.services.envelope import ClientInfo, Envelope, EnvelopeRecipient
from caducee.web.rgpd import export_dir
from tests.health.whitelists import operator_dn, whitelist_xml
from tests.serving import clean_env, prepare
from tests.web.conftest import People, WebClient
from tests.web.helpers import audit_dump

DOCTOR = "dr.martin@cabinet-a.test"
PATIENT = "paul.durand@patient-mail.test"
CLIENT = ClientInfo(ip="192.0.2.10", helo="poste", login=DOCTOR, protocol="ESMTPSA")


async def _verified_patient_with_a_pickup_and_a_reply(app: App, people: People) -> int:
    """Paul Durand, verified; the doctor sends him results (left on the portal), he replies."""
    await trust_list.import_whitelist(app, whitelist_xml([("cabinet-a.test", operator_dn(1))]))
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
            notes="Préfère être joint le matin",
        ),
        actor=DOCTOR,
        source="test",
    )
    link = await patients.send_verification(
        app, people.practice_a.id, patient.id, actor=DOCTOR, source="test"
    )
    assert await patients.confirm_verification(app, link.rsplit("/", 1)[1], source="test")
    await _send_results(app)
    (left,) = await pickup.list_pickups(app)
    await portal_reply.reply(app, left, "Merci docteur, bien reçu.", [], source="203.0.113.5")
    return patient.id


async def _send_results(app: App) -> None:
    message = EmailMessage(policy=email.policy.SMTP)
    message["From"] = DOCTOR
    message["To"] = PATIENT
    message["Subject"] = "Vos résultats"
    message["Message-ID"] = email.utils.make_msgid(domain="cabinet-a.test")
    message.set_content("Bonjour, votre HbA1c est à 9,1 %.")
    envelope = Envelope(DOCTOR, (EnvelopeRecipient(PATIENT),))
    await submission.check_submission_recipient(app, PATIENT, {"cabinet-a.test"}, DOCTOR)
    await submission.submit(app, DOCTOR, envelope, message.as_bytes(), CLIENT)
    for message_id in {entry.message_id for entry in await queue.list_queue(app)}:
        await queue.delete(app, message_id, actor="test", source="test")


def _read_export(data: bytes) -> tuple[dict[str, object], zipfile.ZipFile]:
    archive = zipfile.ZipFile(io.BytesIO(data))
    return json.loads(archive.read("patient.json")), archive


def _check_export(data: bytes) -> None:
    doc, archive = _read_export(data)
    patient = doc["patient"]
    assert isinstance(patient, dict)
    assert (patient["last_name"], patient["first_name"]) == ("Durand", "Paul")
    assert patient["birth_date"] == "1985-07-14" and patient["email"] == PATIENT
    assert patient["mobile"] == "+33612345678" and patient["address_status"] == "verified"
    assert patient["notes"] == "Préfère être joint le matin"
    (left,) = doc["pickups"]  # type: ignore[misc]
    assert left["sender"] == DOCTOR and left["state"] == "open"
    assert left["contact"] == {"email": PATIENT, "mobile": "+33612345678"}
    assert [e["event"] for e in left["events"]] == ["deposited", "replied"]
    left_message = archive.read(left["message_file"])
    assert b"HbA1c" in left_message
    (reply,) = doc["portal_replies"]  # type: ignore[misc]
    assert reply["mailbox"] == DOCTOR and reply["folder"] == "INBOX"
    replied = email.message_from_bytes(
        archive.read(reply["message_file"]), policy=email.policy.default
    )
    assert PATIENT in str(replied["From"]) and replied["X-Caducee-Portal"] == "reply"
    assert "Merci docteur" in replied.get_body().get_content()  # type: ignore[union-attr]
    summary = archive.read("resume.txt").decode()
    assert "DURAND Paul" in summary and "Dépôt n°" in summary
    assert "réponse du patient" in summary and "+33612345678" in summary


async def _inbox(app: App) -> list[bytes]:
    access = await mailboxes.open_mailbox(app, DOCTOR, DOCTOR)
    inbox = await webmail.special_folder(app, access, SpecialUse.INBOX)
    rows = await webmail.rows_by_uid(app, inbox, set(range(1, 50)))
    return [(await webmail.message(app, inbox, row.uid))[1] for row in rows]


async def _caducee(app: App, *args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "caducee", *args, "--data", str(app.settings.data_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        env=clean_env(),
        check=False,
    )


async def _assert_erased(app: App, web: WebClient, people: People, patient_id: int) -> None:
    """Found by no door; nothing more can be left for them; the audit verifies and names
    nobody; the doctor's copy of the reply stays (medical record)."""
    listed = await web.get("/patients?q=durand")
    assert listed.status_code == 200 and "DURAND" not in listed.text and PATIENT not in listed.text
    assert (await web.get(f"/patients/{patient_id}")).status_code == 404
    token, _ = await api_tokens.create_token(
        app, DOCTOR, "Logiciel", [DOCTOR], ["patients"], actor="t", source="t"
    )
    api = await web.http.get(
        f"/api/v1/patients/{patient_id}", headers={"authorization": f"Bearer {token}"}
    )
    assert api.status_code == 404
    searched = await web.http.get(
        "/api/v1/patients?q=durand", headers={"authorization": f"Bearer {token}"}
    )
    assert searched.json() == []
    practice = str(people.practice_a.id)
    cli_list = await _caducee(app, "patient", "list", "--practice", practice)
    assert cli_list.returncode == 0 and "DURAND" not in cli_list.stdout
    cli_show = await _caducee(app, "patient", "show", "--practice", practice, str(patient_id))
    assert cli_show.returncode != 0 and "introuvable" in cli_show.stderr
    # The pickup no longer names the patient and its content is gone from the portal.
    (left,) = await pickup.list_pickups(app)
    assert left.patient_id is None and left.state() == "revoked" and left.blob_id is None
    assert (await contact(app, left)).email == ""
    # A new message for them is refused (outside the trust space, no longer a patient).
    with pytest.raises(PolicyRejected):
        await submission.check_submission_recipient(app, PATIENT, {"cabinet-a.test"}, DOCTOR)
    assert await pickup.list_pickups(app) == [left]
    result = await audit.verify(app.db)
    assert result.ok, result.reason_fr
    dump = await audit_dump(app)
    assert "Durand" not in dump and "durand@patient" not in dump and "HbA1c" not in dump
    assert "patient.erase" in dump and "patient.export" in dump
    assert any(b"Merci docteur" in raw for raw in await _inbox(app))


async def test_export_then_erasure_from_the_patients_pages(
    app: App, web: WebClient, people: People
) -> None:
    patient_id = await _verified_patient_with_a_pickup_and_a_reply(app, people)
    prepare(app.settings, migrate=False)  # caducee.toml for the CLI processes
    # Another practice's administrator reaches nothing.
    await web.login(people.admin_b.login)
    assert (await web.post(f"/patients/{patient_id}/export")).status_code == 404
    assert (
        await web.post(f"/patients/{patient_id}/effacer", {"confirmation": "Durand"})
    ).status_code == 404
    web.http.cookies.clear()

    await web.login(people.secretary_a.login)  # the registry's rights: every account
    page = await web.get(f"/patients/{patient_id}")
    assert "Effacer ce patient" in page.text and "dossier médical" in page.text
    # An archive a broken download left two hours ago goes at the next export; a recent one
    # (a download under way) stays.
    exports = export_dir(app.settings.data_dir)
    (exports / "stale.zip").write_bytes(b"x")
    two_hours_ago = time.time() - 7200
    os.utime(exports / "stale.zip", (two_hours_ago, two_hours_ago))
    (exports / "sending.zip").write_bytes(b"x")
    exported = await web.post(f"/patients/{patient_id}/export")
    assert exported.status_code == 200, exported.text[:500]
    assert sorted(p.name for p in exports.iterdir()) == ["sending.zip"]
    assert exported.headers["content-type"] == "application/zip"
    assert exported.headers["content-disposition"].startswith("attachment;")
    _check_export(exported.content)

    refused = await web.post(f"/patients/{patient_id}/effacer", {"confirmation": "Dupont"})
    assert refused.status_code == 400 and "nom de famille du patient" in refused.text
    assert (await web.get(f"/patients/{patient_id}")).status_code == 200
    erased = await web.post(f"/patients/{patient_id}/effacer", {"confirmation": " durand "})
    assert erased.status_code == 303 and erased.headers["location"] == "/patients"
    await _assert_erased(app, web, people, patient_id)


async def test_export_then_erasure_from_the_cli(
    app: App, web: WebClient, people: People, tmp_path: Path
) -> None:
    patient_id = await _verified_patient_with_a_pickup_and_a_reply(app, people)
    prepare(app.settings, migrate=False)
    practice = str(people.practice_a.id)
    target = tmp_path / "durand.zip"
    done = await _caducee(
        app, "patient", "export", "--practice", practice, str(patient_id), "--to", str(target)
    )
    assert done.returncode == 0, done.stderr
    assert "1 dépôt(s), 1 réponse(s)" in done.stdout
    _check_export(target.read_bytes())
    other = await _caducee(
        app, "patient", "export", "--practice", str(people.practice_b.id), str(patient_id),
        "--to", str(tmp_path / "x.zip"),
    )  # fmt: skip
    assert other.returncode != 0 and "introuvable" in other.stderr
    wrong = await _caducee(
        app, "patient", "erase", "--practice", practice, str(patient_id), "--confirm", "Paul"
    )
    assert wrong.returncode != 0 and "nom de famille" in wrong.stderr
    erased = await _caducee(
        app, "patient", "erase", "--practice", practice, str(patient_id), "--confirm", "DURAND"
    )
    assert erased.returncode == 0, erased.stderr
    assert "1 dépôt(s) (1 retiré(s) du portail)" in erased.stdout
    patients.forget_senders(app)  # this process's cache of the registry's answers
    await web.login(DOCTOR)
    await _assert_erased(app, web, people, patient_id)


async def test_a_removed_patients_pickups_never_go_to_a_later_patient(
    app: App, people: People, tmp_path: Path
) -> None:
    removed = await _verified_patient_with_a_pickup_and_a_reply(app, people)
    await patients.delete_patient(app, people.practice_a.id, removed, actor=DOCTOR, source="test")
    later = await patients.add_patient(
        app,
        people.practice_a.id,
        PatientData(
            last_name="Petit", first_name="Léa", birth_date="01/01/2001",
            email="lea.petit@patient-mail.test",
        ),
        actor=DOCTOR,
        source="test",
    )  # fmt: skip
    done = await patient_rgpd.export_patient(
        app, people.practice_a.id, later.id, tmp_path / "petit.zip", actor=DOCTOR, source="t"
    )
    assert done.document["pickups"] == [] and done.document["portal_replies"] == []
