"""The patient registry pages (practice-scoped) and the patient's confirmation page (a POST
behind a button: opening the link confirms nothing)."""

from __future__ import annotations

import re
from typing import Any

from caducee.app import App
from caducee.health import patients
from caducee.services import queue
from tests.web.conftest import BASE_URL, People, WebClient
from tests.web.helpers import audit_actions

SECRETARY = "secretariat@cabinet-a.test"
FORM = {
    "nom": "Garnier",
    "prenom": "Lucie",
    "naissance": "02/03/1990",
    "adresse": "lucie.garnier@patient-mail.test",
    "mobile": "06 98 76 54 32",
    "mode": "retrait",
}


async def test_secretary_registers_and_sends_the_verification(
    app: App, web: WebClient, people: People
) -> None:
    await web.login(SECRETARY)
    listing = await web.get("/patients")
    assert listing.status_code == 200 and "Registre des patients" in listing.text
    bad = await web.post("/patients", {**FORM, "naissance": "30/02/1990"})
    assert bad.status_code == 400 and "Date de naissance invalide" in bad.text
    created = await web.post("/patients", FORM)
    assert created.status_code == 303
    page_url = created.headers["location"].split("?")[0]
    detail = await web.get(page_url)
    assert "GARNIER Lucie" in detail.text and "non vérifiée" in detail.text
    sent = await web.post(page_url + "/verification", {})
    assert sent.status_code == 303
    assert "Lien de vérification envoyé" in (await web.get(sent.headers["location"])).text
    assert "en attente" in (await web.get(page_url)).text
    assert "GARNIER" in (await web.get("/patients?q=garn")).text
    assert "GARNIER" not in (await web.get("/patients?q=zzz")).text
    [entry] = await queue.list_queue(app)
    assert entry.address == FORM["adresse"]


async def test_another_practice_sees_nothing(app: App, web: WebClient, people: People) -> None:
    patient = await patients.add_patient(
        app,
        people.practice_a.id,
        patients.PatientData("Garnier", "Lucie", "1990-03-02", FORM["adresse"]),
        actor="t",
        source="t",
    )
    await web.login("dr.durand@cabinet-b.test")
    assert "Garnier" not in (await web.get("/patients")).text.replace("GARNIER", "Garnier")
    base = f"/patients/{patient.id}"
    assert (await web.get(base)).status_code == 404
    assert (await web.post(base, FORM)).status_code == 404
    assert (await web.post(base + "/verification", {})).status_code == 404
    assert (await web.post(base + "/supprimer", {})).status_code == 404
    assert await patients.get_patient(app, people.practice_a.id, patient.id)  # still there


async def test_patient_confirms_with_the_button_only(
    app: App, web: WebClient, people: People
) -> None:
    patient = await patients.add_patient(
        app,
        people.practice_a.id,
        patients.PatientData("Garnier", "Lucie", "1990-03-02", FORM["adresse"]),
        actor="t",
        source="t",
    )
    link = await patients.send_verification(
        app, people.practice_a.id, patient.id, actor="t", source="t"
    )
    path = link.removeprefix(BASE_URL)
    landing = await web.get(path)  # what a mail scanner does: nothing changes
    assert landing.status_code == 200 and "Cabinet A" in landing.text
    # The practice's rules come with the question: the whole charter, not only the short line.
    assert "Délai de réponse" in landing.text and "ouverture" in landing.text
    assert "Ce que le cabinet traite par messagerie" in landing.text
    assert (await patients.get_patient(app, people.practice_a.id, patient.id)).address_status == (
        "pending"
    )
    csrf = re.search(r'name="csrf" value="([^"]+)"', landing.text)
    assert csrf is not None
    refused = await web.post(path, {"csrf": "faux"})
    assert refused.status_code == 403
    done = await web.post(path, {"csrf": csrf.group(1)})
    assert done.status_code == 200 and "Adresse confirmée" in done.text
    assert (await patients.get_patient(app, people.practice_a.id, patient.id)).address_status == (
        "verified"
    )
    again = await web.get(path)
    assert again.status_code == 404 and "Lien inconnu ou expiré" in again.text
    assert (await web.get("/patient/verifier/" + "x" * 32)).status_code == 404


async def test_admin_sets_the_patient_channel(
    app: App, web: WebClient, people: People, new_client: Any
) -> None:
    from caducee.health import patient_settings
    from caducee.health.dlp import DlpPolicy

    await web.login("admin@cabinet-a.test")
    page_ = await web.get("/admin/cabinet")
    assert "Échanges avec les patients" in page_.text
    saved = await web.post(
        "/admin/cabinet/patients",
        {"politique": "bloquer", "termes": "Lyme\nmucoviscidose", "boite_patients": SECRETARY},
    )
    assert saved.status_code == 303, saved.text
    assert saved.headers["location"].startswith("/admin/cabinet"), saved.headers["location"]
    current = await patient_settings.settings_of(app, people.practice_a.id)
    assert current.dlp_policy is DlpPolicy.BLOQUER and current.dlp_terms == (
        "Lyme",
        "mucoviscidose",
    )
    assert await patients.practice_sender(app, people.practice_a.id) == SECRETARY
    other_practice = await web.post(
        "/admin/cabinet/patients",
        {"politique": "avertir", "boite_patients": "admin@cabinet-b.test"},
    )
    assert other_practice.status_code == 400 and "boîte du cabinet" in other_practice.text
    assert (await patient_settings.settings_of(app, people.practice_a.id)).dlp_policy is (
        DlpPolicy.BLOQUER
    )
    async with new_client() as http:
        secretary = WebClient(http)
        await secretary.login(SECRETARY)  # not an administrator
        await secretary.get("/patients")
        refused = await secretary.post("/admin/cabinet/patients", {"politique": "avertir"})
    assert refused.status_code == 403
    assert [a for a in await audit_actions(app) if a[1] == "practice.patient_settings"] == [
        (
            "admin@cabinet-a.test",
            "practice.patient_settings",
            f"practice:{people.practice_a.id}",
            "ok",
        )
    ]
    assert (await patient_settings.settings_of(app, people.practice_a.id)).dlp_policy is (
        DlpPolicy.BLOQUER
    )


async def test_webmail_shows_sensitive_data_before_it_leaves(
    app: App, web: WebClient, people: People
) -> None:
    from caducee.services import mailboxes

    box = await mailboxes.get_mailbox(app, "dr.martin@cabinet-a.test")
    base = f"/courrier/b/{box.id}"
    await web.login("dr.martin@cabinet-a.test")
    await web.get(base + "/ecrire")
    fields = {
        "a": "confrere@ailleurs.test",
        "objet": "Avis",
        "corps": "Patient NIR 1850578006084 91, suivi pour dépression.",
    }
    first = await web.post(base + "/envoyer", fields)
    assert first.status_code == 409 and "Données sensibles dans ce message" in first.text
    warning = first.text.split('id="donnees-sensibles"', 1)[1].split("</section>", 1)[0]
    assert "1850578006084" not in warning and "18505******** 91" in warning  # masked
    assert "dépression" in first.text.split("<textarea", 1)[1]  # kept for editing
    assert await queue.list_queue(app) == []  # nothing left yet
    internal = await web.post(base + "/envoyer", {**fields, "a": SECRETARY})
    assert internal.status_code == 303  # inside the practice: nothing to warn about
    confirmed = await web.post(base + "/envoyer", {**fields, "confirmer": "oui"})
    assert confirmed.status_code == 303
    [entry] = await queue.list_queue(app)
    raw = await queue.read_content(app, entry)
    assert b"X-Caducee-DLP: avertissement;" in raw


async def test_csv_import_from_the_page(app: App, web: WebClient, people: People) -> None:
    await web.login(SECRETARY)
    await web.get("/patients")
    csv_text = (
        "nom,prenom,naissance,email,mobile\r\n"
        "Garnier,Lucie,02/03/1990,lucie.garnier@patient-mail.test,06 98 76 54 32\r\n"
        "Roux,Marie,31/02/1990,marie.roux@patient-mail.test,\r\n"
    )
    response = await web.http.post(
        "/patients/import",
        data={"csrf": web.csrf},
        files={"fichier": ("patients.csv", csv_text.encode(), "text/csv")},
    )
    assert response.status_code == 200
    assert "1 patient(s) importé(s), 1 ligne(s) rejetée(s)" in response.text
    assert "Date de naissance invalide" in response.text
    [patient] = await patients.list_patients(app, people.practice_a.id)
    assert patient.data.last_name == "Garnier"
