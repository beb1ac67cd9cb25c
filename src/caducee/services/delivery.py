"""Local delivery: the one pipeline every door uses to put a message into our mailboxes.

SMTP (MX and submission), the webmail, the REST API and bounce generation all call
:func:`deliver_local`. It returns only once every copy is durably stored (blob on disk, row
committed), so the caller may then acknowledge (SMTP 250, API 201).

Group commit: each delivery is prepared in its caller's task — its recipients resolved, parsed
and sealed (one worker-thread call), its blobs staged
(:func:`~caducee.services.messages.prepare_delivery`) — then joins a per-node
:class:`DeliveryPipeline` that commits the waiting deliveries in one transaction: one fsync of
the database for the whole group, so durability does not cost throughput. Only the transaction
is serial; everything else overlaps it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Coroutine, Mapping, Sequence
from typing import Any

from caducee.app import App
from caducee.domain.addresses import domain_of, normalize_address
from caducee.domain.model import StoredMessage
from caducee.errors import CaduceeError, TemporaryFailure
from caducee.services import cpu_pool, mdn, quota_notices
from caducee.services.messages import (
    Delivery,
    GroupCommit,
    Prepared,
    Result,
    abandon_group,
    commit_group,
    discard_blobs,
    group_audit_key,
    group_commit,
    prepare_delivery,
    settle_group,
)
from caducee.store.database import Transactions

log = logging.getLogger(__name__)

#: At most this many deliveries share one transaction.
MAX_GROUP = 64
#: SQLite: at most this many groups are committed one after the other in one worker thread
#: (:meth:`~caducee.store.database.Database.write_sync_series`) while more deliveries wait;
#: then the node's other writers get their turn.
MAX_SERIES = 8

_Waiting = tuple[Prepared, "asyncio.Future[list[StoredMessage]]"]


class DeliveryPipeline:
    """Gathers concurrent deliveries of one node into group commits.

    A group is whatever waits when the previous commit ends (no timer). On SQLite, groups that
    follow each other are committed by one worker thread, which takes the next group as soon as
    the previous one is durable: the event loop answers a group's senders (and tells IDLE
    sessions, the text index) while the next group commits, instead of every group waiting for
    the loop twice — to be handed to the thread, then to be handed back.
    """

    def __init__(self, app: App, max_group: int = MAX_GROUP) -> None:
        self.app = app
        self.max_group = max_group
        # appended by the loop, taken by the loop or the series' thread (deque: thread-safe)
        self._waiting: collections.deque[_Waiting] = collections.deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._series: asyncio.Future[None] | None = None
        self._settling: set[asyncio.Task[None]] = set()
        self._closing = False
        self.groups = 0  # committed groups, for benchmarks and tests
        self.delivered = 0

    async def deliver(self, delivery: Delivery) -> list[StoredMessage]:
        item = await prepare_delivery(self.app, delivery)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="delivery-pipeline")
        future: asyncio.Future[list[StoredMessage]] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        self._wake.set()
        # once waiting, the delivery is committed even if this caller goes away
        return await asyncio.shield(future)

    def _take(self) -> list[_Waiting]:
        """The next group: what waits, up to :attr:`max_group` deliveries."""
        group: list[_Waiting] = []
        with contextlib.suppress(IndexError):  # emptied meanwhile (close)
            while len(group) < self.max_group:
                group.append(self._waiting.popleft())
        return group

    async def _run(self) -> None:
        while True:
            if not self._waiting:
                self._wake.clear()
                await self._wake.wait()
                continue
            if self.app.db.is_sqlite:
                await self._commit_series()
                continue
            group = self._take()
            try:
                results, crossed = await commit_group(self.app, [item for item, _ in group])
            except Exception as error:  # the transaction failed: every waiter learns it
                self._fail(group, error)
                continue
            self._answer(group, results, crossed)

    async def _commit_series(self) -> None:
        """Commit groups one after the other in one worker thread (SQLite), while some wait
        (at most :data:`MAX_SERIES`); each group's senders are answered from the event loop as
        soon as its transaction is durable."""
        loop = asyncio.get_running_loop()
        try:
            key = await group_audit_key(self.app, [item for item, _ in self._waiting])
        except Exception as error:  # no audit key (no keyring): those deliveries cannot commit
            self._fail(self._take(), error)
            return

        def series(transact: Transactions) -> None:
            for _ in range(MAX_SERIES):
                if self._closing:
                    return
                group = self._take()
                if not group:
                    return
                items = [item for item, _ in group]
                if not key and any(item.delivery.audit_actor is not None for item in items):
                    self._waiting.extendleft(reversed(group))  # the next series reads the key
                    return
                commit = group_commit(self.app, items, key)
                try:
                    ids = transact(commit.run)
                except Exception as error:
                    loop.call_soon_threadsafe(
                        self._settle, self._settled(group, commit, None, error)
                    )
                else:
                    loop.call_soon_threadsafe(self._settle, self._settled(group, commit, ids, None))

        self._series = asyncio.ensure_future(self.app.db.write_sync_series(series))
        try:
            # shielded: once started, a series ends with its group committed and answered
            await asyncio.shield(self._series)
        except Exception as error:  # the write lock could not be taken: fail the next group
            self._fail(self._take(), error)

    def _settle(self, settling: Coroutine[Any, Any, None]) -> None:
        """On the loop, once a group of a series committed or failed: its :meth:`_settled`."""
        task = asyncio.create_task(settling)
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)

    async def _settled(
        self,
        group: list[_Waiting],
        commit: GroupCommit,
        ids: list[int] | None,
        error: Exception | None,
    ) -> None:
        try:
            if ids is None:
                await abandon_group(self.app, commit)
                assert error is not None
                raise error
            results, crossed = await settle_group(self.app, commit, ids)
        except Exception as failed:
            self._fail(group, failed)
            return
        self._answer(group, results, crossed)

    def _fail(self, group: list[_Waiting], error: Exception) -> None:
        if not group:
            return
        if isinstance(error, TemporaryFailure):  # a full disk, the database away
            log.warning(
                "group commit failed (%d deliveries) reason=%s", len(group), type(error).__name__
            )
        else:
            log.error("group commit failed (%d deliveries)", len(group), exc_info=error)
        for _, future in group:
            if not future.done():
                future.set_exception(error)

    def _answer(self, group: list[_Waiting], results: list[Result], crossed: set[int]) -> None:
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
        self._closing = True  # a series in progress stops after its current group
        try:
            if self._task is not None:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
                self._task = None
            if self._series is not None:
                with contextlib.suppress(Exception):
                    await self._series
                self._series = None
            while self._settling:  # the groups committed are answered
                await asyncio.gather(*self._settling, return_exceptions=True)
            while self._waiting:  # never committed: the senders were not answered
                item, future = self._waiting.popleft()
                await discard_blobs(self.app, [item])
                if not future.done():
                    future.cancel()
        finally:
            self._closing = False


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
