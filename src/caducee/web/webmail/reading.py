"""Reading mail: folders with unread counts, the message list (pages, sort, search), the
message with its sanitised body in a sandboxed frame, attachments, conversation, and actions
(read/unread, flag, move, delete, archive). Every page opens the mailbox through
``services.webmail.open_box`` (delegation rights, audit)."""

from __future__ import annotations

import logging
import urllib.parse
from datetime import date

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from caducee.domain import mail_display
from caducee.domain.model import Flag, SpecialUse
from caducee.domain.triage_settings import URGENT_KEYWORD
from caducee.errors import CaduceeError, InvalidInput
from caducee.flows import read_receipts
from caducee.health import patient_triage, pickup, xdm_mail
from caducee.services import trace, webmail
from caducee.services.mailstore import OpenFolder
from caducee.web import mail_body
from caducee.web.core import (
    WebUser,
    client_ip,
    download_response,
    error_message,
    error_page,
    form_data,
    int_param,
    not_found,
    page,
    redirect,
    render,
    state,
)
from caducee.web.i18n import current_language
from caducee.web.i18n import gettext as _
from caducee.web.middleware import CONTENT_SECURITY_POLICY_MAIL_VIEW
from caducee.web.webmail.common import (
    BoxView,
    base_path,
    open_folder_of,
    open_message,
    open_view,
)

log = logging.getLogger(__name__)

FIELDS = ("tout", "objet", "expediteur", "texte")


async def _triage_context(request: Request, of: OpenFolder) -> dict[str, object]:
    """What the triage labels need: the mailbox's practice's labels per keyword (cached by
    the service), and the « Urgent ? » keyword."""
    labels = await patient_triage.labels(
        state(request).app, of.mailbox.practice_id, current_language.get()
    )
    return {"triage_labels": labels, "urgent_keyword": URGENT_KEYWORD}


@page()
async def webmail_home(request: Request, user: WebUser) -> Response:
    boxes = await webmail.usable_mailboxes(state(request).app, user.account.login)
    if not boxes:
        return render(request, "webmail/none.html", {"nav_active": "courrier"})
    return redirect(f"/courrier/b/{boxes[0].id}")


@page()
async def mailbox_home(request: Request, user: WebUser) -> Response:
    view = await open_view(request, user)
    inbox = next(
        (f for f, _ in view.folders if f.special_use == SpecialUse.INBOX.value), view.folders[0][0]
    )
    return redirect(f"{base_path(view)}/d/{inbox.id}")


def _date(value: str | None) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidInput(
            "Date invalide : utilisez le format AAAA-MM-JJ.", "Invalid date: use YYYY-MM-DD."
        ) from None


@page()
async def folder_page(request: Request, user: WebUser) -> Response:
    web = state(request)
    view = await open_view(request, user)
    of = await open_folder_of(request, view)
    params = request.query_params
    sort = params.get("tri", "date")
    sort = sort if sort in webmail.SORT_KEYS else "date"
    descending = params.get("ordre", "desc") != "asc"
    field = params.get("champ", "tout")
    field = field if field in FIELDS else "tout"
    error = ""
    try:
        search = webmail.Search(
            text=params.get("q", "").strip()[:200],
            field=field,  # type: ignore[arg-type]
            since=_date(params.get("du")),
            until=_date(params.get("au")),
        )
    except InvalidInput as exc:
        error, search = error_message(exc), webmail.Search()
    try:
        page_number = int(params.get("page", "1"))
    except ValueError:
        page_number = 1
    listing = await webmail.list_messages(
        web.app, of, page=page_number, sort=sort, descending=descending, search=search
    )
    keep = {k: v for k, v in params.items() if k in ("tri", "ordre", "q", "champ", "du", "au")}

    def page_url(number: int) -> str:
        return "?" + urllib.parse.urlencode({**keep, "page": number})

    def sort_url(key: str) -> str:
        order = "asc" if key == sort and descending else "desc"
        return "?" + urllib.parse.urlencode({**keep, "tri": key, "ordre": order, "page": 1})

    return render(
        request,
        "webmail/folder.html",
        {
            "nav_active": "courrier",
            "view": view,
            "base": base_path(view),
            "folder": of.folder,
            "listing": listing,
            "search": search,
            "sort": sort,
            "descending": descending,
            "page_url": page_url,
            "sort_url": sort_url,
            "can_write": of.rights.write,
            "error": error,
            "Flag": Flag,
            **(await _triage_context(request, of)),
        },
    )


@page()
async def message_page(request: Request, user: WebUser) -> Response:
    web = state(request)
    view, of, row, raw = await open_message(request, user)
    if not row.flags & Flag.SEEN and of.rights.write:
        await webmail.set_flags(web.app, of, [row.id], Flag.SEEN, True)
        await _read_receipt(request, user, view, raw)
    shown = mail_display.display(raw)
    _clean, blocked = (
        mail_display.sanitize(shown.html, raw, shown, remote_images=False)
        if shown.html
        else ("", False)
    )
    thread = await webmail.conversation(web.app, of, row)
    packages = await xdm_mail.received(
        raw, [(a.filename, a.content_type) for a in shown.attachments]
    )
    response = render(
        request,
        "webmail/message.html",
        {
            "nav_active": "courrier",
            "view": view,
            "base": base_path(view),
            "folder": of.folder,
            "row": row,
            "shown": shown,
            "blocked": blocked,
            "images": request.query_params.get("images") == "1",
            "thread": thread,
            "can_write": of.rights.write,
            "can_send": view.access.can_send,
            "flagged": bool(row.flags & Flag.FLAGGED),
            "is_sent": of.folder.special_use == SpecialUse.SENT.value,
            "keywords": tuple(row.keywords.split()),
            "xdm_packages": packages,
            **(await _triage_context(request, of)),
        },
    )
    response.headers["content-security-policy"] = CONTENT_SECURITY_POLICY_MAIL_VIEW
    return response


async def _read_receipt(request: Request, user: WebUser, view: BoxView, raw: bytes) -> None:
    """RFC 8098: a ``displayed`` MDN when the message asks for one and the mailbox allows it."""
    app = state(request).app
    if not view.access.can_send or not await trace.read_receipts_enabled(app, view.mailbox.id):
        return
    try:
        await read_receipts.send_displayed(
            app, user.account.login, view.mailbox.address, raw, client_ip(request)
        )
    except CaduceeError as exc:  # the page still opens; the receipt is just not sent
        log.info("read receipt not sent: %s", type(exc).__name__)


@page()
async def trace_page(request: Request, user: WebUser) -> Response:
    web = state(request)
    view, of, row, raw = await open_message(request, user)
    shown = mail_display.display(raw)
    events = await trace.events(web.app, view.mailbox.id, shown.message_id)
    recipients: dict[str, list[trace.TraceEvent]] = {}
    for event in events:
        recipients.setdefault(event.recipient, []).append(event)
    return render(
        request,
        "webmail/trace.html",
        {
            "nav_active": "courrier",
            "view": view,
            "base": base_path(view),
            "folder": of.folder,
            "row": row,
            "shown": shown,
            "recipients": recipients,
            "pickups": await pickup.for_message(web.app, view.mailbox.id, shown.message_id),
            "can_send": view.access.can_send,
        },
    )


@page()
async def mailbox_settings(request: Request, user: WebUser) -> Response:
    web = state(request)
    view = await open_view(request, user)
    form = await form_data(request)
    await trace.set_read_receipts(web.app, view.access, form.get("accuses") == "oui")
    return redirect(base_path(view), flash="saved")


@page()
async def message_body(request: Request, user: WebUser) -> Response:
    """The body alone, for the ``<iframe sandbox>`` of the message page."""
    *_opened, raw = await open_message(request, user)
    return await mail_body.body_response(
        raw, remote_images=request.query_params.get("images") == "1"
    )


@page()
async def attachment(request: Request, user: WebUser) -> Response:
    *_opened, raw = await open_message(request, user)
    shown = mail_display.display(raw)
    index = int_param(request, "part")
    meta = next((a for a in shown.attachments if a.index == index), None)
    found = mail_display.part_bytes(raw, index) if meta is not None else None
    if meta is None or found is None:
        raise not_found()
    return download_response(found[1], meta.filename, mail_display.download_type(meta.content_type))


@page()
async def xdm_document(request: Request, user: WebUser) -> Response:
    """A document of a received IHE XDM package, as a download (checked or not: the page says
    what is wrong with it)."""
    *_opened, raw = await open_message(request, user)
    found = await xdm_mail.document(raw, int_param(request, "part"), int_param(request, "number"))
    if found is None:
        raise not_found()
    document, content = found
    name = document.path.rsplit("/", 1)[-1]
    return download_response(content, name, mail_display.download_type(document.mime_type))


ACTIONS = ("lu", "non-lu", "suivi", "non-suivi", "supprimer", "archiver", "deplacer")


@page()
async def folder_actions(request: Request, user: WebUser) -> Response:
    web = state(request)
    view = await open_view(request, user)
    of = await open_folder_of(request, view)
    form = await request.form()
    action = str(form.get("action", ""))
    uids = {int(u) for u in form.getlist("uid") if isinstance(u, str) and u.isdigit()}
    back = str(form.get("retour", "")) or f"{base_path(view)}/d/{of.folder.id}"
    if not back.startswith(base_path(view) + "/"):
        back = f"{base_path(view)}/d/{of.folder.id}"
    if action not in ACTIONS or not uids:
        return redirect(back)
    rows = await webmail.rows_by_uid(web.app, of, uids)
    ids = [r.id for r in rows]
    try:
        await _apply(request, view, of, action, ids, str(form.get("dossier", "")))
    except CaduceeError as exc:
        return error_page(request, 403, error_message(exc))
    if action in ("supprimer", "archiver", "deplacer"):
        return redirect(f"{base_path(view)}/d/{of.folder.id}", flash="saved")
    return redirect(back)


async def _apply(
    request: Request,
    view: BoxView,
    of: OpenFolder,
    action: str,
    ids: list[int],
    target: str,
) -> None:
    app = state(request).app
    if action in ("lu", "non-lu"):
        await webmail.set_flags(app, of, ids, Flag.SEEN, action == "lu")
    elif action in ("suivi", "non-suivi"):
        await webmail.set_flags(app, of, ids, Flag.FLAGGED, action == "suivi")
    elif action == "supprimer":
        await webmail.delete(app, view.access, of, ids)
    elif action == "archiver":
        archive = await webmail.special_folder(app, view.access, SpecialUse.ARCHIVE)
        await webmail.move(app, of, ids, archive)
    elif action == "deplacer":
        try:
            destination = await webmail.open_folder(app, view.access, int(target))
        except ValueError:
            raise InvalidInput(_("Choisissez un dossier."), "Choose a folder.") from None
        await webmail.move(app, of, ids, destination)


routes = [
    Route("/courrier", webmail_home, methods=["GET"], name="webmail"),
    Route("/courrier/b/{mailbox_id}", mailbox_home, methods=["GET"], name="webmail_box"),
    Route("/courrier/b/{mailbox_id}/d/{folder_id}", folder_page, methods=["GET"]),
    Route("/courrier/b/{mailbox_id}/d/{folder_id}/actions", folder_actions, methods=["POST"]),
    Route("/courrier/b/{mailbox_id}/d/{folder_id}/m/{uid}", message_page, methods=["GET"]),
    Route("/courrier/b/{mailbox_id}/d/{folder_id}/m/{uid}/corps", message_body, methods=["GET"]),
    Route("/courrier/b/{mailbox_id}/d/{folder_id}/m/{uid}/pj/{part}", attachment, methods=["GET"]),
    Route("/courrier/b/{mailbox_id}/d/{folder_id}/m/{uid}/trace", trace_page, methods=["GET"]),
    Route(
        "/courrier/b/{mailbox_id}/d/{folder_id}/m/{uid}/xdm/{part}/{number}",
        xdm_document,
        methods=["GET"],
    ),
    Route("/courrier/b/{mailbox_id}/reglages", mailbox_settings, methods=["POST"]),
]
