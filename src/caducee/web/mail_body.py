"""The sandboxed mail-body page, one implementation for the webmail and the patient portal.

A message's body is never part of the page that shows it: the page frames it in an ``<iframe
sandbox>`` whose source is this document, sanitised (:func:`caducee.domain.mail_display.sanitize`,
nh3) and served with its own Content-Security-Policy — nothing runs, nothing loads but the
message's inline images (and remote images only when the reader asks for them), links open
outside the sandbox, and the document may only be framed by our own pages. Parsing and
sanitising run in a worker thread: a large message must not hold the event loop.
"""

from __future__ import annotations

from starlette.responses import HTMLResponse

from caducee.domain import mail_display
from caducee.services import cpu_pool

#: CSP of the framed message body: nothing runs, nothing loads but our inline images.
BODY_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "frame-ancestors 'self'; base-uri 'none'; form-action 'none'; sandbox allow-popups "
    "allow-popups-to-escape-sandbox"
)
#: The same, when the reader chose to load the message's remote (https) images.
BODY_CSP_REMOTE_IMAGES = BODY_CSP.replace("img-src data:;", "img-src data: https:;")


async def body_response(raw: bytes, *, remote_images: bool = False) -> HTMLResponse:
    """The framed body's response: the document, its CSP (sandbox included), never cached."""
    # a big message (cpu_pool.PROCESS_THRESHOLD) in a worker process: parsing and sanitising
    # hold the interpreter lock, 0.4-0.7 s for a 15 MB or a deeply nested one (issue 17)
    document = await cpu_pool.run_sized(
        len(raw), mail_display.body_document, raw, remote_images=remote_images
    )
    response = HTMLResponse(document)
    response.headers["content-security-policy"] = (
        BODY_CSP_REMOTE_IMAGES if remote_images else BODY_CSP
    )
    response.headers["cache-control"] = "no-store"
    return response
