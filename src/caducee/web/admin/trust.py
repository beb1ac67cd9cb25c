"""Admin console: the MSSanté whitelist (liste blanche) — the list in force and its age, and an
import from an uploaded file or an ``https://`` address with its SHA-256 checksum.

The import is :func:`caducee.health.trust_list.import_whitelist` (or ``import_from``), the one
the command line and the scheduled refresh call: it verifies the checksum, parses, replaces the
list whole, and audits every import, the refused ones too. An address is fetched by the server:
only ``https://`` is accepted here (the command line also reads files and ``http://``).
"""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from caducee.errors import AccessDenied, CaduceeError, InvalidInput
from caducee.health import trust_list, whitelist
from caducee.web.core import WebUser, client_ip, error_message, page, render, state

#: What the checksum field may hold: the digest, or a ``sha256sum`` line (digest and name).
CHECKSUM_MAX = 300


async def _page(
    request: Request,
    user: WebUser,
    *,
    error: str = "",
    report: trust_list.ImportReport | None = None,
    status: int = 200,
) -> Response:
    web = state(request)
    trust = await trust_list.status(web.app)
    age = None
    if trust.info is not None:
        age = (datetime.now(UTC) - trust.info.generated_at).days
    shared = False
    try:
        await trust_list.check_practice_admin(web.app)
    except AccessDenied:
        shared = True
    return render(
        request,
        "admin/trust.html",
        {
            "trust": trust,
            "shared": shared,
            "age_days": age,
            "list_url": web.app.settings.trust_list_url,
            "checksum_url": web.app.settings.trust_list_checksum_url,
            "report": report,
            "error": error,
            "admin_tab": "liste-blanche",
        },
        status=status,
    )


@page(admin=True)
async def trust_page(request: Request, user: WebUser) -> Response:
    return await _page(request, user)


@page(admin=True)
async def trust_import(request: Request, user: WebUser) -> Response:
    web = state(request)
    form = await request.form(max_files=1, max_part_size=whitelist.MAX_BYTES + 1024)
    upload = form.get("fichier")
    address = str(form.get("adresse") or "").strip()
    checksum = str(form.get("empreinte") or "").strip()[:CHECKSUM_MAX]
    checksum_address = str(form.get("adresse_empreinte") or "").strip()
    actor, origin = user.account.login, client_ip(request)
    try:
        if isinstance(upload, UploadFile) and upload.filename:
            data = await upload.read(whitelist.MAX_BYTES + 1)
            report = await trust_list.import_whitelist(
                web.app,
                data,
                checksum=checksum,
                source=f"upload:{upload.filename}"[:200],
                actor=actor,
                origin=origin,
                require_checksum=True,
                practice_admin=True,
            )
        elif address:
            report = await trust_list.import_from(
                web.app,
                address,
                checksum=checksum or None,
                checksum_location=checksum_address or None,
                actor=actor,
                origin=origin,
                https_only=True,
                require_checksum=True,
                practice_admin=True,
            )
        else:
            raise InvalidInput(
                "Choisissez un fichier ou indiquez une adresse https://.",
                "Choose a file or give an https:// address.",
            )
    except AccessDenied as exc:
        return await _page(request, user, error=error_message(exc), status=403)
    except CaduceeError as exc:
        return await _page(request, user, error=error_message(exc), status=400)
    return await _page(request, user, report=report)


routes = [
    Route("/admin/liste-blanche", trust_page, methods=["GET"], name="admin_trust"),
    Route("/admin/liste-blanche", trust_import, methods=["POST"], name="admin_trust_import"),
]
