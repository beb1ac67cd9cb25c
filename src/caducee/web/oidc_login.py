"""Login with Pro Santé Connect (OpenID Connect, see :mod:`caducee.services.oidc`).

``GET /connexion/psc`` sets a short-lived random cookie and sends the browser to the issuer
with a state, a nonce and a PKCE challenge all derived from that cookie; ``GET
/connexion/psc/retour`` checks them and maps the national identifier to the account. A full
session opens only when the ID token's ``acr`` reaches the configured level (the CPS card or
e-CPS is itself a strong, two-factor authentication); below it the login counts as a password
login: the second factor, or its enrolment if the practice requires one, is asked next. The
session cookie is SameSite=Strict, which a browser does not send on a navigation started by
another site: the return therefore answers with a small page that continues by itself.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from caducee.errors import AccessDenied, TemporaryFailure
from caducee.services import oidc, web_sessions
from caducee.services.web_sessions import Stage
from caducee.web.core import (
    clear_cookie,
    client_ip,
    current_session,
    error_message,
    error_page,
    render,
    set_session_cookie,
    stage_home,
    state,
    user_agent,
)
from caducee.web.i18n import gettext as _
from caducee.web.login import stage_after_first_factor

PSC_COOKIE = "__Host-caducee-psc"
#: Seconds the browser has to come back from the issuer.
PSC_COOKIE_SECONDS = 600


def _return_url(request: Request) -> str:
    return str(request.url_for("oidc_return"))


async def oidc_start(request: Request) -> Response:
    web = state(request)
    provider = oidc.provider(web.app)
    if not provider.configured:
        return error_page(request, 404, _("La connexion Pro Santé Connect n'est pas configurée."))
    secret = oidc.new_login_secret()
    try:
        target = await provider.authorization_url(secret, _return_url(request))
    except (AccessDenied, TemporaryFailure) as exc:
        return error_page(request, 503, error_message(exc))
    response = Response(status_code=303, headers={"location": target})
    # Lax: the cookie must come back on the issuer's top-level redirect to us.
    response.set_cookie(
        PSC_COOKIE,
        secret,
        max_age=PSC_COOKIE_SECONDS,
        path="/",
        secure=True,
        httponly=True,
        samesite="lax",
    )
    return response


async def oidc_return(request: Request) -> Response:
    web = state(request)
    provider = oidc.provider(web.app)
    if not provider.configured:
        return error_page(request, 404, _("La connexion Pro Santé Connect n'est pas configurée."))
    if "error" in request.query_params:
        return error_page(request, 403, _("Connexion Pro Santé Connect annulée ou refusée."))
    secret = request.cookies.get(PSC_COOKIE, "")
    code = request.query_params.get("code", "")[:2000]
    returned_state = request.query_params.get("state", "")[:200]
    source = client_ip(request)
    try:
        login = await provider.finish_login(
            secret, returned_state, code, _return_url(request), source
        )
    except (AccessDenied, TemporaryFailure) as exc:
        response = error_page(request, 403, error_message(exc))
        clear_cookie(response, PSC_COOKIE)
        return response
    account = login.account
    stage = Stage.FULL if login.strong else await stage_after_first_factor(web, account)
    previous = await current_session(request)
    now = web.config.clock()
    await web_sessions.purge_sessions(web.app, policy=web.config.session_policy, now=now)
    token, session = await web_sessions.create_session(
        web.app,
        account,
        stage,
        policy=web.config.session_policy,
        source=source,
        user_agent=user_agent(request),
        now=now,
        method="psc",
        replaces=previous.id if previous else None,
    )
    if stage is not Stage.FULL:
        await web_sessions.set_pending(web.app, session, {"next": "/accueil"})
    response = render(
        request,
        "psc_continue.html",
        {"target": stage_home(stage), "second_factor": stage is not Stage.FULL},
    )
    set_session_cookie(response, token, web.config)
    clear_cookie(response, PSC_COOKIE)
    return response


routes = [
    Route("/connexion/psc", oidc_start, methods=["GET"], name="oidc_start"),
    Route("/connexion/psc/retour", oidc_return, methods=["GET"], name="oidc_return"),
]
