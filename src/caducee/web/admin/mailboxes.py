"""Admin console: mailboxes (list with type, usage and quota; create within the practice's
limit; set a quota; disable, enable or delete one from its page, exempt it from the inactivity
rule with a reason; the app passwords of the
mailboxes that log in with their own address) and delegations (grant read or read+send, revoke)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from caducee.domain.model import Mailbox, MailboxType
from caducee.errors import CaduceeError, InvalidInput
from caducee.services import app_passwords, inactivity, lifecycle, mailboxes
from caducee.web.admin.common import (
    account_of_practice,
    domain_of_practice,
    mailbox_of_practice,
    practice_accounts,
    practice_mailboxes,
)
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
    state,
)

MIB = 1024 * 1024


def _form_id(form: dict[str, str], name: str) -> int:
    value = form.get(name, "")
    return int(value) if value.isdigit() else 0


async def _mailbox_page(
    request: Request,
    user: WebUser,
    *,
    error: str = "",
    values: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    web = state(request)
    boxes = await practice_mailboxes(web, user)
    people = await practice_accounts(web, user)
    owners = {a.id: a for a in people}
    logins = {
        m.id for m in await app_passwords.mailbox_logins(web.app, practice_id=user.practice.id)
    }
    return render(
        request,
        "admin/mailboxes.html",
        {
            "mailboxes": boxes,
            "logins": logins,
            "owners": owners,
            "accounts": people,
            "types": list(MailboxType),
            "limit": user.practice.mailbox_limit,
            "error": error,
            "values": values or {},
            "admin_tab": "boites",
        },
        status=status,
    )


@page(admin=True)
async def mailbox_list(request: Request, user: WebUser) -> Response:
    return await _mailbox_page(request, user)


def _quota_bytes(text: str) -> int | None:
    text = text.strip()
    if not text:
        return None
    if not text.isdigit():
        raise InvalidInput(
            "Quota invalide : indiquez un nombre entier de Mo.",
            "Invalid quota: give a whole number of MB.",
        )
    return int(text) * MIB


@page(admin=True)
async def mailbox_create(request: Request, user: WebUser) -> Response:
    web = state(request)
    form = await form_data(request)
    domain = domain_of_practice(user, form.get("domaine", ""))
    try:
        owner = await account_of_practice(web, user, _form_id(form, "titulaire"))
        local = form.get("identifiant", "").strip().lower()
        if not local or "@" in local:
            raise InvalidInput(
                "Indiquez la partie de l'adresse avant le @ (par exemple « accueil »).",
                "Give the part of the address before the @ (for example 'accueil').",
            )
        await mailboxes.add_mailbox(
            web.app,
            f"{local}@{domain}",
            MailboxType.parse(form.get("type", "")),
            owner.login,
            quota_bytes=_quota_bytes(form.get("quota_mo", "")),
            actor=user.account.login,
            source=client_ip(request),
        )
    except CaduceeError as exc:
        return await _mailbox_page(request, user, error=error_message(exc), values=form, status=400)
    return redirect("/admin/boites", flash="saved")


@page(admin=True)
async def mailbox_quota(request: Request, user: WebUser) -> Response:
    web = state(request)
    mailbox = await mailbox_of_practice(web, user, int_param(request, "mailbox_id"))
    form = await form_data(request)
    try:
        quota = _quota_bytes(form.get("quota_mo", ""))
        if quota is None:
            raise InvalidInput("Indiquez le quota en Mo.", "Give the quota in MB.")
        await mailboxes.set_quota(
            web.app, mailbox.address, quota, actor=user.account.login, source=client_ip(request)
        )
    except CaduceeError as exc:
        return await _mailbox_page(request, user, error=error_message(exc), status=400)
    return redirect("/admin/boites", flash="mailbox_quota")


# --- one mailbox: disable, enable, delete (issue 19) -----------------------------------------


async def _one_mailbox_page(
    request: Request, user: WebUser, mailbox: Mailbox, *, error: str = "", status: int = 200
) -> Response:
    web = state(request)
    owners = {a.id: a for a in await practice_accounts(web, user)}
    exemption = await inactivity.exemption_of(web.app, mailbox.address, user.practice.id)
    return render(
        request,
        "admin/mailbox.html",
        {
            "mailbox": mailbox,
            "owner": owners.get(mailbox.owner_account_id),
            "error": error,
            "admin_tab": "boites",
            "exemption": exemption,
            "inactive_months": web.app.settings.inactive_months,
        },
        status=status,
    )


@page(admin=True)
async def mailbox_detail(request: Request, user: WebUser) -> Response:
    web = state(request)
    mailbox = await mailbox_of_practice(web, user, int_param(request, "mailbox_id"))
    return await _one_mailbox_page(request, user, mailbox)


async def _set_disabled(request: Request, user: WebUser, disabled: bool) -> Response:
    web = state(request)
    mailbox = await mailbox_of_practice(web, user, int_param(request, "mailbox_id"))
    await mailboxes.set_mailbox_disabled(
        web.app, mailbox.address, disabled, actor=user.account.login, source=client_ip(request)
    )
    return redirect(
        f"/admin/boites/{mailbox.id}", flash="mailbox_disabled" if disabled else "mailbox_enabled"
    )


@page(admin=True)
async def mailbox_disable(request: Request, user: WebUser) -> Response:
    return await _set_disabled(request, user, True)


@page(admin=True)
async def mailbox_enable(request: Request, user: WebUser) -> Response:
    return await _set_disabled(request, user, False)


@page(admin=True)
async def mailbox_delete(request: Request, user: WebUser) -> Response:
    """Delete for good, once the address is typed again in the confirmation form."""
    web = state(request)
    mailbox = await mailbox_of_practice(web, user, int_param(request, "mailbox_id"))
    form = await form_data(request)
    try:
        await lifecycle.delete_mailbox(
            web.app,
            mailbox.address,
            confirm=form.get("confirmer", ""),
            actor=user.account.login,
            source=client_ip(request),
        )
    except CaduceeError as exc:
        return await _one_mailbox_page(request, user, mailbox, error=error_message(exc), status=400)
    return redirect("/admin/boites", flash="mailbox_deleted")


@page(admin=True)
async def mailbox_exempt(request: Request, user: WebUser) -> Response:
    """Exempt the mailbox from the inactivity rule, with the practice's reason (audited)."""
    web = state(request)
    mailbox = await mailbox_of_practice(web, user, int_param(request, "mailbox_id"))
    form = await form_data(request)
    try:
        await inactivity.exempt(
            web.app,
            mailbox.address,
            form.get("motif", ""),
            actor=user.account.login,
            source=client_ip(request),
            practice_id=user.practice.id,
        )
    except CaduceeError as exc:
        return await _one_mailbox_page(request, user, mailbox, error=error_message(exc), status=400)
    return redirect(f"/admin/boites/{mailbox.id}", flash="mailbox_exempted")


@page(admin=True)
async def mailbox_unexempt(request: Request, user: WebUser) -> Response:
    web = state(request)
    mailbox = await mailbox_of_practice(web, user, int_param(request, "mailbox_id"))
    await inactivity.unexempt(
        web.app,
        mailbox.address,
        actor=user.account.login,
        source=client_ip(request),
        practice_id=user.practice.id,
    )
    return redirect(f"/admin/boites/{mailbox.id}", flash="mailbox_unexempted")


# --- app passwords of a mailbox login --------------------------------------------------------


async def _mailbox_login(request: Request, user: WebUser) -> Mailbox:
    """The practice's mailbox of the path, if it logs in with its own address (else the one
    404; the service checks the admin's rights again)."""
    web = state(request)
    mailbox = await mailbox_of_practice(web, user, int_param(request, "mailbox_id"))
    if mailbox.id not in {
        m.id for m in await app_passwords.mailbox_logins(web.app, practice_id=user.practice.id)
    }:
        raise not_found()
    return mailbox


async def _app_password_page(
    request: Request, user: WebUser, mailbox: Mailbox, *, error: str = "", status: int = 200
) -> Response:
    web = state(request)
    items = await app_passwords.list_app_passwords(web.app, mailbox.address, user.account)
    return render(
        request,
        "admin/mailbox_app_passwords.html",
        {"mailbox": mailbox, "items": items, "error": error, "admin_tab": "boites"},
        status=status,
    )


@page(admin=True)
async def mailbox_app_passwords(request: Request, user: WebUser) -> Response:
    return await _app_password_page(request, user, await _mailbox_login(request, user))


@page(admin=True)
async def mailbox_app_password_create(request: Request, user: WebUser) -> Response:
    web = state(request)
    mailbox = await _mailbox_login(request, user)
    form = await form_data(request)
    form_items = await request.form()
    scopes = [s for s in form_items.getlist("protocoles") if isinstance(s, str)]
    try:
        password = await app_passwords.create_app_password(
            web.app,
            mailbox.address,
            form.get("libelle", ""),
            scopes,
            actor=user.account,
            source=client_ip(request),
        )
    except CaduceeError as exc:
        return await _app_password_page(
            request, user, mailbox, error=error_message(exc), status=400
        )
    return render(
        request,
        "account/app_password_created.html",
        {
            "password": password,
            "label": form.get("libelle", "").strip(),
            "scopes": scopes,
            "login": mailbox.address,
            "back": f"/admin/boites/{mailbox.id}/applications",
        },
    )


@page(admin=True)
async def mailbox_app_password_revoke(request: Request, user: WebUser) -> Response:
    web = state(request)
    mailbox = await _mailbox_login(request, user)
    try:
        await app_passwords.revoke_app_password(
            web.app,
            mailbox.address,
            int_param(request, "item_id"),
            user.account,
            source=client_ip(request),
        )
    except CaduceeError as exc:
        return await _app_password_page(
            request, user, mailbox, error=error_message(exc), status=400
        )
    return redirect(f"/admin/boites/{mailbox.id}/applications", flash="app_password_revoked")


# --- delegations -----------------------------------------------------------------------------


async def _delegation_page(
    request: Request, user: WebUser, *, error: str = "", status: int = 200
) -> Response:
    web = state(request)
    boxes = await practice_mailboxes(web, user)
    ids = {m.id for m in boxes}
    delegations = [d for d in await mailboxes.list_delegations(web.app) if d.mailbox_id in ids]
    return render(
        request,
        "admin/delegations.html",
        {
            "delegations": delegations,
            "mailboxes": boxes,
            "accounts": await practice_accounts(web, user),
            "error": error,
            "admin_tab": "delegations",
        },
        status=status,
    )


@page(admin=True)
async def delegation_list(request: Request, user: WebUser) -> Response:
    return await _delegation_page(request, user)


@page(admin=True)
async def delegation_grant(request: Request, user: WebUser) -> Response:
    web = state(request)
    form = await form_data(request)
    mailbox = await mailbox_of_practice(web, user, _form_id(form, "boite"))
    grantee = await account_of_practice(web, user, _form_id(form, "compte"))
    try:
        await mailboxes.delegate(
            web.app,
            mailbox.address,
            grantee.login,
            can_send=form.get("droit") == "envoi",
            actor=user.account.login,
            source=client_ip(request),
        )
    except CaduceeError as exc:
        return await _delegation_page(request, user, error=error_message(exc), status=400)
    return redirect("/admin/delegations", flash="delegation_granted")


@page(admin=True)
async def delegation_revoke(request: Request, user: WebUser) -> Response:
    web = state(request)
    form = await form_data(request)
    mailbox = await mailbox_of_practice(web, user, _form_id(form, "boite"))
    grantee = await account_of_practice(web, user, _form_id(form, "compte"))
    try:
        await mailboxes.revoke_delegation(
            web.app,
            mailbox.address,
            grantee.login,
            actor=user.account.login,
            source=client_ip(request),
        )
    except CaduceeError as exc:
        return await _delegation_page(request, user, error=error_message(exc), status=404)
    return redirect("/admin/delegations", flash="delegation_revoked")


routes = [
    Route("/admin/boites", mailbox_list, methods=["GET"], name="admin_mailboxes"),
    Route("/admin/boites", mailbox_create, methods=["POST"], name="admin_mailbox_create"),
    Route("/admin/boites/{mailbox_id}", mailbox_detail, methods=["GET"], name="admin_mailbox"),
    Route(
        "/admin/boites/{mailbox_id}/desactiver",
        mailbox_disable,
        methods=["POST"],
        name="admin_mailbox_disable",
    ),
    Route(
        "/admin/boites/{mailbox_id}/activer",
        mailbox_enable,
        methods=["POST"],
        name="admin_mailbox_enable",
    ),
    Route(
        "/admin/boites/{mailbox_id}/supprimer",
        mailbox_delete,
        methods=["POST"],
        name="admin_mailbox_delete",
    ),
    Route(
        "/admin/boites/{mailbox_id}/exemption",
        mailbox_exempt,
        methods=["POST"],
        name="admin_mailbox_exempt",
    ),
    Route(
        "/admin/boites/{mailbox_id}/exemption/retirer",
        mailbox_unexempt,
        methods=["POST"],
        name="admin_mailbox_unexempt",
    ),
    Route(
        "/admin/boites/{mailbox_id}/quota",
        mailbox_quota,
        methods=["POST"],
        name="admin_mailbox_quota",
    ),
    Route(
        "/admin/boites/{mailbox_id}/applications",
        mailbox_app_passwords,
        methods=["GET"],
        name="admin_mailbox_app_passwords",
    ),
    Route(
        "/admin/boites/{mailbox_id}/applications",
        mailbox_app_password_create,
        methods=["POST"],
        name="admin_mailbox_app_password_create",
    ),
    Route(
        "/admin/boites/{mailbox_id}/applications/{item_id}/revoquer",
        mailbox_app_password_revoke,
        methods=["POST"],
        name="admin_mailbox_app_password_revoke",
    ),
    Route("/admin/delegations", delegation_list, methods=["GET"], name="admin_delegations"),
    Route("/admin/delegations", delegation_grant, methods=["POST"], name="admin_delegation_grant"),
    Route(
        "/admin/delegations/revoquer",
        delegation_revoke,
        methods=["POST"],
        name="admin_delegation_revoke",
    ),
]
