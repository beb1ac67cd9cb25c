"""Admin console: the practice's triage of patient messages (issue 16) — its message types
(renamed, disabled, added, with their keywords), the default type, and the optional urgent
alert (an address of the practice and/or a mobile number). The rules are the service's
(:mod:`caducee.health.patient_triage`); this page only shows and posts the form."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from caducee.domain import triage_settings as rules
from caducee.errors import CaduceeError
from caducee.health import patient_triage
from caducee.web.core import WebUser, client_ip, error_message, page, redirect, render, state


async def _page(
    request: Request,
    user: WebUser,
    *,
    values: dict[str, Any] | None = None,
    error: str = "",
    status: int = 200,
) -> Response:
    current = await patient_triage.settings_of(state(request).app, user.practice.id)
    return render(
        request,
        "admin/triage.html",
        {
            "admin_tab": "tri",
            "values": values or rules.form_values(current),
            "limits": {"types": rules.MAX_TYPES, "label": rules.MAX_LABEL_CHARS},
            "error": error,
        },
        status=status,
    )


@page(admin=True)
async def triage_page(request: Request, user: WebUser) -> Response:
    return await _page(request, user)


@page(admin=True)
async def triage_update(request: Request, user: WebUser) -> Response:
    form = await request.form()
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    enabled = [v for v in form.getlist("actifs") if isinstance(v, str)]
    removed = [v for v in form.getlist("supprimer") if isinstance(v, str)]
    try:
        built = rules.from_form(fields, enabled, removed)
        await patient_triage.save(
            state(request).app,
            user.practice.id,
            built,
            actor=user.account.login,
            source=client_ip(request),
        )
    except CaduceeError as exc:
        current = await patient_triage.settings_of(state(request).app, user.practice.id)
        values = rules.form_values(current)
        values.update({k: fields.get(k, "") for k in ("defaut", "alerte_courriel", "alerte_sms")})
        return await _page(request, user, values=values, error=error_message(exc), status=400)
    return redirect("/admin/tri", flash="saved")


routes = [
    Route("/admin/tri", triage_page, methods=["GET"], name="admin_triage"),
    Route("/admin/tri", triage_update, methods=["POST"], name="admin_triage_update"),
]
