"""IDLE (RFC 2177, RFC 9051 §6.3.13): changes of the selected folder are reported as they
happen, woken by ``services.events`` (in process, and PostgreSQL NOTIFY across nodes), with a
slow poll as a safety net. Ends with DONE; 30 minutes without it ends the session."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from caducee.protocols.imap.protocol import Command
from caducee.protocols.imap.session import AUTH_IDLE_TIMEOUT, LINE_LIMIT, Session, bad
from caducee.services.events import mailbox_events

#: A wake-up that got lost (another node without NOTIFY) costs at most this delay.
POLL_SECONDS = 30.0


@asynccontextmanager
async def _events(session: Session) -> AsyncIterator[asyncio.Queue[int] | None]:
    if session.selected is None:
        yield None
        return
    async with mailbox_events(session.app).subscribe(session.selected.of.mailbox.id) as queue:
        yield queue


async def cmd_idle(session: Session, command: Command) -> None:
    async with _events(session) as queue:
        if session.selected is not None:
            await session.sync(expunge_ok=True)
        session.out += b"+ en attente\r\n"
        await session.flush()
        reader = asyncio.ensure_future(session.conn.readline(LINE_LIMIT, AUTH_IDLE_TIMEOUT))
        try:
            while True:
                waiters: set[asyncio.Future[object]] = {reader}  # type: ignore[arg-type]
                getter = asyncio.ensure_future(queue.get()) if queue is not None else None
                if getter is not None:
                    waiters.add(getter)  # type: ignore[arg-type]
                # A cut (the account or the mailbox disabled) ends the session during IDLE too.
                cut = asyncio.ensure_future(session.cut.fired.wait()) if session.cut else None
                if cut is not None:
                    waiters.add(cut)  # type: ignore[arg-type]
                done, _ = await asyncio.wait(
                    waiters, timeout=POLL_SECONDS, return_when=asyncio.FIRST_COMPLETED
                )
                for waiter in (getter, cut):
                    if waiter is not None and not waiter.done():
                        waiter.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await waiter
                await session.end_if_cut()
                if reader in done:
                    line = reader.result()
                    if line.strip().upper() != b"DONE":
                        raise bad("DONE attendu pour terminer IDLE")
                    break
                if session.selected is not None:
                    await session.sync(expunge_ok=True)
                    await session.flush()
        finally:
            if not reader.done():
                reader.cancel()
                with contextlib.suppress(BaseException):
                    await reader
    await session.ok(command, "IDLE termine")
