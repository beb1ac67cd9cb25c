"""Admin console: the practice's settings (name, FINESS, SIRET; the mailbox limit is shown)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from caducee.errors import CaduceeError
from caducee.health import patient_settings, trust_list
from caducee.services import mfa, practices
from caducee.web.admin.common import practice_mailboxes
from caducee.web.core import (
    WebUser,
    client_ip,
    error_message,
    form_data,
    page,
    redirect,
    render,
    state,
)


async def _settings_page(
    request: Request, user: WebUser, *, error: str = "", status: int = 200
) -> Response:
    web = state(request)
    used = len(await practice_mailboxes(web, user))
    required = await mfa.second_factor_required(web.app, user.practice.id)
    trust = await trust_list.status(web.app)
    listed = [d for d in user.practice.domains if await trust_list.is_listed(web.app, d)]
    return render(
        request,
        "admin/practice.html",
        {
            "practice": user.practice,
            "used": used,
            "required": required,
            "trust": trust,
            "listed_domains": listed,
            "patient_settings": await patient_settings.settings_of(web.app, user.practice.id),
            "mailboxes": await practice_mailboxes(web, user),
            "error": error,
            "admin_tab": "cabinet",
        },
        status=status,
    )


@page(admin=True)
async def admin_home(request: Request, user: WebUser) -> Response:
    return redirect("/admin/cabinet")


@page(admin=True)
async def settings_page(request: Request, user: WebUser) -> Response:
    return await _settings_page(request, user)


@page(admin=True)
async def settings_update(request: Request, user: WebUser) -> Response:
    web = state(request)
    form = await form_data(request)
    try:
        await practices.update_practice(
            web.app,
            user.practice.id,
            name=form.get("nom", ""),
            finess=form.get("finess", "").strip(),
            siret=form.get("siret", "").strip(),
            actor=user.account.login,
            source=client_ip(request),
        )
    except CaduceeError as exc:
        return await _settings_page(request, user, error=error_message(exc), status=400)
    return redirect("/admin/cabinet", flash="saved")


@page(admin=True)
async def second_factor_policy(request: Request, user: WebUser) -> Response:
    web = state(request)
    form = await form_data(request)
    await mfa.set_second_factor_required(
        web.app,
        user.practice.id,
        form.get("exiger") == "oui",
        actor=user.account.login,
        source=client_ip(request),
    )
    return redirect("/admin/cabinet", flash="saved")


@page(admin=True)
async def patient_settings_update(request: Request, user: WebUser) -> Response:
    web = state(request)
    form = await form_data(request)
    try:
        await patient_settings.save_settings(
            web.app,
            user.practice.id,
            dlp_policy=form.get("politique", "avertir"),
            dlp_terms=form.get("termes", ""),
            patient_mailbox=form.get("boite_patients", ""),
            patient_mailbox_open=form.get("boite_patients_ouverte") == "oui",
            actor=user.account.login,
            source=client_ip(request),
        )
    except CaduceeError as exc:
        return await _settings_page(request, user, error=error_message(exc), status=400)
    return redirect("/admin/cabinet", flash="saved")


routes = [
    Route("/admin", admin_home, methods=["GET"], name="admin"),
    Route("/admin/cabinet", settings_page, methods=["GET"], name="admin_practice"),
    Route("/admin/cabinet", settings_update, methods=["POST"], name="admin_practice_update"),
    Route(
        "/admin/cabinet/patients",
        patient_settings_update,
        methods=["POST"],
        name="admin_patient_settings",
    ),
    Route(
        "/admin/cabinet/second-facteur",
        second_factor_policy,
        methods=["POST"],
        name="admin_second_factor",
    ),
]
