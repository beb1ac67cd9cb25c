"""``/api/v1/annuaire``: the national MSSanté directory for practice software (any valid token:
the directory is public data). The same search as the webmail and the CLI
(:func:`caducee.health.annuaire.search`): words folded for accents and case, prefixes, all
words required (« cardio lyon dupont »), or a whole address."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse, Response

from caducee.domain.annuaire import MAX_QUERY_CHARS
from caducee.health import annuaire
from caducee.web.api.call import ApiError, Call, Endpoint

_TEXT: dict[str, Any] = {"type": "string"}
_FIELDS = (
    "adresse", "nom_affiche", "civilite", "nom", "prenom", "type_bal", "rpps",
    "identifiant_national", "categorie", "profession_code", "profession", "savoir_faire_code",
    "savoir_faire", "structure_id", "structure", "service", "adresse_postale", "code_postal",
    "ville", "departement", "pays", "dematerialisation",
)  # fmt: skip
PROFESSIONAL_JSON: dict[str, Any] = {
    "type": "object",
    "properties": {name: _TEXT for name in _FIELDS},
}
SEARCH_JSON: dict[str, Any] = {
    "type": "object",
    "properties": {
        "q": _TEXT,
        "annuaire_du": {"type": ["string", "null"], "format": "date-time"},
        "resultats": {"type": "array", "items": PROFESSIONAL_JSON},
    },
}


async def search_directory(call: Call) -> Response:
    query = call.request.query_params.get("q", "")
    if len(query) > MAX_QUERY_CHARS:
        raise ApiError(
            400, "invalide", f"Recherche trop longue ({MAX_QUERY_CHARS} caractères au plus).",
            f"Search too long ({MAX_QUERY_CHARS} characters at most).",
        )  # fmt: skip
    try:
        limit = int(call.request.query_params.get("limite", annuaire.MAX_RESULTS))
    except ValueError:
        limit = annuaire.MAX_RESULTS
    info = await annuaire.status(call.app)
    found = await annuaire.search(call.app, query, limit)
    when = info.finished_at if info is not None else None
    return JSONResponse(
        {
            "q": query,
            "annuaire_du": when.isoformat() if when is not None else None,
            "resultats": [p.to_json() for p in found],
        }
    )


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        "GET",
        "/annuaire",
        search_directory,
        None,
        "Recherche dans l'annuaire national MSSanté (q : nom, prénom, profession, savoir-faire, "
        "ville ou code postal, RPPS, adresse ou structure ; préfixes, sans accents ni casse, "
        "tous les mots ; ou une adresse MSSanté entière), 20 résultats au plus",
        SEARCH_JSON,
        query=(
            ("q", {"type": "string", "maxLength": MAX_QUERY_CHARS}),
            ("limite", {"type": "integer", "minimum": 1, "maximum": 20}),
        ),
    ),
)
