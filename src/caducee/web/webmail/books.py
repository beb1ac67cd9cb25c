"""The practice's two address books in the webmail: a page to keep them (add, remove), and the
JSON the compose page uses — suggestions from one book at a time, the « Professionnels » group of
the national MSSanté directory (kept apart from the practice's own contacts), and the channel a
recipient falls in, with its profession and structure when the directory lists it."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from caducee.errors import CaduceeError
from caducee.flows import channels
from caducee.health import annuaire, patients
from caducee.services import address_books
from caducee.web.core import (
    N_,
    WebUser,
    client_ip,
    error_message,
    form_data,
    int_param,
    page,
    redirect,
    render,
    state,
)
from caducee.web.i18n import gettext as _
from caducee.web.webmail.common import base_path, open_view

CHANNEL_LABELS = {
    "interne": N_("Interne au cabinet"),
    "confiance": N_("Espace de confiance MSSanté"),
    "patient": N_("Patient"),
    "professionnel": N_("Professionnel (hors espace de confiance)"),
    "externe": N_("Externe — non sécurisé"),
    "invalide": N_("Adresse invalide"),
}


async def _page(request: Request, user: WebUser, *, error: str = "", status: int = 200) -> Response:
    app = state(request).app
    view = await open_view(request, user)
    return render(
        request,
        "webmail/books.html",
        {
            "nav_active": "courrier",
            "view": view,
            "base": base_path(view),
            "folder": None,
            "pros": await address_books.contacts_of(app, user.practice.id, "pro"),
            "patients": await address_books.contacts_of(app, user.practice.id, "patient"),
            "registry_count": len(await patients.list_patients(app, user.practice.id)),
            "colleagues": await address_books.colleagues(app, user.practice.id),
            "error": error,
        },
        status=status,
    )


@page()
async def books_page(request: Request, user: WebUser) -> Response:
    return await _page(request, user)


@page()
async def book_add(request: Request, user: WebUser) -> Response:
    view = await open_view(request, user)
    form = await form_data(request)
    try:
        await address_books.add_contact(
            state(request).app,
            user.practice.id,
            form.get("carnet", ""),
            form.get("nom", ""),
            form.get("adresse", ""),
            actor=user.account.login,
            source=client_ip(request),
        )
    except CaduceeError as exc:
        return await _page(request, user, error=error_message(exc), status=400)
    return redirect(f"{base_path(view)}/carnet", flash="saved")


@page()
async def book_delete(request: Request, user: WebUser) -> Response:
    view = await open_view(request, user)
    await address_books.delete_contact(
        state(request).app,
        user.practice.id,
        int_param(request, "contact_id"),
        actor=user.account.login,
        source=client_ip(request),
    )
    return redirect(f"{base_path(view)}/carnet", flash="saved")


async def _suggest(request: Request, user: WebUser, kind: str) -> Response:
    await open_view(request, user)
    found = await address_books.suggest(
        state(request).app, user.practice.id, kind, request.query_params.get("q", "")[:100]
    )
    return JSONResponse([{"nom": c.name, "adresse": c.email} for c in found])


@page(json=True)
async def suggest_pros(request: Request, user: WebUser) -> Response:
    return await _suggest(request, user, "pro")


@page(json=True)
async def suggest_patients(request: Request, user: WebUser) -> Response:
    """From the patient registry (with each address's verification state)."""
    await open_view(request, user)
    found = await patients.list_patients(
        state(request).app, user.practice.id, request.query_params.get("q", "")[:100]
    )
    return JSONResponse(
        [
            {"nom": p.display_name, "adresse": p.data.email, "verification": p.address_status}
            for p in found[: address_books.MAX_SUGGESTIONS]
        ]
    )


@page(json=True)
async def suggest_directory(request: Request, user: WebUser) -> Response:
    """The « Professionnels » group: the national directory (the same search as the API)."""
    await open_view(request, user)
    found = await annuaire.search(state(request).app, request.query_params.get("q", "")[:100])
    return JSONResponse(
        [
            {
                "groupe": _("Professionnels"),
                "nom": p.display_name,
                "adresse": p.email,
                "profession": p.profession,
                "savoir_faire": p.specialty,
                "structure": p.structure,
                "ville": f"{p.postcode} {p.city}".strip(),
            }
            for p in found
        ]
    )


@page(json=True)
async def channel(request: Request, user: WebUser) -> Response:
    await open_view(request, user)
    app = state(request).app
    address = request.query_params.get("a", "")[:320]
    found = await channels.classify(app, user.practice.id, address)
    body: dict[str, object] = {"canal": found, "libelle": _(CHANNEL_LABELS[found])}
    listed = await annuaire.lookup(app, address)
    if listed is not None:  # who the recipient is, as the national directory says
        body["annuaire"] = {
            "nom": listed.display_name,
            "profession": listed.profession,
            "savoir_faire": listed.specialty,
            "structure": listed.structure,
            "ville": f"{listed.postcode} {listed.city}".strip(),
        }
    return JSONResponse(body)


routes = [
    Route("/courrier/b/{mailbox_id}/carnet", books_page, methods=["GET"]),
    Route("/courrier/b/{mailbox_id}/carnet", book_add, methods=["POST"]),
    Route("/courrier/b/{mailbox_id}/carnet/{contact_id}/supprimer", book_delete, methods=["POST"]),
    Route("/courrier/b/{mailbox_id}/carnet/pros", suggest_pros, methods=["GET"]),
    Route("/courrier/b/{mailbox_id}/carnet/patients", suggest_patients, methods=["GET"]),
    Route("/courrier/b/{mailbox_id}/carnet/annuaire", suggest_directory, methods=["GET"]),
    Route("/courrier/b/{mailbox_id}/canal", channel, methods=["GET"]),
]
