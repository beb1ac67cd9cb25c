"""``/api/v1/boites/{mailbox_id}/portail``: the messages a mailbox left on the patient portal
(secure pickups), their state and log (codes sent, openings, downloads, replies), and their
withdrawal — the webmail's trace view and « Révoquer », with the same rules
(:mod:`caducee.health.pickup`): reading needs the ``lecture`` scope and access to the mailbox,
withdrawing the ``envoi`` scope and the right to send from it; another mailbox's pickup is the
same 404 as an unknown one."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from starlette.responses import Response

from caducee.domain.pickup import EVENTS, Pickup, PickupEvent
from caducee.health import pickup
from caducee.web.api.call import ApiError, Call, Endpoint, int_param

STATES = ("open", "revoked", "locked", "expired")
PER_PAGE = 100


def _when(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def pickup_json(found: Pickup) -> dict[str, Any]:
    """A pickup as the sender sees it: never its content, link or the patient's contact."""
    return {
        "id": found.id,
        "etat": found.state(),
        "patient": found.patient_id,
        "taille": found.size,
        "phrase_secrete": found.has_passphrase,
        "codes_errones": found.failed_attempts,
        "depose_le": found.created_at.isoformat(),
        "expire_le": found.expires_at.isoformat(),
        "revoque_le": _when(found.revoked_at),
        "verrouille_le": _when(found.locked_at),
        "efface_le": _when(found.purged_at),
    }


def event_json(event: PickupEvent) -> dict[str, Any]:
    return {"evenement": event.event, "detail": event.detail, "date": event.ts.isoformat()}


async def list_pickups(call: Call) -> Response:
    access = await call.mailbox()
    query = call.request.query_params
    state = query.get("etat", "")
    if state and state not in STATES:
        raise ApiError(
            422, "invalide", f"etat : {', '.join(STATES)}.", f"etat: {', '.join(STATES)}."
        )
    try:
        page = int(query.get("page", "1"))
    except ValueError:
        page = 0
    if not 1 <= page <= 100_000:
        raise ApiError(422, "invalide", "page : 1 à 100000.", "page: 1 to 100000.")
    found = [
        p
        for p in reversed(await pickup.list_pickups(call.app, access.mailbox.id))
        if not state or p.state() == state
    ]
    shown = found[(page - 1) * PER_PAGE : page * PER_PAGE]
    return call.answer(
        {
            "page": page,
            "pages": max(1, -(-len(found) // PER_PAGE)),
            "total": len(found),
            "depots": [pickup_json(p) for p in shown],
        }
    )


def _pickup_id(call: Call) -> int:
    return int_param(call.request.path_params.get("pickup_id"))


async def get_pickup(call: Call) -> Response:
    access = await call.mailbox()
    found, events = await pickup.of_mailbox(call.app, _pickup_id(call), access.mailbox.id)
    return call.answer({**pickup_json(found), "evenements": [event_json(e) for e in events]})


async def revoke_pickup(call: Call) -> Response:
    """As the webmail's « Révoquer »: the link stops working and the content is deleted
    (audited: ``pickup.revoke``); withdrawing a pickup already withdrawn changes nothing."""
    access = await call.mailbox(send=True)
    await pickup.revoke(
        call.app, _pickup_id(call), access.mailbox.id, actor=call.account.login,
        source=call.source,
    )  # fmt: skip
    return call.answer()


_WHEN = {"type": ["string", "null"], "format": "date-time"}
PICKUP_JSON: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "etat": {"type": "string", "enum": list(STATES)},
        "patient": {"type": ["integer", "null"]},
        "taille": {"type": "integer"},
        "phrase_secrete": {"type": "boolean"},
        "codes_errones": {"type": "integer"},
        "depose_le": {"type": "string", "format": "date-time"},
        "expire_le": {"type": "string", "format": "date-time"},
        "revoque_le": _WHEN,
        "verrouille_le": _WHEN,
        "efface_le": _WHEN,
    },
}
EVENT_JSON: dict[str, Any] = {
    "type": "object",
    "properties": {
        "evenement": {"type": "string", "enum": list(EVENTS)},
        "detail": {"type": "string"},
        "date": {"type": "string", "format": "date-time"},
    },
}

ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        "GET",
        "/boites/{mailbox_id}/portail",
        list_pickups,
        "lecture",
        "Messages déposés sur le portail patient par cette boîte (les plus récents d'abord, "
        "100 par page ; etat : open, revoked, locked, expired)",
        {
            "type": "object",
            "properties": {
                "page": {"type": "integer"},
                "pages": {"type": "integer"},
                "total": {"type": "integer"},
                "depots": {"type": "array", "items": PICKUP_JSON},
            },
        },
        query=(
            ("etat", {"type": "string", "enum": list(STATES)}),
            ("page", {"type": "integer", "minimum": 1, "maximum": 100000}),
        ),
    ),
    Endpoint(
        "GET",
        "/boites/{mailbox_id}/portail/{pickup_id}",
        get_pickup,
        "lecture",
        "Un dépôt : son état et son journal (codes envoyés ou refusés, ouvertures, "
        "téléchargements, réponses, révocation)",
        {
            "type": "object",
            "properties": {
                **PICKUP_JSON["properties"],
                "evenements": {"type": "array", "items": EVENT_JSON},
            },
        },
    ),
    Endpoint(
        "DELETE",
        "/boites/{mailbox_id}/portail/{pickup_id}",
        revoke_pickup,
        "envoi",
        "Révoquer un dépôt : le lien ne fonctionne plus, le contenu est effacé",
        {"type": "object"},
        status=204,
    ),
)
