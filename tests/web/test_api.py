"""The REST API for practice software: tokens (shown once, hashed, scoped, revocable,
expiring), every endpoint, refusals as JSON, rate limit, audit; the OpenAPI description matches
the routes."""

from __future__ import annotations

import base64
import re
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default

import httpx
from sqlalchemy import select, update
from starlette.routing import Route

from caducee.app import App, open_app
from caducee.domain.model import SpecialUse
from caducee.services import api_tokens, mailboxes, rate_limits, webmail
from caducee.services.audit import iter_records
from caducee.services.delivery import deliver_local
from caducee.store.tables import api_tokens as api_tokens_table
from caducee.web import api, create_web_app
from caducee.web.config import WebConfig
from tests.web.conftest import BASE_URL, People, WebClient
from tests.web.helpers import assert_safe_download

DOCTOR = "dr.martin@cabinet-a.test"
SECRETARY = "secretariat@cabinet-a.test"
MAIL = (
    f"From: Labo <labo@ailleurs.test>\r\nTo: {DOCTOR}\r\nSubject: Resultats\r\n"
    "Message-ID: <api-1@ailleurs.test>\r\nMIME-Version: 1.0\r\n"
    "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n"
    "Glycemie normale.\r\n--b\r\nContent-Type: application/pdf\r\n"
    'Content-Disposition: attachment; filename="cr.pdf"\r\nContent-Transfer-Encoding: base64\r\n'
    "\r\nJVBERi0xLjQK\r\n--b--\r\n"
).encode()


async def _token(app: App, scopes: list[str], boxes: list[str] | None = None) -> str:
    token, _created = await api_tokens.create_token(
        app, DOCTOR, "Logiciel", boxes or [DOCTOR], scopes, actor="t", source="t"
    )
    return token


def _auth(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def test_token_created_in_the_account_page_is_shown_once_and_hashed(
    app: App, web: WebClient, people: People
) -> None:
    await web.login(DOCTOR)
    page = await web.get("/compte/api")
    assert page.status_code == 200
    created = await web.post(
        "/compte/api", {"libelle": "Logiciel de cabinet", "boite": DOCTOR, "droit": "lecture"}
    )
    token = re.search(r'id="api-token">(cdc_[^<]+)<', created.text)
    assert token
    listing = await web.get("/compte/api")
    assert "Logiciel de cabinet" in listing.text and token.group(1) not in listing.text
    async with app.db.read() as conn:
        stored = (await conn.execute(select(api_tokens_table.c.token_hash))).scalars().all()
    assert token.group(1) not in " ".join(stored)
    refused = await web.post("/compte/api", {"libelle": "x", "droit": "lecture"})
    assert refused.status_code == 400 and "au moins une boîte" in refused.text


async def test_read_mark_and_fetch(app: App, web: WebClient, people: People) -> None:
    await deliver_local(app, MAIL, [DOCTOR])
    token = await _token(app, ["lecture", "marquage"])
    http = web.http
    boxes = (await http.get("/api/v1/boites", headers=_auth(token))).json()
    assert [b["adresse"] for b in boxes] == [DOCTOR]
    box_id = boxes[0]["id"]
    folders = (await http.get(f"/api/v1/boites/{box_id}/dossiers", headers=_auth(token))).json()
    inbox = next(f for f in folders if f["usage"] == "\\Inbox")
    assert inbox["non_lus"] == 1
    base = f"/api/v1/boites/{box_id}/dossiers/{inbox['id']}/messages"
    listing = (await http.get(base + "?non_lus=1", headers=_auth(token))).json()
    [summary] = listing["messages"]
    message = (await http.get(f"{base}/{summary['uid']}", headers=_auth(token))).json()
    assert (
        message["texte"].startswith("Glycemie") and message["pieces_jointes"][0]["nom"] == "cr.pdf"
    )
    part = message["pieces_jointes"][0]["index"]
    pdf = await http.get(f"{base}/{summary['uid']}/pieces/{part}", headers=_auth(token))
    assert pdf.content.startswith(b"%PDF")
    assert_safe_download(pdf)
    marked = await http.post(
        f"{base}/{summary['uid']}/marquer", json={"lu": True}, headers=_auth(token)
    )
    assert marked.status_code == 200
    assert (await http.get(base + "?non_lus=1", headers=_auth(token))).json()["messages"] == []
    bad = await http.post(
        f"{base}/{summary['uid']}/marquer", json={"lu": "oui"}, headers=_auth(token)
    )
    assert bad.status_code == 422 and bad.json()["error"]["message"].startswith("lu")
    # No send right: 403 with a French reason.
    refused = await http.post(
        f"/api/v1/boites/{box_id}/envoyer", json={"a": [SECRETARY]}, headers=_auth(token)
    )
    assert refused.status_code == 403 and "envoi" in refused.json()["error"]["message"]
    calls = [r async for r in iter_records(app.db) if r.action == "api.call"]
    assert len(calls) >= 7 and all(token not in r.details for r in calls)


async def test_send_through_the_pipeline(app: App, web: WebClient, people: People) -> None:
    token = await _token(app, ["envoi", "lecture"])
    box = await mailboxes.get_mailbox(app, DOCTOR)
    sent = await web.http.post(
        f"/api/v1/boites/{box.id}/envoyer",
        json={
            "a": [SECRETARY],
            "objet": "Ordonnance",
            "texte": "Voir la pièce jointe.",
            "pieces_jointes": [
                {
                    "nom": "o.pdf",
                    "type": "application/pdf",
                    "contenu": base64.b64encode(b"%PDF-1").decode(),
                }
            ],
        },
        headers=_auth(token),
    )
    assert sent.status_code == 202 and sent.json()["message_id"].startswith("<")
    secretary_box = await mailboxes.get_mailbox(app, SECRETARY)
    assert secretary_box.used_bytes > 0
    for body, status in (
        ({"a": []}, 422),
        ({"a": ["pas une adresse"]}, 422),
        ({"a": [SECRETARY], "pieces_jointes": [{"nom": "x", "contenu": "***"}]}, 422),
        ({"a": "x"}, 422),
    ):
        response = await web.http.post(
            f"/api/v1/boites/{box.id}/envoyer", json=body, headers=_auth(token)
        )
        assert response.status_code == status, (body, response.text)
    garbage = await web.http.post(
        f"/api/v1/boites/{box.id}/envoyer", content=b"{pas du json", headers=_auth(token)
    )
    assert garbage.status_code == 400


async def test_tokens_refused(app: App, web: WebClient, people: People) -> None:
    http = web.http
    assert (await http.get("/api/v1/boites")).status_code == 401
    assert (await http.get("/api/v1/boites", headers=_auth("cdc_faux"))).status_code == 401
    token = await _token(app, ["lecture"])
    other = await mailboxes.get_mailbox(app, "dr.durand@cabinet-b.test")
    assert (
        await http.get(f"/api/v1/boites/{other.id}/dossiers", headers=_auth(token))
    ).status_code == 404
    # Expired, then revoked.
    [created] = await api_tokens.tokens_of(app, DOCTOR)
    async with app.db.write() as conn:
        await conn.execute(
            update(api_tokens_table)
            .where(api_tokens_table.c.id == created.id)
            .values(expires_at=created.created_at)
        )
    assert (await http.get("/api/v1/boites", headers=_auth(token))).status_code == 401
    second = await _token(app, ["lecture"])
    await api_tokens.revoke_token(app, DOCTOR, created.id + 1, actor="t", source="t")
    assert (await http.get("/api/v1/boites", headers=_auth(second))).status_code == 401


async def test_revoked_delegation_ends_the_token_access(
    app: App, web: WebClient, people: People
) -> None:
    await mailboxes.delegate(app, SECRETARY, DOCTOR, can_send=False)
    token = await _token(app, ["lecture"], [SECRETARY])
    box = await mailboxes.get_mailbox(app, SECRETARY)
    path = f"/api/v1/boites/{box.id}/dossiers"
    assert (await web.http.get(path, headers=_auth(token))).status_code == 200
    await mailboxes.revoke_delegation(app, SECRETARY, DOCTOR)
    assert (await web.http.get(path, headers=_auth(token))).status_code == 403
    assert (await web.http.get("/api/v1/boites", headers=_auth(token))).json() == []


def _frozen_bad_token_limit(app: App) -> None:
    """The bad-token limiter of ``app`` at one instant: no token comes back while the test
    runs, however slow the machine."""
    rate_limits.limiter(app, "api.bad", api.BAD_TOKENS_PER_MINUTE).clock = lambda: 1.8e9


async def test_bad_tokens_are_rate_limited(app: App, web: WebClient, people: People) -> None:
    _frozen_bad_token_limit(app)
    statuses = [
        (await web.http.get("/api/v1/boites", headers=_auth("cdc_x"))).status_code
        for _ in range(api.BAD_TOKENS_PER_MINUTE + 2)
    ]
    assert statuses[0] == 401 and statuses[-1] == 429


async def test_nodes_on_one_database_share_the_bad_token_budget(
    app: App, web: WebClient, web_config: WebConfig, people: People
) -> None:
    """The API's limits count in the database (issue 17): a second node (or worker process)
    on the same database refuses the address that exhausted its budget on the first."""
    _frozen_bad_token_limit(app)
    statuses = [
        (await web.http.get("/api/v1/boites", headers=_auth("cdc_x"))).status_code
        for _ in range(api.BAD_TOKENS_PER_MINUTE + 1)
    ]
    assert statuses[-1] == 429
    async with (
        open_app(app.settings) as other,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_web_app(other, web_config)),
            base_url=BASE_URL,
        ) as second,
    ):
        _frozen_bad_token_limit(other)
        assert (await second.get("/api/v1/boites", headers=_auth("cdc_x"))).status_code == 429
    assert (await web.http.get("/api/v1/boites", headers=_auth("cdc_x"))).status_code == 429


def test_openapi_describes_every_route_and_only_them() -> None:
    described = {
        (method.upper(), "/api/v1" + path)
        for path, operations in api.openapi()["paths"].items()
        for method in operations
    }
    routed = {
        (method, route.path)
        for route in api.routes
        if isinstance(route, Route) and not route.path.endswith("openapi.json")
        for method in (route.methods or set()) - {"HEAD"}
    }
    assert described == routed and len(described) == len(api.ENDPOINTS)


async def test_patient_registry_through_the_api(app: App, web: WebClient, people: People) -> None:
    token = await _token(app, ["patients"])
    reader = await _token(app, ["lecture"])
    body = {
        "nom": "Garnier",
        "prenom": "Lucie",
        "naissance": "1990-03-02",
        "email": "lucie.garnier@patient-mail.test",
        "mobile": "06 98 76 54 32",
    }
    assert (await web.http.get("/api/v1/patients", headers=_auth(reader))).status_code == 403
    created = await web.http.post("/api/v1/patients", json=body, headers=_auth(token))
    assert created.status_code == 201, created.text
    patient = created.json()
    assert created.headers["location"] == f"/api/v1/patients/{patient['id']}"
    assert patient["mobile"] == "+33698765432" and patient["verification"] == "unverified"
    again = await web.http.post("/api/v1/patients", json=body, headers=_auth(token))
    assert again.status_code == 422 and "autre patient" in again.json()["error"]["message"]
    bad = await web.http.post(
        "/api/v1/patients", json={**body, "email": "x@patient-mail.test", "ins": "1" * 15},
        headers=_auth(token),
    )  # fmt: skip
    assert bad.status_code == 422 and "INS invalide" in bad.json()["error"]["message"]
    url = f"/api/v1/patients/{patient['id']}"
    listed = (await web.http.get("/api/v1/patients?q=garn", headers=_auth(token))).json()
    assert [p["id"] for p in listed] == [patient["id"]]
    sent = await web.http.post(url + "/verification", headers=_auth(token))
    assert sent.status_code == 202
    assert (await web.http.get(url, headers=_auth(token))).json()["verification"] == "pending"
    changed = await web.http.post(url, json={**body, "mode": "pdf"}, headers=_auth(token))
    assert changed.json()["mode"] == "pdf" and changed.json()["verification"] == "pending"
    # another practice's token reaches nothing
    other, _ = await api_tokens.create_token(
        app, "dr.durand@cabinet-b.test", "Autre", ["dr.durand@cabinet-b.test"], ["patients"],
        actor="t", source="t",
    )  # fmt: skip
    assert (await web.http.get(url, headers=_auth(other))).status_code == 404
    assert (await web.http.delete(url, headers=_auth(other))).status_code == 404
    assert (await web.http.delete(url, headers=_auth(token))).status_code == 204
    assert (await web.http.get(url, headers=_auth(token))).status_code == 404


async def _messages(app: App, address: str, use: SpecialUse) -> list[EmailMessage]:
    """The messages of one of ``address``'s special folders, as its owner reads them."""
    access = await mailboxes.open_mailbox(app, address, address)
    folder = await webmail.special_folder(app, access, use)
    listing = await webmail.list_messages(app, folder)
    found = []
    for item in listing.items:
        _row, raw = await webmail.message(app, folder, item.uid)
        found.append(BytesParser(policy=default).parsebytes(raw))
    return found


async def test_sent_message_is_the_webmails_from_with_safe_attachments(
    app: App, web: WebClient, people: People
) -> None:
    """The API writes the message the webmail writes (one compose): From with the account's
    name, a Sent copy; an attachment's name has no path and a container type given by the
    client (multipart/*, message/*, which cannot be base64) goes as application/octet-stream,
    its bytes intact."""
    token = await _token(app, ["envoi"])
    box = await mailboxes.get_mailbox(app, DOCTOR)
    sent = await web.http.post(
        f"/api/v1/boites/{box.id}/envoyer",
        json={
            "a": [SECRETARY],
            "objet": "Compte rendu",
            "texte": "Ci-joint.",
            "pieces_jointes": [
                {
                    "nom": "../../cr.pdf",
                    "type": "multipart/mixed",
                    "contenu": base64.b64encode(b"%PDF-1 contenu").decode(),
                },
                {
                    "nom": "lettre.eml",
                    "type": "message/rfc822",
                    "contenu": base64.b64encode(b"Subject: x\r\n\r\ny\r\n").decode(),
                },
            ],
        },
        headers=_auth(token),
    )
    assert sent.status_code == 202, sent.text
    [received] = await _messages(app, SECRETARY, SpecialUse.INBOX)
    assert received["From"].addresses[0].display_name == people.doctor_a.display_name
    assert received["Message-ID"] == sent.json()["message_id"]
    parts = [
        (p.get_filename(), p.get_content_type(), p.get_content())
        for p in received.iter_attachments()
    ]
    assert parts == [
        (".._.._cr.pdf", "application/octet-stream", b"%PDF-1 contenu"),
        ("lettre.eml", "application/octet-stream", b"Subject: x\r\n\r\ny\r\n"),
    ]
    [copy] = await _messages(app, DOCTOR, SpecialUse.SENT)
    assert copy["Message-ID"] == sent.json()["message_id"]


async def test_delete_to_the_trash_then_for_good_unless_retained(
    app: App, web: WebClient, people: People
) -> None:
    # DELETE as the webmail's « Supprimer »; a télétransmission return younger than 90 days
    # is refused with 409 « conservation » and the reason (issue 15).
    from datetime import UTC, datetime, timedelta

    from caducee.domain.model import MailboxType
    from caducee.services.messages import store_message

    tlt = await mailboxes.add_mailbox(app, "tlt@cabinet-a.test", MailboxType.TLT, DOCTOR)
    await store_message(app, tlt.id, "INBOX", MAIL)
    old = datetime.now(UTC) - timedelta(days=100)
    await store_message(app, tlt.id, "INBOX", MAIL, internal_date=old)
    token = await _token(app, ["lecture", "marquage"], [tlt.address])
    folders = {f.special_use: f for f, _ in await webmail.folders(app, tlt)}
    inbox, trash = folders[SpecialUse.INBOX.value].id, folders[SpecialUse.TRASH.value].id
    base = f"/api/v1/boites/{tlt.id}/dossiers"
    for uid in (1, 2):
        moved = await web.http.delete(f"{base}/{inbox}/messages/{uid}", headers=_auth(token))
        assert moved.status_code == 204 and moved.content == b"", moved.text
    refused = await web.http.delete(f"{base}/{trash}/messages/1", headers=_auth(token))
    assert refused.status_code == 409
    error = refused.json()["error"]
    assert error["code"] == "conservation" and "90 jours" in error["message"]
    assert "can be deleted from" in error["message_en"]
    gone = await web.http.delete(f"{base}/{trash}/messages/2", headers=_auth(token))
    assert gone.status_code == 204
    listing = (await web.http.get(f"{base}/{trash}/messages", headers=_auth(token))).json()
    assert [m["uid"] for m in listing["messages"]] == [1]
    missing = await web.http.delete(f"{base}/{trash}/messages/2", headers=_auth(token))
    assert missing.status_code == 404
