"""Pieces shared by the webmail pages: opening the mailbox and folder of a URL."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from caducee.domain.model import Folder, FolderCounts, Mailbox, MessageSummary
from caducee.services import mailboxes, trace, webmail
from caducee.services.mailstore import OpenFolder
from caducee.web.core import WebUser, client_ip, int_param, state


@dataclass(frozen=True)
class BoxView:
    """The mailbox a page shows, with the switcher and folder list around it."""

    access: mailboxes.Access
    usable: list[Mailbox]
    folders: list[tuple[Folder, FolderCounts]]
    read_receipts: bool = False

    @property
    def mailbox(self) -> Mailbox:
        return self.access.mailbox


async def open_view(request: Request, user: WebUser, *, need_send: bool = False) -> BoxView:
    web = state(request)
    access = await webmail.open_box(
        web.app,
        user.account.login,
        int_param(request, "mailbox_id"),
        source=client_ip(request),
        need_send=need_send,
    )
    usable = await webmail.usable_mailboxes(web.app, user.account.login)
    folders = await webmail.folders(web.app, access.mailbox)
    receipts = await trace.read_receipts_enabled(web.app, access.mailbox.id)
    return BoxView(access, usable, folders, receipts)


async def open_folder_of(request: Request, view: BoxView) -> OpenFolder:
    return await webmail.open_folder(
        state(request).app, view.access, int_param(request, "folder_id")
    )


def base_path(view: BoxView) -> str:
    return f"/courrier/b/{view.mailbox.id}"


async def open_message(
    request: Request, user: WebUser
) -> tuple[BoxView, OpenFolder, MessageSummary, bytes]:
    """The mailbox, folder and message (decrypted) a ``…/d/{folder_id}/m/{uid}`` URL names."""
    view = await open_view(request, user)
    of = await open_folder_of(request, view)
    row, raw = await webmail.message(state(request).app, of, int_param(request, "uid"))
    return view, of, row, raw
