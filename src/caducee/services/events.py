"""Mailbox change notifications: wake IMAP IDLE sessions (and other waiters) on every node.

In one process, :class:`MailboxEvents` fans events out to subscribers' queues. With PostgreSQL,
events also go through ``NOTIFY caducee_mailbox, '<mailbox id>'`` so that sessions on other
nodes wake up too; each node LISTENs on one dedicated connection. Events carry only a mailbox
id: subscribers re-read what changed from the database, so a lost or merged event costs a
refresh, never correctness.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

from caducee.app import App
from caducee.store import node_repo

log = logging.getLogger(__name__)

CHANNEL = "caducee_mailbox"


class MailboxEvents:
    def __init__(self, app: App) -> None:
        self.app = app
        self._subscribers: dict[int, set[asyncio.Queue[int]]] = {}
        self._listener: asyncio.Task[None] | None = None

    @asynccontextmanager
    async def subscribe(self, mailbox_id: int) -> AsyncIterator[asyncio.Queue[int]]:
        """A queue that receives ``mailbox_id`` each time that mailbox changes."""
        self._ensure_listener()
        queue: asyncio.Queue[int] = asyncio.Queue(maxsize=1)
        self._subscribers.setdefault(mailbox_id, set()).add(queue)
        try:
            yield queue
        finally:
            self._subscribers[mailbox_id].discard(queue)
            if not self._subscribers[mailbox_id]:
                del self._subscribers[mailbox_id]

    def _wake(self, mailbox_id: int) -> None:
        for queue in self._subscribers.get(mailbox_id, ()):
            with contextlib.suppress(asyncio.QueueFull):  # one pending wake-up is enough
                queue.put_nowait(mailbox_id)

    async def publish(self, mailbox_ids: Iterable[int]) -> None:
        ids = set(mailbox_ids)
        if self.app.db.is_sqlite:
            for mailbox_id in ids:
                self._wake(mailbox_id)
            return
        # PostgreSQL: NOTIFY reaches every node, this one included (through its listener).
        await node_repo.notify(self.app.db, CHANNEL, [str(i) for i in sorted(ids)])

    def _ensure_listener(self) -> None:
        if self.app.db.is_sqlite or (self._listener and not self._listener.done()):
            return
        self._listener = asyncio.create_task(self._listen(), name="mailbox-events-listen")

    async def _listen(self) -> None:
        while True:
            try:
                async for payload in node_repo.listen(self.app.db, CHANNEL):
                    if payload.isdigit():
                        self._wake(int(payload))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("mailbox event listener lost its connection; retrying in 1 s")
                await asyncio.sleep(1)

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener


def mailbox_events(app: App) -> MailboxEvents:
    """The node's event hub."""
    return app.component(MailboxEvents, MailboxEvents)
