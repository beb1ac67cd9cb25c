"""What every ``/api/v1`` handler works with: the call (request, token, account), its
declaration (:class:`Endpoint`: method, path, scope, schemas) and JSON errors
(``{"error": {"code", "message", "message_en"}}``, French first)."""

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


def error_response(
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


async def json_body(call: Call) -> dict[str, Any]:
    try:
        body = json.loads(await call.request.body())
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "json", "Corps JSON illisible.", "Unreadable JSON body.") from None
    if not isinstance(body, dict):
        raise ApiError(422, "invalide", "Un objet JSON est attendu.", "A JSON object is expected.")
    return body
