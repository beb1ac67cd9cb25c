"""REST API for practice software (LPS), ``/api/v1`` (JSON over HTTPS). Authentication:
``Authorization: Bearer cdc_…`` (see :mod:`caducee.services.api_tokens`). Every route is
declared once in :data:`ENDPOINTS` with its scope, schemas and status codes (``messages``:
mailboxes, folders, messages, sending, a sent message's trace; ``pickups``: the patient portal's
pickups of a mailbox; ``patients``: the registry; ``charter``: the practice's charter; ``lots``:
télétransmission; ``absence``: the token's account's absence; ``annuaire``: the national
directory, any valid token; ``admin``: the practice's accounts and mailboxes, issue 19); the
OpenAPI 3.1 description (``/api/v1/openapi.json``) is generated here from that list, so it
cannot drift; ``auth`` wraps every route (token, scope, rate limit, errors, audit); ``call``
holds what handlers share. Errors are ``{"error": {"code", "message", "message_en"}}``.
Calls are rate-limited per token (and per address for bad tokens) and audited (``api.call``:
route, token, result; never content)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from caducee.web.api import (
    absence,
    admin,
    annuaire,
    charter,
    lots,
    messages,
    patients,
    pickups,
)
from caducee.web.api.auth import BAD_TOKENS_PER_MINUTE, CALLS_PER_MINUTE, wrap
from caducee.web.api.call import PREFIX, ApiError, Call, Endpoint

__all__ = [
    "BAD_TOKENS_PER_MINUTE",
    "CALLS_PER_MINUTE",
    "ENDPOINTS",
    "PREFIX",
    "ApiError",
    "Call",
    "Endpoint",
    "openapi",
    "routes",
]

ENDPOINTS: tuple[Endpoint, ...] = (
    *messages.ENDPOINTS,
    *pickups.ENDPOINTS,
    *patients.ENDPOINTS,
    *charter.ENDPOINTS,
    *absence.ENDPOINTS,
    *lots.ENDPOINTS,
    *annuaire.ENDPOINTS,
    *admin.ENDPOINTS,
)
_ERROR = {"$ref": "#/components/schemas/Erreur"}
_LOCATION = {
    "description": "Chemin de la ressource créée ou du suivi",
    "schema": {"type": "string"},
}


def openapi() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for endpoint in ENDPOINTS:
        parameters: list[dict[str, Any]] = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "integer"}}
            for name in (
                "mailbox_id",
                "folder_id",
                "uid",
                "part",
                "number",
                "patient_id",
                "pickup_id",
                "account_id",
            )
            if "{" + name + "}" in endpoint.path
        ]
        parameters += [
            {"name": name, "in": "query", "required": False, "schema": schema}
            for name, schema in endpoint.query
        ]
        media = endpoint.raw_response or "application/json"
        responses: dict[str, Any] = {}
        for code, text in endpoint.statuses().items():
            if code == endpoint.status:
                answer: dict[str, Any] = {"description": text}
                if code != 204:
                    answer["content"] = {media: {"schema": endpoint.response}}
                if code in (201, 202):  # RFC 9110 §10.2.2: the resource, or its trace
                    answer["headers"] = {"Location": _LOCATION}
                responses[str(code)] = answer
            else:
                responses[str(code)] = {
                    "description": text,
                    "content": {"application/json": {"schema": _ERROR}},
                }
        operation: dict[str, Any] = {
            "summary": endpoint.summary,
            "operationId": endpoint.handler.__name__,
            "parameters": parameters,
            "responses": responses,
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
                "Messagerie sécurisée de santé : lecture, marquage, envoi ; registre des "
                "patients ; charte du cabinet ; lots de télétransmission."
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
                            "required": ["code", "message", "message_en"],
                        }
                    },
                    "required": ["error"],
                }
            },
        },
        "paths": paths,
    }


async def openapi_json(request: Request) -> Response:
    return JSONResponse(openapi())


routes = [
    Route(PREFIX + "/openapi.json", openapi_json, methods=["GET"]),
    *(
        Route(PREFIX + endpoint.path, wrap(endpoint), methods=[endpoint.method])
        for endpoint in ENDPOINTS
    ),
]
