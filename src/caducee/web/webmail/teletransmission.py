"""« Télétransmission »: the lots of the TLT mailboxes the account owns or is delegated, those
to send again first with their deadline, filters (state, mailbox, date), pages of 100, the
returns matched to no lot, and the CSV export. The rules (states, deadlines, who may read which
mailbox) are in :mod:`caducee.health.teletransmission`; this parses the query and renders."""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from datetime import datetime

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from caducee.domain.model import Mailbox
from caducee.domain.teletransmission import LotState
from caducee.errors import InvalidInput
from caducee.health import teletransmission
from caducee.web.core import (
    WebUser,
    client_ip,
    download_response,
    error_message,
    error_page,
    page,
    render,
    state,
)
from caducee.web.i18n import current_language

PER_PAGE = 100
UNMATCHED_SHOWN = 20
FILTERS = ("etat", "boite", "du")


@dataclass(frozen=True)
class Filters:
    state: LotState | None
    since: datetime | None
    address: str  # "" : every mailbox
    error: str


def _filters(request: Request) -> Filters:
    params = request.query_params
    address = params.get("boite", "").strip().lower()[:320]
    try:
        wanted = teletransmission.parse_state_filter(params.get("etat"))
        since = teletransmission.parse_since(params.get("du"))
    except InvalidInput as exc:
        return Filters(None, None, address, error_message(exc))
    return Filters(wanted, since, address, "")


async def _boxes(request: Request, user: WebUser, address: str) -> tuple[list[Mailbox], str]:
    """The mailboxes to list (one, checked and audited, or all the account reads), and an error
    to show when the one asked for is no TLT mailbox (another's is the 403 of ``page``)."""
    app = state(request).app
    if address:
        try:
            return await teletransmission.resolve_mailboxes(app, user.account.login, address), ""
        except InvalidInput as exc:
            return [], error_message(exc)
    return await teletransmission.resolve_mailboxes(app, user.account.login, None), ""


@page()
async def lots_page(request: Request, user: WebUser) -> Response:
    web = state(request)
    filters = _filters(request)
    every = await teletransmission.resolve_mailboxes(web.app, user.account.login, None)
    boxes, box_error = (
        await _boxes(request, user, filters.address) if filters.address else (every, "")
    )
    try:
        number = int(request.query_params.get("page", "1"))
    except ValueError:
        number = 1
    listing = await teletransmission.lots_page(
        web.app,
        boxes,
        state=filters.state,
        since=filters.since,
        page=number,
        per_page=PER_PAGE,
        now=web.config.clock(),
    )
    unmatched_count, unmatched = await teletransmission.unmatched_summary(
        web.app, boxes, UNMATCHED_SHOWN
    )
    keep = {k: v for k, v in request.query_params.items() if k in FILTERS and v}

    def page_url(target: int) -> str:
        return "?" + urllib.parse.urlencode({**keep, "page": target})

    address = {b.id: b.address for b in every}
    return render(
        request,
        "webmail/teletransmission.html",
        {
            "nav_active": "teletransmission",
            "every": every,
            "filters": filters,
            "error": filters.error or box_error,
            "listing": listing,
            "states": list(LotState),
            "unmatched": unmatched,
            "unmatched_count": unmatched_count,
            "address": address,
            "since_text": request.query_params.get("du", "")[:10],
            "page_url": page_url,
            "csv_url": "/teletransmission/lots.csv"
            + ("?" + urllib.parse.urlencode(keep) if keep else ""),
        },
    )


@page()
async def lots_csv(request: Request, user: WebUser) -> Response:
    web = state(request)
    filters = _filters(request)
    boxes, box_error = await _boxes(request, user, filters.address)
    if filters.error or box_error:
        return error_page(request, 400, filters.error or box_error)
    text = await teletransmission.export_csv(
        web.app,
        boxes,
        state=filters.state,
        since=filters.since,
        english=current_language.get() == "en",
        now=web.config.clock(),
        actor=user.account.login,
        source=client_ip(request),
    )
    stamp = web.config.clock().strftime("%Y%m%d")
    return download_response(
        "\ufeff" + text,  # BOM: spreadsheets then read UTF-8 correctly
        f"lots-teletransmission-{stamp}.csv",
        "text/csv; charset=utf-8",
    )


routes = [
    Route("/teletransmission", lots_page, methods=["GET"], name="teletransmission"),
    Route("/teletransmission/lots.csv", lots_csv, methods=["GET"], name="teletransmission_csv"),
]
