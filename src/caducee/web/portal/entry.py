"""The portal's door: the landing page (no content), asking for a code by SMS, entering it, or
the passphrase given in person. A right code or passphrase opens a portal session bound to
this one pickup (cookie ``__Host-caducee-portail``: HttpOnly, Secure, SameSite=Strict)."""

from __future__ import annotations

import logging
import secrets

from starlette.requests import Request
from starlette.responses import Response

from caducee.errors import CaduceeError, LimitReached
from caducee.health import pickup_auth
from caducee.health.pickup_store import Pickup, PickupClosed
from caducee.services import practices
from caducee.web.core import PageError, client_ip, error_message, redirect, render
from caducee.web.core import state as web_state
from caducee.web.i18n import gettext as _
from caducee.web.portal.common import (
    PORTAL_COOKIE,
    PORTAL_CSRF_COOKIE,
    charter_values,
    check_landing_csrf,
    closed_response,
    portal_page,
    set_portal_cookie,
)

log = logging.getLogger(__name__)


def _csrf(request: Request) -> str:
    token = request.cookies.get(PORTAL_CSRF_COOKIE, "")
    return token if 20 <= len(token) <= 100 else secrets.token_urlsafe(32)


async def _page(
    request: Request, template: str, found: Pickup, status: int = 200, **values: object
) -> Response:
    token = _csrf(request)
    response = render(
        request,
        template,
        {
            "base": f"/portail/{request.path_params['token']}",
            "pickup": found,
            **await charter_values(request, found),
            **values,
        },
        csrf=token,
        status=status,
    )
    set_portal_cookie(response, PORTAL_CSRF_COOKIE, token, 3600)
    return response


@portal_page
async def landing(request: Request, found: Pickup) -> Response:
    """No content here: the two ways to prove the link is yours."""
    return await _page(request, "portal/landing.html", found)


async def _form(request: Request) -> dict[str, str]:
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str)}


@portal_page
async def ask_code(request: Request, found: Pickup) -> Response:
    form = await _form(request)
    check_landing_csrf(request, form.get("csrf"))
    try:
        masked = await pickup_auth.request_code(
            web_state(request).app, found, source=client_ip(request)
        )
    except LimitReached as exc:
        return await _page(request, "portal/code.html", found, 429, error=error_message(exc))
    except PickupClosed as exc:
        return await closed_response(request, found, exc)
    except CaduceeError as exc:  # the SMS provider refused or is unreachable
        log.warning("portal code not sent: %s", type(exc).__name__)
        return await _page(
            request,
            "portal/landing.html",
            found,
            502,
            error=_("Le SMS n'a pas pu être envoyé. Réessayez dans quelques minutes."),
        )
    return await _page(request, "portal/code.html", found, masked=masked, sent=True)


@portal_page
async def charter_page(request: Request, found: Pickup) -> Response:
    """The practice's full charter: public rules, shown from the link alone (no code)."""
    practice = await practices.get_practice(web_state(request).app, found.practice_id)
    return await _page(request, "portal/charter.html", found, practice_name=practice.name)


@portal_page
async def code_page(request: Request, found: Pickup) -> Response:
    return await _page(request, "portal/code.html", found)


async def _opened(request: Request, found: Pickup) -> Response:
    token, _session = await pickup_auth.open_session(web_state(request).app, found)
    response = redirect(f"/portail/{request.path_params['token']}/message")
    set_portal_cookie(response, PORTAL_COOKIE, token, pickup_auth.SESSION_MINUTES * 60)
    return response


async def _wrong(request: Request, found: Pickup) -> str:
    left = await pickup_auth.tries_left(web_state(request).app, found)
    return _("Code ou mot de passe erroné. Essais restants avant verrouillage : {left}.").format(
        left=left
    )


@portal_page
async def check_code(request: Request, found: Pickup) -> Response:
    form = await _form(request)
    check_landing_csrf(request, form.get("csrf"))
    app = web_state(request).app
    try:
        if await pickup_auth.check_code(
            app, found, form.get("code", ""), source=client_ip(request)
        ):
            return await _opened(request, found)
    except PickupClosed as exc:
        return await closed_response(request, found, exc)
    return await _page(request, "portal/code.html", found, 400, error=await _wrong(request, found))


@portal_page
async def check_passphrase(request: Request, found: Pickup) -> Response:
    form = await _form(request)
    check_landing_csrf(request, form.get("csrf"))
    if not found.has_passphrase:
        raise PageError(404, _("Ce message ne s'ouvre pas par mot de passe."))
    app = web_state(request).app
    try:
        if await pickup_auth.check_passphrase(
            app, found, form.get("mot_de_passe", ""), source=client_ip(request)
        ):
            return await _opened(request, found)
    except PickupClosed as exc:
        return await closed_response(request, found, exc)
    return await _page(
        request, "portal/landing.html", found, 400, error=await _wrong(request, found)
    )
