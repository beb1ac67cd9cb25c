"""``/compte/api``: the account's API tokens for practice software — create (shown once), list,
revoke. A token reaches only the mailboxes chosen here, with the chosen rights."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from caducee.domain.model import Role
from caducee.errors import CaduceeError
from caducee.services import api_tokens, webmail
from caducee.web.core import (
    WebUser,
    client_ip,
    error_message,
    int_param,
    page,
    redirect,
    render,
    state,
)


async def _page(request: Request, user: WebUser, *, error: str = "", status: int = 200) -> Response:
    app = state(request).app
    tokens = await api_tokens.tokens_of(app, user.account.login)
    boxes = await webmail.usable_mailboxes(app, user.account.login)
    names = {b.id: b.address for b in boxes}
    return render(
        request,
        "account/api_tokens.html",
        {
            "tokens": tokens,
            "boxes": boxes,
            "names": names,
            # « admin » (the practice's accounts and mailboxes) is offered to administrators.
            "scopes": [
                scope
                for scope in api_tokens.SCOPES
                if scope != api_tokens.ADMIN_SCOPE or user.account.role is Role.ADMIN
            ],
            "error": error,
            "nav_active": "api",
            "now": state(request).config.clock(),
        },
        status=status,
    )


@page()
async def token_list(request: Request, user: WebUser) -> Response:
    return await _page(request, user)


@page()
async def token_create(request: Request, user: WebUser) -> Response:
    form = await request.form()
    expires = str(form.get("duree", "") or "")
    try:
        token, created = await api_tokens.create_token(
            state(request).app,
            user.account.login,
            str(form.get("libelle", "")),
            [str(v) for v in form.getlist("boite")],
            [str(v) for v in form.getlist("droit")],
            expires_days=int(expires) if expires.isdigit() else None,
            actor=user.account.login,
            source=client_ip(request),
        )
    except CaduceeError as exc:
        return await _page(request, user, error=error_message(exc), status=400)
    return render(
        request,
        "account/api_token_created.html",
        {"token": token, "created": created, "nav_active": "api"},
    )


@page()
async def token_revoke(request: Request, user: WebUser) -> Response:
    await api_tokens.revoke_token(
        state(request).app,
        user.account.login,
        int_param(request, "token_id"),
        actor=user.account.login,
        source=client_ip(request),
    )
    return redirect("/compte/api", flash="saved")


routes = [
    Route("/compte/api", token_list, methods=["GET"]),
    Route("/compte/api", token_create, methods=["POST"]),
    Route("/compte/api/{token_id}/revoquer", token_revoke, methods=["POST"]),
]
