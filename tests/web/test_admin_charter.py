"""The charter in the admin console: the default charter shown and previewed, saving (audited),
errors in French kept on the form, the preview without saving (the no-JavaScript path) and the
fragment the live preview fetches, a practitioner's own charter and going back, admins only,
accounts of the practice only, and CSRF."""

from __future__ import annotations

import html

from caducee.app import App
from caducee.health import charter
from tests.web.conftest import People, WebClient
from tests.web.helpers import assert_strict_page, audit_actions

FORM = {
    "types": ["resultats", "rendez-vous"],
    "delai": "3",
    "horaires_lundi": "08:30-12:00, 14:00-19:00",
    "horaires_mardi": "08:30-12:00",
    "horaires_mercredi": "",
    "horaires_jeudi": "08:30-12:00",
    "horaires_vendredi": "08:30-12:00",
    "horaires_samedi": "09:00-12:00",
    "horaires_dimanche": "",
    "fermetures": "04/08/2099 au 22/08/2099 Congés d'été",
    "region": "57",
    "urgences": "",
    "texte_libre": "Les certificats se demandent au secrétariat.",
}


def text(page: str) -> str:
    return html.unescape(page)


async def test_default_charter_then_save(web: WebClient, people: People, app: App) -> None:
    await web.login(people.admin_a.login)
    page = await web.get("/admin/charte")
    assert_strict_page(page)
    shown = text(page.text)
    assert "n'a pas encore enregistré sa charte" in shown
    assert "Réponse sous 2 jours ouvrés." in shown and "116 117" in shown
    assert 'value="09:00-12:00, 14:00-18:00"' in page.text
    assert '<script src="/static/charter-preview.js" defer>' in page.text
    saved = await web.post("/admin/charte", {**FORM, "action": "enregistrer"})
    assert saved.status_code == 303 and saved.headers["location"] == "/admin/charte"
    stored = await charter.charter_of(app, people.practice_a.id)
    assert stored.accepted == ("resultats", "rendez-vous") and stored.region == "57"
    assert stored.hours[5] != () and stored.closures[0].label == "Congés d'été"
    again = text((await web.get("/admin/charte")).text)
    assert "Réponse sous 3 jours ouvrés." in again and "Alsace-Moselle" in again
    assert "Modifications enregistrées." in again
    assert (people.admin_a.login, "charter.update", f"practice:{people.practice_a.id}", "ok") in (
        await audit_actions(app)
    )
    # the other practice still has the defaults
    assert (await charter.charter_of(app, people.practice_b.id)).delay_days == 2


async def test_errors_keep_the_form_and_preview_does_not_save(
    web: WebClient, people: People, app: App
) -> None:
    await web.login(people.admin_a.login)
    await web.get("/admin/charte")
    bad = await web.post("/admin/charte", {**FORM, "horaires_mardi": "12:00-09:00"})
    assert bad.status_code == 400
    assert "Horaires du mardi : la plage 12:00–09:00 finit avant de commencer." in text(bad.text)
    assert 'value="08:30-12:00, 14:00-19:00"' in bad.text  # what was typed stays
    none = await web.post("/admin/charte", {**FORM, "types": []})
    assert none.status_code == 400 and "au moins un type" in text(none.text)
    preview = await web.post("/admin/charte", {**FORM, "action": "apercu"})
    assert preview.status_code == 200
    assert "Réponse sous 3 jours ouvrés." in text(preview.text)
    assert not await charter.has_own_charter(app, people.practice_a.id, None)
    # the fragment the live preview fetches, with the CSRF header
    fragment = await web.http.post(
        "/admin/charte/apercu", data={**FORM, "delai": "1"}, headers={"x-csrf-token": web.csrf}
    )
    assert fragment.status_code == 200 and "<html" not in fragment.text
    assert "Réponse sous 1 jour ouvré." in text(fragment.text)
    assert "Ne sont pas traités par messagerie" in text(fragment.text)
    wrong = await web.http.post(
        "/admin/charte/apercu", data={**FORM, "urgences": "Appelez-nous."},
        headers={"x-csrf-token": web.csrf},
    )  # fmt: skip
    assert "doit citer le 15 et le 112" in text(wrong.text)
    forged = await web.http.post("/admin/charte/apercu", data=FORM)
    assert forged.status_code == 403
    assert (await web.post("/admin/charte", FORM, csrf="faux")).status_code == 403


async def test_practitioner_override_and_back(web: WebClient, people: People, app: App) -> None:
    await web.login(people.admin_a.login)
    doctor = people.doctor_a
    page = await web.get(f"/admin/charte?praticien={doctor.id}")
    assert "suit la charte du cabinet" in text(page.text)
    saved = await web.post("/admin/charte", {**FORM, "delai": "1", "praticien": str(doctor.id)})
    assert saved.headers["location"] == f"/admin/charte?praticien={doctor.id}"
    assert (await charter.charter_of(app, people.practice_a.id, doctor.id)).delay_days == 1
    assert (await charter.charter_of(app, people.practice_a.id)).delay_days == 2
    listing = text((await web.get("/admin/charte")).text)
    assert "charte propre" in listing
    back = await web.post("/admin/charte/supprimer", {"praticien": str(doctor.id)})
    assert back.status_code == 303
    assert not await charter.has_own_charter(app, people.practice_a.id, doctor.id)
    # another practice's account is the console's one 404
    other = await web.get(f"/admin/charte?praticien={people.doctor_b.id}")
    assert other.status_code == 404
    refused = await web.post("/admin/charte", {**FORM, "praticien": str(people.doctor_b.id)})
    assert refused.status_code == 404
    assert not await charter.has_own_charter(app, people.practice_b.id, people.doctor_b.id)


async def test_admins_only_and_english(web: WebClient, people: People) -> None:
    await web.login(people.doctor_a.login)
    assert (await web.get("/admin/charte")).status_code == 403
    web.http.cookies.clear()
    await web.login(people.admin_a.login)
    english = text((await web.get("/admin/charte?lang=en")).text)
    assert (
        "Response time, in working days" in english and "Answer within 2 working days." in english
    )
