"""Local delivery: the one pipeline every door uses to put a message into our mailboxes.

SMTP (MX and submission), the webmail, the REST API and bounce generation all call
:func:`deliver_local`. It returns only once every copy is durably stored (blob on disk, row
committed), so the caller may then acknowledge (SMTP 250, API 201).

Group commit: each delivery is prepared in its caller's task — parsed, its recipients resolved,
sealed, its blobs staged (:func:`~caducee.services.messages.prepare_delivery`) —
then joins a per-node :class:`DeliveryPipeline` that commits the waiting deliveries in one
transaction: one fsync of the database for the whole group, so durability does not cost
throughput. Only the transaction is serial; everything else overlaps it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence

from caducee.app import App
from caducee.domain.addresses import domain_of, normalize_address
from caducee.domain.model import StoredMessage
from caducee.errors import CaduceeError, TemporaryFailure
from caducee.services import cpu_pool, mdn, quota_notices
from caducee.services.messages import (
    Delivery,
    Prepared,
    commit_group,
    discard_blobs,
    prepare_delivery,
)

log = logging.getLogger(__name__)

#: At most this many deliveries share one transaction.
MAX_GROUP = 64


class DeliveryPipeline:
    """Gathers concurrent deliveries of one node into group commits."""

    def __init__(self, app: App, max_group: int = MAX_GROUP) -> None:
        self.app = app
        self.max_group = max_group
        self._queue: asyncio.Queue[tuple[Prepared, asyncio.Future[list[StoredMessage]]]] = (
            asyncio.Queue()
        )
        self._task: asyncio.Task[None] | None = None
        self.groups = 0  # committed groups, for benchmarks and tests
        self.delivered = 0

    async def deliver(self, delivery: Delivery) -> list[StoredMessage]:
        item = await prepare_delivery(self.app, delivery)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="delivery-pipeline")
        future: asyncio.Future[list[StoredMessage]] = asyncio.get_running_loop().create_future()
        try:
            self._queue.put_nowait((item, future))
        except BaseException:
            await discard_blobs(self.app, [item])
            raise
        # once queued, the delivery is committed even if this caller goes away
        return await asyncio.shield(future)

    async def _run(self) -> None:
        while True:
            group = [await self._queue.get()]
            while len(group) < self.max_group and not self._queue.empty():
                group.append(self._queue.get_nowait())
            try:
                results, crossed = await commit_group(self.app, [item for item, _ in group])
            except Exception as error:  # the transaction failed: every waiter learns it
                if isinstance(error, TemporaryFailure):  # a full disk, the database away
                    log.warning(
                        "group commit failed (%d deliveries) reason=%s",
                        len(group),
                        type(error).__name__,
                    )
                else:
                    log.exception("group commit failed (%d deliveries)", len(group))
                for _, future in group:
                    if not future.done():
                        future.set_exception(error)
                continue
            self.groups += 1
            for (_, future), result in zip(group, results, strict=True):
                if future.done():
                    continue
                if isinstance(result, CaduceeError):
                    future.set_exception(result)
                else:
                    self.delivered += 1
                    future.set_result(result)
            if crossed:  # a quota threshold: told in the background, the senders answered
                quota_notices.notices(self.app).schedule(crossed)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        while not self._queue.empty():  # never committed: the senders were not answered
            item, future = self._queue.get_nowait()
            await discard_blobs(self.app, [item])
            if not future.done():
                future.cancel()


def delivery_actor(sender: str | None) -> str:
    """Who a delivery is audited as: the sender's domain only (a patient's address is not
    copied into the audit trail), "<>" for bounces from elsewhere, "system" for our own."""
    if sender is None:
        return "system"
    if not sender:
        return "<>"
    return "domain:" + domain_of(sender.lower())


def pipeline(app: App) -> DeliveryPipeline:
    """The node's delivery pipeline."""
    return app.component(DeliveryPipeline, DeliveryPipeline)


def return_path_line(reverse_path: str) -> bytes:
    """RFC 5321 §4.4: ``Return-Path: <reverse-path>`` (the angle brackets even when empty)."""
    clean = "".join(ch for ch in reverse_path if ch not in "<>\r\n")
    return f"Return-Path: <{clean}>\r\n".encode("utf-8", "replace")


async def deliver_local(
    app: App,
    raw: bytes,
    recipients: Sequence[str],
    *,
    folder: str = "INBOX",
    sender: str | None = None,
    source: str = "",
    past_quota: bool = False,
    keywords: Mapping[str, tuple[str, ...]] | None = None,
) -> list[StoredMessage]:
    """Store one copy of ``raw`` in the ``folder`` of each local recipient's mailbox.

    ``sender`` is the envelope's reverse-path ("" for the null one): as the final delivery, we
    insert it as a ``Return-Path`` line at the top (RFC 5321 §4.4), which read receipts are
    compared with (RFC 8098 §2.1).

    All or nothing: if one recipient cannot take it (unknown, full), none gets it and the error
    is raised. Returns once every copy is durably committed, with one ``message.deliver`` audit
    record per copy in the same transaction: actor the domain of ``sender`` (the envelope's
    MAIL FROM; "<>" for a null reverse-path; "system" for mail the server writes itself, when
    None), ``source`` the SMTP client's address or the door. ``past_quota``: the mailboxes
    take it even when full (a télétransmission mailbox's returns). ``keywords``: IMAP
    keywords for the copies of some recipients (by address), e.g. a patient message's triage.
    """
    if sender is not None:
        raw = await cpu_pool.concat(return_path_line(sender), raw)
    addresses = list(dict.fromkeys(normalize_address(a) for a in recipients))
    delivery = Delivery(
        raw,
        folder=folder,
        addresses=addresses,
        audit_actor=delivery_actor(sender),
        audit_source=source,
        past_quota=past_quota,
        address_keywords={normalize_address(a): k for a, k in (keywords or {}).items()},
    )
    stored = await pipeline(app).deliver(delivery)
    await mdn.record_received(app, raw, stored)  # a read receipt: into the sender's trace
    return stored
