"""Authorization matrix of the admin console: every admin route refuses the anonymous, the
expired and the revoked session, a non-admin, and an admin of another practice (for objects of
practice A, whatever id is put in the URL or the form)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from starlette.routing import Route

from caducee.app import App
from caducee.domain.model import MailboxType
from caducee.health import charter, patient_triage, trust_list
from caducee.services import (
    accounts,
    app_passwords,
    inactivity,
    mailboxes,
    mfa,
    queue,
    web_sessions,
)
from caducee.web import admin
from tests.web.conftest import Clock, People, WebClient
from tests.web.helpers import audit_actions

TLT_A = "tlt@cabinet-a.test"


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    form: dict[str, str]


async def admin_calls(app: App, people: People) -> list[Call]:
    """One call per admin route, aimed at practice A's objects."""
    box = await mailboxes.get_mailbox(app, people.doctor_a.login)
    await app_passwords.create_app_password(app, people.doctor_a.login, "Téléphone")
    item = (await app_passwords.list_app_passwords(app, people.doctor_a.login))[0]
    tlt = await mailboxes.add_mailbox(app, TLT_A, MailboxType.TLT, people.doctor_a.login)
    await app_passwords.create_app_password(app, TLT_A, "Facturation")
    tlt_item = (await app_passwords.list_app_passwords(app, TLT_A))[0]
    await mailboxes.delegate(app, box.address, people.secretary_a.login, can_send=False)
    queued = await queue.enqueue(
        app,
        b"From: dr.martin@cabinet-a.test\r\nSubject: x\r\n\r\nx\r\n",
        people.doctor_a.login,
        [queue.QueueRecipient("confrere@ailleurs.test")],
    )
    a = people.doctor_a.id
    calls = [
        Call("GET", "/admin", {}),
        Call("GET", "/admin/cabinet", {}),
        Call("POST", "/admin/cabinet", {"nom": "Piraté", "finess": "", "siret": ""}),
        Call("POST", "/admin/cabinet/second-facteur", {"exiger": "oui"}),
        Call("POST", "/admin/cabinet/patients", {"politique": "avertir"}),
        Call("GET", f"/admin/charte?praticien={a}", {}),
        Call("POST", "/admin/charte", {**CHARTER_FORM, "praticien": str(a)}),
        Call("POST", "/admin/charte/apercu", CHARTER_FORM),
        Call("POST", "/admin/charte/supprimer", {"praticien": str(a)}),
        Call("GET", "/admin/tri", {}),
        Call("POST", "/admin/tri", TRIAGE_FORM),
        Call("GET", "/admin/comptes", {}),
        Call("GET", "/admin/comptes/nouveau", {}),
        Call(
            "POST",
            "/admin/comptes/nouveau",
            {"identifiant": "intrus", "domaine": "cabinet-a.test", "nom": "X", "role": "admin"},
        ),
        Call("GET", f"/admin/comptes/{a}", {}),
        Call("POST", f"/admin/comptes/{a}/desactiver", {}),
        Call("POST", f"/admin/comptes/{a}/activer", {}),
        Call("POST", f"/admin/comptes/{a}/mot-de-passe", {}),
        Call("POST", f"/admin/comptes/{a}/second-facteur", {}),
        Call("POST", f"/admin/comptes/{a}/applications/{item.id}/revoquer", {}),
        Call("GET", "/admin/boites", {}),
        Call(
            "POST",
            "/admin/boites",
            {
                "identifiant": "intrus",
                "domaine": "cabinet-a.test",
                "type": "ORG",
                "titulaire": str(a),
            },
        ),
        Call("POST", f"/admin/boites/{box.id}/quota", {"quota_mo": "1"}),
        Call("GET", f"/admin/boites/{box.id}", {}),
        Call("POST", f"/admin/boites/{box.id}/desactiver", {}),
        Call("POST", f"/admin/boites/{box.id}/activer", {}),
        Call("POST", f"/admin/boites/{box.id}/exemption", {"motif": "Intrus"}),
        Call("POST", f"/admin/boites/{box.id}/exemption/retirer", {}),
        Call("POST", f"/admin/boites/{box.id}/supprimer", {"confirmer": box.address}),
        Call("POST", f"/admin/comptes/{a}/supprimer", {"confirmer": people.doctor_a.login}),
        Call("GET", f"/admin/boites/{tlt.id}/applications", {}),
        Call(
            "POST",
            f"/admin/boites/{tlt.id}/applications",
            {"libelle": "Intrus", "protocoles": "pop3"},
        ),
        Call("POST", f"/admin/boites/{tlt.id}/applications/{tlt_item.id}/revoquer", {}),
        Call("GET", "/admin/delegations", {}),
        Call(
            "POST",
            "/admin/delegations",
            {"boite": str(box.id), "compte": str(people.secretary_a.id), "droit": "envoi"},
        ),
        Call(
            "POST",
            "/admin/delegations/revoquer",
            {"boite": str(box.id), "compte": str(people.secretary_a.id)},
        ),
        Call("GET", "/admin/journal", {}),
        Call("GET", "/admin/journal.csv", {}),
        Call("GET", "/admin/file", {}),
        Call("POST", f"/admin/file/{queued}/relancer", {}),
        Call("POST", f"/admin/file/{queued}/supprimer", {"avis": "oui"}),
        Call("GET", "/admin/liste-blanche", {}),
        Call("POST", "/admin/liste-blanche", TRUST_FORM),
    ]
    return calls


TRUST_FORM = {"adresse": "https://listes.example/liste.xml", "empreinte": "0" * 64}
TRIAGE_FORM = {"actifs": "hors-champ", "alerte_sms": "06 11 22 33 44", "defaut": "hors-champ"}
CHARTER_FORM = {"types": "resultats", "delai": "1", "horaires_lundi": "09:00-10:00"}


def test_every_admin_route_is_in_the_matrix() -> None:
    declared = {
        (method, route.path)
        for route in admin.routes
        if isinstance(route, Route)
        for method in (route.methods or ())
        if method != "HEAD"
    }
    covered = {
        ("GET", "/admin"), ("GET", "/admin/cabinet"), ("POST", "/admin/cabinet"),
        ("POST", "/admin/cabinet/second-facteur"), ("GET", "/admin/comptes"),
        ("POST", "/admin/cabinet/patients"),
        ("GET", "/admin/charte"), ("POST", "/admin/charte"), ("POST", "/admin/charte/apercu"),
        ("POST", "/admin/charte/supprimer"), ("GET", "/admin/tri"), ("POST", "/admin/tri"),
        ("GET", "/admin/comptes/nouveau"), ("POST", "/admin/comptes/nouveau"),
        ("GET", "/admin/comptes/{account_id}"), ("POST", "/admin/comptes/{account_id}/desactiver"),
        ("POST", "/admin/comptes/{account_id}/activer"),
        ("POST", "/admin/comptes/{account_id}/mot-de-passe"),
        ("POST", "/admin/comptes/{account_id}/second-facteur"),
        ("POST", "/admin/comptes/{account_id}/applications/{item_id}/revoquer"),
        ("POST", "/admin/comptes/{account_id}/supprimer"),
        ("GET", "/admin/boites"), ("POST", "/admin/boites"),
        ("GET", "/admin/boites/{mailbox_id}"), ("POST", "/admin/boites/{mailbox_id}/desactiver"),
        ("POST", "/admin/boites/{mailbox_id}/activer"),
        ("POST", "/admin/boites/{mailbox_id}/supprimer"),
        ("POST", "/admin/boites/{mailbox_id}/exemption"),
        ("POST", "/admin/boites/{mailbox_id}/exemption/retirer"),
        ("POST", "/admin/boites/{mailbox_id}/quota"), ("GET", "/admin/delegations"),
        ("GET", "/admin/boites/{mailbox_id}/applications"),
        ("POST", "/admin/boites/{mailbox_id}/applications"),
        ("POST", "/admin/boites/{mailbox_id}/applications/{item_id}/revoquer"),
        ("POST", "/admin/delegations"), ("POST", "/admin/delegations/revoquer"),
        ("GET", "/admin/journal"), ("GET", "/admin/journal.csv"), ("GET", "/admin/file"),
        ("POST", "/admin/file/{queue_id}/relancer"), ("POST", "/admin/file/{queue_id}/supprimer"),
        ("GET", "/admin/liste-blanche"), ("POST", "/admin/liste-blanche"),
    }  # fmt: skip
    assert declared == covered


async def state_of_a(app: App, people: People) -> Any:
    """Everything the calls could change in practice A."""
    practice = await web_sessions.practice_of(app, people.doctor_a)
    return (
        practice,
        await mfa.second_factor_required(app, practice.id),
        await accounts.list_accounts(app, practice.id),
        await mailboxes.list_mailboxes(app, practice.id),
        await mailboxes.list_delegations(app),
        await app_passwords.list_app_passwords(app, people.doctor_a.login),
        await app_passwords.list_app_passwords(app, TLT_A),
        [(e.address, e.state) for e in await queue.list_queue(app, include_finished=True)],
        await charter.charter_of(app, practice.id),
        await charter.charter_of(app, practice.id, people.doctor_a.id),
        await charter.overriding_accounts(app, practice.id),
        await patient_triage.settings_of(app, practice.id),
        (await trust_list.status(app)).info,
        [(e.address, e.exempt_reason) for e in (await inactivity.report(app)).exempted],
    )


async def run(client: WebClient, call: Call) -> Any:
    if call.method == "GET":
        return await client.http.get(call.path)
    return await client.post(call.path, call.form)


async def test_anonymous(web: WebClient, people: People, app: App) -> None:
    calls = await admin_calls(app, people)
    before = await state_of_a(app, people)
    for call in calls:
        response = await run(web, call)
        assert response.status_code == 303, call
        assert response.headers["location"].startswith("/connexion"), call
    assert await state_of_a(app, people) == before


@pytest.mark.parametrize("who", ["doctor_a", "secretary_a"])
async def test_non_admin_of_the_practice(
    web: WebClient, people: People, app: App, who: str
) -> None:
    calls = await admin_calls(app, people)
    await web.login(getattr(people, who).login)
    await web.get("/accueil")
    assert "/admin" not in (await web.get("/accueil")).text.split("<main")[1]
    before = await state_of_a(app, people)
    for call in calls:
        response = await run(web, call)
        assert response.status_code == 403, (call, response.status_code)
        await web.get("/accueil")  # keep a fresh CSRF token
    assert await state_of_a(app, people) == before


async def test_admin_of_another_practice(web: WebClient, people: People, app: App) -> None:
    calls = await admin_calls(app, people)
    await web.login(people.admin_b.login)
    before = await state_of_a(app, people)
    for call in calls:
        await web.get("/accueil")
        response = await run(web, call)
        if (
            "{" not in call.path
            and call.path
            in (
                "/admin",
                "/admin/cabinet",
                "/admin/comptes",
                "/admin/comptes/nouveau",
                "/admin/boites",
                "/admin/delegations",
                "/admin/journal",
                "/admin/journal.csv",
                "/admin/file",
                "/admin/tri",
                "/admin/liste-blanche",
            )
            and call.method == "GET"
        ):
            # Pages of their own practice: nothing of practice A shows.
            assert response.status_code in (200, 303), call
            assert "cabinet-a.test" not in response.text, call
            assert "Cabinet A" not in response.text, call
        elif call.path == "/admin/charte/apercu":
            # A preview of the form sent, nothing read or changed.
            assert response.status_code == 200, call
            assert "Cabinet A" not in response.text, call
        elif call.path == "/admin/liste-blanche":
            # The node's list, shared by several practices: the operator's, refused (audited).
            assert response.status_code == 403, call
        elif call.path in (
            "/admin/cabinet",
            "/admin/cabinet/second-facteur",
            "/admin/cabinet/patients",
            "/admin/tri",
        ):
            # Changes their own practice (B), never A.
            assert response.status_code in (303, 400), call
        else:
            assert response.status_code == 404, (call, response.status_code)
    assert await state_of_a(app, people) == before
    assert not await mfa.second_factor_required(app, people.practice_a.id)


async def test_ids_of_another_practice_in_forms(web: WebClient, people: People, app: App) -> None:
    """Admin A may not pull practice B's objects into A's forms either."""
    box_b = await mailboxes.get_mailbox(app, people.doctor_b.login)
    box_a = await mailboxes.get_mailbox(app, people.doctor_a.login)
    tlt_b = await mailboxes.add_mailbox(
        app, "tlt@cabinet-b.test", MailboxType.TLT, people.doctor_b.login
    )
    await web.login(people.admin_a.login)
    attempts = [
        # B's mailbox login, and A's personal mailbox (its login is the account's: no page).
        (f"/admin/boites/{tlt_b.id}/applications", {"libelle": "x", "protocoles": "pop3"}),
        (f"/admin/boites/{box_a.id}/applications", {"libelle": "x", "protocoles": "pop3"}),
        ("/admin/delegations", {"boite": str(box_b.id), "compte": str(people.secretary_a.id)}),
        ("/admin/delegations", {"boite": str(box_a.id), "compte": str(people.doctor_b.id)}),
        (
            "/admin/boites",
            {"identifiant": "x", "domaine": "cabinet-a.test", "type": "ORG",
             "titulaire": str(people.doctor_b.id)},
        ),
        (
            "/admin/boites",
            {"identifiant": "x", "domaine": "cabinet-b.test", "type": "ORG",
             "titulaire": str(people.doctor_a.id)},
        ),
        (f"/admin/boites/{box_b.id}/quota", {"quota_mo": "1"}),
        (f"/admin/comptes/{people.doctor_b.id}/desactiver", {}),
        ("/admin/comptes/abc/desactiver", {}),
        ("/admin/comptes/0/desactiver", {}),
        ("/admin/comptes/-1/desactiver", {}),
    ]  # fmt: skip
    for path, form in attempts:
        await web.get("/admin/boites")
        response = await web.post(path, form)
        assert response.status_code == 404, (path, form, response.status_code)
    assert not (await accounts.get_account(app, people.doctor_b.login)).disabled
    assert await mailboxes.list_delegations(app) == []
    assert (await mailboxes.get_mailbox(app, box_b.address)).quota_bytes != 1024 * 1024
    assert await app_passwords.list_app_passwords(app, tlt_b.address) == []
    assert await app_passwords.list_app_passwords(app, box_a.address) == []


async def test_expired_session(web: WebClient, people: People, app: App, clock: Clock) -> None:
    calls = await admin_calls(app, people)
    await web.login(people.admin_a.login)
    clock.advance(minutes=31)
    before = await state_of_a(app, people)
    for call in calls:
        response = await run(web, call)
        assert response.status_code == 303, call
        assert response.headers["location"].startswith("/connexion"), call
    assert await state_of_a(app, people) == before


async def test_revoked_session(web: WebClient, people: People, app: App) -> None:
    calls = await admin_calls(app, people)
    await web.login(people.admin_a.login)
    await web.get("/admin/comptes")
    await web_sessions.end_all_sessions(app, people.admin_a, actor="test", source="test")
    before = await state_of_a(app, people)
    for call in calls:
        response = await run(web, call)
        assert response.status_code == 303, call
        assert response.headers["location"].startswith("/connexion"), call
    assert await state_of_a(app, people) == before
    assert ("test", "web.logout_all", people.admin_a.login, "ok") in await audit_actions(app)


async def test_half_logged_in_session(
    web: WebClient, people: People, app: App, clock: Clock
) -> None:
    """Password right, second factor not given yet: the admin console stays closed."""
    from tests.web.helpers import enrol_totp

    await web.login(people.admin_a.login)
    await enrol_totp(web, clock)
    await web.get("/compte")
    await web.post("/deconnexion")
    calls = await admin_calls(app, people)
    await web.login(people.admin_a.login)
    before = await state_of_a(app, people)
    for call in calls:
        await web.get("/connexion/verification")
        response = await run(web, call)
        assert response.status_code == 303, call
        assert response.headers["location"] == "/connexion/verification", call
    assert await state_of_a(app, people) == before


async def test_apple_profile_only_for_the_logged_in_account(
    web: WebClient, people: People, app: App, clock: Clock
) -> None:
    """``/compte/applications/apple.mobileconfig``: no session, or a second factor still owed,
    gets the login; a full session gets a profile naming its own address alone."""
    from tests.web.helpers import enrol_totp

    path = "/compte/applications/apple.mobileconfig"
    anonymous = await web.http.get(path)
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/connexion")
    await web.login(people.doctor_a.login)
    await enrol_totp(web, clock)
    own = await web.http.get(path)
    assert own.status_code == 200
    assert people.doctor_a.login.encode() in own.content
    assert people.doctor_b.login.encode() not in own.content
    await web.post("/deconnexion")
    await web.login(people.doctor_a.login)
    half = await web.http.get(path)
    assert half.status_code == 303 and half.headers["location"] == "/connexion/verification"


async def test_metrics_and_readiness_are_for_the_allowed_networks_or_the_token(
    web: WebClient, people: People, app: App, tmp_path: Any
) -> None:
    """``/metrics`` and ``/readyz`` open to the ``[metrics] allow`` networks or the token, not
    to a web session (an administrator's included); ``/healthz`` to everyone."""
    assert (await web.get("/metrics")).status_code == 200  # the test client is 127.0.0.1
    app.settings.metrics_allow = ["192.0.2.0/24"]
    await web.login(people.admin_a.login)
    for path in ("/metrics", "/readyz"):
        assert (await web.get(path)).status_code == 403, path
    assert (await web.get("/healthz")).status_code == 200
    token = tmp_path / "metrics.token"
    token.write_text("un-jeton-de-supervision\n")
    app.settings.metrics_token_file = str(token)
    bearer = {"Authorization": "Bearer un-jeton-de-supervision"}
    assert (await web.get("/metrics", headers=bearer)).status_code == 200
    assert (await web.get("/readyz", headers=bearer)).status_code in (200, 503)
    wrong = {"Authorization": "Bearer un-jeton-de-supervisioN"}
    assert (await web.get("/metrics", headers=wrong)).status_code == 403
    token.write_text("")  # an empty token file opens nothing
    assert (await web.get("/metrics", headers={"Authorization": "Bearer "})).status_code == 403


# --- RGPD routes (issue 19): every account of the practice, never another practice ------------


async def rgpd_calls(app: App, people: People) -> list[Call]:
    """One call per RGPD route, aimed at practice A's doctor and a patient of practice A."""
    from caducee.health import patients
    from caducee.health.patients import PatientData

    patient = await patients.add_patient(
        app,
        people.practice_a.id,
        PatientData(
            last_name="Durand", first_name="Paul", birth_date="14/07/1985",
            email="paul.durand@patient-mail.test",
        ),
        actor="t",
        source="t",
    )  # fmt: skip
    return [
        Call("GET", "/compte/donnees", {}),
        Call("POST", "/compte/donnees/export", {"boite": people.doctor_a.login}),
        Call("POST", f"/patients/{patient.id}/export", {}),
        Call("POST", f"/patients/{patient.id}/effacer", {"confirmation": "Durand"}),
    ]


async def _patients_of_a(app: App, people: People) -> list[int]:
    from caducee.health import patients

    return [p.id for p in await patients.list_patients(app, people.practice_a.id)]


async def test_rgpd_routes_refuse_the_anonymous_and_another_practice(
    web: WebClient, people: People, app: App
) -> None:
    calls = await rgpd_calls(app, people)
    before = await _patients_of_a(app, people)
    for call in calls:
        response = await run(web, call)
        assert response.status_code == 303, call
        assert response.headers["location"].startswith("/connexion"), call
    await web.login(people.admin_b.login)
    for call in calls:
        await web.get("/accueil")
        response = await run(web, call)
        if call.path == "/compte/donnees":  # their own page: nothing of practice A
            assert response.status_code == 200 and "cabinet-a.test" not in response.text
        elif call.path == "/compte/donnees/export":  # another practice's mailbox
            assert response.status_code == 403, call
        else:  # another practice's patient
            assert response.status_code == 404, call
    assert await _patients_of_a(app, people) == before
    assert ("admin@cabinet-b.test", "mailbox.export") not in {
        (actor, action) for actor, action, _t, _r in await audit_actions(app)
    }
