"""Sending a read receipt (RFC 8098) in a mailbox's name: see :mod:`.mdn` for its form.

A receipt is mail the server writes for the mailbox, so it obeys that mailbox's recipient rule
(:mod:`caducee.health.recipient_policy`) and goes through the submission pipeline like any
message. It is not sent — and the mailbox's trace of the original says why — when:

- ``Disposition-Notification-To`` differs from the ``Return-Path`` (RFC 8098 §2.1: an
  automatic receipt only goes back to the envelope sender);
- the mailbox may not write to that address (a trust-space mailbox and an address outside the
  trust space, a registered patient, the patient-facing mailbox and an unverified address).

Outside the trust space a receipt never repeats the original subject (RFC 8098 §3.2.1 leaves
the subject free): it could name the patient or the illness.
"""

from __future__ import annotations

from caducee.app import App
from caducee.domain.recipient_route import Route
from caducee.errors import CaduceeError
from caducee.flows import submission
from caducee.health import recipient_policy
from caducee.services import trace
from caducee.services.envelope import ClientInfo, Envelope, EnvelopeRecipient
from caducee.services.mdn import build, receipt_request

#: Why a receipt was withheld, as the trace records it (``mdn_withheld`` event's detail).
WITHHELD_RETURN_PATH = "return-path"
WITHHELD_PATIENT = "patient"
WITHHELD_POLICY = "policy"


async def send_displayed(
    app: App, login: str, mailbox_address: str, original: bytes, source: str
) -> bool:
    """Send the receipt ``original`` asks for; False when it asks none or may not get one."""
    request = receipt_request(original)
    if request is None:
        return False
    rules = await recipient_policy.sender_of(app, mailbox_address)
    withheld = ""
    decision = None
    if not request.matches_return_path:
        withheld = WITHHELD_RETURN_PATH
    else:
        decision = await recipient_policy.decide(app, rules, request.target)
        if decision.route is Route.PATIENT:
            withheld = WITHHELD_PATIENT
        elif decision.refused:
            withheld = WITHHELD_POLICY
    if withheld or decision is None:
        await _trace(app, rules, request.message_id, request.target, "mdn_withheld", withheld)
        return False
    raw = build(
        mailbox_address,
        request.target,
        original,
        app.settings.hostname,
        include_subject=decision.route in (Route.LOCAL, Route.TRUST),
    )
    try:
        await submission.submit(
            app,
            login,
            Envelope("", (EnvelopeRecipient(request.target),)),
            raw,
            ClientInfo(ip=source, helo="webmail", login=login, protocol="HTTPS"),
        )
    except CaduceeError:
        await _trace(
            app, rules, request.message_id, request.target, "mdn_withheld", WITHHELD_POLICY
        )
        raise
    await _trace(app, rules, request.message_id, request.target, "mdn_sent", "")
    return True


async def _trace(
    app: App,
    rules: recipient_policy.Sender,
    message_id: str,
    target: str,
    event: str,
    detail: str,
) -> None:
    """In the reading mailbox's trace of the original message."""
    key = trace.trace_key(message_id)
    if rules.mailbox is None or key is None:
        return
    async with app.db.write() as conn:
        await trace.record(app, conn, rules.mailbox.id, key, target, event, detail)
