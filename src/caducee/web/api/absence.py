"""``/api/v1/absence``: the token's account's absence (issue 16) — read it (any valid token),
set or replace it (``PUT``) and remove it (``DELETE``), both with the ``envoi`` right: an
absence makes the mailbox answer in its name. The same service as the webmail's page
(:mod:`caducee.health.absences`): the same checks, the same audit."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse, Response

from caducee.health import absences
from caducee.health.absences import Absence
from caducee.web.api.call import ApiError, Call, Endpoint, json_body

_DATE: dict[str, Any] = {"type": "string", "format": "date"}
ABSENCE_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["debut", "fin"],
    "properties": {
        "debut": {**_DATE, "maxLength": 10},
        "fin": {**_DATE, "maxLength": 10},
        "remplacant": {"type": ["string", "null"], "maxLength": 320},
        "message": {"type": "string", "maxLength": absences.MAX_MESSAGE_CHARS},
    },
    "additionalProperties": False,
}
ABSENCE_JSON: dict[str, Any] = {
    "type": "object",
    "properties": {
        "absent": {"type": "boolean"},
        "debut": {"type": ["string", "null"], "format": "date"},
        "fin": {"type": ["string", "null"], "format": "date"},
        "remplacant": {
            "type": ["object", "null"],
            "properties": {"adresse": {"type": "string"}, "nom": {"type": "string"}},
        },
        "message": {"type": "string"},
    },
}


def absence_json(absence: Absence | None) -> dict[str, Any]:
    if absence is None:
        return {"absent": False, "debut": None, "fin": None, "remplacant": None, "message": ""}
    replacement = absence.replacement
    return {
        "absent": absence.covers(absences.today()),
        "debut": absence.starts.isoformat(),
        "fin": absence.ends.isoformat(),
        "remplacant": (
            {"adresse": replacement.login, "nom": replacement.display_name}
            if replacement is not None
            else None
        ),
        "message": absence.message,
    }


async def get_absence(call: Call) -> Response:
    return JSONResponse(absence_json(await absences.absence_of(call.app, call.account)))


def _text(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ApiError(422, "invalide", f"« {name} » : texte attendu.", f"'{name}': text expected.")
    return value


async def put_absence(call: Call) -> Response:
    body = await json_body(call)
    unknown = set(body) - set(ABSENCE_BODY["properties"])
    if unknown:
        name = sorted(unknown)[0][:40]
        raise ApiError(422, "invalide", f"Champ inconnu : {name}.", f"Unknown field: {name}.")
    checked = await absences.check(
        call.app,
        call.account,
        starts=_text(body, "debut"),
        ends=_text(body, "fin"),
        replacement=_text(body, "remplacant"),
        message=_text(body, "message"),
    )
    saved = await absences.save(
        call.app, call.account, checked, actor=call.account.login, source=call.source
    )
    return JSONResponse(absence_json(saved))


async def delete_absence(call: Call) -> Response:
    await absences.remove(call.app, call.account, actor=call.account.login, source=call.source)
    return call.answer()


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        "GET",
        "/absence",
        get_absence,
        None,
        "Absence du titulaire du jeton (réponse automatique, remplaçant)",
        ABSENCE_JSON,
    ),
    Endpoint(
        "PUT",
        "/absence",
        put_absence,
        "envoi",
        "Déclarer ou remplacer son absence (dates incluses, remplaçant du cabinet, message)",
        ABSENCE_JSON,
        request_body=ABSENCE_BODY,
    ),
    Endpoint(
        "DELETE",
        "/absence",
        delete_absence,
        "envoi",
        "Supprimer son absence",
        {"type": "object"},
        status=204,
    ),
)
