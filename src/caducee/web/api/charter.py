"""``/api/v1/charte``: the charter of the token's practice for practice software (any valid
token: the charter is what the practice tells its patients), or a practitioner's own with
``?praticien=<address>`` (an account of the practice). The same service as the portal and the
e-mails (:mod:`caducee.health.charter`), so the same override and defaults."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from starlette.responses import JSONResponse, Response

from caducee.domain import charter as rules
from caducee.errors import InvalidInput, NotFound
from caducee.health import charter
from caducee.services import accounts
from caducee.web.api.call import ApiError, Call, Endpoint

_TEXT: dict[str, Any] = {"type": "string"}
_RANGE: dict[str, Any] = {
    "type": "object",
    "properties": {"debut": {"type": "string"}, "fin": {"type": "string"}},
}
CHARTER_JSON: dict[str, Any] = {
    "type": "object",
    "properties": {
        "praticien": {"type": ["string", "null"]},
        "types": {"type": "array", "items": {"type": "string"}},
        "types_detail": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"id": _TEXT, "libelle": _TEXT, "label_en": _TEXT},
            },
        },
        "delai_jours_ouvres": {"type": "integer"},
        "horaires": {
            "type": "object",
            "additionalProperties": {"type": "array", "items": _RANGE},
        },
        "fermetures": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"debut": _TEXT, "fin": _TEXT, "motif": _TEXT},
            },
        },
        "region": _TEXT,
        "urgences": _TEXT,
        "numeros_urgence": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"numero": _TEXT, "libelle": _TEXT, "label_en": _TEXT},
            },
        },
        "texte_libre": _TEXT,
        "texte_court": _TEXT,
        "texte_court_en": _TEXT,
        "texte_complet": _TEXT,
        "reponse_prevue": {"type": "string", "format": "date"},
    },
}


async def get_charter(call: Call) -> Response:
    practice_id = call.account.practice_id
    address = call.request.query_params.get("praticien", "").strip()[:320]
    account_id: int | None = None
    if address:
        try:
            found = await accounts.get_account(call.app, address)
        except (NotFound, InvalidInput):
            found = None
        if found is None or found.practice_id != practice_id:
            raise ApiError(
                404, "introuvable", "Praticien introuvable dans le cabinet.",
                "Practitioner not found in the practice.",
            )  # fmt: skip
        account_id = found.id
    applied = await charter.charter_of(call.app, practice_id, account_id)
    now = datetime.now(UTC)
    stored = rules.to_dict(applied)
    stored.pop("version")
    body = {
        "praticien": address or None,
        **stored,
        "types_detail": [
            {"id": t.id, "libelle": t.fr, "label_en": t.en}
            for t in rules.MESSAGE_TYPES
            if t.id in applied.accepted
        ],
        "urgences": applied.emergency("fr"),
        "numeros_urgence": [
            {"numero": n.number, "libelle": n.fr, "label_en": n.en} for n in rules.EMERGENCY_NUMBERS
        ],
        "texte_court": rules.short_text(applied, "fr"),
        "texte_court_en": rules.short_text(applied, "en"),
        "texte_complet": rules.full_text(applied, "fr", today=now.date()),
        "reponse_prevue": applied.expected_answer(now).isoformat(),
    }
    return JSONResponse(body)


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        "GET",
        "/charte",
        get_charter,
        None,
        "Charte du cabinet (ou d'un praticien : praticien=adresse) et date de réponse prévue "
        "d'un message reçu maintenant",
        CHARTER_JSON,
        query=(("praticien", {"type": "string", "maxLength": 320}),),
    ),
)
