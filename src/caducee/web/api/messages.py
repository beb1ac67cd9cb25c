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
from caducee.domain.composition import MAX_REFERENCES, message_ids
from caducee.domain.dlp_scan import Finding
from caducee.domain.model import Flag
from caducee.domain.xdm_codes import DOCUMENT_KINDS
from caducee.errors import AccessDenied, InvalidInput
from caducee.flows import compose, patient_compose, submission
from caducee.health import pickup, xdm_mail
from caducee.services import mailboxes, trace, webmail
from caducee.services.envelope import MAX_RECIPIENTS, ClientInfo
from caducee.store import directory_repo
from caducee.web.api import pickups
from caducee.web.api.call import PREFIX, ApiError, Call, Endpoint, int_param, json_body
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
    packages = await xdm_mail.received(
        raw, [(a.filename, a.content_type) for a in shown.attachments]
    )
    english = call.request.query_params.get("lang") == "en"
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
            "documents_xdm": [xdm_mail.package_json(p, english) for p in packages],
        }
    )


async def get_xdm_document(call: Call) -> Response:
    access = await call.mailbox()
    of = await call.folder(access)
    _row, raw = await webmail.message(call.app, of, int_param(call.request.path_params["uid"]))
    found = await xdm_mail.document(
        raw,
        int_param(call.request.path_params["part"]),
        int_param(call.request.path_params["number"]),
    )
    if found is None:
        raise ApiError(404, "introuvable", "Document XDM introuvable.", "XDM document not found.")
    document, content = found
    name = document.path.rsplit("/", 1)[-1]
    return download_response(content, name, mail_display.download_type(document.mime_type))


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
    return call.answer()


async def get_trace(call: Call) -> Response:
    """The webmail's « Suivi de l'envoi » of a sent message: each recipient's steps (queued,
    delivered, deferred, bounced, read receipts, patient portal events...) and the pickups it
    left on the patient portal."""
    access = await call.mailbox()
    of = await call.folder(access)
    _row, raw = await webmail.message(call.app, of, int_param(call.request.path_params["uid"]))
    message_id = mail_display.display(raw).message_id
    recipients: dict[str, list[dict[str, str]]] = {}
    for event in await trace.events(call.app, access.mailbox.id, message_id):
        recipients.setdefault(event.recipient, []).append(
            {"etape": event.event, "detail": event.detail, "date": event.ts.isoformat()}
        )
    deposited = await pickup.for_message(call.app, access.mailbox.id, message_id)
    return call.answer(
        {
            "message_id": message_id,
            "destinataires": [{"adresse": a, "etapes": e} for a, e in recipients.items()],
            "portail": [pickups.pickup_json(p) for p in deposited],
        }
    )


def _strings(value: object, name: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ApiError(422, "invalide", f"{name} : liste d'adresses attendue.", f"{name}: list.")
    try:
        return [normalize_address(v) for v in value]
    except InvalidInput as exc:
        raise ApiError(422, "adresse", exc.fr, exc.en) from None


def _about_patient(value: object) -> patient_compose.AboutPatient | None:
    """The optional ``patient`` object of a send: {"id", "xdm", "mes"}."""
    if value is None:
        return None
    if not isinstance(value, dict) or type(value.get("id")) is not int:
        raise ApiError(
            422, "invalide", "patient : objet avec un « id » entier attendu.",
            "patient: an object with an integer 'id' expected.",
        )  # fmt: skip
    kind, mes = value.get("xdm", ""), value.get("mes", False)
    if not isinstance(kind, str) or not isinstance(mes, bool):
        raise ApiError(
            422, "invalide", "patient.xdm : chaîne ; patient.mes : booléen.",
            "patient.xdm: a string; patient.mes: a boolean.",
        )  # fmt: skip
    return patient_compose.AboutPatient(value["id"], kind, mes)


def _flag(body: dict[str, Any], name: str) -> bool:
    value = body.get(name, False)
    if not isinstance(value, bool):
        raise ApiError(422, "invalide", f"{name} : booléen attendu.", f"{name}: a boolean.")
    return value


def _original(value: object, name: str) -> compose.Original | None:
    """``{"dossier": id, "uid": uid}``: a message of the mailbox the new one answers or
    forwards."""
    if value is None:
        return None
    if (
        not isinstance(value, dict)
        or type(value.get("dossier")) is not int
        or type(value.get("uid")) is not int
    ):
        raise ApiError(
            422, "invalide", f"{name} : objet {{« dossier », « uid »}} entiers attendu.",
            f"{name}: an object with integer 'dossier' and 'uid' expected.",
        )  # fmt: skip
    return compose.Original(value["dossier"], value["uid"])


def _message_ids(body: dict[str, Any], name: str, most: int) -> str:
    value = body.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ApiError(422, "invalide", f"{name} : chaîne attendue.", f"{name}: a string.")
    try:
        return message_ids(value, most=most)
    except InvalidInput as exc:
        raise ApiError(422, "invalide", f"{name} : {exc.fr}", f"{name}: {exc.en}") from None


def _dsn(value: object) -> compose.Dsn:
    """``{"notify": [...], "ret": "FULL"|"HDRS", "envid": "…"}`` (RFC 3461), checked by the
    queue's rule when the message is sent."""
    if value is None:
        return compose.Dsn()
    notify = value.get("notify", []) if isinstance(value, dict) else None
    ret = value.get("ret") if isinstance(value, dict) else None
    envid = value.get("envid") if isinstance(value, dict) else None
    if (
        not isinstance(notify, list)
        or not all(isinstance(n, str) for n in notify)
        or not isinstance(ret, str | None)
        or not isinstance(envid, str | None)
    ):
        raise ApiError(
            422, "invalide", "dsn : {« notify » : liste, « ret », « envid » : chaînes} attendu.",
            "dsn: {'notify': a list, 'ret', 'envid': strings} expected.",
        )  # fmt: skip
    return compose.Dsn(tuple(notify), ret, envid)


def _sensitive(found: list[Finding]) -> ApiError:
    error = ApiError(
        409,
        "donnees_sensibles",
        "Données sensibles dans un message qui part vers un patient ou hors de l'espace de "
        "confiance : retirez-les, ou renvoyez avec « verifier_donnees_sensibles » à false.",
        "Sensitive data in a message going to a patient or outside the trust space: remove "
        "it, or send again with 'verifier_donnees_sensibles' false.",
    )
    error.details = {
        "donnees_sensibles": [
            {"type": f.kind, "libelle": f.label_fr, "libelle_en": f.label_en,
             "extrait": f.excerpt, "emplacement": f.where}
            for f in found
        ]
    }  # fmt: skip
    return error


def _draft_uid(body: dict[str, Any]) -> int | None:
    value = body.get("brouillon")
    if value is None:
        return None
    if type(value) is not int or not 0 < value < 2**32:
        raise ApiError(422, "invalide", "brouillon : UID attendu.", "brouillon: a UID expected.")
    return value


async def _written(
    call: Call, access: mailboxes.Access, body: dict[str, Any], *, draft: bool = False
) -> tuple[compose.Outgoing, compose.Original | None]:
    """What the body asks to write, as the webmail's form gives it (a draft may have no
    recipient yet), and the message it answers."""
    to = _strings(body.get("a"), "a")
    cc = _strings(body.get("cc"), "cc")
    bcc = _strings(body.get("cci"), "cci")
    if not (to or cc or bcc or draft):
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
    answers = _original(body.get("reponse_a"), "reponse_a")
    forwards = _original(body.get("transfert"), "transfert")
    in_reply_to = _message_ids(body, "en_reponse_a", 1)
    references = _message_ids(body, "references", MAX_REFERENCES)
    receipt = _flag(body, "accuse_lecture")
    close_exchange = _flag(body, "fin_echange")
    if answers is not None:
        in_reply_to, references = await compose.reply_headers(call.app, access, answers)
    if forwards is not None:
        attachments += await compose.forwarded(call.app, access, forwards)
    outgoing = compose.Outgoing(
        to=tuple(to),
        cc=tuple(cc),
        bcc=tuple(bcc),
        subject=subject,
        text=text,
        in_reply_to=in_reply_to,
        references=references,
        receipt=receipt,
        close_exchange=close_exchange,
        attachments=tuple(attachments),
    )
    return outgoing, answers


async def send_message(call: Call) -> Response:
    """The webmail's « Envoyer », field for field (see docs/api.md): recipients, subject,
    text, attachments (and a forwarded message's), a reply's threading (and the original
    flagged answered), read-receipt request, the end of an exchange with a patient (FIN), a
    message about a patient (INS, XDM, Mon espace santé), RFC 3461 options, the draft it
    replaces, and, on demand, the sensitive-data check the webmail shows before sending.
    202: stored and queued; the Location is the message's trace."""
    access = await call.mailbox(send=True)
    body = await json_body(call)
    outgoing, answers = await _written(call, access, body)
    check_sensitive = _flag(body, "verifier_donnees_sensibles")
    dsn = _dsn(body.get("dsn"))
    about = _about_patient(body.get("patient"))
    draft_uid = _draft_uid(body)
    if about is not None:
        outgoing = await patient_compose.about_patient(call.app, access, outgoing, about)
    composed = await compose.build(call.app, access, outgoing)
    if check_sensitive:
        found = await submission.sensitive_findings(
            call.app, access.mailbox.address, list(composed.recipients), composed.raw
        )
        if found:
            raise _sensitive(found)
    sent = await compose.send(
        call.app,
        access,
        composed,
        ClientInfo(ip=call.source, helo="api", login=call.account.login, protocol="HTTPS"),
        dsn=dsn,
    )
    assert sent is not None
    await compose.drop_draft(call.app, access, draft_uid)
    if answers is not None:
        await compose.mark_answered(call.app, access, answers)
    box, folder = access.mailbox.id, sent.folder.folder.id
    trace_path = f"/boites/{box}/dossiers/{folder}/messages/{sent.uid}/suivi"
    return call.answer(
        {
            "message_id": composed.message_id,
            "envoye": {"dossier": folder, "uid": sent.uid},
            "suivi": PREFIX + trace_path,
        },
        location=trace_path,
    )


async def save_draft(call: Call) -> Response:
    """The webmail's « Enregistrer le brouillon »: the message as written so far (recipients
    optional, attachments kept) in the Drafts folder, where IMAP clients see it too; the draft
    named by « brouillon » is replaced. 201, Location: the draft."""
    access = await call.mailbox()
    body = await json_body(call)
    outgoing, _answers = await _written(call, access, body, draft=True)
    saved = await compose.save_draft(call.app, access, outgoing, replaces=_draft_uid(body))
    folder = saved.folder.folder.id
    return call.answer(
        {"dossier": folder, "uid": saved.uid},
        location=f"/boites/{access.mailbox.id}/dossiers/{folder}/messages/{saved.uid}",
    )


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
_ORIGINAL = {
    "type": "object",
    "required": ["dossier", "uid"],
    "properties": {"dossier": {"type": "integer"}, "uid": {"type": "integer"}},
    "additionalProperties": False,
}
_ADDRESSES = {
    "type": "array",
    "items": {"type": "string", "format": "email"},
    "maxItems": MAX_RECIPIENTS,
}


_SEND_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["a"],
    "properties": {
        "a": _ADDRESSES,
        "cc": _ADDRESSES,
        "cci": _ADDRESSES,
        "objet": {"type": "string", "maxLength": 500},
        "texte": {"type": "string"},
        "reponse_a": {
            **_ORIGINAL,
            "description": "Réponse à ce message de la boîte : En-têtes In-Reply-To "
            "et References tirés de lui, marqué « répondu » une fois la réponse partie",
        },
        "transfert": {
            **_ORIGINAL,
            "description": "Transfert : les pièces jointes de ce message de la boîte partent avec",
        },
        "en_reponse_a": {
            "type": "string",
            "description": "In-Reply-To donné par le logiciel (<partie@domaine>), "
            "sans « reponse_a »",
        },
        "references": {
            "type": "string",
            "description": "References (identifiants <partie@domaine> séparés par des "
            f"espaces, {MAX_REFERENCES} au plus), sans « reponse_a »",
        },
        "accuse_lecture": {
            "type": "boolean",
            "description": "Demander un accusé de lecture (Disposition-Notification-To, RFC 8098)",
        },
        "fin_echange": {
            "type": "boolean",
            "description": "Clore l'échange avec le patient (X-MSS-MES: FIN, objet "
            "préfixé [FIN], Mon espace santé)",
        },
        "verifier_donnees_sensibles": {
            "type": "boolean",
            "description": "Comme le webmail avant l'envoi : 409 « donnees_sensibles » "
            "avec ce qui a été trouvé si le message part vers un patient ou hors de "
            "l'espace de confiance et contient des données sensibles ; rien n'est envoyé",
        },
        "dsn": {
            "type": "object",
            "description": "Options des avis de remise (RFC 3461) : notify = NEVER seul, "
            "ou SUCCESS, FAILURE, DELAY (par défaut FAILURE, DELAY) ; ret = FULL ou "
            "HDRS ; envid : référence du logiciel, rendue dans les avis",
            "properties": {
                "notify": {
                    "type": "array",
                    "items": {
                        "type": "string",
                        "enum": ["NEVER", "SUCCESS", "FAILURE", "DELAY"],
                    },
                },
                "ret": {"type": "string", "enum": ["FULL", "HDRS"]},
                "envid": {"type": "string", "maxLength": 100},
            },
            "additionalProperties": False,
        },
        "patient": {
            "type": "object",
            "description": "Message concernant un patient du registre (INS qualifié) : "
            "X-MSS-INS, destinataires de l'espace de confiance seulement ; « xdm » : "
            "type de document, les pièces jointes partent en paquet IHE_XDM.ZIP ; "
            "« mes » : aussi vers sa messagerie Mon espace santé",
            "required": ["id"],
            "properties": {
                "id": {"type": "integer"},
                "xdm": {"type": "string", "enum": ["", *DOCUMENT_KINDS]},
                "mes": {"type": "boolean"},
            },
            "additionalProperties": False,
        },
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
}
_SEND_BODY["properties"]["brouillon"] = {
    "type": "integer",
    "minimum": 1,
    "description": "UID du brouillon (dossier Brouillons) que ce message remplace : supprimé "
    "une fois le message parti",
}
#: A draft: what a message holds, recipients optional (no patient, DSN or check: they apply
#: when it is sent).
_DRAFT_BODY: dict[str, Any] = {
    "type": "object",
    "properties": {
        name: value
        for name, value in _SEND_BODY["properties"].items()
        if name not in ("patient", "dsn", "verifier_donnees_sensibles")
    },
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
        "Un message : en-têtes, texte, liste des pièces jointes, documents IHE XDM lus et "
        "vérifiés (documents_xdm)",
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
        "GET",
        "/boites/{mailbox_id}/dossiers/{folder_id}/messages/{uid}/xdm/{part}/{number}",
        get_xdm_document,
        "lecture",
        "Un document d'un paquet IHE XDM reçu (octets ; « number » à partir de 1, voir "
        "documents_xdm du message)",
        {"type": "string", "format": "binary"},
        raw_response="application/octet-stream",
    ),
    Endpoint(
        "GET",
        "/boites/{mailbox_id}/dossiers/{folder_id}/messages/{uid}/suivi",
        get_trace,
        "lecture",
        "Suivi d'un message envoyé : étapes par destinataire (remis, différé, rejeté, "
        "accusés de lecture, portail patient) et dépôts sur le portail",
        {
            "type": "object",
            "properties": {
                "message_id": {"type": "string"},
                "destinataires": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "adresse": {"type": "string"},
                            "etapes": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "properties": {
                                        "etape": {"type": "string"},
                                        "detail": {"type": "string"},
                                        "date": {"type": "string", "format": "date-time"},
                                    },
                                },
                            },
                        },
                    },
                },
                "portail": {"type": "array", "items": pickups.PICKUP_JSON},
            },
        },
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
        status=204,
        errors=(409,),
    ),
    Endpoint(
        "POST",
        "/boites/{mailbox_id}/envoyer",
        send_message,
        "envoi",
        "Envoyer un message (même chaîne que l'envoi SMTP et le webmail) ; 202 une fois "
        "stocké durablement et mis en file, Location : son suivi",
        {
            "type": "object",
            "properties": {
                "message_id": {"type": "string"},
                "envoye": {
                    "type": "object",
                    "properties": {"dossier": {"type": "integer"}, "uid": {"type": "integer"}},
                },
                "suivi": {"type": "string"},
            },
        },
        status=202,
        errors=(409, 507),
        request_body=_SEND_BODY,
    ),
    Endpoint(
        "POST",
        "/boites/{mailbox_id}/brouillons",
        save_draft,
        "envoi",
        "Enregistrer un brouillon dans le dossier Brouillons (destinataires facultatifs ; "
        "« brouillon » : l'UID de celui qu'il remplace) ; 201, Location : le brouillon",
        {
            "type": "object",
            "properties": {"dossier": {"type": "integer"}, "uid": {"type": "integer"}},
        },
        status=201,
        errors=(507,),
        request_body=_DRAFT_BODY,
    ),
)
