"""The patient registry in the web app (/patients: every account of the practice, secretaries
included) and the public page where a patient confirms their address (/patient/verifier/…,
a POST behind a button so that mail scanners that open links confirm nothing)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from caducee.domain import charter as charter_rules
from caducee.domain.web_links import Page
from caducee.errors import CaduceeError
from caducee.health import charter, patient_import, patient_rgpd, patients
from caducee.health.patients import PatientData
from caducee.services import practices
from caducee.web.core import (
    N_,
    PageError,
    WebUser,
    client_ip,
    error_message,
    error_page,
    form_data,
    int_param,
    page,
    redirect,
    render,
    state,
)
from caducee.web.i18n import current_language
from caducee.web.i18n import gettext as _
from caducee.web.portal.common import PORTAL_CSRF_COOKIE, check_landing_csrf, set_portal_cookie
from caducee.web.rgpd import export_dir, file_download

STATUS_LABELS = {
    "unverified": N_("non vérifiée"),
    "pending": N_("en attente"),
    "verified": N_("vérifiée"),
}


def _data(form: dict[str, str]) -> PatientData:
    return PatientData(
        last_name=form.get("nom", ""),
        first_name=form.get("prenom", ""),
        birth_date=form.get("naissance", ""),
        email=form.get("adresse", ""),
        mobile=form.get("mobile", ""),
        ins=form.get("ins", ""),
        delivery_mode=form.get("mode", "retrait"),
        consent_date=form.get("consentement", ""),
        notes=form.get("notes", ""),
        shared_address=form.get("partagee") == "oui",
        ins_status=form.get("statut_ins", ""),
        ins_status_date=form.get("date_statut_ins", ""),
    )


async def _list(
    request: Request, user: WebUser, *, error: str = "", form: dict[str, str] | None = None,
    status: int = 200,
) -> Response:  # fmt: skip
    query = request.query_params.get("q", "")[:100]
    found = await patients.list_patients(state(request).app, user.practice.id, query)
    prefill = form if form is not None else {"adresse": request.query_params.get("email", "")}
    return render(
        request,
        "patients/list.html",
        {
            "nav_active": "patients",
            "patients": found,
            "query": query,
            "form": prefill,
            "error": error,
            "labels": STATUS_LABELS,
        },
        status=status,
    )


@page()
async def list_page(request: Request, user: WebUser) -> Response:
    return await _list(request, user)


@page()
async def import_csv(request: Request, user: WebUser) -> Response:
    app = state(request).app
    form = await request.form(max_files=1, max_part_size=patient_import.MAX_BYTES + 1024)
    upload = form.get("fichier")
    if not isinstance(upload, UploadFile):
        return await _list(request, user, error=_("Choisissez un fichier CSV."), status=400)
    data = await upload.read(patient_import.MAX_BYTES + 1)
    try:
        report = await patient_import.import_csv(
            app, user.practice.id, data, actor=user.account.login, source=client_ip(request)
        )
    except CaduceeError as exc:
        return await _list(request, user, error=error_message(exc), status=400)
    return render(
        request,
        "patients/imported.html",
        {"nav_active": "patients", "report": report},
    )


@page()
async def add(request: Request, user: WebUser) -> Response:
    form = await form_data(request)
    try:
        created = await patients.add_patient(
            state(request).app,
            user.practice.id,
            _data(form),
            actor=user.account.login,
            source=client_ip(request),
        )
    except CaduceeError as exc:
        return await _list(request, user, error=error_message(exc), form=form, status=400)
    return redirect(f"/patients/{created.id}", flash="saved")


async def _detail(
    request: Request, user: WebUser, *, error: str = "", status: int = 200
) -> Response:
    patient = await patients.get_patient(
        state(request).app, user.practice.id, int_param(request, "patient_id")
    )
    return render(
        request,
        "patients/detail.html",
        {
            "nav_active": "patients",
            "patient": patient,
            "error": error,
            "labels": STATUS_LABELS,
            "link_sent": request.query_params.get("verification") == "envoyee",
        },
        status=status,
    )


@page()
async def detail(request: Request, user: WebUser) -> Response:
    return await _detail(request, user)


@page()
async def update(request: Request, user: WebUser) -> Response:
    form = await form_data(request)
    patient_id = int_param(request, "patient_id")
    try:
        await patients.update_patient(
            state(request).app,
            user.practice.id,
            patient_id,
            _data(form),
            actor=user.account.login,
            source=client_ip(request),
        )
    except CaduceeError as exc:
        return await _detail(request, user, error=error_message(exc), status=400)
    return redirect(f"/patients/{patient_id}", flash="saved")


@page()
async def send_verification(request: Request, user: WebUser) -> Response:
    patient_id = int_param(request, "patient_id")
    try:
        await patients.send_verification(
            state(request).app,
            user.practice.id,
            patient_id,
            actor=user.account.login,
            source=client_ip(request),
        )
    except CaduceeError as exc:
        return await _detail(request, user, error=error_message(exc), status=400)
    return redirect(f"/patients/{patient_id}?verification=envoyee")


@page()
async def export(request: Request, user: WebUser) -> Response:
    """The answer to a patient's access request: a ZIP of what the practice holds."""
    app = state(request).app
    patient_id = int_param(request, "patient_id")
    target = export_dir(app.settings.data_dir) / f"{secrets.token_hex(16)}.zip"
    done = await patient_rgpd.export_patient(
        app,
        user.practice.id,
        patient_id,
        target,
        actor=user.account.login,
        source=client_ip(request),
    )
    stamp = datetime.now(UTC).strftime("%Y%m%d")
    return file_download(done.path, f"patient-{patient_id}-{stamp}.zip", "application/zip")


@page()
async def erase(request: Request, user: WebUser) -> Response:
    form = await form_data(request)
    try:
        await patient_rgpd.erase_patient(
            state(request).app,
            user.practice.id,
            int_param(request, "patient_id"),
            confirm=form.get("confirmation", ""),
            actor=user.account.login,
            source=client_ip(request),
        )
    except CaduceeError as exc:
        return await _detail(request, user, error=error_message(exc), status=400)
    return redirect("/patients", flash="patient_erased")


@page()
async def remove(request: Request, user: WebUser) -> Response:
    await patients.delete_patient(
        state(request).app,
        user.practice.id,
        int_param(request, "patient_id"),
        actor=user.account.login,
        source=client_ip(request),
    )
    return redirect("/patients", flash="saved")


# --- the patient's side (public) -----------------------------------------------------------------


def _verify_page(request: Request, values: dict[str, object], status: int = 200) -> Response:
    token = request.cookies.get(PORTAL_CSRF_COOKIE, "")
    if not 20 <= len(token) <= 100:
        token = secrets.token_urlsafe(32)
    response = render(request, "patients/verify.html", values, csrf=token, status=status)
    set_portal_cookie(response, PORTAL_CSRF_COOKIE, token, 3600)
    return response


async def verify_landing(request: Request) -> Response:
    found = await patients.pending_verification(state(request).app, request.path_params["token"])
    if found is None:
        return _verify_page(request, {"state": "unknown"}, 404)
    practice_name = await _practice_name(request, found.practice_id)
    values = {"state": "ask", "practice": practice_name}
    return _verify_page(request, values | await _charter_values(request, found.practice_id))


async def verify_confirm(request: Request) -> Response:
    form = await request.form()
    given = form.get("csrf")
    try:
        check_landing_csrf(request, given if isinstance(given, str) else None)
    except PageError as exc:
        return error_page(request, exc.status, exc.message)
    done = await patients.confirm_verification(
        state(request).app, request.path_params["token"], source=client_ip(request)
    )
    if done is None:
        return _verify_page(request, {"state": "unknown"}, 404)
    practice_name = await _practice_name(request, done.practice_id)
    values = {"state": "done", "practice": practice_name}
    return _verify_page(request, values | await _charter_values(request, done.practice_id))


async def _charter_values(request: Request, practice_id: int) -> dict[str, object]:
    """The practice's charter on the page where a patient agrees to be written to: its short
    form on top (as on every portal page) and the whole of it in the page."""
    rules = await charter.charter_of(state(request).app, practice_id)
    now = datetime.now(UTC)
    return {"charter": charter_rules.view(rules, current_language.get(), today=now.date(), now=now)}


async def _practice_name(request: Request, practice_id: int) -> str:
    return (await practices.get_practice(state(request).app, practice_id)).name


routes = [
    Route("/patients", list_page, methods=["GET"]),
    Route("/patients", add, methods=["POST"]),
    Route(Page.NEW_PATIENT.path, list_page, methods=["GET"]),
    Route("/patients/import", import_csv, methods=["POST"]),
    Route(Page.PATIENT_RECORD.path, detail, methods=["GET"]),
    Route("/patients/{patient_id:int}", update, methods=["POST"]),
    Route("/patients/{patient_id:int}/verification", send_verification, methods=["POST"]),
    Route("/patients/{patient_id:int}/supprimer", remove, methods=["POST"]),
    Route("/patients/{patient_id:int}/export", export, methods=["POST"]),
    Route("/patients/{patient_id:int}/effacer", erase, methods=["POST"]),
    Route(Page.ADDRESS_VERIFICATION.path, verify_landing, methods=["GET"]),
    Route("/patient/verifier/{token}", verify_confirm, methods=["POST"]),
]
