"""Mailbox change notifications: wake IMAP IDLE sessions (and other waiters) on every node.

In one process, :class:`MailboxEvents` fans events out to subscribers' queues. With PostgreSQL,
events also go through ``NOTIFY caducee_mailbox, '<mailbox id>'`` so that sessions on other
nodes wake up too; each node LISTENs on one dedicated connection. Events carry only a mailbox
id: subscribers re-read what changed from the database, so a lost or merged event costs a
refresh, never correctness.

With SQLite, the worker processes of one node (``[server] workers``) have no NOTIFY: each
binds a datagram socket and leaves its name in ``<run>/events/<pid>.<token>.sock``
(:meth:`MailboxEvents.local_fanout`); a publication is also sent, non-blocking, to every other
socket named there — one nobody reads any more (a worker that died) has its name removed.
The sockets are Linux abstract ones (no file: no 108-byte path limit under a deep data
directory, and gone with their process); a datagram carries mailbox ids only, so anything
else sending one costs at most a refresh. SQLite serves one node only, so this local fan-out
is all it needs; PostgreSQL's NOTIFY already reaches every worker of every node.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import secrets
import socket
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path

from caducee.app import App
from caducee.store import node_repo

log = logging.getLogger(__name__)

CHANNEL = "caducee_mailbox"


class MailboxEvents:
    def __init__(self, app: App) -> None:
        self.app = app
        self._subscribers: dict[int, set[asyncio.Queue[int]]] = {}
        self._listener: asyncio.Task[None] | None = None
        self._fanout: socket.socket | None = None
        self._fanout_dir: Path | None = None
        self._fanout_path: Path | None = None

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
            if ids and self._fanout is not None:
                self._send_to_peers(ids)
            return
        # PostgreSQL: NOTIFY reaches every node, this one included (through its listener).
        await node_repo.notify(self.app.db, CHANNEL, [str(i) for i in sorted(ids)])

    @asynccontextmanager
    async def local_fanout(self, directory: Path) -> AsyncIterator[None]:
        """While inside, receive and send this node's SQLite events through ``directory``
        (one datagram socket per worker process)."""
        directory.mkdir(parents=True, exist_ok=True)
        # The pid says whose it is; the token keeps two apps of one process apart (tests).
        path = directory / f"{os.getpid()}.{secrets.token_hex(4)}.sock"
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.setblocking(False)
        sock.bind(_abstract_name(path))
        path.touch()
        loop = asyncio.get_running_loop()
        loop.add_reader(sock.fileno(), self._receive, sock)
        self._fanout, self._fanout_dir, self._fanout_path = sock, directory, path
        try:
            yield
        finally:
            loop.remove_reader(sock.fileno())
            self._fanout = self._fanout_dir = self._fanout_path = None
            sock.close()
            path.unlink(missing_ok=True)

    def _receive(self, sock: socket.socket) -> None:
        while True:
            try:
                data = sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            for item in data.split(b","):
                if item.isdigit():
                    self._wake(int(item))

    def _send_to_peers(self, ids: set[int]) -> None:
        """One datagram (mailbox ids, comma-separated) to each other worker; never blocks."""
        assert self._fanout is not None and self._fanout_dir is not None
        payload = ",".join(str(i) for i in sorted(ids)).encode("ascii")
        try:
            peers = [p for p in self._fanout_dir.iterdir() if p.suffix == ".sock"]
        except OSError:
            return
        for peer in peers:
            if peer == self._fanout_path:
                continue
            try:
                self._fanout.sendto(payload, _abstract_name(peer))
            except (ConnectionRefusedError, FileNotFoundError):
                # Nobody reads there: a worker that died without removing its socket.
                peer.unlink(missing_ok=True)
            except OSError as exc:  # a full buffer: that worker is stuck, skip it this time
                log.warning("mailbox event not sent to a worker error=%s", type(exc).__name__)

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


def _abstract_name(path: Path) -> bytes:
    """The abstract socket (Linux: a leading NUL, no file) named by ``path``."""
    digest = hashlib.sha256(str(path.parent.resolve()).encode()).hexdigest()[:24]
    return b"\0caducee-events/" + digest.encode() + b"/" + path.name.encode()


def mailbox_events(app: App) -> MailboxEvents:
    """The node's event hub."""
    return app.component(MailboxEvents, MailboxEvents)
