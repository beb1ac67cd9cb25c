"""What the portal pages share: finding the pickup of a URL (rate limit on unknown links per
client address, clear pages for closed links, all audited), the double-submit CSRF token of
the pages before the code, and the portal session bound to ONE pickup."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from caducee.domain import charter as charter_rules
from caducee.domain import web_links
from caducee.domain.web_links import Page
from caducee.errors import NotFound
from caducee.health import charter, pickup_auth
from caducee.health.pickup_auth import PortalSession
from caducee.health.pickup_store import Pickup, PickupClosed, by_token
from caducee.services import rate_limits
from caducee.services.audit import AuditEvent, record
from caducee.services.rate_limits import RateLimiter
from caducee.web.core import PageError, client_ip, error_page, render, state
from caducee.web.i18n import current_language
from caducee.web.i18n import gettext as _

PORTAL_COOKIE = "__Host-caducee-portail"
PORTAL_CSRF_COOKIE = "__Host-caducee-portail-csrf"
#: Unknown links one client address may try per minute before every portal URL answers 429.
UNKNOWN_LINKS_PER_MINUTE = 20


def limiter(request: Request) -> RateLimiter:
    """Unknown links per client address: the node's limiter, held by its app."""
    return rate_limits.limiter(state(request).app, "portal.unknown_links", UNKNOWN_LINKS_PER_MINUTE)


async def audit_refusal(request: Request, action: str, pickup_id: int = 0, **details: str) -> None:
    """A refused portal request, audited with the client address (never the link's token)."""
    await record(
        state(request).app.db,
        AuditEvent(
            actor=f"pickup:{pickup_id}" if pickup_id else "portal",
            action=action,
            source=client_ip(request),
            result="denied",
            details={"path": request.url.path.split("/")[-1][:30] if pickup_id else "", **details},
        ),
    )


async def charter_values(request: Request, found: Pickup) -> dict[str, Any]:
    """What the portal's layout needs for the short charter of the pickup's practice (its
    sender's own, for a personal mailbox), and the full charter's page."""
    rules = await charter.charter_for_mailbox(state(request).app, found.sender_mailbox_id)
    now = datetime.now(UTC)
    token = str(request.path_params["token"])
    return {
        "charter": charter_rules.view(rules, current_language.get(), today=now.date(), now=now),
        "charter_url": web_links.url("", Page.PICKUP_CHARTER, token=token),
    }


def closed_page(request: Request, reason: str, message: str, status: int) -> Response:
    titles = {
        "unknown": _("Lien inconnu ou expiré"),
        "expired": _("Message expiré"),
        "revoked": _("Message retiré"),
        "locked": _("Lien verrouillé"),
        "limited": _("Trop de tentatives"),
        "session": _("Accès refusé"),
    }
    response = render(
        request,
        "portal/closed.html",
        {"title": titles.get(reason, _("Accès refusé")), "message": message, "reason": reason},
        status=status,
    )
    return response


class PortalRefused(Exception):
    """Stops a portal handler with a clear page (already audited)."""

    def __init__(self, response: Response) -> None:
        super().__init__("refused")
        self.response = response


def unknown_message() -> str:
    return _(
        "Ce lien est inconnu ou a expiré. Vérifiez l'adresse reçue par courriel, ou demandez à "
        "votre cabinet de vous renvoyer le message."
    )


async def pickup_of(request: Request) -> Pickup:
    """The pickup of the URL's token, open; otherwise PortalRefused with the clear page."""
    ip = client_ip(request)
    limits = limiter(request)
    if await limits.blocked(ip):
        await audit_refusal(request, "pickup.rate_limited")
        response = closed_page(
            request,
            "limited",
            _("Trop de liens inconnus depuis votre adresse : patientez une minute."),
            429,
        )
        response.headers["retry-after"] = "60"
        raise PortalRefused(response)
    try:
        found = await by_token(state(request).app, str(request.path_params.get("token", "")))
    except NotFound:
        await limits.allow(ip)  # one unknown link counted
        await audit_refusal(request, "pickup.unknown_link")
        raise PortalRefused(closed_page(request, "unknown", unknown_message(), 404)) from None
    try:
        found.check_open()
    except PickupClosed as exc:
        raise PortalRefused(await closed_response(request, found, exc)) from None
    return found


async def closed_response(request: Request, found: Pickup, exc: PickupClosed) -> Response:
    await audit_refusal(request, "pickup.closed", found.id, reason=exc.reason)
    messages = {
        "expired": _(
            "Ce message a expiré et n'est plus disponible. Demandez à votre cabinet de vous le "
            "renvoyer."
        ),
        "revoked": _("Ce message a été retiré par votre cabinet. Contactez-le si besoin."),
        "locked": _(
            "Ce lien est verrouillé après trop de codes erronés. Votre cabinet est prévenu : "
            "contactez-le pour recevoir un nouveau lien."
        ),
    }
    status = 403 if exc.reason == "locked" else 410
    return closed_page(request, exc.reason, messages.get(exc.reason, unknown_message()), status)


async def session_for(request: Request, found: Pickup) -> PortalSession:
    """The portal session of the request, which must belong to THIS pickup."""
    token = request.cookies.get(PORTAL_COOKIE, "")
    session = await pickup_auth.load_session(state(request).app, token) if token else None
    if session is None:
        await audit_refusal(request, "pickup.no_session", found.id)
        raise PortalRefused(
            render(
                request,
                "portal/closed.html",
                {
                    "title": _("Code nécessaire"),
                    "message": _(
                        "Pour lire ce message, identifiez-vous d'abord avec le code reçu par "
                        "SMS (ou votre mot de passe)."
                    ),
                    "reason": "session",
                    "landing": f"/portail/{request.path_params['token']}",
                },
                status=403,
            )
        )
    if session.pickup_id != found.id:
        await audit_refusal(request, "pickup.other_session", found.id)
        raise PortalRefused(
            closed_page(
                request,
                "session",
                _("Votre session ne donne pas accès à ce message : ouvrez le lien reçu."),
                403,
            )
        )
    return session


def check_session_csrf(session: PortalSession, given: str | None) -> None:
    if not given or not hmac.compare_digest(given.encode(), session.csrf_token.encode()):
        raise PageError(
            403, _("Jeton de sécurité absent ou invalide : rechargez la page et recommencez.")
        )


def check_landing_csrf(request: Request, given: str | None) -> None:
    cookie = request.cookies.get(PORTAL_CSRF_COOKIE, "")
    if not cookie or not given or not hmac.compare_digest(cookie.encode(), given.encode()):
        raise PageError(
            403, _("Jeton de sécurité absent ou invalide : rechargez la page et recommencez.")
        )


def set_portal_cookie(response: Response, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name, value, max_age=max_age, path="/", secure=True, httponly=True, samesite="strict"
    )


PickupHandler = Callable[[Request, Pickup], Awaitable[Response]]


def portal_page(handler: PickupHandler) -> Callable[[Request], Awaitable[Response]]:
    """Wrap a handler that needs the URL's open pickup (refusals answered with their page)."""

    async def endpoint(request: Request) -> Response:
        try:
            found = await pickup_of(request)
            return await handler(request, found)
        except PortalRefused as refused:
            return refused.response
        except PageError as exc:
            return error_page(request, exc.status, exc.message)

    endpoint.__name__ = handler.__name__
    endpoint.__doc__ = handler.__doc__
    return endpoint
