"""Sending a message the server writes on a mailbox's behalf (a pickup notice, an address
verification, a protected document): held to that mailbox's recipient rule
(:mod:`caducee.health.recipient_policy`, with the message's purpose), then carried by the
routing tail of everything that leaves (:func:`caducee.services.outgoing.route`): to one of our
mailboxes through local delivery, else DKIM-signed for the sender's domain and queued — the same
path as a submission, with the sender's trace when the message has one."""

from __future__ import annotations

from caducee.app import App
from caducee.domain.addresses import domain_of
from caducee.domain.recipient_route import Purpose, Route
from caducee.errors import PolicyRejected
from caducee.health import recipient_policy
from caducee.services import outgoing, queue
from caducee.services.queue import QueueOrigin


async def send_generated(
    app: App,
    raw: bytes,
    sender: str,
    recipient: str,
    *,
    purpose: Purpose,
    mailbox_id: int | None = None,
    trace_key: str | None = None,
    source: str = "",
    reverse_path: str | None = None,
) -> None:
    """Returns once the message is durably stored or queued; :class:`PolicyRejected` (nothing
    sent) when the sender's mailbox may not write to ``recipient`` for this purpose.
    ``reverse_path``: the envelope's MAIL FROM when it is not ``sender`` (``""``, the null
    one, for an auto-reply: RFC 3834 §3.3, so that nothing ever answers it)."""
    rules = await recipient_policy.sender_of(app, sender)
    decision = await recipient_policy.decide(app, rules, recipient, purpose=purpose)
    refused = recipient_policy.refusal(rules, [decision])
    if refused is not None:
        raise refused
    if decision.route is Route.PATIENT and purpose is Purpose.MAIL:
        raise PolicyRejected(*recipient_policy.patient_only_by_channel(recipient))
    traced = (
        outgoing.Traced(mailbox_id, trace_key)
        if mailbox_id is not None and trace_key is not None
        else None
    )
    local = decision.route is Route.LOCAL
    await outgoing.route(
        app,
        raw,
        sender if reverse_path is None else reverse_path,
        local=[recipient] if local else [],
        remote=[] if local else [queue.QueueRecipient(recipient)],
        dkim_domain=domain_of(sender),
        origin=QueueOrigin(actor=sender, source=source, mailbox_id=mailbox_id),
        traced=traced,
    )
