"""Admin console: the practice's charter (issue 16), and a practitioner's own charter
overriding it. The form is in French; the preview beside it is rendered by the server — on
load, on « Prévisualiser » (without JavaScript), and as fields change (``charter-preview.js``
posts the form to ``/admin/charte/apercu``) — with the same templates the portal uses."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from caducee.domain import charter as rules
from caducee.domain.charter import Charter
from caducee.domain.model import Account
from caducee.errors import CaduceeError
from caducee.health import charter
from caducee.web.admin.common import account_of_practice, practice_accounts
from caducee.web.core import (
    WebUser,
    client_ip,
    error_message,
    page,
    redirect,
    render,
    state,
)
from caducee.web.i18n import current_language


async def _form(request: Request) -> tuple[dict[str, str], list[str]]:
    form = await request.form()
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    types = [v for v in form.getlist("types") if isinstance(v, str)]
    return fields, types


async def _practitioner(request: Request, user: WebUser, raw: str) -> Account | None:
    """The account a form or URL names (``praticien``), of the admin's practice; None: the
    practice-wide charter."""
    if not raw.strip():
        return None
    try:
        account_id = int(raw)
    except ValueError:
        return None
    return await account_of_practice(state(request), user, account_id)


def _preview(found: Charter) -> rules.CharterView:
    return rules.view(found, current_language.get())


async def _page(
    request: Request,
    user: WebUser,
    who: Account | None,
    *,
    values: dict[str, Any] | None = None,
    shown: Charter | None = None,
    error: str = "",
    status: int = 200,
) -> Response:
    web = state(request)
    practice_id = user.practice.id
    current = await charter.charter_of(web.app, practice_id, who.id if who else None)
    overriding = set(await charter.overriding_accounts(web.app, practice_id))
    return render(
        request,
        "admin/charter.html",
        {
            "admin_tab": "charte",
            "who": who,
            "accounts": [a for a in await practice_accounts(web, user) if not a.disabled],
            "overriding": overriding,
            "own": await charter.has_own_charter(web.app, practice_id, who.id if who else None),
            "values": values or rules.form_values(current),
            "types": rules.MESSAGE_TYPES,
            "regions": rules.REGIONS,
            "weekdays": rules.WEEKDAY_NAMES,
            "limits": {
                "emergency": rules.MAX_EMERGENCY_CHARS,
                "free": rules.MAX_FREE_TEXT_CHARS,
                "delay": rules.MAX_DELAY_DAYS,
            },
            "charter": _preview(shown or current) if shown or not error else None,
            "error": error,
        },
        status=status,
    )


def _target(who: Account | None) -> str:
    return f"/admin/charte?praticien={who.id}" if who else "/admin/charte"


@page(admin=True)
async def charter_page(request: Request, user: WebUser) -> Response:
    who = await _practitioner(request, user, request.query_params.get("praticien", ""))
    return await _page(request, user, who)


@page(admin=True)
async def charter_update(request: Request, user: WebUser) -> Response:
    fields, types = await _form(request)
    who = await _practitioner(request, user, fields.get("praticien", ""))
    values: dict[str, Any] = {**fields, "types": types}
    try:
        built = rules.from_form(fields, types)
    except CaduceeError as exc:
        return await _page(request, user, who, values=values, error=error_message(exc), status=400)
    if fields.get("action") == "apercu":
        return await _page(request, user, who, values=values, shown=built)
    await charter.save(
        state(request).app,
        user.practice.id,
        built,
        account_id=who.id if who else None,
        actor=user.account.login,
        source=client_ip(request),
    )
    return redirect(_target(who), flash="saved")


@page(admin=True)
async def charter_preview(request: Request, user: WebUser) -> Response:
    """The preview alone (an HTML fragment), for the script that refreshes it."""
    fields, types = await _form(request)
    try:
        shown: rules.CharterView | None = _preview(rules.from_form(fields, types))
        error = ""
    except CaduceeError as exc:
        shown, error = None, error_message(exc)
    return render(request, "admin/charter_preview.html", {"charter": shown, "error": error})


@page(admin=True)
async def charter_reset(request: Request, user: WebUser) -> Response:
    fields, _types = await _form(request)
    who = await _practitioner(request, user, fields.get("praticien", ""))
    await charter.reset(
        state(request).app,
        user.practice.id,
        who.id if who else None,
        actor=user.account.login,
        source=client_ip(request),
    )
    return redirect(_target(who), flash="saved")


routes = [
    Route("/admin/charte", charter_page, methods=["GET"], name="admin_charter"),
    Route("/admin/charte", charter_update, methods=["POST"], name="admin_charter_update"),
    Route("/admin/charte/apercu", charter_preview, methods=["POST"], name="admin_charter_preview"),
    Route("/admin/charte/supprimer", charter_reset, methods=["POST"], name="admin_charter_reset"),
]
