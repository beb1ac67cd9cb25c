"""The routing tail of everything that leaves: local copies first, then the step that must
follow them, then the queue — and a refused local copy leaves nothing queued."""

from __future__ import annotations

import pytest

from caducee.app import App
from caducee.errors import QuotaExceeded
from caducee.services import mailboxes, outgoing, queue
from caducee.services.envelope import EnvelopeRecipient
from tests.services.helpers import person, practice

SENDER = "dr.a@cabinet.test"
REMOTE = EnvelopeRecipient("labo@ailleurs.test")


def message(body_lines: int) -> bytes:
    head = f"From: {SENDER}\r\nTo: {SENDER}\r\nSubject: Resultats\r\n\r\n".encode()
    return head + b"x" * 76 + b"\r\n" * 1 + (b"y" * 76 + b"\r\n") * body_lines


async def test_local_then_the_step_then_the_queue(app: App) -> None:
    await practice(app)
    await person(app, SENDER)
    seen: list[tuple[int, int]] = []

    async def step() -> None:  # runs once the local copy is stored, before anything is queued
        box = await mailboxes.get_mailbox(app, SENDER)
        seen.append((box.used_bytes, len(await queue.list_queue(app))))

    routed = await outgoing.route(
        app, message(3), SENDER, local=[SENDER], remote=[REMOTE], after_local=step
    )
    assert routed.local == (SENDER,) and routed.remote == (REMOTE.address,)
    [(used, queued)] = seen
    assert used > 0 and queued == 0
    [entry] = await queue.list_queue(app)
    assert entry.id == routed.queue_id


async def test_a_refused_local_copy_leaves_nothing_queued(app: App) -> None:
    await practice(app)
    await person(app, SENDER)
    await mailboxes.set_quota(app, SENDER, 1024 * 1024)
    steps: list[str] = []

    async def step() -> None:
        steps.append("ran")

    with pytest.raises(QuotaExceeded):
        await outgoing.route(
            app, message(15_000), SENDER, local=[SENDER], remote=[REMOTE], after_local=step
        )
    assert steps == [] and await queue.list_queue(app) == []
