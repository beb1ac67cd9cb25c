"""What every page shares: the web state, cookies, CSRF, rendering, and the access check.

Each route handler is wrapped by :func:`page`, which

1. loads the server-side session from the ``__Host-caducee-session`` cookie (idle and absolute
   expiry checked against the injectable clock) and the account (a disabled account's session
   is ended at once);
2. sends half-logged-in sessions to the second-factor or enrolment pages;
3. checks the CSRF synchroniser token (form field ``csrf`` or header ``X-CSRF-Token``, in
   constant time) on every state-changing request, before anything else runs;
4. checks the role (``admin=True``); objects of another practice are refused by the handlers
   with the same 404 as unknown ones (:func:`not_found`).
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from jinja2 import Environment
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from caducee.app import App
from caducee.domain.model import Account, Practice, Role
from caducee.errors import AccessDenied, CaduceeError, NotFound
from caducee.health import teletransmission
from caducee.services import last_use, web_sessions
from caducee.services.rate_limits import RateLimiter
from caducee.services.web_sessions import Stage, WebSession
from caducee.web.config import WebConfig
from caducee.web.i18n import N_, current_language, gettext
from caducee.web.middleware import (
    CONTENT_SECURITY_POLICY_DATA_IMAGES,
    CONTENT_SECURITY_POLICY_DOWNLOAD,
)

__all__ = ["N_"]  # re-exported for the route modules

SESSION_COOKIE = "__Host-caducee-session"
LOGIN_CSRF_COOKIE = "__Host-caducee-login"
FLASH_COOKIE = "__Host-caducee-flash"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


#: Short notices shown once on the next page, by key (the cookie carries only the key).
FLASHES: dict[str, str] = {
    "logged_out": N_("Vous êtes déconnecté."),
    "sent": N_("Message envoyé."),
    "draft_saved": N_("Brouillon enregistré."),
    "logged_out_all": N_("Toutes vos sessions ont été fermées, sur tous vos appareils."),
    "expired": N_("Votre session a expiré : reconnectez-vous."),
    "password_changed": N_("Mot de passe modifié. Vos autres sessions ont été fermées."),
    "totp_disabled": N_("La validation par application d'authentification est désactivée."),
    "key_added": N_("Clé de sécurité enregistrée."),
    "key_removed": N_("Clé de sécurité supprimée."),
    "app_password_revoked": N_("Mot de passe d'application révoqué."),
    "absence_saved": N_(
        "Absence enregistrée : les messages reçus à ces dates reçoivent une réponse automatique."
    ),
    "absence_removed": N_("Absence supprimée : plus de réponse automatique d'absence."),
    "recovery_used": N_(
        "Vous vous êtes connecté avec un code de secours : il ne servira plus. Pensez à en "
        "générer de nouveaux s'il vous en reste peu."
    ),
    "saved": N_("Modifications enregistrées."),
    "account_disabled": N_("Compte désactivé : ses sessions ont été fermées."),
    "account_enabled": N_("Compte réactivé."),
    "account_deleted": N_("Compte supprimé, avec sa boîte personnelle et ses accès."),
    "mailbox_disabled": N_("Boîte désactivée : plus personne n'y accède."),
    "mailbox_enabled": N_("Boîte réactivée."),
    "mailbox_deleted": N_("Boîte supprimée : sa clé de chiffrement a été détruite."),
    "mailbox_exempted": N_("Boîte exemptée de la règle d'inactivité."),
    "mailbox_unexempted": N_("Exemption retirée : la règle d'inactivité s'applique à nouveau."),
    "second_factor_reset": N_(
        "Les seconds facteurs du compte ont été supprimés : la personne devra en configurer un "
        "nouveau."
    ),
    "mailbox_quota": N_("Quota modifié."),
    "delegation_granted": N_("Délégation accordée."),
    "delegation_revoked": N_("Délégation retirée."),
    "welcome": N_("Vous êtes connecté."),
    "patient_erased": N_(
        "Patient effacé du registre, avec ses coordonnées ; le journal d'audit et les messages "
        "des boîtes des praticiens restent."
    ),
}


@dataclass
class WebState:
    """Everything the routes need, kept on the Starlette application."""

    app: App
    config: WebConfig
    templates: Environment
    login_limiter: RateLimiter


@dataclass(frozen=True)
class WebUser:
    session: WebSession
    account: Account
    practice: Practice

    @property
    def is_admin(self) -> bool:
        return self.account.role is Role.ADMIN


class PageError(Exception):
    """Stops a handler with an error page (403, 404, 400...)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def not_found() -> PageError:
    """The one answer for an unknown object and for another practice's object."""
    return PageError(404, gettext("Cette page n'existe pas, ou vous n'y avez pas accès."))


def state(request: Request) -> WebState:
    web: WebState = request.app.state.web
    return web


def client_ip(request: Request) -> str:
    return request.client.host if request.client else ""


def user_agent(request: Request) -> str:
    return request.headers.get("user-agent", "")[:200]


def safe_next(value: str | None, default: str = "/accueil") -> str:
    """A local path to go to after the login (never another site)."""
    if (
        value
        and value.startswith("/")
        and not value.startswith("//")
        and "\\" not in value
        and all(c.isprintable() and not c.isspace() for c in value)
        and len(value) < 500
    ):
        return value
    return default


def error_message(exc: CaduceeError) -> str:
    return exc.message(current_language.get())


# --- cookies ---------------------------------------------------------------------------------


def set_session_cookie(response: Response, token: str, config: WebConfig) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(config.session_absolute.total_seconds()),
        path="/",
        secure=True,
        httponly=True,
        samesite="strict",
    )


def clear_cookie(response: Response, name: str) -> None:
    response.set_cookie(
        name, "", max_age=0, expires=0, path="/", secure=True, httponly=True, samesite="strict"
    )


def set_flash(response: Response, key: str) -> None:
    assert key in FLASHES
    response.set_cookie(
        FLASH_COOKIE, key, max_age=120, path="/", secure=True, httponly=True, samesite="strict"
    )


def redirect(path: str, *, flash: str | None = None) -> RedirectResponse:
    response = RedirectResponse(path, status_code=303)
    if flash:
        set_flash(response, flash)
    return response


# --- rendering -------------------------------------------------------------------------------


def render(
    request: Request,
    template: str,
    context: Mapping[str, Any] | None = None,
    *,
    status: int = 200,
    user: WebUser | None = None,
    csrf: str | None = None,
    data_images: bool = False,
) -> HTMLResponse:
    """Render a page; ``data_images`` relaxes the CSP for ``data:`` images (QR code only)."""
    web = state(request)
    user = user or getattr(request.state, "user", None)
    flash_key = request.cookies.get(FLASH_COOKIE)
    flash = gettext(FLASHES[flash_key]) if flash_key in FLASHES else None
    values: dict[str, Any] = {
        "user": user,
        "csrf": csrf or (user.session.csrf_token if user else ""),
        "lang": current_language.get(),
        "flash": flash,
        "path": request.url.path,
        "hostname": web.app.settings.hostname,
        "url": request.app.url_path_for,
        "tlt_nav": getattr(request.state, "tlt_nav", (0, 0)),
    }
    values.update(context or {})
    body = web.templates.get_template(template).render(values)
    response = HTMLResponse(body, status_code=status)
    response.headers["cache-control"] = "no-store"
    if data_images:
        response.headers["content-security-policy"] = CONTENT_SECURITY_POLICY_DATA_IMAGES
    if flash_key is not None:
        clear_cookie(response, FLASH_COOKIE)
    return response


def error_page(request: Request, status: int, message: str) -> HTMLResponse:
    titles = {
        400: gettext("Demande incorrecte"),
        403: gettext("Accès refusé"),
        404: gettext("Page introuvable"),
        405: gettext("Méthode non autorisée"),
        413: gettext("Requête trop volumineuse"),
        429: gettext("Trop de tentatives"),
    }
    return render(
        request,
        "error.html",
        {"title": titles.get(status, gettext("Erreur")), "message": message},
        status=status,
    )


def content_disposition(filename: str) -> str:
    """RFC 6266 ``attachment``: an ASCII fallback and the UTF-8 name (RFC 8187 §3.2)."""
    cleaned = "".join(c for c in filename if c.isprintable() and c not in '/\\"\r\n')[:150]
    cleaned = cleaned.strip(". ") or "piece-jointe"
    fallback = cleaned.encode("ascii", "replace").decode("ascii").replace("?", "_")
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(cleaned, safe='')}"


def download_response(data: bytes | str, filename: str, media_type: str) -> Response:
    """Every file the web door hands out (attachments of the webmail, the portal and the API,
    exports): saved, never shown inline, never sniffed, never cached, and under
    :data:`CONTENT_SECURITY_POLICY_DOWNLOAD` — sandboxed, and framed by no other site."""
    response = Response(data, media_type=media_type)
    response.headers["content-disposition"] = content_disposition(filename)
    response.headers["x-content-type-options"] = "nosniff"
    response.headers["cache-control"] = "no-store"
    response.headers["content-security-policy"] = CONTENT_SECURITY_POLICY_DOWNLOAD
    return response


# --- sessions and the access check -----------------------------------------------------------


async def current_session(request: Request) -> WebSession | None:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    web = state(request)
    return await web_sessions.load_session(
        web.app, token, policy=web.config.session_policy, now=web.config.clock()
    )


async def check_csrf(request: Request, expected: str) -> bool:
    given = request.headers.get("x-csrf-token")
    if given is None:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            # The form is parsed once and cached: allow parts as large as a message may be (the
            # body limit middleware bounds the whole request first).
            form = await request.form(
                max_files=64, max_part_size=state(request).app.settings.max_message_bytes
            )
            value = form.get("csrf")
            given = value if isinstance(value, str) else None
    if not given or not expected:
        return False
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def csrf_refused(request: Request, *, json: bool = False) -> Response:
    message = gettext("Jeton de sécurité absent ou invalide : rechargez la page et recommencez.")
    if json:
        return JSONResponse({"error": message}, status_code=403)
    return error_page(request, 403, message)


def login_redirect(request: Request, *, expired: bool, json: bool = False) -> Response:
    if json:
        return JSONResponse(
            {"error": gettext("Votre session a expiré : reconnectez-vous.")}, status_code=401
        )
    target = "/connexion"
    if request.method == "GET" and request.url.path not in ("/", "/accueil"):
        target += "?suite=" + quote(request.url.path, safe="/")
    response = redirect(target, flash="expired" if expired else None)
    if expired:
        clear_cookie(response, SESSION_COOKIE)
    return response


Handler = Callable[[Request], Awaitable[Response]]
UserHandler = Callable[[Request, WebUser], Awaitable[Response]]

FULL_ONLY: frozenset[Stage] = frozenset({Stage.FULL})


def stage_home(stage: Stage) -> str:
    if stage is Stage.MFA:
        return "/connexion/verification"
    if stage is Stage.ENROL:
        return "/compte/securite/enrolement"
    return "/accueil"


def page(
    *,
    admin: bool = False,
    stages: Collection[Stage] = FULL_ONLY,
    json: bool = False,
) -> Callable[[UserHandler], Handler]:
    """Wrap a handler that needs a session (see the module docstring)."""

    def decorate(handler: UserHandler) -> Handler:
        async def endpoint(request: Request) -> Response:
            web = state(request)
            had_cookie = SESSION_COOKIE in request.cookies
            session = await current_session(request)
            if session is None:
                return login_redirect(request, expired=had_cookie, json=json)
            account = await web_sessions.account_by_id(web.app, session.account_id)
            if account is None or account.disabled:
                await web_sessions.end_session(
                    web.app,
                    session,
                    account.login if account else "?",
                    source=client_ip(request),
                    reason="disabled",
                )
                return login_redirect(request, expired=True, json=json)
            if request.method not in SAFE_METHODS and not await check_csrf(
                request, session.csrf_token
            ):
                return csrf_refused(request, json=json)
            if session.stage not in stages:
                if json:
                    return JSONResponse({"error": "stage"}, status_code=403)
                return redirect(stage_home(session.stage))
            await last_use.note(web.app, account_id=account.id)  # at most hourly
            practice = await web_sessions.practice_of(web.app, account)
            user = WebUser(session=session, account=account, practice=practice)
            request.state.user = user
            if not json and session.stage in FULL_ONLY:
                # The « Télétransmission » link and its badge (one query).
                request.state.tlt_nav = await teletransmission.navigation(web.app, account.id)
            if admin and not user.is_admin:
                return error_page(
                    request,
                    403,
                    gettext("Cette page est réservée aux administrateurs du cabinet."),
                )
            try:
                return await handler(request, user)
            except PageError as exc:
                if json:
                    return JSONResponse({"error": exc.message}, status_code=exc.status)
                return error_page(request, exc.status, exc.message)
            except AccessDenied as exc:
                return error_page(request, 403, error_message(exc))
            except NotFound:
                return error_page(request, 404, not_found().message)

        endpoint.__name__ = handler.__name__
        endpoint.__doc__ = handler.__doc__
        return endpoint

    return decorate


async def form_data(request: Request) -> dict[str, str]:
    """The submitted form's text fields (files are not accepted here)."""
    form = await request.form()
    return {key: value for key, value in form.items() if isinstance(value, str)}


def new_login_csrf() -> str:
    return secrets.token_urlsafe(32)


def int_param(request: Request, name: str) -> int:
    """A numeric path parameter; anything else is the same 404 as an unknown object."""
    raw = request.path_params.get(name)
    try:
        value = int(str(raw))
    except ValueError:
        raise not_found() from None
    if value <= 0 or value > 2**62:
        raise not_found()
    return value
