"""The portal once the patient holds a session for THIS pickup: the message (sanitised body in
a sandboxed frame, like the webmail), attachment downloads, the reply form with files, and
leaving. Every page checks the session's pickup against the URL's."""

from __future__ import annotations

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from caducee.domain import mail_display
from caducee.domain.web_links import Page
from caducee.errors import InvalidInput, LimitReached, NotFound, ScanUnavailable, VirusFound
from caducee.flows import portal_reply
from caducee.health import pickup, pickup_auth
from caducee.health.pickup_store import Pickup, content
from caducee.web import mail_body
from caducee.web.core import (
    clear_cookie,
    client_ip,
    download_response,
    error_message,
    int_param,
    redirect,
    render,
)
from caducee.web.core import state as web_state
from caducee.web.i18n import gettext as _
from caducee.web.middleware import CONTENT_SECURITY_POLICY_MAIL_VIEW
from caducee.web.portal import entry
from caducee.web.portal.common import (
    PORTAL_COOKIE,
    charter_values,
    check_session_csrf,
    portal_page,
    session_for,
)


def _base(request: Request) -> str:
    return f"/portail/{request.path_params['token']}"


async def _message_page(
    request: Request, found: Pickup, *, error: str = "", status: int = 200
) -> Response:
    session = await session_for(request, found)
    raw = await pickup.open_message(web_state(request).app, found, source=client_ip(request))
    response = render(
        request,
        "portal/message.html",
        {
            "base": _base(request),
            "pickup": found,
            "shown": pickup.read_view(raw),
            "error": error,
            "max_files": pickup.MAX_REPLY_FILES,
            "max_bytes": web_state(request).app.settings.pickup_reply_max_bytes,
            **await charter_values(request, found),
        },
        csrf=session.csrf_token,
        status=status,
    )
    response.headers["content-security-policy"] = CONTENT_SECURITY_POLICY_MAIL_VIEW
    return response


@portal_page
async def message_page(request: Request, found: Pickup) -> Response:
    return await _message_page(request, found)


@portal_page
async def message_body(request: Request, found: Pickup) -> Response:
    """The body alone, for the ``<iframe sandbox>`` of the message page."""
    await session_for(request, found)
    raw = await content(web_state(request).app, found)
    return await mail_body.body_response(raw)


@portal_page
async def attachment(request: Request, found: Pickup) -> Response:
    await session_for(request, found)
    try:
        meta, data = await pickup.download(
            web_state(request).app, found, int_param(request, "part"), source=client_ip(request)
        )
    except NotFound:
        return render(
            request,
            "portal/closed.html",
            {
                "title": _("Pièce jointe introuvable"),
                "message": _("Cette pièce jointe n'existe pas."),
                **await charter_values(request, found),
            },
            status=404,
        )
    return download_response(data, meta.filename, mail_display.download_type(meta.content_type))


@portal_page
async def send_reply(request: Request, found: Pickup) -> Response:
    session = await session_for(request, found)
    app = web_state(request).app
    form = await request.form(
        max_files=pickup.MAX_REPLY_FILES + 1,
        max_part_size=app.settings.pickup_reply_max_bytes + 1,
    )
    given = form.get("csrf")
    check_session_csrf(session, given if isinstance(given, str) else None)
    text = form.get("texte")
    files = []
    try:
        for item in form.getlist("fichiers"):
            if isinstance(item, UploadFile) and item.filename:
                files.append(pickup.check_reply_file(item.filename, await item.read()))
        await portal_reply.reply(
            app, found, text if isinstance(text, str) else "", files, source=client_ip(request)
        )
    except (InvalidInput, LimitReached, VirusFound) as exc:
        return await _message_page(request, found, error=error_message(exc), status=400)
    except ScanUnavailable as exc:  # nothing sent: the patient tries again later
        return await _message_page(request, found, error=error_message(exc), status=503)
    return render(
        request,
        "portal/sent.html",
        {"base": _base(request), **await charter_values(request, found)},
        csrf=session.csrf_token,
    )


@portal_page
async def leave(request: Request, found: Pickup) -> Response:
    session = await session_for(request, found)
    form = await request.form()
    given = form.get("csrf")
    check_session_csrf(session, given if isinstance(given, str) else None)
    await pickup_auth.end_session(web_state(request).app, session)
    response = redirect(_base(request))
    clear_cookie(response, PORTAL_COOKIE)
    return response


routes = [
    Route(Page.PICKUP.path, entry.landing, methods=["GET"], name="portal"),
    Route(Page.PICKUP_CHARTER.path, entry.charter_page, methods=["GET"], name="portal_charter"),
    Route("/portail/{token}/code", entry.ask_code, methods=["POST"]),
    Route("/portail/{token}/verifier", entry.code_page, methods=["GET"]),
    Route("/portail/{token}/verifier", entry.check_code, methods=["POST"]),
    Route("/portail/{token}/mot-de-passe", entry.check_passphrase, methods=["POST"]),
    Route("/portail/{token}/message", message_page, methods=["GET"]),
    Route("/portail/{token}/corps", message_body, methods=["GET"]),
    Route("/portail/{token}/pj/{part}", attachment, methods=["GET"]),
    Route("/portail/{token}/envoyer", send_reply, methods=["POST"]),
    Route("/portail/{token}/fin", leave, methods=["POST"]),
]
