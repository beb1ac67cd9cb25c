"""The sandboxed mail-body page, one implementation for the webmail and the patient portal.

A message's body is never part of the page that shows it: the page frames it in an ``<iframe
sandbox>`` whose source is this document, sanitised (:func:`caducee.domain.mail_display.sanitize`,
nh3) and served with its own Content-Security-Policy — nothing runs, nothing loads but the
message's inline images (and remote images only when the reader asks for them), links open
outside the sandbox, and the document may only be framed by our own pages. Parsing and
sanitising run in a worker thread: a large message must not hold the event loop.
"""

from __future__ import annotations

import asyncio

from markupsafe import escape
from starlette.responses import HTMLResponse

from caducee.domain import mail_display

#: CSP of the framed message body: nothing runs, nothing loads but our inline images.
BODY_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "frame-ancestors 'self'; base-uri 'none'; form-action 'none'; sandbox allow-popups "
    "allow-popups-to-escape-sandbox"
)
#: The same, when the reader chose to load the message's remote (https) images.
BODY_CSP_REMOTE_IMAGES = BODY_CSP.replace("img-src data:;", "img-src data: https:;")


def body_document(raw: bytes, *, remote_images: bool = False) -> str:
    """The HTML document of the message's body: its sanitised HTML part, else its text."""
    shown = mail_display.display(raw)
    if shown.html:
        clean, _blocked = mail_display.sanitize(shown.html, raw, shown, remote_images=remote_images)
    else:
        clean = f'<pre style="white-space:pre-wrap;font-family:inherit">{escape(shown.text)}</pre>'
    return (
        '<!doctype html><html><head><meta charset="utf-8">'
        '<meta name="referrer" content="no-referrer">'
        "<style>body{font-family:system-ui,sans-serif;margin:0.5rem;color:#1b2a33}"
        "img{max-width:100%;height:auto}</style></head><body>"
        f"{clean}</body></html>"
    )


async def body_response(raw: bytes, *, remote_images: bool = False) -> HTMLResponse:
    """The framed body's response: the document, its CSP (sandbox included), never cached."""
    document = await asyncio.to_thread(body_document, raw, remote_images=remote_images)
    response = HTMLResponse(document)
    response.headers["content-security-policy"] = (
        BODY_CSP_REMOTE_IMAGES if remote_images else BODY_CSP
    )
    response.headers["cache-control"] = "no-store"
    return response
