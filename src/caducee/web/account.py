"""The user's own pages (everyone): profile, password, second factors, app passwords (their
own, and those of the mailboxes they own that log in with their own address), sessions.

Secrets created here (recovery codes, app passwords) are shown once, in the response to the
request that created them, never stored in clear nor put in a redirect.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pyotp
import segno
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from caducee.domain.model import Mailbox
from caducee.errors import AccessDenied, CaduceeError, InvalidInput
from caducee.health import absences
from caducee.services import accounts, app_passwords, mfa, totp, web_sessions, webauthn_keys
from caducee.services.auth import verify_password_login
from caducee.services.lockout import AccountLocked
from caducee.services.web_sessions import Stage
from caducee.web import webauthn
from caducee.web.core import (
    WebUser,
    client_ip,
    error_message,
    form_data,
    int_param,
    not_found,
    page,
    redirect,
    render,
    set_flash,
    set_session_cookie,
    state,
    user_agent,
)
from caducee.web.i18n import gettext as _

ENROLMENT = frozenset({Stage.FULL, Stage.ENROL})


# --- absence (issue 16: the auto-reply names the replacement) ---------------------------------


async def _absence_page(
    request: Request,
    user: WebUser,
    *,
    error: str = "",
    values: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    web = state(request)
    current = await absences.absence_of(web.app, user.account)
    colleagues = [
        a
        for a in await accounts.list_accounts(web.app, user.account.practice_id)
        if a.id != user.account.id and not a.disabled
    ]
    if values is None:
        values = {
            "debut": current.starts.isoformat() if current else "",
            "fin": current.ends.isoformat() if current else "",
            "remplacant": current.replacement.login if current and current.replacement else "",
            "message": current.message if current else "",
        }
    return render(
        request,
        "account/absence.html",
        {
            "absence": current,
            "active": current is not None and current.covers(absences.today()),
            "colleagues": colleagues,
            "values": values,
            "max_message": absences.MAX_MESSAGE_CHARS,
            "error": error,
            "nav_active": "absence",
        },
        status=status,
    )


@page()
async def absence_page(request: Request, user: WebUser) -> Response:
    return await _absence_page(request, user)


@page()
async def absence_save(request: Request, user: WebUser) -> Response:
    web = state(request)
    form = await form_data(request)
    values = {k: form.get(k, "") for k in ("debut", "fin", "remplacant", "message")}
    try:
        checked = await absences.check(
            web.app,
            user.account,
            starts=values["debut"],
            ends=values["fin"],
            replacement=values["remplacant"],
            message=values["message"],
        )
        await absences.save(
            web.app, user.account, checked, actor=user.account.login, source=client_ip(request)
        )
    except CaduceeError as exc:
        return await _absence_page(
            request, user, error=error_message(exc), values=values, status=400
        )
    return redirect("/compte/absence", flash="absence_saved")


@page()
async def absence_remove(request: Request, user: WebUser) -> Response:
    web = state(request)
    await absences.remove(
        web.app, user.account, actor=user.account.login, source=client_ip(request)
    )
    return redirect("/compte/absence", flash="absence_removed")


# --- profile and password --------------------------------------------------------------------


async def _profile(
    request: Request, user: WebUser, *, error: str = "", status: int = 200
) -> Response:
    return render(
        request, "account/profile.html", {"error": error, "nav_active": "compte"}, status=status
    )


@page()
async def profile(request: Request, user: WebUser) -> Response:
    return await _profile(request, user)


async def _check_password(request: Request, user: WebUser, password: str) -> None:
    """Re-check the account password before a sensitive change (counts towards the lock)."""
    web = state(request)
    await verify_password_login(
        web.app, user.account.login, password, client_ip(request), now=web.config.clock()
    )


@page()
async def change_password(request: Request, user: WebUser) -> Response:
    web = state(request)
    form = await form_data(request)
    new = form.get("nouveau", "")
    if new != form.get("confirmation", ""):
        return await _profile(
            request,
            user,
            error=_("Les deux saisies du nouveau mot de passe ne sont pas identiques."),
            status=400,
        )
    try:
        await _check_password(request, user, form.get("actuel", ""))
        await accounts.set_password(
            web.app, user.account.login, new, actor=user.account.login, source=client_ip(request)
        )
    except AccountLocked as exc:
        return await _profile(request, user, error=error_message(exc), status=429)
    except AccessDenied:
        return await _profile(
            request, user, error=_("Le mot de passe actuel est incorrect."), status=400
        )
    except CaduceeError as exc:
        return await _profile(request, user, error=error_message(exc), status=400)
    # Every other session ends; this one is replaced by a new one (new id).
    await web_sessions.end_all_sessions(
        web.app,
        user.account,
        actor=user.account.login,
        source=client_ip(request),
        reason="password_changed",
        except_id=user.session.id,
    )
    token, _session = await web_sessions.create_session(
        web.app,
        user.account,
        Stage.FULL,
        policy=web.config.session_policy,
        source=client_ip(request),
        user_agent=user_agent(request),
        now=web.config.clock(),
        replaces=user.session.id,
    )
    response = redirect("/compte", flash="password_changed")
    set_session_cookie(response, token, web.config)
    return response


# --- second factors --------------------------------------------------------------------------


async def _security(
    request: Request, user: WebUser, *, error: str = "", status: int = 200
) -> Response:
    web = state(request)
    factors = await mfa.second_factors(web.app, user.account.id)
    keys = await webauthn_keys.webauthn_credentials(web.app, user.account.id)
    sessions = await web_sessions.list_sessions(
        web.app, user.account.id, policy=web.config.session_policy, now=web.config.clock()
    )
    required = await mfa.second_factor_required(web.app, user.account.practice_id)
    return render(
        request,
        "account/security.html",
        {
            "factors": factors,
            "keys": keys,
            "sessions": sessions,
            "required": required,
            "error": error,
            "nav_active": "securite",
        },
        status=status,
    )


@page()
async def security(request: Request, user: WebUser) -> Response:
    return await _security(request, user)


@page(stages=ENROLMENT)
async def enrolment(request: Request, user: WebUser) -> Response:
    if user.session.stage is Stage.FULL:
        return redirect("/compte/securite")
    return render(request, "account/enrol.html", {})


async def _upgrade_after_enrolment(request: Request, user: WebUser) -> tuple[str, WebUser]:
    """A new session after a factor was added (a privilege change); ``enrol`` becomes full.

    Returns the new token (for the cookie) and the user with the new session (whose CSRF
    token the response's page must carry)."""
    web = state(request)
    token, session = await web_sessions.create_session(
        web.app,
        user.account,
        Stage.FULL,
        policy=web.config.session_policy,
        source=client_ip(request),
        user_agent=user_agent(request),
        now=web.config.clock(),
        method="enrolment" if user.session.stage is Stage.ENROL else "",
        replaces=user.session.id,
    )
    return token, replace(user, session=session)


@page(stages=ENROLMENT)
async def totp_begin(request: Request, user: WebUser) -> Response:
    web = state(request)
    try:
        await totp.begin_totp_enrolment(
            web.app, user.account.login, actor=user.account.login, source=client_ip(request)
        )
    except InvalidInput as exc:
        return await _security(request, user, error=error_message(exc), status=400)
    return redirect("/compte/securite/totp")


async def _totp_page(
    request: Request, user: WebUser, *, error: str = "", status: int = 200
) -> Response:
    web = state(request)
    secret = await mfa.pending_totp_secret(web.app, user.account.id)
    if secret is None:
        return redirect("/compte/securite")
    uri = pyotp.TOTP(secret, digits=totp.DIGITS, interval=totp.INTERVAL).provisioning_uri(
        name=user.account.login, issuer_name=totp.ISSUER
    )
    qr = segno.make(uri, error="m")
    return render(
        request,
        "account/totp.html",
        {
            "secret": " ".join(secret[i : i + 4] for i in range(0, len(secret), 4)),
            "secret_raw": secret,
            "qr": qr.svg_data_uri(scale=5, dark="#1d2b36"),
            "error": error,
        },
        data_images=True,
        status=status,
    )


@page(stages=ENROLMENT)
async def totp_page(request: Request, user: WebUser) -> Response:
    return await _totp_page(request, user)


@page(stages=ENROLMENT)
async def totp_confirm(request: Request, user: WebUser) -> Response:
    web = state(request)
    form = await form_data(request)
    try:
        await totp.confirm_totp(
            web.app,
            user.account.login,
            form.get("code", ""),
            actor=user.account.login,
            source=client_ip(request),
            now=web.config.clock(),
        )
    except InvalidInput as exc:
        return await _totp_page(request, user, error=error_message(exc), status=400)
    factors = await mfa.second_factors(web.app, user.account.id)
    codes: list[str] = []
    if factors.recovery_codes_left == 0:
        codes = await mfa.generate_recovery_codes(
            web.app, user.account, actor=user.account.login, source=client_ip(request)
        )
    token, upgraded = await _upgrade_after_enrolment(request, user)
    response = render(
        request,
        "account/recovery_codes.html",
        {"codes": codes, "totp_enabled": True},
        user=upgraded,
    )
    set_session_cookie(response, token, web.config)
    return response


async def _only_factor_left(request: Request, user: WebUser, *, removing_totp: bool) -> bool:
    """True when removing this factor would leave none although the practice requires one."""
    web = state(request)
    if not await mfa.second_factor_required(web.app, user.account.practice_id):
        return False
    factors = await mfa.second_factors(web.app, user.account.id)
    remaining = factors.keys if removing_totp else int(factors.totp) + factors.keys - 1
    return remaining <= 0


def _last_factor_error() -> str:
    return _(
        "Votre cabinet exige un second facteur : ajoutez-en un autre avant de retirer celui-ci."
    )


@page()
async def totp_disable(request: Request, user: WebUser) -> Response:
    web = state(request)
    form = await form_data(request)
    try:
        await _check_password(request, user, form.get("mot_de_passe", ""))
    except AccountLocked as exc:
        return await _security(request, user, error=error_message(exc), status=429)
    except AccessDenied:
        return await _security(
            request, user, error=_("Le mot de passe actuel est incorrect."), status=400
        )
    if await _only_factor_left(request, user, removing_totp=True):
        return await _security(request, user, error=_last_factor_error(), status=400)
    await totp.disable_totp(
        web.app, user.account.login, user.account.login, source=client_ip(request)
    )
    return redirect("/compte/securite", flash="totp_disabled")


@page()
async def recovery_codes(request: Request, user: WebUser) -> Response:
    web = state(request)
    factors = await mfa.second_factors(web.app, user.account.id)
    if not factors.any:
        return await _security(
            request,
            user,
            error=_("Configurez d'abord un second facteur : les codes de secours le remplacent."),
            status=400,
        )
    codes = await mfa.generate_recovery_codes(
        web.app, user.account, actor=user.account.login, source=client_ip(request)
    )
    return render(request, "account/recovery_codes.html", {"codes": codes, "totp_enabled": False})


@page(stages=ENROLMENT, json=True)
async def key_register_options(request: Request, user: WebUser) -> Response:
    web = state(request)
    existing = await webauthn_keys.webauthn_credentials(web.app, user.account.id)
    options, challenge = webauthn.registration_options(
        web.app.settings.hostname, user.account, existing, web.config.clock()
    )
    await web_sessions.set_pending(web.app, user.session, challenge)
    return Response(options, media_type="application/json")


@page(stages=ENROLMENT, json=True)
async def key_register_finish(request: Request, user: WebUser) -> Response:
    web = state(request)
    now = web.config.clock()
    challenge = webauthn.take_challenge(user.session.pending, "register", now)
    await web_sessions.set_pending(web.app, user.session, None)  # a challenge is used once
    try:
        body = json.loads(await request.body())
        if not isinstance(body, dict):
            raise ValueError("not an object")
        if challenge is None:
            raise InvalidInput(
                "La demande d'enregistrement a expiré : recommencez.",
                "The registration request expired: start again.",
            )
        new = webauthn.verify_registration(
            body.get("credential"),
            challenge,
            web.app.settings.hostname,
            webauthn.expected_origin(web.app.settings.hostname, request.headers.get("host", "")),
        )
        await webauthn_keys.add_webauthn_credential(
            web.app,
            user.account,
            credential_id=new.credential_id,
            public_key=new.public_key,
            sign_count=new.sign_count,
            label=str(body.get("label", "")),
            transports=new.transports,
            source=client_ip(request),
            now=now,
        )
    except ValueError:
        return JSONResponse({"error": _("Réponse invalide.")}, status_code=400)
    except InvalidInput as exc:
        return JSONResponse({"error": error_message(exc)}, status_code=400)
    response = JSONResponse({"redirect": "/compte/securite"})
    set_flash(response, "key_added")
    token, _upgraded = await _upgrade_after_enrolment(request, user)
    set_session_cookie(response, token, web.config)
    return response


@page()
async def key_delete(request: Request, user: WebUser) -> Response:
    web = state(request)
    key_id = int_param(request, "key_id")
    keys = {k.id: k for k in await webauthn_keys.webauthn_credentials(web.app, user.account.id)}
    if key_id not in keys:
        raise not_found()
    if await _only_factor_left(request, user, removing_totp=False):
        return await _security(request, user, error=_last_factor_error(), status=400)
    await webauthn_keys.delete_webauthn_credential(
        web.app, user.account, key_id, actor=user.account.login, source=client_ip(request)
    )
    return redirect("/compte/securite", flash="key_removed")


# --- app passwords ---------------------------------------------------------------------------


async def _app_passwords(
    request: Request, user: WebUser, *, error: str = "", status: int = 200
) -> Response:
    web = state(request)
    items = await app_passwords.list_app_passwords(web.app, user.account.login, user.account)
    # The mailboxes the user owns that log in with their own address (TLT, ORG, APP, ...).
    boxes = [
        (box, await app_passwords.list_app_passwords(web.app, box.address, user.account))
        for box in await app_passwords.mailbox_logins(web.app, owner=user.account)
    ]
    return render(
        request,
        "account/app_passwords.html",
        {"items": items, "boxes": boxes, "error": error, "nav_active": "applications"},
        status=status,
    )


async def _owned_mailbox_login(request: Request, user: WebUser) -> Mailbox:
    """The mailbox of the path, if the user owns it and it logs in with its own address;
    else the one 404 (the service checks the same again)."""
    mailbox_id = int_param(request, "mailbox_id")
    for box in await app_passwords.mailbox_logins(state(request).app, owner=user.account):
        if box.id == mailbox_id:
            return box
    raise not_found()


async def _create(request: Request, user: WebUser, login: str) -> Response:
    web = state(request)
    form = await form_data(request)
    form_items = await request.form()
    scopes = [s for s in form_items.getlist("protocoles") if isinstance(s, str)]
    try:
        password = await app_passwords.create_app_password(
            web.app,
            login,
            form.get("libelle", ""),
            scopes,
            actor=user.account,
            source=client_ip(request),
        )
    except CaduceeError as exc:
        return await _app_passwords(request, user, error=error_message(exc), status=400)
    return render(
        request,
        "account/app_password_created.html",
        {
            "password": password,
            "label": form.get("libelle", "").strip(),
            "scopes": scopes,
            "login": login,
            "back": "/compte/applications",
        },
    )


async def _revoke(request: Request, user: WebUser, login: str) -> Response:
    web = state(request)
    item_id = int_param(request, "item_id")
    try:
        await app_passwords.revoke_app_password(
            web.app, login, item_id, user.account, source=client_ip(request)
        )
    except InvalidInput as exc:
        return await _app_passwords(request, user, error=error_message(exc), status=400)
    return redirect("/compte/applications", flash="app_password_revoked")


@page()
async def app_password_list(request: Request, user: WebUser) -> Response:
    return await _app_passwords(request, user)


@page()
async def app_password_create(request: Request, user: WebUser) -> Response:
    return await _create(request, user, user.account.login)


@page()
async def app_password_revoke(request: Request, user: WebUser) -> Response:
    return await _revoke(request, user, user.account.login)


@page()
async def mailbox_app_password_create(request: Request, user: WebUser) -> Response:
    box = await _owned_mailbox_login(request, user)
    return await _create(request, user, box.address)


@page()
async def mailbox_app_password_revoke(request: Request, user: WebUser) -> Response:
    box = await _owned_mailbox_login(request, user)
    return await _revoke(request, user, box.address)


routes = [
    Route("/compte", profile, methods=["GET"], name="account"),
    Route("/compte/absence", absence_page, methods=["GET"], name="absence"),
    Route("/compte/absence", absence_save, methods=["POST"], name="absence_save"),
    Route("/compte/absence/supprimer", absence_remove, methods=["POST"], name="absence_remove"),
    Route("/compte/mot-de-passe", change_password, methods=["POST"], name="change_password"),
    Route("/compte/securite", security, methods=["GET"], name="security"),
    Route("/compte/securite/enrolement", enrolment, methods=["GET"], name="enrolment"),
    Route("/compte/securite/totp", totp_page, methods=["GET"], name="totp"),
    Route("/compte/securite/totp/commencer", totp_begin, methods=["POST"], name="totp_begin"),
    Route("/compte/securite/totp/confirmer", totp_confirm, methods=["POST"], name="totp_confirm"),
    Route("/compte/securite/totp/desactiver", totp_disable, methods=["POST"], name="totp_disable"),
    Route(
        "/compte/securite/codes-de-secours",
        recovery_codes,
        methods=["POST"],
        name="recovery_codes",
    ),
    Route(
        "/compte/securite/cles/options",
        key_register_options,
        methods=["POST"],
        name="key_register_options",
    ),
    Route("/compte/securite/cles", key_register_finish, methods=["POST"], name="key_register"),
    Route(
        "/compte/securite/cles/{key_id}/supprimer",
        key_delete,
        methods=["POST"],
        name="key_delete",
    ),
    Route("/compte/applications", app_password_list, methods=["GET"], name="app_passwords"),
    Route(
        "/compte/applications", app_password_create, methods=["POST"], name="app_password_create"
    ),
    Route(
        "/compte/applications/{item_id}/revoquer",
        app_password_revoke,
        methods=["POST"],
        name="app_password_revoke",
    ),
    Route(
        "/compte/applications/boites/{mailbox_id}",
        mailbox_app_password_create,
        methods=["POST"],
        name="mailbox_app_password_create",
    ),
    Route(
        "/compte/applications/boites/{mailbox_id}/{item_id}/revoquer",
        mailbox_app_password_revoke,
        methods=["POST"],
        name="mailbox_app_password_revoke",
    ),
]
