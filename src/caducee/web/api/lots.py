"""``/api/v1/lots``: the télétransmission lots of the token's TLT mailboxes, for practice
software (scope ``lots``): state, deadline to send again, returns; filters and pages. The token
reaches only the mailboxes chosen at its creation that the account still reads (owned or
delegated); naming one opens it through ``open_mailbox`` (checked and audited), as every other
route does. The same service as the webmail page and the command line
(:mod:`caducee.health.teletransmission`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from starlette.responses import JSONResponse, Response

from caducee.domain.model import Mailbox
from caducee.domain.teletransmission import LOT_STATE_LABELS, LotState, ReturnKind
from caducee.health import teletransmission
from caducee.health.teletransmission import LotView
from caducee.web.api.call import ApiError, Call, Endpoint

DEFAULT_PER_PAGE = 100


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat()


def lot_json(view: LotView) -> dict[str, Any]:
    lot = view.lot
    return {
        "id": lot.id,
        "mailbox": view.mailbox_address,
        "sender_number": lot.sender_number,
        "compostage": lot.compostage,
        "invoice_count": lot.invoice_count,
        "fund": lot.fund,
        "sent_at": _iso(lot.sent_at),
        "delivery": lot.delivery,
        "state": view.state.value,
        "state_label": LOT_STATE_LABELS[view.state][0],
        "state_label_en": LOT_STATE_LABELS[view.state][1],
        "needs_action": view.state.needs_action,
        "deadline": _iso(view.deadline),
        "returns": [
            {"kind": r.kind.value, "received_at": _iso(r.received_at)} for r in view.returns
        ],
    }


def _number(call: Call, name: str, default: int, highest: int) -> int:
    raw = call.request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(
            422, "invalide", f"{name} : entier attendu.", f"{name}: integer expected."
        ) from None
    if not 1 <= value <= highest:
        raise ApiError(422, "invalide", f"{name} : 1 à {highest}.", f"{name}: 1 to {highest}.")
    return value


async def _boxes(call: Call, address: str | None) -> list[Mailbox]:
    """The TLT mailboxes of the token the account still reads; one of them when named (opened
    through ``open_mailbox``), another address being the 404 of an unknown one."""
    app, login = call.app, call.account.login
    readable = await teletransmission.resolve_mailboxes(app, login, None)
    allowed = [box for box in readable if box.id in call.token.mailbox_ids]
    if not address:
        return allowed
    wanted = address.strip().lower()
    if not any(box.address == wanted for box in allowed):
        raise ApiError(
            404,
            "introuvable",
            "Boîte de télétransmission introuvable pour ce jeton.",
            "No such télétransmission mailbox for this token.",
        )
    return await teletransmission.resolve_mailboxes(app, login, wanted)


async def list_lots(call: Call) -> Response:
    query = call.request.query_params
    state = teletransmission.parse_state_filter(query.get("state"))
    since = teletransmission.parse_since(query.get("since"))
    page = _number(call, "page", 1, 100_000)
    per_page = _number(call, "per_page", DEFAULT_PER_PAGE, teletransmission.MAX_PER_PAGE)
    boxes = await _boxes(call, query.get("mailbox"))
    listing = await teletransmission.lots_page(
        call.app, boxes, state=state, since=since, page=page, per_page=per_page
    )
    return JSONResponse(
        {
            "page": listing.page,
            "pages": listing.pages,
            "per_page": listing.per_page,
            "total": listing.total,
            "needing_action": listing.needing_action,
            "lots": [lot_json(view) for view in listing.items],
        }
    )


_TIME = {"type": "string", "format": "date-time"}
LOT_JSON: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "mailbox": {"type": "string"},
        "sender_number": {"type": "string"},
        "compostage": {"type": "string"},
        "invoice_count": {"type": ["integer", "null"]},
        "fund": {"type": "string"},
        "sent_at": _TIME,
        "delivery": {"type": "string", "enum": ["queued", "delivered", "failed"]},
        "state": {"type": "string", "enum": [s.value for s in LotState]},
        "state_label": {"type": "string"},
        "state_label_en": {"type": "string"},
        "needs_action": {"type": "boolean"},
        "deadline": {"type": ["string", "null"], "format": "date-time"},
        "returns": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "kind": {"type": "string", "enum": [k.value for k in ReturnKind]},
                    "received_at": _TIME,
                },
            },
        },
    },
}

ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        "GET",
        "/lots",
        list_lots,
        "lots",
        "Lots de télétransmission des boîtes du jeton, ceux à réémettre d'abord (état, date "
        "limite de réémission, retours) ; filtres state, mailbox, since (AAAA-MM-JJ), pages",
        {
            "type": "object",
            "properties": {
                "page": {"type": "integer"},
                "pages": {"type": "integer"},
                "per_page": {"type": "integer"},
                "total": {"type": "integer"},
                "needing_action": {"type": "integer"},
                "lots": {"type": "array", "items": LOT_JSON},
            },
        },
        query=(
            ("state", {"type": "string", "enum": [s.value for s in LotState]}),
            ("mailbox", {"type": "string", "maxLength": 320}),
            ("since", {"type": "string", "format": "date"}),
            ("page", {"type": "integer", "minimum": 1, "maximum": 100000}),
            (
                "per_page",
                {"type": "integer", "minimum": 1, "maximum": teletransmission.MAX_PER_PAGE},
            ),
        ),
    ),
)
