"""REST API for practice software (LPS), ``/api/v1`` (JSON over HTTPS).

Authentication: ``Authorization: Bearer cdc_…`` (see :mod:`caducee.services.api_tokens`).
Every route is declared once in :data:`ENDPOINTS` with its scope and schemas; the OpenAPI 3.1
description (``/api/v1/openapi.json``) is generated from that list, so it cannot drift. Errors
are ``{"error": {"code", "message", "message_en"}}``. Calls are rate-limited per token (and per
address for bad tokens) and audited (``api.call``: route, token, result; never content)."""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from caducee.app import App
from caducee.domain import mail_display
from caducee.domain.addresses import normalize_address
from caducee.domain.model import Account, Flag, SpecialUse
from caducee.errors import (
    AccessDenied,
    CaduceeError,
    InvalidInput,
    MessageTooLarge,
    NotFound,
    PolicyRejected,
    QuotaExceeded,
    SenderNotAllowed,
)
from caducee.flows import submission
from caducee.health import patients
from caducee.services import api_tokens, mailboxes, mailstore, rate_limits, webmail
from caducee.services.api_tokens import ApiToken
from caducee.services.audit import AuditEvent, record
from caducee.services.envelope import MAX_RECIPIENTS, ClientInfo, Envelope, EnvelopeRecipient
from caducee.services.rate_limits import RateLimiter
from caducee.store import directory_repo
from caducee.web import api_patients
from caducee.web.core import client_ip, download_response, state

log = logging.getLogger(__name__)
PREFIX = "/api/v1"
CALLS_PER_MINUTE = 600
BAD_TOKENS_PER_MINUTE = 20


class ApiError(Exception):
    def __init__(self, status: int, code: str, fr: str, en: str) -> None:
        super().__init__(fr)
        self.status, self.code, self.fr, self.en = status, code, fr, en


def _error(
    status: int, code: str, fr: str, en: str, headers: dict[str, str] | None = None
) -> Response:
    return JSONResponse(
        {"error": {"code": code, "message": fr, "message_en": en}}, status, headers=headers
    )


@dataclass
class Call:
    request: Request
    token: ApiToken
    account: Account
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def app(self) -> Any:
        return state(self.request).app

    async def mailbox(self, *, send: bool = False) -> mailboxes.Access:
        mailbox_id = _int(self.request.path_params.get("mailbox_id"))
        if mailbox_id not in self.token.mailbox_ids:
            raise ApiError(404, "introuvable", "Boîte introuvable.", "Mailbox not found.")
        async with self.app.db.read() as conn:
            box = await directory_repo.mailbox_by_id(conn, mailbox_id)
        if box is None:
            raise ApiError(404, "introuvable", "Boîte introuvable.", "Mailbox not found.")
        return await mailboxes.open_mailbox(
            self.app, self.account.login, box.address, need_send=send, source=self.source
        )

    async def folder(self, access: mailboxes.Access) -> mailstore.OpenFolder:
        return await webmail.open_folder(
            self.app, access, _int(self.request.path_params.get("folder_id"))
        )

    @property
    def source(self) -> str:
        return client_ip(self.request)


def _int(value: object) -> int:
    try:
        number = int(str(value))
    except ValueError:
        raise ApiError(404, "introuvable", "Ressource introuvable.", "Not found.") from None
    if number < 0 or number > 2**62:
        raise ApiError(404, "introuvable", "Ressource introuvable.", "Not found.")
    return number


Handler = Callable[[Call], Awaitable[Response]]


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # under PREFIX, OpenAPI style: {mailbox_id}
    handler: Handler
    scope: str | None  # None: any valid token
    summary: str
    response: dict[str, Any]
    request_body: dict[str, Any] | None = None
    query: tuple[tuple[str, dict[str, Any]], ...] = ()
    raw_response: str | None = None  # a non-JSON media type (attachments)


# ----- handlers ------------------------------------------------------------------------------


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
    row, raw = await webmail.message(call.app, of, _int(call.request.path_params["uid"]))
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
    _row, raw = await webmail.message(call.app, of, _int(call.request.path_params["uid"]))
    index = _int(call.request.path_params["part"])
    shown = mail_display.display(raw)
    meta = next((a for a in shown.attachments if a.index == index), None)
    found = mail_display.part_bytes(raw, index) if meta is not None else None
    if meta is None or found is None:
        raise ApiError(404, "introuvable", "Pièce jointe introuvable.", "Attachment not found.")
    return download_response(found[1], meta.filename, mail_display.download_type(meta.content_type))


async def _json_body(call: Call) -> dict[str, Any]:
    try:
        body = json.loads(await call.request.body())
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "json", "Corps JSON illisible.", "Unreadable JSON body.") from None
    if not isinstance(body, dict):
        raise ApiError(422, "invalide", "Un objet JSON est attendu.", "A JSON object is expected.")
    return body


async def mark_message(call: Call) -> Response:
    access = await call.mailbox()
    of = await call.folder(access)
    body = await _json_body(call)
    rows = await webmail.rows_by_uid(call.app, of, {_int(call.request.path_params["uid"])})
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
    body = await _json_body(call)
    to = _strings(body.get("a"), "a")
    cc = _strings(body.get("cc"), "cc")
    bcc = _strings(body.get("cci"), "cci")
    recipients = list(dict.fromkeys(to + cc + bcc))
    if not recipients:
        raise ApiError(422, "destinataires", "Aucun destinataire.", "No recipient.")
    subject, text = body.get("objet", ""), body.get("texte", "")
    if not isinstance(subject, str) or not isinstance(text, str) or len(subject) > 500:
        raise ApiError(422, "invalide", "objet / texte : chaînes attendues.", "Strings expected.")
    address = access.mailbox.address
    domain = address.partition("@")[2]
    message = EmailMessage()
    message["From"] = address
    if to:
        message["To"] = ", ".join(to)
    if cc:
        message["Cc"] = ", ".join(cc)
    message["Subject"] = subject
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = make_msgid(domain=domain)
    message.set_content(text or "\n")
    attachments = body.get("pieces_jointes") or []
    if not isinstance(attachments, list) or len(attachments) > 20:
        raise ApiError(422, "invalide", "pieces_jointes : 20 au plus.", "At most 20 attachments.")
    for item in attachments:
        if not isinstance(item, dict) or not isinstance(item.get("contenu"), str):
            raise ApiError(422, "invalide", "Pièce jointe mal formée.", "Malformed attachment.")
        try:
            data = base64.b64decode(item["contenu"], validate=True)
        except (binascii.Error, ValueError):
            raise ApiError(422, "base64", "Contenu base64 invalide.", "Invalid base64.") from None
        content_type = str(item.get("type") or "application/octet-stream")
        maintype, _, subtype = content_type.partition("/")
        if not maintype.isascii() or not subtype or "/" in subtype:
            maintype, subtype = "application", "octet-stream"
        message.add_attachment(
            data,
            maintype=maintype,
            subtype=subtype,
            filename=str(item.get("nom") or "piece-jointe")[:150],
        )
    raw = message.as_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    await submission.submit(
        call.app,
        call.account.login,
        Envelope(address, tuple(EnvelopeRecipient(r) for r in recipients)),
        raw,
        ClientInfo(ip=call.source, helo="api", login=call.account.login, protocol="HTTPS"),
    )
    sent = await webmail.special_folder(call.app, access, SpecialUse.SENT)
    await mailstore.append(call.app, sent, [mailstore.Appended(raw, flags=Flag.SEEN)])
    return JSONResponse({"message_id": str(message["Message-ID"])}, status_code=201)


# ----- declaration and OpenAPI ---------------------------------------------------------------

_ERROR = {"$ref": "#/components/schemas/Erreur"}
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


async def list_patients(call: Call) -> Response:
    found = await patients.list_patients(
        call.app, call.account.practice_id, call.request.query_params.get("q", "")[:100]
    )
    return api_patients.json_response([api_patients.patient_json(p) for p in found])


def _patient_id(call: Call) -> int:
    return _int(call.request.path_params.get("patient_id"))


async def get_patient(call: Call) -> Response:
    found = await patients.get_patient(call.app, call.account.practice_id, _patient_id(call))
    return api_patients.json_response(api_patients.patient_json(found))


async def create_patient(call: Call) -> Response:
    created = await patients.add_patient(
        call.app,
        call.account.practice_id,
        api_patients.patient_data(await _json_body(call)),
        actor=call.account.login,
        source=call.source,
    )
    return api_patients.json_response(api_patients.patient_json(created), 201)


async def update_patient(call: Call) -> Response:
    changed = await patients.update_patient(
        call.app,
        call.account.practice_id,
        _patient_id(call),
        api_patients.patient_data(await _json_body(call)),
        actor=call.account.login,
        source=call.source,
    )
    return api_patients.json_response(api_patients.patient_json(changed))


async def delete_patient(call: Call) -> Response:
    await patients.delete_patient(
        call.app, call.account.practice_id, _patient_id(call), actor=call.account.login,
        source=call.source,
    )  # fmt: skip
    return Response(status_code=204)


async def verify_patient(call: Call) -> Response:
    await patients.send_verification(
        call.app, call.account.practice_id, _patient_id(call), actor=call.account.login,
        source=call.source,
    )  # fmt: skip
    return api_patients.json_response({"verification": "pending"}, 202)


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
        "POST",
        "/boites/{mailbox_id}/envoyer",
        send_message,
        "envoi",
        "Envoyer un message (même chaîne que l'envoi SMTP) ; 201 une fois stocké durablement",
        {"type": "object", "properties": {"message_id": {"type": "string"}}},
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
    Endpoint(
        "GET",
        "/patients",
        list_patients,
        "patients",
        "Patients du cabinet (recherche : q)",
        {"type": "array", "items": api_patients.PATIENT_JSON},
        query=(("q", {"type": "string", "maxLength": 100}),),
    ),
    Endpoint(
        "POST",
        "/patients",
        create_patient,
        "patients",
        "Ajouter un patient au registre",
        api_patients.PATIENT_JSON,
        request_body=api_patients.PATIENT_BODY,
    ),
    Endpoint(
        "GET",
        "/patients/{patient_id}",
        get_patient,
        "patients",
        "Une fiche patient",
        api_patients.PATIENT_JSON,
    ),
    Endpoint(
        "POST",
        "/patients/{patient_id}",
        update_patient,
        "patients",
        "Modifier une fiche (une nouvelle adresse est à vérifier)",
        api_patients.PATIENT_JSON,
        request_body=api_patients.PATIENT_BODY,
    ),
    Endpoint(
        "DELETE",
        "/patients/{patient_id}",
        delete_patient,
        "patients",
        "Retirer un patient du registre",
        {"type": "object"},
    ),
    Endpoint(
        "POST",
        "/patients/{patient_id}/verification",
        verify_patient,
        "patients",
        "Envoyer au patient le lien de vérification de son adresse",
        {"type": "object"},
    ),
)


def openapi() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for endpoint in ENDPOINTS:
        parameters: list[dict[str, Any]] = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "integer"}}
            for name in ("mailbox_id", "folder_id", "uid", "part", "patient_id")
            if "{" + name + "}" in endpoint.path
        ]
        parameters += [
            {"name": name, "in": "query", "required": False, "schema": schema}
            for name, schema in endpoint.query
        ]
        media = endpoint.raw_response or "application/json"
        operation: dict[str, Any] = {
            "summary": endpoint.summary,
            "operationId": endpoint.handler.__name__,
            "parameters": parameters,
            "responses": {
                "201" if endpoint.handler is send_message else "200": {
                    "description": "OK",
                    "content": {media: {"schema": endpoint.response}},
                },
                **{
                    str(code): {
                        "description": text,
                        "content": {"application/json": {"schema": _ERROR}},
                    }
                    for code, text in (
                        (400, "Requête invalide"),
                        (401, "Jeton absent ou invalide"),
                        (403, "Droit insuffisant"),
                        (404, "Introuvable"),
                        (413, "Trop volumineux"),
                        (422, "Données invalides"),
                        (429, "Trop de requêtes"),
                    )
                },
            },
        }
        if endpoint.scope:
            operation["description"] = f"Droit du jeton : {endpoint.scope}."
        if endpoint.request_body is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": endpoint.request_body}},
            }
        paths.setdefault(endpoint.path, {})[endpoint.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Caducée — API des logiciels métier",
            "description": (
                "Messagerie sécurisée de santé : lecture, marquage, envoi ; registre des patients."
            ),
        },
        "servers": [{"url": PREFIX}],
        "security": [{"jeton": []}],
        "components": {
            "securitySchemes": {"jeton": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Erreur": {
                    "type": "object",
                    "properties": {
                        "error": {
                            "type": "object",
                            "properties": {
                                "code": {"type": "string"},
                                "message": {"type": "string"},
                                "message_en": {"type": "string"},
                            },
                        }
                    },
                }
            },
        },
        "paths": paths,
    }


# ----- the wrapper: token, scope, rate limit, errors, audit ----------------------------------


def _limiter(app: App, name: str, per_minute: int) -> RateLimiter:
    """The API's limiter ``name``, held by the node's app (``services.rate_limits``)."""
    return rate_limits.limiter(app, f"api.{name}", per_minute)


def _wrap(endpoint: Endpoint) -> Callable[[Request], Awaitable[Response]]:
    async def route(request: Request) -> Response:
        app = state(request).app
        ip = client_ip(request)
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        try:
            if scheme.lower() != "bearer" or not token:
                raise api_tokens.invalid_token()
            found, account = await api_tokens.authenticate(app, token.strip())
        except AccessDenied as exc:
            bad = _limiter(app, "bad", BAD_TOKENS_PER_MINUTE)
            if not bad.allow(ip):
                return _error(429, "limite", "Trop de tentatives.", "Too many attempts.",
                              {"retry-after": str(bad.retry_after(ip))})  # fmt: skip
            return _error(
                401, "jeton", exc.fr, exc.en, {"www-authenticate": 'Bearer realm="caducee"'}
            )
        calls = _limiter(app, "calls", CALLS_PER_MINUTE)
        if not calls.allow(str(found.id)):
            return _error(
                429,
                "limite",
                "Trop de requêtes pour ce jeton : ralentissez.",
                "Too many requests for this token: slow down.",
                {"retry-after": str(calls.retry_after(str(found.id)))},
            )
        if endpoint.scope is not None and endpoint.scope not in found.scopes:
            return _error(
                403,
                "droit",
                f"Ce jeton n'a pas le droit « {endpoint.scope} ».",
                f"This token lacks the '{endpoint.scope}' scope.",
            )
        result = "ok"
        try:
            response = await endpoint.handler(Call(request, found, account))
        except ApiError as exc:
            result, response = "failed", _error(exc.status, exc.code, exc.fr, exc.en)
        except (AccessDenied, SenderNotAllowed, PolicyRejected) as exc:
            result, response = "denied", _error(403, "refuse", exc.fr, exc.en)
        except NotFound as exc:
            result, response = "failed", _error(404, "introuvable", exc.fr, exc.en)
        except MessageTooLarge as exc:
            result, response = "failed", _error(413, "taille", exc.fr, exc.en)
        except QuotaExceeded as exc:
            result, response = "failed", _error(507, "quota", exc.fr, exc.en)
        except CaduceeError as exc:
            result, response = "failed", _error(422, "invalide", exc.fr, exc.en)
        await record(
            app.db,
            AuditEvent(
                actor=account.login,
                action="api.call",
                target=endpoint.path,
                source=ip,
                result=result,
                details={
                    "method": endpoint.method,
                    "token": found.id,
                    "status": response.status_code,
                },
            ),
        )
        return response

    route.__name__ = endpoint.handler.__name__
    return route


async def openapi_json(request: Request) -> Response:
    return JSONResponse(openapi())


routes = [
    Route(PREFIX + "/openapi.json", openapi_json, methods=["GET"]),
    *(
        Route(PREFIX + endpoint.path, _wrap(endpoint), methods=[endpoint.method])
        for endpoint in ENDPOINTS
    ),
]
