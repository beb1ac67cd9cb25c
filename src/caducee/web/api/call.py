"""What every ``/api/v1`` handler works with: the call (request, token, account), its
declaration (:class:`Endpoint`: method, path, scope, schemas, status codes) and JSON errors
(``{"error": {"code", "message", "message_en"}}``, French first).

The status codes live in the declaration: :meth:`Endpoint.statuses` is what the OpenAPI
description documents and what :func:`caducee.web.api.auth.wrap` checks every answer against;
:meth:`Call.answer` builds a success with the declared code (RFC 9110 §15.3: 201 Created with
the new resource's ``Location``, 202 Accepted for mail queued, 204 No Content without a
body)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from caducee.domain.model import Account
from caducee.services import mailboxes, mailstore, webmail
from caducee.services.api_tokens import ApiToken
from caducee.store import directory_repo
from caducee.web.core import client_ip, state

PREFIX = "/api/v1"


class ApiError(Exception):
    def __init__(self, status: int, code: str, fr: str, en: str) -> None:
        super().__init__(fr)
        self.status, self.code, self.fr, self.en = status, code, fr, en
        #: More members of the error object (e.g. the sensitive data found in a message).
        self.details: dict[str, Any] = {}


def error_response(
    status: int,
    code: str,
    fr: str,
    en: str,
    headers: dict[str, str] | None = None,
    details: dict[str, Any] | None = None,
) -> Response:
    return JSONResponse(
        {"error": {"code": code, "message": fr, "message_en": en, **(details or {})}},
        status,
        headers=headers,
    )


@dataclass
class Call:
    request: Request
    token: ApiToken
    account: Account
    params: dict[str, Any] = field(default_factory=dict)
    endpoint: Endpoint | None = None

    def answer(self, body: object = None, *, location: str = "") -> Response:
        """The success of this call with its declared status: no body for 204, else JSON;
        ``location`` (under the API's prefix) for a created resource (RFC 9110 §10.2.2)."""
        status = self.endpoint.status if self.endpoint is not None else 200
        headers = {"location": PREFIX + location} if location else None
        if status == 204:
            return Response(status_code=204, headers=headers)
        return JSONResponse(body, status, headers=headers)

    @property
    def app(self) -> Any:
        return state(self.request).app

    async def mailbox(self, *, send: bool = False) -> mailboxes.Access:
        mailbox_id = int_param(self.request.path_params.get("mailbox_id"))
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
            self.app, access, int_param(self.request.path_params.get("folder_id"))
        )

    @property
    def source(self) -> str:
        return client_ip(self.request)


def int_param(value: object) -> int:
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
    status: int = 200  # of the answer that succeeded
    #: Refusals this operation may give beyond those of every operation (see statuses).
    errors: tuple[int, ...] = ()

    def statuses(self) -> dict[int, str]:
        """Every status this operation answers, with its meaning: its success, the
        refusals of every call (token, scope or access, unknown resource, invalid data, rate)
        and of a request with a body or parameters (unreadable, out of range), and its own."""
        codes = [self.status, 401, 403, 404, 422, 429, 503, *self.errors]
        if self.request_body is not None or self.query:
            codes.append(400)
        if self.method != "GET":  # a body over the listener's limit (web.middleware)
            codes += [400, 413]
        return {code: STATUS_TEXT[code] for code in sorted(set(codes))}


#: What each status this API answers means (the OpenAPI description's texts).
STATUS_TEXT = {
    200: "OK",
    201: "Créé (Location : la nouvelle ressource)",
    202: "Accepté : stocké durablement et mis en file d'envoi (Location : le suivi)",
    204: "Fait, sans contenu",
    400: "Requête invalide (JSON illisible, paramètre hors limites)",
    401: "Jeton absent ou invalide",
    403: "Droit insuffisant, accès ou règle d'envoi",
    404: "Introuvable",
    409: "Conflit avec l'état de la ressource",
    413: "Trop volumineux",
    422: "Données invalides",
    429: "Trop de requêtes (Retry-After)",
    503: "Momentanément indisponible (base occupée, antivirus) : réessayer (Retry-After)",
    507: "Boîte pleine (quota)",
}


async def json_body(call: Call) -> dict[str, Any]:
    try:
        body = json.loads(await call.request.body())
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "json", "Corps JSON illisible.", "Unreadable JSON body.") from None
    if not isinstance(body, dict):
        raise ApiError(422, "invalide", "Un objet JSON est attendu.", "A JSON object is expected.")
    return body
