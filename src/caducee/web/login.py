"""Login (password, then the second factor) and logout.

``POST /connexion`` is protected by a double-submit token (``__Host-caducee-login`` cookie and
form field; nobody has a session yet) and the per-address rate limit. A right password opens a
half session: ``mfa`` (second factor awaited), ``enrol`` (the practice requires a second factor
the account does not have yet) or, when no second factor is set nor required, a full one.
Completing the second factor replaces the half session by a new one (new token and CSRF token).
"""

from __future__ import annotations

import hmac
import json

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from caducee.domain.model import Account
from caducee.errors import AccessDenied
from caducee.services import mfa, oidc, totp, web_sessions, webauthn_keys
from caducee.services.auth import verify_password_login
from caducee.services.lockout import AccountLocked
from caducee.services.web_sessions import Stage, WebSession
from caducee.web import webauthn
from caducee.web.core import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    WebState,
    WebUser,
    clear_cookie,
    client_ip,
    current_session,
    error_message,
    error_page,
    form_data,
    new_login_csrf,
    page,
    redirect,
    render,
    safe_next,
    set_session_cookie,
    stage_home,
    state,
    user_agent,
)
from caducee.web.i18n import gettext as _

ALL_STAGES = frozenset(Stage)
MFA_ONLY = frozenset({Stage.MFA})


async def _rate_limited(request: Request, web: WebState) -> Response | None:
    ip = client_ip(request)
    if await web.login_limiter.allow(ip):
        return None
    response = error_page(
        request,
        429,
        _("Trop de tentatives depuis votre adresse : patientez une minute avant de réessayer."),
    )
    response.headers["retry-after"] = str(await web.login_limiter.retry_after(ip))
    return response


def _login_form(
    request: Request, token: str, *, error: str = "", login: str = "", status: int = 200
) -> Response:
    response = render(
        request,
        "login.html",
        {
            "error": error,
            "login": login,
            "next": safe_next(request.query_params.get("suite"), ""),
            "psc": oidc.provider(state(request).app).configured,
        },
        csrf=token,
        status=status,
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE, token, path="/", secure=True, httponly=True, samesite="strict"
    )
    return response


async def login_page(request: Request) -> Response:
    session = await current_session(request)
    if session is not None:
        return redirect(stage_home(session.stage))
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or new_login_csrf()
    if len(token) > 100:
        token = new_login_csrf()
    return _login_form(request, token)


async def stage_after_first_factor(web: WebState, account: Account) -> Stage:
    """Where a login that proved one factor (a password, or Pro Santé Connect below the
    required ``acr``) lands: the second factor if the account has one, its enrolment if the
    practice requires one, else a full session."""
    factors = await mfa.second_factors(web.app, account.id)
    if factors.any:
        return Stage.MFA
    if await mfa.second_factor_required(web.app, account.practice_id):
        return Stage.ENROL
    return Stage.FULL


async def login_submit(request: Request) -> Response:
    web = state(request)
    limited = await _rate_limited(request, web)
    if limited is not None:
        return limited
    form = await form_data(request)
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    given = form.get("csrf", "")
    if (
        not cookie
        or not given
        or not hmac.compare_digest(cookie.encode("utf-8"), given.encode("utf-8"))
    ):
        return error_page(
            request,
            403,
            _("Jeton de sécurité absent ou invalide : rechargez la page et recommencez."),
        )
    login = form.get("identifiant", "").strip()
    password = form.get("mot_de_passe", "")
    next_path = safe_next(form.get("suite"), "/accueil")
    now = web.config.clock()
    source = client_ip(request)
    try:
        account = await verify_password_login(web.app, login, password, source, now=now)
    except AccountLocked as exc:
        return _login_form(request, cookie, error=error_message(exc), login=login, status=429)
    except AccessDenied as exc:
        return _login_form(request, cookie, error=error_message(exc), login=login, status=401)

    stage = await stage_after_first_factor(web, account)
    previous = await current_session(request)
    # Housekeeping: expired and idle sessions of everyone are deleted at each login.
    await web_sessions.purge_sessions(web.app, policy=web.config.session_policy, now=now)
    token, session = await web_sessions.create_session(
        web.app,
        account,
        stage,
        policy=web.config.session_policy,
        source=source,
        user_agent=user_agent(request),
        now=now,
        method="password",
        replaces=previous.id if previous else None,
    )
    if stage is not Stage.FULL:
        await web_sessions.set_pending(web.app, session, {"next": next_path})
    response = redirect(
        next_path if stage is Stage.FULL else stage_home(stage),
        flash="welcome" if stage is Stage.FULL else None,
    )
    set_session_cookie(response, token, web.config)
    clear_cookie(response, LOGIN_CSRF_COOKIE)
    return response


async def complete_login(
    request: Request, session: WebSession, account: Account, method: str
) -> tuple[str, str]:
    """Replace a half session by a full one; return the new token and where to go next."""
    web = state(request)
    next_path = safe_next(str((session.pending or {}).get("next", "")), "/accueil")
    token, _new = await web_sessions.create_session(
        web.app,
        account,
        Stage.FULL,
        policy=web.config.session_policy,
        source=client_ip(request),
        user_agent=user_agent(request),
        now=web.config.clock(),
        method=method,
        replaces=session.id,
    )
    return token, next_path


@page(stages=MFA_ONLY)
async def verify_page(request: Request, user: WebUser) -> Response:
    return await _verify_form(request, user)


async def _verify_form(
    request: Request, user: WebUser, *, error: str = "", status: int = 200
) -> Response:
    web = state(request)
    factors = await mfa.second_factors(web.app, user.account.id)
    return render(
        request,
        "verify.html",
        {"factors": factors, "error": error},
        user=user,
        status=status,
    )


@page(stages=MFA_ONLY)
async def verify_submit(request: Request, user: WebUser) -> Response:
    web = state(request)
    limited = await _rate_limited(request, web)
    if limited is not None:
        return limited
    form = await form_data(request)
    method = form.get("methode", "totp")
    code = form.get("code", "")
    source = client_ip(request)
    now = web.config.clock()
    try:
        if method == "secours":
            account = await mfa.use_recovery_code(
                web.app, user.account.login, code, source, now=now
            )
        else:
            account = await totp.verify_totp(web.app, user.account.login, code, source, now=now)
    except AccessDenied as exc:
        status = 429 if isinstance(exc, AccountLocked) else 401
        return await _verify_form(request, user, error=error_message(exc), status=status)
    token, next_path = await complete_login(
        request, user.session, account, "recovery" if method == "secours" else "totp"
    )
    response = redirect(next_path, flash="recovery_used" if method == "secours" else "welcome")
    set_session_cookie(response, token, web.config)
    return response


@page(stages=MFA_ONLY, json=True)
async def key_login_options(request: Request, user: WebUser) -> Response:
    web = state(request)
    now = web.config.clock()
    try:
        await webauthn_keys.begin_webauthn_login(
            web.app, user.account.login, client_ip(request), now
        )
    except AccountLocked as exc:
        return JSONResponse({"error": error_message(exc)}, status_code=429)
    credentials = await webauthn_keys.webauthn_credentials(web.app, user.account.id)
    if not credentials:
        return JSONResponse({"error": _("Aucune clé de sécurité enregistrée.")}, status_code=400)
    options, challenge = webauthn.authentication_options(
        web.app.settings.hostname, credentials, now
    )
    pending = dict(user.session.pending or {})
    pending.update(challenge)
    await web_sessions.set_pending(web.app, user.session, pending)
    return Response(options, media_type="application/json")


@page(stages=MFA_ONLY, json=True)
async def key_login_finish(request: Request, user: WebUser) -> Response:
    web = state(request)
    if not await _rate_limited_json_ok(request, web):
        return JSONResponse({"error": _("Trop de tentatives.")}, status_code=429)
    now = web.config.clock()
    challenge = webauthn.take_challenge(user.session.pending, "login", now)
    pending = {"next": (user.session.pending or {}).get("next", "")}
    await web_sessions.set_pending(web.app, user.session, pending)  # a challenge is used once
    try:
        body = json.loads(await request.body())
        account = await webauthn.verify_login(
            web.app,
            user.account,
            body.get("credential") if isinstance(body, dict) else None,
            challenge,
            webauthn.expected_origin(web.app.settings.hostname, request.headers.get("host", "")),
            source=client_ip(request),
            now=now,
        )
    except ValueError:
        return JSONResponse({"error": _("Réponse invalide.")}, status_code=400)
    except AccessDenied as exc:
        return JSONResponse({"error": error_message(exc)}, status_code=401)
    token, next_path = await complete_login(request, user.session, account, "webauthn")
    response = JSONResponse({"redirect": next_path})
    set_session_cookie(response, token, web.config)
    return response


async def _rate_limited_json_ok(request: Request, web: WebState) -> bool:
    return await web.login_limiter.allow(client_ip(request))


@page(stages=ALL_STAGES)
async def logout(request: Request, user: WebUser) -> Response:
    web = state(request)
    await web_sessions.end_session(
        web.app, user.session, user.account.login, source=client_ip(request)
    )
    response = redirect("/connexion", flash="logged_out")
    clear_cookie(response, SESSION_COOKIE)
    return response


@page()
async def logout_everywhere(request: Request, user: WebUser) -> Response:
    web = state(request)
    await web_sessions.end_all_sessions(
        web.app, user.account, actor=user.account.login, source=client_ip(request)
    )
    response = redirect("/connexion", flash="logged_out_all")
    clear_cookie(response, SESSION_COOKIE)
    return response


routes = [
    Route("/connexion", login_page, methods=["GET"], name="login"),
    Route("/connexion", login_submit, methods=["POST"], name="login_submit"),
    Route("/connexion/verification", verify_page, methods=["GET"], name="verify"),
    Route("/connexion/verification", verify_submit, methods=["POST"], name="verify_submit"),
    Route("/connexion/cle/options", key_login_options, methods=["POST"], name="key_login_options"),
    Route("/connexion/cle", key_login_finish, methods=["POST"], name="key_login_finish"),
    Route("/deconnexion", logout, methods=["POST"], name="logout"),
    Route("/deconnexion/partout", logout_everywhere, methods=["POST"], name="logout_everywhere"),
]
