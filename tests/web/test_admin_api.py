"""The practice administrator's API door (issue 19): a token of scope ``admin`` (an
administrator's only) lists, disables, enables and deletes the practice's mailboxes and
accounts through the same services as the console and the CLI; the same refusals with 409 and
a French and English message; nothing outside the practice; described in OpenAPI."""

from __future__ import annotations

import pytest

from caducee.app import App
from caducee.domain.model import MailboxType
from caducee.errors import AccessDenied, NotFound
from caducee.services import accounts, api_tokens, mailboxes
from caducee.services.audit import iter_records
from caducee.services.delivery import deliver_local
from caducee.web import api
from tests.web.conftest import People, WebClient

ADMIN = "admin@cabinet-a.test"
DOCTOR = "dr.martin@cabinet-a.test"
SECRETARY = "secretariat@cabinet-a.test"
SHARED = "accueil@cabinet-a.test"
TLT = "tlt@cabinet-a.test"


async def _admin_token(app: App) -> dict[str, str]:
    token, _ = await api_tokens.create_token(
        app, ADMIN, "Logiciel de gestion", [ADMIN], ["admin"], actor="t", source="t"
    )
    return {"authorization": f"Bearer {token}"}


async def test_only_an_administrator_gets_the_admin_scope(
    app: App, web: WebClient, people: People
) -> None:
    with pytest.raises(AccessDenied, match="administrateur"):
        await api_tokens.create_token(
            app, DOCTOR, "Logiciel", [DOCTOR], ["admin"], actor="t", source="t"
        )
    token, _ = await api_tokens.create_token(
        app, DOCTOR, "Logiciel", [DOCTOR], ["lecture"], actor="t", source="t"
    )
    refused = await web.http.get(
        "/api/v1/admin/boites", headers={"authorization": f"Bearer {token}"}
    )
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "droit"
    # The account page offers the scope to administrators only.
    await web.login(DOCTOR)
    assert 'value="admin"' not in (await web.get("/compte/api")).text


async def test_disable_enable_and_delete_a_mailbox(
    app: App, web: WebClient, people: People
) -> None:
    headers = await _admin_token(app)
    shared = await mailboxes.add_mailbox(app, SHARED, MailboxType.ORG, DOCTOR)
    other = await mailboxes.get_mailbox(app, "dr.durand@cabinet-b.test")
    listing = await web.http.get("/api/v1/admin/boites", headers=headers)
    assert listing.status_code == 200
    addresses = {item["adresse"] for item in listing.json()}
    assert SHARED in addresses and other.address not in addresses

    done = await web.http.post(f"/api/v1/admin/boites/{shared.id}/desactivation", headers=headers)
    assert done.status_code == 200 and done.json()["desactivee"] is True
    assert (await mailboxes.get_mailbox(app, SHARED)).disabled
    done = await web.http.post(f"/api/v1/admin/boites/{shared.id}/activation", headers=headers)
    assert done.status_code == 200 and done.json()["desactivee"] is False
    # Another practice's mailbox does not exist here.
    elsewhere = await web.http.post(
        f"/api/v1/admin/boites/{other.id}/desactivation", headers=headers
    )
    assert elsewhere.status_code == 404
    assert not (await mailboxes.get_mailbox(app, other.address)).disabled

    path = f"/api/v1/admin/boites/{shared.id}"
    wrong = await web.http.delete(
        path, params={"confirmation": "x@cabinet-a.test"}, headers=headers
    )
    assert wrong.status_code == 422 and "saisissez l'adresse" in wrong.json()["error"]["message"]
    await deliver_local(app, b"Subject: Bonjour\r\n\r\nTexte.\r\n", [SHARED])
    gone = await web.http.delete(path, params={"confirmation": SHARED}, headers=headers)
    assert gone.status_code == 200 and gone.json() == {"adresse": SHARED, "messages": 1}
    with pytest.raises(NotFound):
        await mailboxes.get_mailbox(app, SHARED)
    records = [(r.action, r.actor, r.target) async for r in iter_records(app.db)]
    assert ("mailbox.disable", ADMIN, SHARED) in records
    assert ("mailbox.delete", ADMIN, SHARED) in records


async def test_the_same_refusals_with_409(app: App, web: WebClient, people: People) -> None:
    headers = await _admin_token(app)
    tlt = await mailboxes.add_mailbox(app, TLT, MailboxType.TLT, DOCTOR)
    await deliver_local(app, b"From: cpam@rss.fr\r\nSubject: ARL\r\n\r\nOK\r\n", [TLT])
    held = await web.http.delete(
        f"/api/v1/admin/boites/{tlt.id}", params={"confirmation": TLT}, headers=headers
    )
    assert held.status_code == 409
    error = held.json()["error"]
    assert error["code"] == "conservation" and "90 jours" in error["message"]
    assert "90 days" in error["message_en"]
    personal = await mailboxes.get_mailbox(app, SECRETARY)
    refused = await web.http.delete(
        f"/api/v1/admin/boites/{personal.id}", params={"confirmation": SECRETARY}, headers=headers
    )
    assert (
        refused.status_code == 409 and "caducee user delete" in refused.json()["error"]["message"]
    )

    comptes = f"/api/v1/admin/comptes/{people.admin_a.id}"
    last = await web.http.delete(comptes, params={"confirmation": ADMIN}, headers=headers)
    assert last.status_code == 409 and "dernier administrateur" in last.json()["error"]["message"]
    assert "last enabled administrator" in last.json()["error"]["message_en"]
    own = await web.http.post(comptes + "/desactivation", headers=headers)
    assert own.status_code == 409
    owner = await web.http.delete(
        f"/api/v1/admin/comptes/{people.doctor_a.id}",
        params={"confirmation": DOCTOR},
        headers=headers,
    )
    assert owner.status_code == 409 and TLT in owner.json()["error"]["message"]


async def test_disable_and_delete_an_account(app: App, web: WebClient, people: People) -> None:
    headers = await _admin_token(app)
    token, _ = await api_tokens.create_token(
        app, DOCTOR, "Logiciel", [DOCTOR], ["lecture"], actor="t", source="t"
    )
    doctor_headers = {"authorization": f"Bearer {token}"}
    assert (await web.http.get("/api/v1/boites", headers=doctor_headers)).status_code == 200
    listing = await web.http.get("/api/v1/admin/comptes", headers=headers)
    logins = {item["identifiant"] for item in listing.json()}
    assert DOCTOR in logins and "admin@cabinet-b.test" not in logins
    path = f"/api/v1/admin/comptes/{people.doctor_a.id}"
    done = await web.http.post(path + "/desactivation", headers=headers)
    assert done.status_code == 200 and done.json()["desactive"] is True
    assert (await web.http.get("/api/v1/boites", headers=doctor_headers)).status_code == 401
    assert (await web.http.post(path + "/activation", headers=headers)).status_code == 200
    secretary = f"/api/v1/admin/comptes/{people.secretary_a.id}"
    gone = await web.http.delete(secretary, params={"confirmation": SECRETARY}, headers=headers)
    assert gone.status_code == 200 and gone.json()["adresse"] == SECRETARY
    with pytest.raises(NotFound):
        await accounts.get_account(app, SECRETARY)
    b_account = f"/api/v1/admin/comptes/{people.doctor_b.id}"
    assert (await web.http.post(b_account + "/desactivation", headers=headers)).status_code == 404


def test_the_admin_operations_are_described() -> None:
    paths = api.openapi()["paths"]
    delete = paths["/admin/comptes/{account_id}"]["delete"]
    assert [p["name"] for p in delete["parameters"]] == ["account_id", "confirmation"]
    assert "409" in delete["responses"] and delete["description"] == "Droit du jeton : admin."
    assert {"post"} == set(paths["/admin/boites/{mailbox_id}/desactivation"])
    assert "delete" in paths["/admin/boites/{mailbox_id}"]
