"""The patient portal's pickups through the REST API (issue 21): a sent message's trace, the
pickups a mailbox left on the portal with their state and log, and their withdrawal — the
webmail's « Suivi de l'envoi » and « Révoquer », with the same rights: reading needs the
``lecture`` scope, withdrawing the ``envoi`` scope; another mailbox's pickup is the same 404
as an unknown one. Both backends."""

from __future__ import annotations

from typing import Any

from caducee.app import App
from caducee.services import api_tokens
from caducee.services.audit import iter_records
from caducee.services.delivery import deliver_local
from caducee.store import directory_repo
from tests.health.pickups import DOCTOR, PATIENT, cabinet, deposit, health_message, token_of
from tests.services.helpers import person
from tests.web.conftest import WebClient

PASSPHRASE = "cheval-agrafe-42"


async def _auth(app: App, login: str, box: str, scopes: list[str]) -> dict[str, str]:
    token, _created = await api_tokens.create_token(
        app, login, "Logiciel", [box], scopes, actor="t", source="t"
    )
    return {"authorization": f"Bearer {token}"}


async def test_trace_status_and_revocation_of_a_pickup(
    app: App, web: WebClient, new_client: Any
) -> None:
    cab = await cabinet(app)
    await deliver_local(app, health_message(), [DOCTOR], folder="Sent")
    made = await deposit(app, cab, passphrase=PASSPHRASE)
    async with app.db.read() as conn:
        sent = await directory_repo.folder_by_name(conn, cab.mailbox.id, "Sent")
    assert sent is not None
    link = "/portail/" + token_of(made.link)
    async with new_client() as p:
        patient = WebClient(p)
        await patient.get(link)
        await patient.post(f"{link}/mot-de-passe", {"mot_de_passe": "pas-la-bonne-phrase"})
        await patient.post(f"{link}/mot-de-passe", {"mot_de_passe": PASSPHRASE})
        assert (await patient.get(f"{link}/message")).status_code == 200
    reader = await _auth(app, DOCTOR, DOCTOR, ["lecture"])
    sender = await _auth(app, DOCTOR, DOCTOR, ["lecture", "envoi"])
    box = f"/api/v1/boites/{cab.mailbox.id}"

    # The sent message's trace: the patient's steps, and the pickup it left.
    trace = await web.http.get(f"{box}/dossiers/{sent.id}/messages/1/suivi", headers=reader)
    assert trace.status_code == 200, trace.text
    body = trace.json()
    assert body["message_id"] == "<cr-1@cabinet.test>"
    [recipient] = body["destinataires"]
    steps = [e["etape"] for e in recipient["etapes"]]
    assert recipient["adresse"] == PATIENT
    assert {"deposited", "code_failed", "opened"} <= set(steps)
    [left] = body["portail"]
    assert left["id"] == made.id and left["etat"] == "open" and left["phrase_secrete"]

    # The mailbox's pickups, and one with its log.
    listing = (await web.http.get(f"{box}/portail", headers=reader)).json()
    assert [d["id"] for d in listing["depots"]] == [made.id] and listing["total"] == 1
    none = (await web.http.get(f"{box}/portail?etat=revoked", headers=reader)).json()
    assert none["depots"] == [] and none["total"] == 0
    one = (await web.http.get(f"{box}/portail/{made.id}", headers=reader)).json()
    events = [e["evenement"] for e in one["evenements"]]
    assert events[0] == "deposited" and "opened" in events
    assert PATIENT not in str(one) and PASSPHRASE not in str(one)  # never the contact

    # Withdrawing needs the « envoi » scope; then the link is closed and the log says so.
    refused = await web.http.delete(f"{box}/portail/{made.id}", headers=reader)
    assert refused.status_code == 403 and "envoi" in refused.json()["error"]["message"]
    done = await web.http.delete(f"{box}/portail/{made.id}", headers=sender)
    assert done.status_code == 204 and done.content == b""
    again = await web.http.delete(f"{box}/portail/{made.id}", headers=sender)
    assert again.status_code == 204  # already withdrawn: nothing changes
    after = (await web.http.get(f"{box}/portail/{made.id}", headers=reader)).json()
    assert after["etat"] == "revoked" and after["revoque_le"] is not None
    assert after["evenements"][-1]["evenement"] == "revoked"
    revoked = (await web.http.get(f"{box}/portail?etat=revoked", headers=reader)).json()
    assert [d["id"] for d in revoked["depots"]] == [made.id]
    async with new_client() as p:
        assert (await p.get(link)).status_code == 410
    audited = [r async for r in iter_records(app.db) if r.action == "pickup.revoke"]
    assert [r.actor for r in audited] == [DOCTOR]


async def test_another_mailboxs_pickup_is_not_found(app: App, web: WebClient) -> None:
    cab = await cabinet(app)
    made = await deposit(app, cab)
    colleague = "dr.bernard@cabinet.test"
    _account, other = await person(app, colleague)
    auth = await _auth(app, colleague, colleague, ["lecture", "envoi"])
    theirs = f"/api/v1/boites/{other.id}/portail/{made.id}"
    assert (await web.http.get(theirs, headers=auth)).status_code == 404
    assert (await web.http.delete(theirs, headers=auth)).status_code == 404
    listing = (await web.http.get(f"/api/v1/boites/{other.id}/portail", headers=auth)).json()
    assert listing["depots"] == []
    # the doctor's mailbox is not the token's: 404 too
    mine = f"/api/v1/boites/{cab.mailbox.id}/portail/{made.id}"
    assert (await web.http.get(mine, headers=auth)).status_code == 404
    assert (await web.http.delete(mine, headers=auth)).status_code == 404
    unknown = f"/api/v1/boites/{other.id}/portail/999999"
    assert (await web.http.get(unknown, headers=auth)).status_code == 404
