"""The admin console, used as an administrator would."""

from __future__ import annotations

import csv
import io
import re

from caducee.app import App
from caducee.domain.model import Practice
from caducee.health import pickup, pickup_auth
from caducee.services import accounts, app_passwords, mailboxes, mfa
from caducee.services.auth import verify_password_login
from tests.web.conftest import People, WebClient
from tests.web.helpers import assert_safe_download, audit_actions

PASSWORD_SHOWN = re.compile(r'<code id="new-password">([^<]+)</code>')


async def test_practice_settings_and_policy(web: WebClient, people: People, app: App) -> None:
    await web.login(people.admin_a.login)
    page = await web.get("/admin/cabinet")
    assert "Cabinet A" in page.text
    assert "3 / 6" in page.text  # three personal mailboxes, limit 6
    bad = await web.post("/admin/cabinet", {"nom": "Cabinet A", "finess": "123", "siret": ""})
    assert bad.status_code == 400 and "FINESS" in bad.text
    ok = await web.post("/admin/cabinet", {"nom": "Maison de santé A", "finess": "", "siret": ""})
    assert ok.status_code == 303
    assert "Maison de santé A" in (await web.get("/admin/cabinet")).text
    await web.post("/admin/cabinet/second-facteur", {"exiger": "oui"})
    assert await mfa.second_factor_required(app, people.practice_a.id)
    actions = await audit_actions(app)
    assert (
        people.admin_a.login,
        "practice.require_second_factor",
        f"practice:{people.practice_a.id}",
        "ok",
    ) in actions


async def test_create_account_with_generated_password(
    web: WebClient, people: People, app: App
) -> None:
    await web.login(people.admin_a.login)
    await web.get("/admin/comptes/nouveau")
    created = await web.post(
        "/admin/comptes/nouveau",
        {
            "identifiant": "inf.durand",
            "domaine": "cabinet-a.test",
            "civilite": "M.",
            "prenom": "Paul",
            "nom": "Durand",
            "profession": "Infirmier",
            "role": "praticien",
            "adeli": "751234567",
        },
    )
    assert created.status_code == 200, created.text
    password = PASSWORD_SHOWN.search(created.text)
    assert password
    account = await verify_password_login(
        app, "inf.durand@cabinet-a.test", password.group(1), "127.0.0.1"
    )
    assert account.practice_id == people.practice_a.id
    listing = await web.get("/admin/comptes")
    assert "inf.durand@cabinet-a.test" in listing.text
    assert password.group(1) not in listing.text
    # Errors come back in French on the form, values kept.
    await web.get("/admin/comptes/nouveau")
    duplicate = await web.post(
        "/admin/comptes/nouveau",
        {"identifiant": "inf.durand", "domaine": "cabinet-a.test", "nom": "X", "role": "admin"},
    )
    assert duplicate.status_code == 400 and "existe déjà" in duplicate.text
    # A domain of another practice is not offered and not accepted.
    other = await web.post(
        "/admin/comptes/nouveau",
        {"identifiant": "intrus", "domaine": "cabinet-b.test", "nom": "X", "role": "admin"},
    )
    assert other.status_code == 404
    assert password.group(1) not in "\n".join(map(str, await audit_actions(app)))


async def test_disable_enable_reset_password(web: WebClient, people: People, app: App) -> None:
    await web.login(people.admin_a.login)
    target = f"/admin/comptes/{people.doctor_a.id}"
    await web.get(target)
    assert (await web.post(f"{target}/desactiver")).status_code == 303
    assert (await accounts.get_account(app, people.doctor_a.login)).disabled
    await web.get(target)
    assert (await web.post(f"{target}/activer")).status_code == 303
    assert not (await accounts.get_account(app, people.doctor_a.login)).disabled
    await web.get(target)
    reset = await web.post(f"{target}/mot-de-passe")
    found = PASSWORD_SHOWN.search(reset.text)
    assert reset.status_code == 200 and found
    await verify_password_login(app, people.doctor_a.login, found.group(1), "127.0.0.1")
    # The admin cannot lock themselves out.
    await web.get("/admin/comptes")
    own = await web.post(f"/admin/comptes/{people.admin_a.id}/desactiver")
    assert own.status_code == 400
    assert not (await accounts.get_account(app, people.admin_a.login)).disabled


async def test_mailboxes_limit_and_quota(web: WebClient, people: People, app: App) -> None:
    await web.login(people.admin_a.login)
    page = await web.get("/admin/boites")
    assert "3 sur 6" in page.text
    for name in ("accueil", "logiciel", "tlt"):
        response = await web.post(
            "/admin/boites",
            {
                "identifiant": name,
                "domaine": "cabinet-a.test",
                "type": {"accueil": "ORG", "logiciel": "APP", "tlt": "TLT"}[name],
                "titulaire": str(people.secretary_a.id),
                "quota_mo": "100",
            },
        )
        assert response.status_code == 303, response.text
    full = await web.post(
        "/admin/boites",
        {
            "identifiant": "de-trop",
            "domaine": "cabinet-a.test",
            "type": "ORG",
            "titulaire": str(people.secretary_a.id),
        },
    )
    assert full.status_code == 400
    assert "a atteint sa limite de 6 boîtes aux lettres" in full.text
    box = await mailboxes.get_mailbox(app, "accueil@cabinet-a.test")
    assert box.quota_bytes == 100 * 1024 * 1024
    await web.get("/admin/boites")
    changed = await web.post(f"/admin/boites/{box.id}/quota", {"quota_mo": "250"})
    assert changed.status_code == 303
    assert (await mailboxes.get_mailbox(app, box.address)).quota_bytes == 250 * 1024 * 1024
    await web.get("/admin/boites")
    bad = await web.post(f"/admin/boites/{box.id}/quota", {"quota_mo": "0"})
    assert bad.status_code == 400 and "Quota invalide" in bad.text


async def test_delegations(web: WebClient, people: People, app: App) -> None:
    await web.login(people.admin_a.login)
    doctor_box = await mailboxes.get_mailbox(app, people.doctor_a.login)
    await web.get("/admin/delegations")
    granted = await web.post(
        "/admin/delegations",
        {"boite": str(doctor_box.id), "compte": str(people.secretary_a.id), "droit": "envoi"},
    )
    assert granted.status_code == 303
    access = await mailboxes.open_mailbox(app, people.secretary_a.login, doctor_box.address)
    assert access.delegated and access.can_send
    page = await web.get("/admin/delegations")
    assert "lecture et envoi" in page.text
    own = await web.post(
        "/admin/delegations",
        {"boite": str(doctor_box.id), "compte": str(people.doctor_a.id), "droit": "lecture"},
    )
    assert own.status_code == 400 and "déjà titulaire" in own.text
    await web.get("/admin/delegations")
    revoked = await web.post(
        "/admin/delegations/revoquer",
        {"boite": str(doctor_box.id), "compte": str(people.secretary_a.id)},
    )
    assert revoked.status_code == 303
    assert await mailboxes.list_delegations(app, doctor_box.address) == []


async def test_account_app_passwords(web: WebClient, people: People, app: App) -> None:
    await app_passwords.create_app_password(app, people.doctor_a.login, "Thunderbird")
    await web.login(people.admin_a.login)
    page = await web.get(f"/admin/comptes/{people.doctor_a.id}")
    assert "Thunderbird" in page.text
    item = (await app_passwords.list_app_passwords(app, people.doctor_a.login))[0]
    revoked = await web.post(f"/admin/comptes/{people.doctor_a.id}/applications/{item.id}/revoquer")
    assert revoked.status_code == 303
    assert (await app_passwords.list_app_passwords(app, people.doctor_a.login))[0].revoked


async def test_reset_second_factor(web: WebClient, people: People, app: App) -> None:
    await mfa.generate_recovery_codes(app, people.doctor_a, actor="test", source="test")
    await web.login(people.admin_a.login)
    await web.get(f"/admin/comptes/{people.doctor_a.id}")
    response = await web.post(f"/admin/comptes/{people.doctor_a.id}/second-facteur")
    assert response.status_code == 303
    factors = await mfa.second_factors(app, people.doctor_a.id)
    assert not factors.any and factors.recovery_codes_left == 0


async def test_audit_viewer_filters_and_csv(web: WebClient, people: People, app: App) -> None:
    await web.login(people.doctor_b.login)  # another practice's activity
    await web.post("/deconnexion")
    await web.login(people.admin_a.login)
    page = await web.get("/admin/journal")
    assert "account.create" in page.text
    assert "dr.durand@cabinet-b.test" not in page.text
    filtered = await web.get(f"/admin/journal?acteur={people.admin_a.login}&action=web.")
    assert "web.login" in filtered.text and "account.create" not in filtered.text
    failed = await web.get("/admin/journal?resultat=failed")
    assert "web.login" not in failed.text
    future = await web.get("/admin/journal?du=2999-01-01")
    assert "Aucun enregistrement" in future.text
    exported = await web.http.get("/admin/journal.csv?action=account.")
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("text/csv")
    assert_safe_download(exported)
    rows = list(csv.DictReader(io.StringIO(exported.text.lstrip("\ufeff"))))
    assert rows and {r["action"] for r in rows} == {"account.create"}
    assert all(r["target"].endswith("@cabinet-a.test") for r in rows)
    actions = await audit_actions(app)
    assert (people.admin_a.login, "audit.export", f"practice:{people.practice_a.id}", "ok") in (
        actions
    )


async def test_csv_neutralises_formulas() -> None:
    from datetime import UTC, datetime

    from caducee.services.audit import AuditRecord
    from caducee.web.admin.audit import to_csv

    record = AuditRecord(
        1, datetime.now(UTC), "=cmd|'/c calc'!A1", "x", "+1", "", "ok", "{}", "0", "1"
    )
    text = to_csv([record])
    assert "'=cmd" in text and "'+1" in text


async def test_audit_viewer_shows_the_practices_portal_events(
    web: WebClient, people: People, app: App
) -> None:
    # docs/patients.md: the practice sees its portal's events (links created, codes sent or
    # failed, locks) — its own only.
    async def deposit(practice: Practice, login: str) -> pickup.Pickup:
        box = await mailboxes.get_mailbox(app, login)
        created = await pickup.create_pickup(
            app,
            practice_id=practice.id,
            sender_mailbox_id=box.id,
            sender_address=login,
            patient_email="paul.durand@patient-mail.test",
            patient_mobile="+33612345678",
            raw_message=b"From: " + login.encode() + b"\r\nSubject: Bilan\r\n\r\nRAS\r\n",
            source="192.0.2.1",
        )
        assert not await pickup_auth.check_code(app, created, "000000", source="198.51.100.7")
        return created

    mine = await deposit(people.practice_a, people.doctor_a.login)
    theirs = await deposit(people.practice_b, people.doctor_b.login)
    await web.login(people.admin_a.login)
    page = await web.get("/admin/journal?action=pickup.")
    assert "pickup.create" in page.text and "pickup.code_failed" in page.text
    assert f"pickup:{mine.id}" in page.text
    assert f"pickup:{theirs.id}" not in page.text
    assert "paul.durand" not in page.text
    exported = await web.http.get("/admin/journal.csv?action=pickup.")
    rows = list(csv.DictReader(io.StringIO(exported.text.lstrip("\ufeff"))))
    assert {r["action"] for r in rows} == {"pickup.create", "pickup.code_failed"}
    assert {r["actor"] for r in rows} == {f"pickup:{mine.id}"}
