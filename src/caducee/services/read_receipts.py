"""Sending a read receipt (RFC 8098) through the submission pipeline: see :mod:`.mdn`."""

from __future__ import annotations

from caducee.app import App
from caducee.services import submission
from caducee.services.envelope import ClientInfo, Envelope, EnvelopeRecipient
from caducee.services.mdn import build, requested_by


async def send_displayed(
    app: App, login: str, mailbox_address: str, original: bytes, source: str
) -> bool:
    """Send the receipt ``original`` asks for; False when it asks none or may not get one."""
    target = requested_by(original)
    if target is None:
        return False
    raw = build(mailbox_address, target, original, app.settings.hostname)
    await submission.submit(
        app,
        login,
        Envelope("", (EnvelopeRecipient(target),)),
        raw,
        ClientInfo(ip=source, helo="webmail", login=login, protocol="HTTPS"),
    )
    return True
