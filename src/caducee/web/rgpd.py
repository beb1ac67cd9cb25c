"""« Mes données » (RGPD, issue 19): a user exports a mailbox they may read (their own, or one
delegated to them) as a ZIP download. The rule and the writing are
:mod:`caducee.services.mailbox_export`'s; the archive is written to a file of the data
directory and streamed from it, then removed."""

from __future__ import annotations

import contextlib
import secrets
import time
from datetime import UTC, datetime
from pathlib import Path

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from caducee.errors import CaduceeError
from caducee.services import mailbox_export
from caducee.web.core import (
    WebUser,
    client_ip,
    content_disposition,
    error_message,
    form_data,
    page,
    render,
    state,
)
from caducee.web.middleware import CONTENT_SECURITY_POLICY_DOWNLOAD

#: An archive older than this was left by a download that broke off: removed at the next export.
STALE_SECONDS = 3600


def export_dir(data_dir: Path) -> Path:
    """Where archives wait while they are sent (owner-only; each is removed once sent, and one
    a broken download left behind at the next export after :data:`STALE_SECONDS`)."""
    path = data_dir / "exports"
    path.mkdir(mode=0o700, exist_ok=True)
    horizon = time.time() - STALE_SECONDS
    for left in path.iterdir():
        with contextlib.suppress(OSError):
            if left.stat().st_mtime < horizon:
                left.unlink()
    return path


def file_download(path: Path, filename: str, media_type: str) -> Response:
    """A file streamed from disk with the headers of every download
    (:func:`caducee.web.core.download_response`), removed once sent."""
    response = FileResponse(
        path, media_type=media_type, background=BackgroundTask(path.unlink, missing_ok=True)
    )
    response.headers["content-disposition"] = content_disposition(filename)
    response.headers["x-content-type-options"] = "nosniff"
    response.headers["cache-control"] = "no-store"
    response.headers["content-security-policy"] = CONTENT_SECURITY_POLICY_DOWNLOAD
    return response


async def _page(request: Request, user: WebUser, *, error: str = "", status: int = 200) -> Response:
    app = state(request).app
    return render(
        request,
        "account/data.html",
        {
            "nav_active": "compte",
            "addresses": await mailbox_export.readable_mailboxes(app, user.account.login),
            "max_mib": app.settings.export_max_bytes // (1024 * 1024),
            "error": error,
        },
        status=status,
    )


@page()
async def data_page(request: Request, user: WebUser) -> Response:
    return await _page(request, user)


@page()
async def export(request: Request, user: WebUser) -> Response:
    app = state(request).app
    form = await form_data(request)
    source = client_ip(request)
    # AccessDenied (another practice's mailbox, or one not delegated): 403 from ``page``.
    mailbox = await mailbox_export.readable_mailbox(
        app, user.account.login, form.get("boite", ""), source=source
    )
    target = export_dir(app.settings.data_dir) / f"{secrets.token_hex(16)}.zip"
    try:
        done = await mailbox_export.export_mailbox(
            app,
            mailbox,
            target,
            fmt=form.get("format", "mbox"),
            actor=user.account.login,
            source=source,
        )
    except CaduceeError as exc:
        return await _page(request, user, error=error_message(exc), status=400)
    stamp = datetime.now(UTC).strftime("%Y%m%d")
    name = f"{mailbox.address}-{done.format}-{stamp}.zip"
    return file_download(done.path, name, "application/zip")


routes = [
    Route("/compte/donnees", data_page, methods=["GET"], name="my_data"),
    Route("/compte/donnees/export", export, methods=["POST"], name="my_data_export"),
]
