"""Durability of the SMTP 250: a ``caducee serve`` receiving a stream of messages is killed
(SIGKILL) mid-stream, then restarted.

Each client thread sends one message per transaction and records which got 250. The server
answers 250 only after the delivery group committed, and a thread never has more than one
message in flight. So, after the crash:

- every message that got 250 is stored and readable (decryption included);
- the only other message that may be stored is a thread's in-flight one (its commit finished,
  the 250 died with the process) — at most one per thread;
- nothing is stored twice or half: rows = distinct messages, and the mailbox's used bytes are
  the sum of its rows' sizes.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import signal
import smtplib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import func, select

from caducee.app import open_app
from caducee.config import Settings
from caducee.server import listeners_file
from caducee.services import mailboxes
from caducee.services.messages import read_message
from caducee.store.tables import messages
from tests.services.helpers import person, practice
from tests.serving import prepare, serve_process, wait_listeners

LOGIN = "dr@cabinet.test"
SENDER = "labo@ailleurs.test"
THREADS = 4
KILL_AFTER = 40  # acknowledged messages before the kill
_SUBJECT = re.compile(rb"^Subject: (crash-\d+-\d+)\r$", re.MULTILINE)


@dataclass
class Sender:
    """One client thread: its acknowledged messages and the one it was sending, if any."""

    number: int
    port: int
    acked: list[str] = field(default_factory=list)
    in_flight: str | None = None
    error: BaseException | None = None

    def message(self, n: int) -> tuple[str, bytes]:
        marker = f"crash-{self.number}-{n}"
        filler = "".join(f"ligne {k} du compte rendu {marker}\r\n" for k in range(120))
        raw = f"From: <{SENDER}>\r\nTo: <{LOGIN}>\r\nSubject: {marker}\r\n\r\n{filler}"
        return marker, raw.encode()

    def run(self, stop: threading.Event) -> None:
        try:
            with smtplib.SMTP("127.0.0.1", self.port, timeout=30) as smtp:
                for n in range(100_000):
                    if stop.is_set():
                        return
                    marker, raw = self.message(n)
                    self.in_flight = marker
                    smtp.sendmail(SENDER, [LOGIN], raw)  # raises unless 250
                    self.acked.append(marker)
                    self.in_flight = None
        except (smtplib.SMTPException, OSError) as error:
            self.error = error  # the server died under us: expected


def stored_markers(settings: Settings) -> tuple[list[str], int, int]:
    """Markers of every stored message (each decrypted), the row count, the used bytes."""

    async def go() -> tuple[list[str], int, int]:
        async with open_app(settings) as app:
            async with app.db.read() as conn:
                ids = list((await conn.scalars(select(messages.c.id))).all())
                sizes = int(await conn.scalar(select(func.sum(messages.c.size))) or 0)
            markers = []
            for message_id in ids:
                _, raw = await read_message(app, message_id)
                found = _SUBJECT.search(raw)
                assert found is not None, raw[:300]
                markers.append(found.group(1).decode())
            used = (await mailboxes.get_mailbox(app, LOGIN)).used_bytes
            assert used == sizes
            return markers, len(ids), used

    return asyncio.run(go())


@pytest.fixture
def ready(settings: Settings) -> Iterator[Settings]:
    prepare(settings, {"smtp": "127.0.0.1:0"})

    async def accounts() -> None:
        async with open_app(settings) as app:
            await practice(app)
            await person(app, LOGIN)

    asyncio.run(accounts())
    yield settings


def test_sigkill_mid_stream_loses_no_acknowledged_message(ready: Settings, tmp_path: Path) -> None:
    settings = ready
    stop = threading.Event()
    with serve_process(settings, tmp_path) as proc:
        port = int(wait_listeners(settings, proc, tmp_path)["smtp"].rsplit(":", 1)[1])
        senders = [Sender(n, port) for n in range(THREADS)]
        threads = [threading.Thread(target=s.run, args=(stop,)) for s in senders]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 60
        while sum(len(s.acked) for s in senders) < KILL_AFTER:
            assert time.monotonic() < deadline, "the server accepted too few messages"
            assert all(t.is_alive() for t in threads), [s.error for s in senders]
            time.sleep(0.005)
        time.sleep(random.uniform(0, 0.02))  # land anywhere in a transaction
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        stop.set()
        for thread in threads:
            thread.join(30)
    assert all(s.error is not None for s in senders)  # each saw the server die

    # Restart on the same data: it serves again (the lock died with the process). The killed
    # process left its listeners.json behind: remove it so that we wait for the new one.
    listeners_file(settings).unlink()
    with serve_process(settings, tmp_path) as proc:
        port = int(wait_listeners(settings, proc, tmp_path)["smtp"].rsplit(":", 1)[1])
        after = Sender(THREADS, port)
        marker, raw = after.message(0)
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
            assert smtp.sendmail(SENDER, [LOGIN], raw) == {}
        proc.terminate()
        proc.wait(15)

    markers, rows, _used = stored_markers(settings)
    acked = {m for s in senders for m in s.acked} | {marker}
    in_flight = {s.in_flight for s in senders if s.in_flight is not None}
    stored = set(markers)
    assert rows == len(markers) == len(stored)  # no duplicate, every row readable
    assert acked <= stored, f"acknowledged but lost: {sorted(acked - stored)}"
    assert stored <= acked | in_flight, f"stored but never sent: {sorted(stored - acked)}"
    assert len(acked) <= rows <= len(acked) + len(in_flight)
    assert len(in_flight) <= THREADS
