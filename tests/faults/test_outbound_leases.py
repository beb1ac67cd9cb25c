"""A node killed (``kill -9``) while it holds outbound queue leases (issue 20): it was talking to
a silent server when it died. Another node does not touch those recipients while the leases
run, then delivers each exactly once after they expire. Node A is a real ``caducee serve``
process; node B is a second node on the same database, its clock moved past the lease."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from caducee.app import open_app
from caducee.config import Settings, TransportRoute
from caducee.flows.outbound import OutboundWorker
from caducee.services import queue
from caducee.services.queue import QueueRecipient
from caducee.store.tables import outbound_recipients
from tests.faults.load import running, setup_account, until
from tests.interop.test_outbound import Peers, message, parse
from tests.services.helpers import person

SENDER = "dr.martin@cabinet.test"
COUNT = 5


class Tarpit:
    """Accepts connections and never says a word."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self) -> None:
        self.listener.close()
        for conn in self.held:
            conn.close()


@pytest.fixture
def tarpit() -> Iterator[Tarpit]:
    started = Tarpit()
    try:
        yield started
    finally:
        started.close()


def leased_by_someone(settings: Settings) -> int:
    async def go() -> int:
        async with open_app(settings) as app, app.db.read() as conn:
            rows = await conn.execute(
                select(outbound_recipients.c.id).where(
                    outbound_recipients.c.lease_owner.is_not(None),
                    outbound_recipients.c.state.in_(("queued", "deferred")),
                )
            )
            return len(rows.all())

    return asyncio.run(go())


def test_leases_of_a_killed_node_are_delivered_once_after_they_expire(
    settings: Settings, tmp_path: Path, tarpit: Tarpit
) -> None:
    settings.transport = {"partner.test": TransportRoute("127.0.0.1", tarpit.port, "opportunistic")}
    setup_account(settings, workers=1)

    async def enqueue() -> None:
        async with open_app(settings) as app:
            await person(app, SENDER)
            for number in range(COUNT):
                await queue.enqueue(
                    app,
                    message(f"bail {number}"),
                    SENDER,
                    [QueueRecipient(f"r{number}@partner.test")],
                )

    asyncio.run(enqueue())
    with running(settings, tmp_path / "node-a") as node:
        until(lambda: tarpit.held != [], "node A talking to the silent server")
        until(lambda: leased_by_someone(settings) == COUNT, "node A holding the leases")
        node.proc.kill()  # SIGKILL: the leases stay in the database
        node.proc.wait(30)
    peers = Peers()
    good = peers.start()
    try:

        async def node_b() -> tuple[int, int, int]:
            settings.transport = {
                "partner.test": TransportRoute("127.0.0.1", good.port, "opportunistic")
            }
            async with open_app(settings) as app:
                worker = OutboundWorker(app, node_id="node-b")
                now = datetime.now(UTC)
                while_leased = (await worker.run_once(now)).claimed
                later = now + worker.lease + timedelta(minutes=1)
                after = await worker.run_once(later)
                again = (await worker.run_once(later + timedelta(minutes=1))).claimed
                return while_leased, after.delivered, again

        while_leased, delivered, again = asyncio.run(node_b())
    finally:
        for controller in peers.controllers:
            controller.stop()
    assert while_leased == 0  # nobody touches a live lease
    assert delivered == COUNT and again == 0
    copies = Counter(str(parse(r.content)["Subject"]) for r in good.received)
    assert copies == Counter({f"bail {n}": 1 for n in range(COUNT)})
    print(f"outbound leases: {COUNT} leased by the killed node, {delivered} delivered once after")
