"""Admin console: the practice's share of the outbound queue (messages sent from its domains):
state, attempts, next try, last reply; retry now or delete (with a bounce to the sender).
The same operations as ``caducee queue``, audited with the admin as actor."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from caducee.domain.addresses import domain_of
from caducee.errors import NotFound
from caducee.services import queue
from caducee.web.core import WebUser, client_ip, form_data, int_param, page, redirect, render, state


async def _entries(request: Request, user: WebUser, *, finished: bool) -> list[queue.QueueEntry]:
    domains = set(user.practice.domains)
    rows = await queue.list_queue(state(request).app, include_finished=finished)
    return [row for row in rows if row.mail_from and domain_of(row.mail_from) in domains]


@page(admin=True)
async def queue_page(request: Request, user: WebUser) -> Response:
    finished = request.query_params.get("tout") == "1"
    return render(
        request,
        "admin/queue.html",
        {
            "entries": await _entries(request, user, finished=finished),
            "finished": finished,
            "admin_tab": "file",
        },
    )


async def _own_message(request: Request, user: WebUser) -> int:
    queue_id = int_param(request, "queue_id")
    if not any(e.message_id == queue_id for e in await _entries(request, user, finished=False)):
        raise NotFound("Message introuvable dans la file.", "Message not found in the queue.")
    return queue_id


@page(admin=True)
async def queue_retry(request: Request, user: WebUser) -> Response:
    queue_id = await _own_message(request, user)
    await queue.retry(
        state(request).app, queue_id, actor=user.account.login, source=client_ip(request)
    )
    return redirect("/admin/file", flash="saved")


@page(admin=True)
async def queue_delete(request: Request, user: WebUser) -> Response:
    queue_id = await _own_message(request, user)
    form = await form_data(request)
    await queue.delete(
        state(request).app,
        queue_id,
        bounce=form.get("avis") == "oui",
        actor=user.account.login,
        source=client_ip(request),
    )
    return redirect("/admin/file", flash="saved")


routes = [
    Route("/admin/file", queue_page, methods=["GET"], name="admin_queue"),
    Route("/admin/file/{queue_id}/relancer", queue_retry, methods=["POST"]),
    Route("/admin/file/{queue_id}/supprimer", queue_delete, methods=["POST"]),
]
