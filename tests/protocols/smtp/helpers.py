"""Looking at the store after SMTP sessions (in-process tests and real-client interop)."""

from __future__ import annotations

from sqlalchemy import func, select

from caducee.app import App
from caducee.services import mailboxes
from caducee.services.messages import read_message
from caducee.store.tables import messages

LOGIN = "dr@cabinet.test"


async def message_count(app: App) -> int:
    async with app.db.read() as conn:
        return int((await conn.scalar(select(func.count()).select_from(messages))) or 0)


async def used_bytes(app: App, address: str = LOGIN) -> int:
    return (await mailboxes.get_mailbox(app, address)).used_bytes


async def stored_messages(app: App) -> list[bytes]:
    async with app.db.read() as conn:
        ids = list((await conn.scalars(select(messages.c.id).order_by(messages.c.id))).all())
    return [(await read_message(app, message_id))[1] for message_id in ids]


def without_trace(raw: bytes) -> bytes:
    """The message as the client sent it: our prepended trace fields removed."""
    prepended = (
        b"Return-Path:",
        b"Received:",
        b"Authentication-Results:",
        b"Date:",
        b"Message-ID:",
    )
    while raw.startswith(prepended):
        end = raw.find(b"\r\n")
        while raw[end + 2 : end + 3] in (b" ", b"\t"):
            end = raw.find(b"\r\n", end + 2)
        raw = raw[end + 2 :]
    return raw
