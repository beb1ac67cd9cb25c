"""The routing tail of everything that leaves a node: a submission's copies, delivery reports
(RFC 3464, :mod:`.dsn`), read receipts (RFC 8098) and the notices the server writes in a
mailbox's name.

Whoever calls :func:`route` has already decided who may receive what (the recipient rule,
:mod:`caducee.health.recipient_policy`, sits above this layer): here a message is only carried.
Recipients at our domains get their copy through the delivery pipeline (final delivery, RFC
5321 §4.4: the ``Return-Path`` is inserted there); the others go through the durable outbound
queue, DKIM-signed for the sender's domain when the caller asks (RFC 6376; delivery reports,
sent with the null reverse-path from our host name to a remote sender, are not). The local
copies come first — the one store that can refuse (a full mailbox) —, so that a refusal
leaves nothing queued and a client's retry cannot duplicate a remote copy.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from caducee.app import App
from caducee.domain.addresses import domain_of
from caducee.domain.model import StoredMessage
from caducee.services import mail_auth, queue, trace
from caducee.services.delivery import deliver_local
from caducee.services.envelope import EnvelopeRecipient
from caducee.services.local_domains import our_domains
from caducee.services.queue import SYSTEM_ORIGIN, QueueOrigin


@dataclass(frozen=True)
class Traced:
    """The sender mailbox's trace the message belongs to (keyed by its Message-ID)."""

    mailbox_id: int
    key: str


@dataclass(frozen=True)
class Routed:
    local: tuple[str, ...]
    remote: tuple[str, ...]
    queue_id: int | None
    #: The local copies, as stored (what the auto-replies answer).
    stored: tuple[StoredMessage, ...] = ()


async def is_local(app: App, address: str) -> bool:
    """Whether ``address`` is at one of our domains (its copy is delivered here)."""
    return domain_of(address.lower()) in await our_domains(app)


async def route(
    app: App,
    raw: bytes,
    sender: str,
    *,
    local: Sequence[str] = (),
    remote: Sequence[EnvelopeRecipient] = (),
    dkim_domain: str | None = None,
    origin: QueueOrigin = SYSTEM_ORIGIN,
    traced: Traced | None = None,
    envid: str | None = None,
    ret: str | None = None,
    now: datetime | None = None,
    after_local: Callable[[], Awaitable[None]] | None = None,
) -> Routed:
    """Deliver ``raw`` to the ``local`` recipients, run ``after_local`` (a step that must come
    after the copies that can be refused and before anything leaves), then queue it for the
    ``remote`` ones — signed with ``dkim_domain``'s key when given. ``sender`` is the envelope's
    reverse-path (``""`` for the null one). Returns once everything is durably stored or
    queued; with ``traced``, the sender's trace records each local delivery and will record the
    remote ones."""
    stored: list[StoredMessage] = []
    if local:
        stored = await deliver_local(app, raw, list(local), sender=sender, source=origin.source)
        if traced is not None:
            async with app.db.write() as conn:
                for address in local:
                    await trace.record(
                        app, conn, traced.mailbox_id, traced.key, address, "delivered", "local"
                    )
    if after_local is not None:
        await after_local()
    queue_id = None
    if remote:
        if traced is not None:
            origin = replace(origin, mailbox_id=traced.mailbox_id)
        signed = raw
        if dkim_domain is not None:
            signed = await mail_auth.dkim_sign_async(app.settings, raw, dkim_domain)
        queue_id = await queue.enqueue(
            app,
            signed,
            sender,
            remote,
            envid=envid,
            ret=ret,
            origin=origin,
            now=now,
            trace_key=traced.key if traced is not None else None,
        )
    return Routed(tuple(local), tuple(r.address for r in remote), queue_id, tuple(stored))
