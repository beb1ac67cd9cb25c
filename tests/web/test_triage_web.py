"""The triage in the web (issue 16), both backends: the admin page saves renamed, disabled and
added types and the alert; the webmail shows each message's type as a label (the practice's
wording) in the list and the message view, and the unseen « Urgent ? » messages above the Inbox,
back in their place once read."""

from __future__ import annotations

import html
import re

from caducee.app import App
from caducee.domain.triage_settings import TriageSettings, from_dict
from caducee.health import patient_triage
from caducee.services.delivery import deliver_local
from tests.web.conftest import People, WebClient
from tests.web.helpers import assert_strict_page, audit_actions

DOCTOR = "dr.martin@cabinet-a.test"


def mail(subject: str, n: int) -> bytes:
    return (
        f"From: Patient {n} <patient{n}@ailleurs.test>\r\nTo: {DOCTOR}\r\n"
        f"Subject: {subject}\r\nMessage-ID: <t{n}@ailleurs.test>\r\n"
        f"Date: Mon, 1 Dec 2025 0{n}:00:00 +0000\r\n\r\nTexte {n}.\r\n"
    ).encode()


async def _inbox_url(web: WebClient) -> str:
    first = await web.get("/courrier")
    box = await web.get(first.headers["location"])
    return str(box.headers["location"])


def subjects(page: str) -> list[str]:
    return re.findall(r"/m/\d+\">([^<]+)</a>", page)


async def test_labels_and_urgent_first(app: App, web: WebClient, people: People) -> None:
    renamed = from_dict({"types": [{"id": "renouvellement", "label_fr": "Ordonnances à refaire"}]})
    await patient_triage.save(app, people.practice_a.id, renamed, actor="admin", source="test")
    urgent = ("$Caducee-HorsChamp", "$Caducee-Urgent")
    # The urgent message is the oldest: it would be last by date.
    await deliver_local(app, mail("Douleur thoracique", 1), [DOCTOR], keywords={DOCTOR: urgent})
    await deliver_local(app, mail("Confrere", 2), [DOCTOR])
    await deliver_local(
        app, mail("Mon traitement", 3), [DOCTOR], keywords={DOCTOR: ("$Caducee-Renouvellement",)}
    )
    await web.login(DOCTOR)
    inbox = await _inbox_url(web)
    page = await web.get(inbox)
    assert_strict_page(page)
    text = html.unescape(page.text)
    assert subjects(page.text) == ["Douleur thoracique", "Mon traitement", "Confrere"]
    assert "à lire en premier" in text
    assert text.count(">Urgent ?</span>") == 1
    assert ">Ordonnances à refaire</span>" in text
    assert ">Hors du champ" not in text and "Hors champ (consultation nécessaire)</span>" in text
    # The message view shows its labels too; once read, it is back in its place by date.
    uid = re.search(r"/m/(\d+)\">Douleur thoracique", page.text)
    assert uid is not None
    view = await web.get(f"{inbox}/m/{uid.group(1)}".replace("//m", "/m"))
    assert view.status_code == 200, view.status_code
    shown = html.unescape(view.text)
    assert ">Urgent ?</span>" in shown and "Hors champ (consultation nécessaire)</span>" in shown
    again = await web.get(inbox)
    assert subjects(again.text) == ["Mon traitement", "Confrere", "Douleur thoracique"]
    assert "à lire en premier" not in html.unescape(again.text)
    assert ">Urgent ?</span>" in html.unescape(again.text)  # the label stays
    # English labels come from the practice's English wording.
    english = await web.get(inbox, headers={"accept-language": "en"})
    assert "Out of scope</span>" in html.unescape(english.text)
    assert ">Prescription renewal</span>" in html.unescape(english.text)


async def test_admin_saves_types_and_alert(app: App, web: WebClient, people: People) -> None:
    await web.login(people.admin_a.login)
    page = await web.get("/admin/tri")
    assert_strict_page(page)
    assert "$Caducee-RendezVous" in page.text and 'name="libelle_conseil"' in page.text
    form = {
        "actifs": ["resultats", "renouvellement", "rendez-vous", "administratif", "hors-champ"],
        "libelle_renouvellement": "Ordonnances",
        "libelle_en_renouvellement": "Prescriptions",
        "mots_renouvellement": "traitement habituel, pilule",
        "nouveau_libelle": "Certificat de sport",
        "nouveau_mots": "licence, club",
        "defaut": "hors-champ",
        "alerte_courriel": "secretariat@cabinet-a.test",
        "alerte_sms": "06 11 22 33 44",
    }
    saved = await web.post("/admin/tri", form)
    assert saved.status_code == 303 and saved.headers["location"] == "/admin/tri"
    stored = await patient_triage.settings_of(app, people.practice_a.id)
    by_id = {t.id: t for t in stored.rules.types}
    assert not by_id["conseil"].enabled and by_id["renouvellement"].label_fr == "Ordonnances"
    assert by_id["renouvellement"].keywords == ("traitement habituel", "pilule")
    assert by_id["certificat-de-sport"].keywords == ("licence", "club")
    assert stored.alert_mobile == "+33611223344"
    assert stored.alert_email == "secretariat@cabinet-a.test"
    shown = await web.get("/admin/tri")
    assert "$Caducee-CertificatDeSport" in shown.text and "Modifications enregistrées" in shown.text
    assert (people.admin_a.login, "triage.update", f"practice:{people.practice_a.id}", "ok") in (
        await audit_actions(app)
    )
    # The added type can be removed; the out-of-scope type stays enabled whatever is posted.
    removed = await web.post(
        "/admin/tri", {**form, "nouveau_libelle": "", "supprimer": ["certificat-de-sport"]}
    )
    assert removed.status_code == 303
    after = await patient_triage.settings_of(app, people.practice_a.id)
    assert "certificat-de-sport" not in {t.id for t in after.rules.types}
    # Errors are shown in French, nothing saved.
    bad = await web.post(
        "/admin/tri", {**form, "nouveau_libelle": "", "alerte_sms": "01 23 45 67 89"}
    )
    assert bad.status_code == 400 and "mobile" in html.unescape(bad.text)
    clash = await web.post("/admin/tri", {**form, "nouveau_libelle": "Urgent"})
    assert clash.status_code == 400 and "se confond" in html.unescape(clash.text)
    assert await patient_triage.settings_of(app, people.practice_a.id) == after
    # The other practice keeps the defaults.
    assert await patient_triage.settings_of(app, people.practice_b.id) == TriageSettings()
