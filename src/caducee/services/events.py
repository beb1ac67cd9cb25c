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

The same paths carry *cuts* (issue 19): an account or a mailbox disabled or deleted
(:meth:`MailboxEvents.publish_cut`, an item ``a<id>`` or ``m<id>`` beside the mailbox ids).
The IMAP and POP3 sessions it concerns, on every worker of every node, are woken
(:meth:`MailboxEvents.watch_cuts`), check the database themselves (an event is a hint, never
an authority: a stray one costs a query) and end at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import secrets
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from caducee.app import App
from caducee.store import node_repo

log = logging.getLogger(__name__)

CHANNEL = "caducee_mailbox"


@dataclass(eq=False)
class CutWatch:
    """A session's interest in cuts: its account, the mailboxes it has open (the session adds
    the folder's mailbox it selects); ``fired`` is set when a cut names one of them."""

    account_id: int | None
    mailbox_ids: set[int]
    fired: asyncio.Event = field(default_factory=asyncio.Event)


T = TypeVar("T")


async def read_unless_cut(
    read: Coroutine[Any, Any, T], cut: CutWatch | None, end_if_cut: Callable[[], Awaitable[None]]
) -> T:
    """Await ``read`` (a session's next command), unless a cut naming the session comes first:
    then ``end_if_cut()`` (which raises when the session must end; otherwise the event was
    stray, and the wait goes on). Every door that reads commands calls this."""
    if cut is None:
        return await read
    reading = asyncio.ensure_future(read)
    fired = asyncio.ensure_future(cut.fired.wait())
    try:
        while True:
            done, _ = await asyncio.wait({reading, fired}, return_when=asyncio.FIRST_COMPLETED)
            if reading in done:
                return reading.result()
            await end_if_cut()
            fired = asyncio.ensure_future(cut.fired.wait())
    finally:
        for task in (reading, fired):
            if not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task


class MailboxEvents:
    def __init__(self, app: App) -> None:
        self.app = app
        self._subscribers: dict[int, set[asyncio.Queue[int]]] = {}
        self._listener: asyncio.Task[None] | None = None
        self._fanout: socket.socket | None = None
        self._fanout_dir: Path | None = None
        self._fanout_path: Path | None = None
        self._cut_watches: set[CutWatch] = set()
        self._listening = asyncio.Event()

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

    @asynccontextmanager
    async def watch_cuts(
        self, account_id: int | None, mailbox_ids: Iterable[int]
    ) -> AsyncIterator[CutWatch]:
        """While inside, the watch's ``fired`` is set by a cut naming its account or one of
        its mailboxes (published on any worker of any node)."""
        self._ensure_listener()
        watch = CutWatch(account_id, set(mailbox_ids))
        self._cut_watches.add(watch)
        try:
            yield watch
        finally:
            self._cut_watches.discard(watch)

    def _cut(self, item: str) -> None:
        kind, number = item[:1], item[1:]
        if kind not in ("a", "m") or not number.isdigit():
            return
        target = int(number)
        for watch in self._cut_watches:
            if (kind == "a" and watch.account_id == target) or (
                kind == "m" and target in watch.mailbox_ids
            ):
                watch.fired.set()

    async def publish_cut(
        self, *, account_ids: Iterable[int] = (), mailbox_ids: Iterable[int] = ()
    ) -> None:
        """Tell every session of these accounts and mailboxes, on every worker of every node,
        that it may have to end (they check the database)."""
        items = sorted({f"a{i}" for i in account_ids} | {f"m{i}" for i in mailbox_ids})
        if not items:
            return
        if self.app.db.is_sqlite:
            for item in items:
                self._cut(item)
            self._send_to_peers(items)
            return
        await node_repo.notify(self.app.db, CHANNEL, items)

    def _dispatch(self, item: str) -> None:
        if item.isdigit():
            self._wake(int(item))
        else:
            self._cut(item)

    async def publish(self, mailbox_ids: Iterable[int]) -> None:
        ids = set(mailbox_ids)
        if self.app.db.is_sqlite:
            for mailbox_id in ids:
                self._wake(mailbox_id)
            if ids:
                self._send_to_peers([str(i) for i in sorted(ids)])
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
                self._dispatch(item.decode("ascii", "replace"))

    def _send_to_peers(self, items: list[str]) -> None:
        """One datagram (mailbox ids and cuts, comma-separated) to each other worker; never
        blocks."""
        payload = ",".join(items).encode("ascii")
        # A process outside the node's workers (the command line disabling an account) sends
        # from a socket of its own to the sockets the node's workers named there.
        directory = self._fanout_dir or self.app.settings.run_dir / "events"
        try:
            peers = [p for p in directory.iterdir() if p.suffix == ".sock"]
        except OSError:
            return
        if self._fanout is None:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
                sender.setblocking(False)
                self._send(sender, payload, peers)
            return
        self._send(self._fanout, payload, peers)

    def _send(self, sender: socket.socket, payload: bytes, peers: list[Path]) -> None:
        for peer in peers:
            if peer == self._fanout_path:
                continue
            try:
                sender.sendto(payload, _abstract_name(peer))
            except (ConnectionRefusedError, FileNotFoundError):
                # Nobody reads there: a worker that died without removing its socket.
                peer.unlink(missing_ok=True)
            except OSError as exc:  # a full buffer: that worker is stuck, skip it this time
                log.warning("mailbox event not sent to a worker error=%s", type(exc).__name__)

    async def start(self) -> None:
        """PostgreSQL: listen now, and return once listening (a serving node is not ready
        before: a cut or a wake-up published then would be missed)."""
        if self.app.db.is_sqlite:
            return
        self._ensure_listener()
        await self._listening.wait()

    def _ensure_listener(self) -> None:
        if self.app.db.is_sqlite or (self._listener and not self._listener.done()):
            return
        self._listener = asyncio.create_task(self._listen(), name="mailbox-events-listen")

    async def _listen(self) -> None:
        while True:
            try:
                async for payload in node_repo.listen(
                    self.app.db, CHANNEL, on_listening=self._listening.set
                ):
                    self._dispatch(payload)
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
