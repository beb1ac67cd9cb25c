"""``/api/v1/boites``: a token's mailboxes, their folders and messages (read, mark, move,
attachments) and sending, through the same services as the webmail: every mailbox is opened
with ``open_mailbox`` on each call, a message is written and sent by
:mod:`caducee.flows.compose` (the webmail's compose, the submission pipeline, a Sent copy)."""

from __future__ import annotations

import base64
import binascii
from datetime import UTC
from typing import Any

from starlette.responses import JSONResponse, Response

from caducee.domain import mail_display
from caducee.domain.addresses import normalize_address
from caducee.domain.model import Flag
from caducee.errors import AccessDenied, InvalidInput
from caducee.flows import compose
from caducee.services import mailboxes, webmail
from caducee.services.envelope import MAX_RECIPIENTS, ClientInfo
from caducee.store import directory_repo
from caducee.web.api.call import ApiError, Call, Endpoint, int_param, json_body
from caducee.web.core import download_response


def _message_summary(item: webmail.Item) -> dict[str, Any]:
    return {
        "uid": item.uid,
        "objet": item.subject,
        "expediteur": item.sender,
        "destinataires": item.to,
        "date": item.internal_date.astimezone(UTC).isoformat(),
        "taille": item.size,
        "lu": item.seen,
        "suivi": item.flagged,
    }


async def list_mailboxes(call: Call) -> Response:
    out = []
    for mailbox_id in call.token.mailbox_ids:
        async with call.app.db.read() as conn:
            box = await directory_repo.mailbox_by_id(conn, mailbox_id)
        if box is None:
            continue
        try:
            access = await mailboxes.open_mailbox(
                call.app, call.account.login, box.address, source=call.source
            )
        except AccessDenied:
            continue  # the delegation was revoked: the token no longer reaches it
        out.append({"id": box.id, "adresse": box.address, "envoi": access.can_send})
    return JSONResponse(out)


async def list_folders(call: Call) -> Response:
    access = await call.mailbox()
    folders = await webmail.folders(call.app, access.mailbox)
    return JSONResponse(
        [
            {
                "id": f.id,
                "nom": f.name,
                "usage": f.special_use,
                "messages": counts.messages,
                "non_lus": counts.unseen,
            }
            for f, counts in folders
        ]
    )


async def list_messages(call: Call) -> Response:
    access = await call.mailbox()
    of = await call.folder(access)
    query = call.request.query_params
    try:
        page = int(query.get("page", "1"))
    except ValueError:
        raise ApiError(
            422, "invalide", "page : entier attendu.", "page: integer expected."
        ) from None
    if not 1 <= page <= 100_000:
        raise ApiError(422, "invalide", "page : 1 à 100000.", "page: 1 to 100000.")
    listing = await webmail.list_messages(call.app, of, page=page)
    items = listing.items
    if query.get("non_lus") in ("1", "true", "oui"):
        items = [i for i in items if not i.seen]
    return JSONResponse(
        {
            "page": listing.page,
            "pages": listing.pages,
            "total": listing.total,
            "messages": [_message_summary(i) for i in items],
        }
    )


async def get_message(call: Call) -> Response:
    access = await call.mailbox()
    of = await call.folder(access)
    row, raw = await webmail.message(call.app, of, int_param(call.request.path_params["uid"]))
    shown = mail_display.display(raw)
    return JSONResponse(
        {
            "uid": row.uid,
            "message_id": shown.message_id,
            "objet": shown.subject,
            "expediteur": shown.sender,
            "destinataires": shown.to,
            "copie": shown.cc,
            "date": row.internal_date.astimezone(UTC).isoformat(),
            "texte": shown.text,
            "lu": bool(row.flags & Flag.SEEN),
            "suivi": bool(row.flags & Flag.FLAGGED),
            "pieces_jointes": [
                {"index": a.index, "nom": a.filename, "type": a.content_type, "taille": a.size}
                for a in shown.attachments
            ],
        }
    )


async def get_attachment(call: Call) -> Response:
    access = await call.mailbox()
    of = await call.folder(access)
    _row, raw = await webmail.message(call.app, of, int_param(call.request.path_params["uid"]))
    index = int_param(call.request.path_params["part"])
    shown = mail_display.display(raw)
    meta = next((a for a in shown.attachments if a.index == index), None)
    found = mail_display.part_bytes(raw, index) if meta is not None else None
    if meta is None or found is None:
        raise ApiError(404, "introuvable", "Pièce jointe introuvable.", "Attachment not found.")
    return download_response(found[1], meta.filename, mail_display.download_type(meta.content_type))


async def mark_message(call: Call) -> Response:
    access = await call.mailbox()
    of = await call.folder(access)
    body = await json_body(call)
    rows = await webmail.rows_by_uid(call.app, of, {int_param(call.request.path_params["uid"])})
    if not rows:
        raise ApiError(404, "introuvable", "Message introuvable.", "Message not found.")
    ids = [rows[0].id]
    for name, flag in (("lu", Flag.SEEN), ("suivi", Flag.FLAGGED)):
        if name in body:
            if not isinstance(body[name], bool):
                raise ApiError(422, "invalide", f"{name} : booléen attendu.", f"{name}: boolean.")
            await webmail.set_flags(call.app, of, ids, flag, body[name])
    if "dossier" in body:
        if not isinstance(body["dossier"], int) or isinstance(body["dossier"], bool):
            raise ApiError(422, "invalide", "dossier : entier attendu.", "dossier: integer.")
        target = await webmail.open_folder(call.app, access, body["dossier"])
        await webmail.move(call.app, of, ids, target)
    return JSONResponse({"ok": True})


async def delete_message(call: Call) -> Response:
    """As the webmail's « Supprimer »: to the Trash; from the Trash, for good. A
    télétransmission lot or return under its retention period is refused with 409
    (``conservation``), the reason saying until when."""
    access = await call.mailbox()
    of = await call.folder(access)
    rows = await webmail.rows_by_uid(call.app, of, {int_param(call.request.path_params["uid"])})
    if not rows:
        raise ApiError(404, "introuvable", "Message introuvable.", "Message not found.")
    await webmail.delete(call.app, access, of, [rows[0].id])
    return JSONResponse({"ok": True})


def _strings(value: object, name: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ApiError(422, "invalide", f"{name} : liste d'adresses attendue.", f"{name}: list.")
    try:
        return [normalize_address(v) for v in value]
    except InvalidInput as exc:
        raise ApiError(422, "adresse", exc.fr, exc.en) from None


async def send_message(call: Call) -> Response:
    access = await call.mailbox(send=True)
    body = await json_body(call)
    to = _strings(body.get("a"), "a")
    cc = _strings(body.get("cc"), "cc")
    bcc = _strings(body.get("cci"), "cci")
    if not (to or cc or bcc):
        raise ApiError(422, "destinataires", "Aucun destinataire.", "No recipient.")
    subject, text = body.get("objet", ""), body.get("texte", "")
    if not isinstance(subject, str) or not isinstance(text, str) or len(subject) > 500:
        raise ApiError(422, "invalide", "objet / texte : chaînes attendues.", "Strings expected.")
    items = body.get("pieces_jointes") or []
    if not isinstance(items, list):
        raise ApiError(422, "invalide", "pieces_jointes : liste attendue.", "A list expected.")
    attachments = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("contenu"), str):
            raise ApiError(422, "invalide", "Pièce jointe mal formée.", "Malformed attachment.")
        try:
            data = base64.b64decode(item["contenu"], validate=True)
        except (binascii.Error, ValueError):
            raise ApiError(422, "base64", "Contenu base64 invalide.", "Invalid base64.") from None
        content_type = str(item.get("type") or "application/octet-stream")
        attachments.append(compose.Attachment(str(item.get("nom") or ""), content_type, data))
    outgoing = compose.Outgoing(
        to=tuple(to),
        cc=tuple(cc),
        bcc=tuple(bcc),
        subject=subject,
        text=text,
        attachments=tuple(attachments),
    )
    composed = await compose.build(call.app, access, outgoing)
    await compose.send(
        call.app,
        access,
        composed,
        ClientInfo(ip=call.source, helo="api", login=call.account.login, protocol="HTTPS"),
    )
    return JSONResponse({"message_id": composed.message_id}, status_code=201)


_SUMMARY = {
    "type": "object",
    "properties": {
        "uid": {"type": "integer"},
        "objet": {"type": "string"},
        "expediteur": {"type": "string"},
        "destinataires": {"type": "string"},
        "date": {"type": "string", "format": "date-time"},
        "taille": {"type": "integer"},
        "lu": {"type": "boolean"},
        "suivi": {"type": "boolean"},
    },
}
_ADDRESSES = {
    "type": "array",
    "items": {"type": "string", "format": "email"},
    "maxItems": MAX_RECIPIENTS,
}


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        "GET",
        "/boites",
        list_mailboxes,
        None,
        "Boîtes que le jeton peut utiliser",
        {"type": "array", "items": {"type": "object"}},
    ),
    Endpoint(
        "GET",
        "/boites/{mailbox_id}/dossiers",
        list_folders,
        "lecture",
        "Dossiers d'une boîte, avec leurs compteurs",
        {"type": "array", "items": {"type": "object"}},
    ),
    Endpoint(
        "GET",
        "/boites/{mailbox_id}/dossiers/{folder_id}/messages",
        list_messages,
        "lecture",
        "Messages d'un dossier (50 par page, les plus récents d'abord)",
        {"type": "object", "properties": {"messages": {"type": "array", "items": _SUMMARY}}},
        query=(
            ("page", {"type": "integer", "minimum": 1, "maximum": 100000}),
            ("non_lus", {"type": "string", "enum": ["0", "1"]}),
        ),
    ),
    Endpoint(
        "GET",
        "/boites/{mailbox_id}/dossiers/{folder_id}/messages/{uid}",
        get_message,
        "lecture",
        "Un message : en-têtes, texte, liste des pièces jointes",
        {"type": "object"},
    ),
    Endpoint(
        "GET",
        "/boites/{mailbox_id}/dossiers/{folder_id}/messages/{uid}/pieces/{part}",
        get_attachment,
        "lecture",
        "Une pièce jointe (octets)",
        {"type": "string", "format": "binary"},
        raw_response="application/octet-stream",
    ),
    Endpoint(
        "POST",
        "/boites/{mailbox_id}/dossiers/{folder_id}/messages/{uid}/marquer",
        mark_message,
        "marquage",
        "Marquer lu / suivi, ou déplacer vers un dossier",
        {"type": "object"},
        request_body={
            "type": "object",
            "properties": {
                "lu": {"type": "boolean"},
                "suivi": {"type": "boolean"},
                "dossier": {"type": "integer"},
            },
            "additionalProperties": False,
        },
    ),
    Endpoint(
        "DELETE",
        "/boites/{mailbox_id}/dossiers/{folder_id}/messages/{uid}",
        delete_message,
        "marquage",
        "Supprimer un message : vers la corbeille ; depuis la corbeille, définitivement "
        "(409 si la conservation obligatoire le garde)",
        {"type": "object"},
    ),
    Endpoint(
        "POST",
        "/boites/{mailbox_id}/envoyer",
        send_message,
        "envoi",
        "Envoyer un message (même chaîne que l'envoi SMTP) ; 201 une fois stocké durablement",
        {"type": "object", "properties": {"message_id": {"type": "string"}}},
        status=201,
        request_body={
            "type": "object",
            "required": ["a"],
            "properties": {
                "a": _ADDRESSES,
                "cc": _ADDRESSES,
                "cci": _ADDRESSES,
                "objet": {"type": "string", "maxLength": 500},
                "texte": {"type": "string"},
                "pieces_jointes": {
                    "type": "array",
                    "maxItems": 20,
                    "items": {
                        "type": "object",
                        "required": ["nom", "contenu"],
                        "properties": {
                            "nom": {"type": "string"},
                            "type": {"type": "string"},
                            "contenu": {"type": "string", "contentEncoding": "base64"},
                        },
                    },
                },
            },
        },
    ),
)
