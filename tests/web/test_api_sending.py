"""Sending through the REST API does what the webmail's compose does (issue 21): a reply
threaded on the original (which is then flagged answered), a forward with the original's
attachments, a read-receipt request, RFC 3461 delivery-report options, the end of an exchange
with a patient (FIN) and the patient's Mon espace santé address, the sensitive-data check
shown before sending; 202 with the trace as Location. Both backends."""

from __future__ import annotations

from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default
from typing import Any

from caducee.app import App
from caducee.domain.model import Flag, SpecialUse
from caducee.errors import PolicyRejected
from caducee.health import mon_espace_sante
from caducee.services import api_tokens, mailboxes, queue, webmail
from caducee.services.delivery import deliver_local
from tests.web.conftest import People, WebClient
from tests.web.test_xdm_mail import INS, PEER, Setting, setting  # noqa: F401

DOCTOR = "dr.martin@cabinet-a.test"
SECRETARY = "secretariat@cabinet-a.test"
ORIGINAL = (
    f"From: Labo <labo@cabinet-a.test>\r\nTo: {DOCTOR}\r\nSubject: Resultats\r\n"
    "Message-ID: <orig-2@ailleurs.test>\r\nReferences: <orig-1@ailleurs.test>\r\n"
    "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
    "--b\r\nContent-Type: text/plain\r\n\r\nGlycemie normale.\r\n"
    "--b\r\nContent-Type: application/pdf\r\n"
    'Content-Disposition: attachment; filename="cr.pdf"\r\nContent-Transfer-Encoding: base64\r\n'
    "\r\nJVBERi0xLjQK\r\n--b--\r\n"
).encode()


async def _token(app: App, login: str, box: str, scopes: list[str]) -> dict[str, str]:
    token, _created = await api_tokens.create_token(
        app, login, "Logiciel", [box], scopes, actor="t", source="t"
    )
    return {"authorization": f"Bearer {token}"}


async def _folder(app: App, address: str, use: SpecialUse) -> Any:
    access = await mailboxes.open_mailbox(app, address, address)
    return await webmail.special_folder(app, access, use)


async def _messages(app: App, address: str, use: SpecialUse) -> list[EmailMessage]:
    folder = await _folder(app, address, use)
    found = []
    for item in (await webmail.list_messages(app, folder)).items:
        _row, raw = await webmail.message(app, folder, item.uid)
        found.append(BytesParser(policy=default).parsebytes(raw))
    return found


async def test_reply_forward_receipt_and_delivery_report(
    app: App, web: WebClient, people: People
) -> None:
    await deliver_local(app, ORIGINAL, [DOCTOR])
    auth = await _token(app, DOCTOR, DOCTOR, ["envoi", "lecture"])
    box = await mailboxes.get_mailbox(app, DOCTOR)
    inbox = await _folder(app, DOCTOR, SpecialUse.INBOX)
    original = {"dossier": inbox.folder.id, "uid": 1}
    sent = await web.http.post(
        f"/api/v1/boites/{box.id}/envoyer",
        json={
            "a": [SECRETARY],
            "objet": "Re : Resultats",
            "texte": "Vu, merci.",
            "reponse_a": original,
            "transfert": original,
            "accuse_lecture": True,
            "dsn": {"notify": ["success", "FAILURE"], "ret": "HDRS", "envid": "LPS-42"},
        },
        headers=auth,
    )
    assert sent.status_code == 202, sent.text
    answer = sent.json()
    [received] = await _messages(app, SECRETARY, SpecialUse.INBOX)
    assert received["Message-ID"] == answer["message_id"]
    assert received["In-Reply-To"] == "<orig-2@ailleurs.test>"
    assert received["References"] == "<orig-1@ailleurs.test> <orig-2@ailleurs.test>"
    assert received["Disposition-Notification-To"] == DOCTOR
    assert [p.get_filename() for p in received.iter_attachments()] == ["cr.pdf"]
    # The original is flagged answered, as after the webmail's « Répondre ».
    [row] = await webmail.rows_by_uid(app, inbox, {1})
    assert row.flags & Flag.ANSWERED
    # NOTIFY=SUCCESS: the « delivered » report of the local copy, with the client's ENVID.
    reports = [
        m for m in await _messages(app, DOCTOR, SpecialUse.INBOX) if m.get_content_type() ==
        "multipart/report"
    ]  # fmt: skip
    assert len(reports) == 1 and b"LPS-42" in reports[0].as_bytes()
    # 202's Location is the message's trace; its copy is in Sent.
    assert sent.headers["location"] == answer["suivi"]
    sent_box = await _folder(app, DOCTOR, SpecialUse.SENT)
    assert answer["envoye"] == {"dossier": sent_box.folder.id, "uid": 1}
    followed = await web.http.get(sent.headers["location"], headers=auth)
    assert followed.status_code == 200 and followed.json()["message_id"] == answer["message_id"]


async def test_threading_headers_given_by_the_client_and_refusals(
    app: App, web: WebClient, people: People
) -> None:
    auth = await _token(app, DOCTOR, DOCTOR, ["envoi"])
    box = await mailboxes.get_mailbox(app, DOCTOR)
    path = f"/api/v1/boites/{box.id}/envoyer"
    sent = await web.http.post(
        path,
        json={
            "a": [SECRETARY],
            "objet": "Re : dossier",
            "en_reponse_a": "<lps-7@logiciel.test>",
            "references": "<lps-6@logiciel.test>\t <lps-7@logiciel.test>",
        },
        headers=auth,
    )
    assert sent.status_code == 202, sent.text
    [received] = await _messages(app, SECRETARY, SpecialUse.INBOX)
    assert received["In-Reply-To"] == "<lps-7@logiciel.test>"
    assert received["References"] == "<lps-6@logiciel.test> <lps-7@logiciel.test>"
    assert received["Disposition-Notification-To"] is None and received["X-MSS-MES"] is None
    for extra, word in (
        ({"en_reponse_a": "<a@b>\r\nBcc: espion@ailleurs.test"}, "en_reponse_a"),
        ({"en_reponse_a": "<a@b> <c@d>"}, "en_reponse_a"),
        ({"references": "pas-un-identifiant"}, "references"),
        ({"accuse_lecture": "oui"}, "accuse_lecture"),
        ({"dsn": {"notify": ["NEVER", "SUCCESS"]}}, "NOTIFY"),
        ({"dsn": {"ret": "TOUT"}}, "RET"),
        ({"dsn": {"envid": "x" * 101}}, "ENVID"),
        ({"dsn": "SUCCESS"}, "dsn"),
        ({"reponse_a": {"dossier": 1}}, "reponse_a"),
    ):
        refused = await web.http.post(path, json={"a": [SECRETARY], **extra}, headers=auth)
        assert refused.status_code == 422, (extra, refused.text)
        assert word in refused.json()["error"]["message"], refused.text
    # A message of another mailbox cannot be answered: the same 404 as an unknown one.
    other = await web.http.post(
        path, json={"a": [SECRETARY], "reponse_a": {"dossier": 999999, "uid": 1}}, headers=auth
    )
    assert other.status_code == 404
    # Nothing of the refused ones went anywhere.
    assert len(await _messages(app, SECRETARY, SpecialUse.INBOX)) == 1


async def test_sensitive_data_shown_before_sending_on_demand(
    app: App, web: WebClient, people: People
) -> None:
    """« verifier_donnees_sensibles »: as the webmail before sending, what the check finds in
    a message leaving the trust space, masked, and nothing sent; sent once confirmed."""
    auth = await _token(app, DOCTOR, DOCTOR, ["envoi"])
    box = await mailboxes.get_mailbox(app, DOCTOR)
    body = {
        "a": ["ami@ailleurs.test"],
        "objet": "Dossier",
        "texte": "NIR du patient : 1 85 05 78 006 084 91.",
        "verifier_donnees_sensibles": True,
    }
    path = f"/api/v1/boites/{box.id}/envoyer"
    held = await web.http.post(path, json=body, headers=auth)
    assert held.status_code == 409, held.text
    error = held.json()["error"]
    assert error["code"] == "donnees_sensibles"
    [found] = error["donnees_sensibles"]
    assert found["type"] == "nir" and "006 084" not in found["extrait"]
    assert await queue.list_queue(app) == []
    body["verifier_donnees_sensibles"] = False
    assert (await web.http.post(path, json=body, headers=auth)).status_code == 202


async def test_mon_espace_sante_with_fin_closes_the_exchange(
    app: App,
    web: WebClient,
    setting: Setting,  # noqa: F811
) -> None:
    """A message about a patient to their Mon espace santé address, ending the exchange:
    X-MSS-INS, [FIN] and X-MSS-MES: FIN, queued with the delivery-report options asked; the
    trace says the exchange is closed, and a later reply from that address is refused."""
    auth = await _token(app, setting.doctor.login, setting.mailbox.address, ["envoi", "lecture"])
    sent = await web.http.post(
        f"/api/v1/boites/{setting.mailbox.id}/envoyer",
        json={
            "a": [PEER],
            "objet": "Résultats",
            "texte": "Bonjour, tout est normal.",
            "patient": {"id": setting.patient.id, "mes": True},
            "fin_echange": True,
            "dsn": {"notify": ["NEVER"], "ret": "FULL"},
        },
        headers=auth,
    )
    assert sent.status_code == 202, sent.text
    mes = f"{INS}@patient.mssante.fr"
    queued = await queue.list_queue(app)
    assert {e.address for e in queued} == {PEER, mes}
    assert all(e.notify == ("NEVER",) and e.ret == "FULL" for e in queued)
    [copy] = await _messages(app, setting.mailbox.address, SpecialUse.SENT)
    assert copy["Subject"] == "[FIN] Résultats" and copy["X-MSS-MES"] == "FIN"
    assert copy["X-MSS-INS"] is not None
    trace = (await web.http.get(sent.headers["location"], headers=auth)).json()
    steps = {r["adresse"]: [e["etape"] for e in r["etapes"]] for r in trace["destinataires"]}
    assert "closed" in steps[mes]
    reply = (
        f"From: {mes}\r\nTo: {setting.mailbox.address}\r\nSubject: Re: Résultats\r\n"
        f"In-Reply-To: {sent.json()['message_id']}\r\n\r\nMerci\r\n"
    ).encode()
    try:
        await mon_espace_sante.check_inbound(app, mes, reply)
    except PolicyRejected as exc:
        assert "clos" in exc.fr
    else:
        raise AssertionError("a reply after FIN must be refused")


async def test_drafts_saved_replaced_and_dropped_when_sent(
    app: App, web: WebClient, people: People
) -> None:
    """The webmail's « Enregistrer le brouillon »: a draft needs no recipient, is filed in
    Drafts (201, Location: the draft), replaces the one it names, and goes once sent."""
    auth = await _token(app, DOCTOR, DOCTOR, ["envoi", "lecture"])
    box = await mailboxes.get_mailbox(app, DOCTOR)
    first = await web.http.post(
        f"/api/v1/boites/{box.id}/brouillons",
        json={"objet": "Courrier en cours", "texte": "Début", "cci": [SECRETARY]},
        headers=auth,
    )
    assert first.status_code == 201, first.text
    shown = (await web.http.get(first.headers["location"], headers=auth)).json()
    assert shown["objet"] == "Courrier en cours" and shown["texte"].startswith("Début")
    second = await web.http.post(
        f"/api/v1/boites/{box.id}/brouillons",
        json={"a": [SECRETARY], "objet": "Courrier", "texte": "Fin",
              "brouillon": first.json()["uid"]},
        headers=auth,
    )  # fmt: skip
    assert second.status_code == 201, second.text
    assert (await web.http.get(first.headers["location"], headers=auth)).status_code == 404
    [kept] = await _messages(app, DOCTOR, SpecialUse.DRAFTS)
    assert kept["Subject"] == "Courrier" and kept["Bcc"] is None
    sent = await web.http.post(
        f"/api/v1/boites/{box.id}/envoyer",
        json={"a": [SECRETARY], "objet": "Courrier", "texte": "Fin",
              "brouillon": second.json()["uid"]},
        headers=auth,
    )  # fmt: skip
    assert sent.status_code == 202, sent.text
    assert await _messages(app, DOCTOR, SpecialUse.DRAFTS) == []
    refused = await web.http.post(
        f"/api/v1/boites/{box.id}/brouillons", json={"brouillon": "x"}, headers=auth
    )
    assert refused.status_code == 422
