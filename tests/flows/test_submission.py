"""Submission policy (RFC 6409): who may send as whom, header checks, local and remote routing."""

from __future__ import annotations

from email.parser import BytesHeaderParser

import pytest

from caducee.app import App
from caducee.domain.model import Role
from caducee.errors import PolicyRejected, SenderNotAllowed
from caducee.flows import submission
from caducee.services import mailboxes, queue
from caducee.services.envelope import ClientInfo, Envelope, EnvelopeRecipient
from caducee.services.messages import read_message
from caducee.store import directory_repo
from tests.services.helpers import person, practice

CLIENT = ClientInfo(
    "192.0.2.20", "laptop", tls="TLSv1.3", login="dr@cabinet.test", protocol="ESMTPSA"
)


def mail(sender: str, extra: str = "") -> bytes:
    return f"From: {sender}\r\nTo: x@ailleurs.test\r\nSubject: CR\r\n{extra}\r\ncorps\r\n".encode()


def envelope(sender: str, *recipients: str) -> Envelope:
    return Envelope(sender, tuple(EnvelopeRecipient(r) for r in recipients))


@pytest.fixture
async def ready(app: App) -> App:
    await practice(app)
    await person(app, "dr@cabinet.test")
    await person(app, "sec@cabinet.test", role=Role.SECRETAIRE)
    await person(app, "confrere@cabinet.test")
    return app


async def test_who_may_send_as_whom(ready: App) -> None:
    assert (
        await submission.authorize_sender(ready, "dr@cabinet.test", "DR@cabinet.test", "ip")
        == "dr@cabinet.test"
    )
    with pytest.raises(SenderNotAllowed, match="n'a pas le droit d'envoyer"):
        await submission.authorize_sender(ready, "sec@cabinet.test", "dr@cabinet.test", "ip")
    await mailboxes.delegate(ready, "dr@cabinet.test", "sec@cabinet.test", can_send=False)
    with pytest.raises(SenderNotAllowed):
        await submission.authorize_sender(ready, "sec@cabinet.test", "dr@cabinet.test", "ip")
    await mailboxes.delegate(ready, "dr@cabinet.test", "sec@cabinet.test", can_send=True)
    assert await submission.authorize_sender(ready, "sec@cabinet.test", "dr@cabinet.test", "ip")
    with pytest.raises(SenderNotAllowed, match="vide"):
        await submission.authorize_sender(ready, "dr@cabinet.test", "", "ip")


async def test_from_header_must_be_sendable_too(ready: App) -> None:
    with pytest.raises(SenderNotAllowed):
        await submission.submit(
            ready,
            "dr@cabinet.test",
            envelope("dr@cabinet.test", "confrere@cabinet.test"),
            mail("Chef <confrere@cabinet.test>"),
            CLIENT,
        )
    with pytest.raises(PolicyRejected, match="From"):
        await submission.submit(
            ready,
            "dr@cabinet.test",
            envelope("dr@cabinet.test", "confrere@cabinet.test"),
            b"Subject: sans expediteur\r\n\r\nx\r\n",
            CLIENT,
        )


async def test_local_copy_gets_trace_date_and_message_id(ready: App) -> None:
    await submission.submit(
        ready,
        "dr@cabinet.test",
        envelope("dr@cabinet.test", "confrere@cabinet.test"),
        mail("Dr <dr@cabinet.test>"),
        CLIENT,
    )
    async with ready.db.read() as conn:
        box = await directory_repo.mailbox_by_address(conn, "confrere@cabinet.test")
        assert box is not None and box.used_bytes > 0
    from sqlalchemy import select

    from caducee.store.tables import messages

    async with ready.db.read() as conn:
        message_id = await conn.scalar(select(messages.c.id).where(messages.c.mailbox_id == box.id))
    _, raw = await read_message(ready, message_id)
    headers = BytesHeaderParser().parsebytes(raw)
    assert headers["Received"].startswith("from laptop ([192.0.2.20])")
    assert "ESMTPSA" in headers["Received"] and "dr@cabinet.test" not in headers["Received"]
    assert headers["Message-ID"] and headers["Date"]


async def test_remote_recipients_are_queued_dkim_signed(ready: App) -> None:
    await submission.submit(
        ready,
        "dr@cabinet.test",
        envelope("dr@cabinet.test", "x@ailleurs.test", "y@ailleurs.test"),
        mail("dr@cabinet.test"),
        CLIENT,
    )
    entries = await queue.list_queue(ready)
    assert sorted(e.address for e in entries) == ["x@ailleurs.test", "y@ailleurs.test"]
    raw = await queue.read_content(ready, entries[0])
    signature = BytesHeaderParser().parsebytes(raw)["DKIM-Signature"]
    assert signature and "d=cabinet.test" in signature.replace(" ", "")
