"""The sender's side of the patient portal in the webmail: withdrawing a message left on the
portal (« Révoquer »), from the trace of the sent message. Only someone who may send from the
mailbox that deposited it can; another mailbox's pickup is the same 404 as an unknown one."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from caducee.health import pickup
from caducee.web.core import WebUser, client_ip, form_data, int_param, page, redirect, state
from caducee.web.webmail.common import base_path, open_view


@page()
async def revoke(request: Request, user: WebUser) -> Response:
    view = await open_view(request, user, need_send=True)
    await pickup.revoke(
        state(request).app,
        int_param(request, "pickup_id"),
        view.mailbox.id,
        actor=user.account.login,
        source=client_ip(request),
    )
    form = await form_data(request)
    back = form.get("retour", "")
    if not back.startswith(base_path(view) + "/"):
        back = base_path(view)
    return redirect(back, flash="saved")


routes = [
    Route("/courrier/b/{mailbox_id}/portail/{pickup_id}/revoquer", revoke, methods=["POST"]),
]
