"""Admin console: accounts of the practice (list, create, disable/enable, reset password,
reset second factors) and their app passwords (list, revoke)."""

from __future__ import annotations

import secrets
import string

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from caducee.domain.model import Role
from caducee.errors import CaduceeError, InvalidInput
from caducee.services import accounts, app_passwords, lifecycle, mailboxes, mfa, web_sessions
from caducee.web.admin.common import (
    account_of_practice,
    domain_of_practice,
    practice_accounts,
)
from caducee.web.core import (
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

PASSWORD_ALPHABET = string.ascii_letters + string.digits + "-_.!?"


def generate_password(length: int = 16) -> str:
    """A random password that passes the strength rule (≈ 95 bits at 16 characters)."""
    while True:
        password = "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(length))
        if (
            any(c.islower() for c in password)
            and any(c.isupper() for c in password)
            and any(c.isdigit() for c in password)
            and len(set(password)) >= 5
        ):
            return password


@page(admin=True)
async def account_list(request: Request, user: WebUser) -> Response:
    web = state(request)
    return render(
        request,
        "admin/accounts.html",
        {"accounts": await practice_accounts(web, user), "admin_tab": "comptes"},
    )


def _new_form(
    request: Request, user: WebUser, values: dict[str, str], *, error: str = "", status: int = 200
) -> Response:
    return render(
        request,
        "admin/account_new.html",
        {"values": values, "roles": list(Role), "error": error, "admin_tab": "comptes"},
        status=status,
    )


@page(admin=True)
async def account_new(request: Request, user: WebUser) -> Response:
    return _new_form(request, user, {})


@page(admin=True)
async def account_create(request: Request, user: WebUser) -> Response:
    web = state(request)
    form = await form_data(request)
    domain = domain_of_practice(user, form.get("domaine", ""))
    password = generate_password()
    try:
        role = Role.parse(form.get("role", ""))
        local = form.get("identifiant", "").strip().lower()
        if not local or "@" in local:
            raise CaduceeError(
                "Indiquez la partie de l'adresse avant le @ (par exemple « dr.durand »).",
                "Give the part of the address before the @ (for example 'dr.durand').",
            )
        new = accounts.NewAccount(
            login=f"{local}@{domain}",
            last_name=form.get("nom", ""),
            first_name=form.get("prenom", ""),
            civility=form.get("civilite", ""),
            profession=form.get("profession", ""),
            role=role,
            rpps=form.get("rpps", "").strip() or None,
            adeli=form.get("adeli", "").strip() or None,
            password=password,
        )
        account, _mailbox = await accounts.add_account(
            web.app, new, actor=user.account.login, source=client_ip(request)
        )
    except CaduceeError as exc:
        return _new_form(request, user, form, error=error_message(exc), status=400)
    return render(
        request,
        "admin/password_shown.html",
        {"account": account, "password": password, "created": True, "admin_tab": "comptes"},
    )


@page(admin=True)
async def account_detail(request: Request, user: WebUser) -> Response:
    web = state(request)
    account = await account_of_practice(web, user, int_param(request, "account_id"))
    factors = await mfa.second_factors(web.app, account.id)
    items = await app_passwords.list_app_passwords(web.app, account.login, user.account)
    delegations = [
        d for d in await mailboxes.list_delegations(web.app) if d.account_id == account.id
    ]
    return render(
        request,
        "admin/account.html",
        {
            "target": account,
            "factors": factors,
            "items": items,
            "delegations": delegations,
            "admin_tab": "comptes",
        },
    )


@page(admin=True)
async def account_disable(request: Request, user: WebUser) -> Response:
    web = state(request)
    account = await account_of_practice(web, user, int_param(request, "account_id"))
    try:
        await accounts.set_disabled(
            web.app, account.login, True, actor=user.account.login, source=client_ip(request)
        )
    except InvalidInput as exc:  # one's own account
        return render(
            request,
            "error.html",
            {"title": _("Action impossible"), "message": error_message(exc)},
            status=400,
        )
    return redirect(f"/admin/comptes/{account.id}", flash="account_disabled")


@page(admin=True)
async def account_enable(request: Request, user: WebUser) -> Response:
    web = state(request)
    account = await account_of_practice(web, user, int_param(request, "account_id"))
    await accounts.set_disabled(
        web.app, account.login, False, actor=user.account.login, source=client_ip(request)
    )
    return redirect(f"/admin/comptes/{account.id}", flash="account_enabled")


@page(admin=True)
async def account_delete(request: Request, user: WebUser) -> Response:
    """Delete an account and its personal mailbox, once its address is typed again."""
    web = state(request)
    account = await account_of_practice(web, user, int_param(request, "account_id"))
    form = await form_data(request)
    try:
        await lifecycle.delete_account(
            web.app,
            account.login,
            confirm=form.get("confirmer", ""),
            actor=user.account.login,
            source=client_ip(request),
        )
    except CaduceeError as exc:
        return render(
            request,
            "error.html",
            {"title": _("Suppression impossible"), "message": error_message(exc)},
            status=400,
        )
    return redirect("/admin/comptes", flash="account_deleted")


@page(admin=True)
async def account_reset_password(request: Request, user: WebUser) -> Response:
    web = state(request)
    account = await account_of_practice(web, user, int_param(request, "account_id"))
    password = generate_password()
    await accounts.set_password(
        web.app, account.login, password, actor=user.account.login, source=client_ip(request)
    )
    await web_sessions.end_all_sessions(
        web.app,
        account,
        actor=user.account.login,
        source=client_ip(request),
        reason="password_reset",
        except_id=user.session.id if account.id == user.account.id else None,
    )
    return render(
        request,
        "admin/password_shown.html",
        {"account": account, "password": password, "created": False, "admin_tab": "comptes"},
    )


@page(admin=True)
async def account_reset_factors(request: Request, user: WebUser) -> Response:
    web = state(request)
    account = await account_of_practice(web, user, int_param(request, "account_id"))
    await mfa.reset_second_factors(
        web.app, account, actor=user.account.login, source=client_ip(request)
    )
    await web_sessions.end_all_sessions(
        web.app,
        account,
        actor=user.account.login,
        source=client_ip(request),
        reason="second_factor_reset",
        except_id=user.session.id if account.id == user.account.id else None,
    )
    return redirect(f"/admin/comptes/{account.id}", flash="second_factor_reset")


@page(admin=True)
async def account_app_password_revoke(request: Request, user: WebUser) -> Response:
    web = state(request)
    account = await account_of_practice(web, user, int_param(request, "account_id"))
    item_id = int_param(request, "item_id")
    try:
        await app_passwords.revoke_app_password(
            web.app, account.login, item_id, user.account, source=client_ip(request)
        )
    except CaduceeError as exc:
        return render(
            request,
            "error.html",
            {"title": _("Action impossible"), "message": error_message(exc)},
            status=404,
        )
    return redirect(f"/admin/comptes/{account.id}", flash="app_password_revoked")


routes = [
    Route("/admin/comptes", account_list, methods=["GET"], name="admin_accounts"),
    Route("/admin/comptes/nouveau", account_new, methods=["GET"], name="admin_account_new"),
    Route("/admin/comptes/nouveau", account_create, methods=["POST"], name="admin_account_create"),
    Route("/admin/comptes/{account_id}", account_detail, methods=["GET"], name="admin_account"),
    Route(
        "/admin/comptes/{account_id}/desactiver",
        account_disable,
        methods=["POST"],
        name="admin_account_disable",
    ),
    Route(
        "/admin/comptes/{account_id}/activer",
        account_enable,
        methods=["POST"],
        name="admin_account_enable",
    ),
    Route(
        "/admin/comptes/{account_id}/supprimer",
        account_delete,
        methods=["POST"],
        name="admin_account_delete",
    ),
    Route(
        "/admin/comptes/{account_id}/mot-de-passe",
        account_reset_password,
        methods=["POST"],
        name="admin_account_password",
    ),
    Route(
        "/admin/comptes/{account_id}/second-facteur",
        account_reset_factors,
        methods=["POST"],
        name="admin_account_factors",
    ),
    Route(
        "/admin/comptes/{account_id}/applications/{item_id}/revoquer",
        account_app_password_revoke,
        methods=["POST"],
        name="admin_app_password_revoke",
    ),
]
