"""Sending a message the server writes on someone's behalf (a pickup notice, an address
verification, a protected document): to one of our mailboxes through local delivery, else
DKIM-signed for the sender's domain and queued — the same outbound path as a submission,
with the sender's trace when the message has one."""

from __future__ import annotations

from caducee.app import App
from caducee.domain.addresses import domain_of
from caducee.services import mail_auth, queue, trace
from caducee.services.delivery import deliver_local
from caducee.services.local_domains import our_domains
from caducee.services.queue import QueueOrigin


async def send_generated(
    app: App,
    raw: bytes,
    sender: str,
    recipient: str,
    *,
    mailbox_id: int | None = None,
    trace_key: str | None = None,
    source: str = "",
) -> None:
    """Returns once the message is durably stored or queued."""
    if domain_of(recipient) in await our_domains(app):
        await deliver_local(app, raw, [recipient])
        if mailbox_id is not None and trace_key is not None:
            async with app.db.write() as conn:
                await trace.record(
                    app, conn, mailbox_id, trace_key, recipient, "delivered", "local"
                )
        return
    signed = await mail_auth.dkim_sign_async(app.settings, raw, domain_of(sender))
    await queue.enqueue(
        app,
        signed,
        sender,
        [queue.QueueRecipient(recipient)],
        origin=QueueOrigin(actor=sender, source=source, mailbox_id=mailbox_id),
        trace_key=trace_key if mailbox_id is not None else None,
    )
