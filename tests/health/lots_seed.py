"""A TLT mailbox with one lot in every state, and returns matched or not, for the tests of the
doors that show lots (command line, webmail, API). Lots are recorded by the service the
submission calls (:func:`teletransmission.record_lot`), returns delivered and recognised as the
MX does (``deliver_local`` then :func:`teletransmission.record_returns`)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from caducee.app import App
from caducee.domain.model import Mailbox
from caducee.domain.teletransmission import Lot
from caducee.health import teletransmission
from caducee.services.delivery import deliver_local
from caducee.store import directory_repo
from tests.health import tlt as traffic

OTHER_SENDER = "99999999999999"


@dataclass
class Seeded:
    box: Mailbox
    acknowledged: Lot  # ARL positive
    rejected: Lot  # ARL negative
    late: Lot  # no ARL after the delay
    fresh: Lot  # sent now, ARL awaited
    undelivered: Lot  # refused by the fund's server
    resent: Lot  # sent again by ``fresh_again``
    fresh_again: Lot


async def _lot(app: App, box: Mailbox, number: str, sent: dt.datetime, queue_id: int) -> Lot:
    subject = traffic.lot_subject(traffic.SENDER_NUMBER, number)
    return await teletransmission.record_lot(
        app,
        box,
        subject=subject,
        funds=[traffic.FUND],
        message=traffic.lot_message(box.address, subject=subject, certificate=_CERT[0]),
        message_id=f"<{number}@facturation.test>",
        queue_id=queue_id,
        source="test",
        actor=box.address,
        now=sent,
    )


_CERT = [traffic.fund_certificate()]


async def receive(app: App, box: Mailbox, raw: bytes) -> None:
    stored = await deliver_local(app, raw, [box.address], sender=traffic.FUND)
    await teletransmission.record_returns(app, raw, stored, [box])


async def seed(app: App, address: str, now: dt.datetime | None = None) -> Seeded:
    """Lots of ``address`` (an existing TLT mailbox), one per state, and returns: the ARLs of
    two lots, a NOEMIE, and an unrecognised return matched to no lot."""
    now = now or dt.datetime.now(dt.UTC)
    async with app.db.read() as conn:
        box = await directory_repo.mailbox_by_address(conn, address)
    assert box is not None
    day = dt.timedelta(days=1)
    acknowledged = await _lot(app, box, traffic.compostage(now - 3 * day, 1), now - 3 * day, 9001)
    rejected = await _lot(app, box, traffic.compostage(now - 2 * day, 2), now - 2 * day, 9002)
    late = await _lot(app, box, traffic.compostage(now - 12 * day, 3), now - 12 * day, 9003)
    undelivered = await _lot(app, box, traffic.compostage(now - day, 4), now - day, 9004)
    resent_number = traffic.compostage(now - 20 * day, 5)
    resent = await _lot(app, box, resent_number, now - 20 * day, 9005)
    fresh = await _lot(app, box, traffic.compostage(now, 6), now, 9006)
    fresh_again = await _lot(app, box, resent_number, now - dt.timedelta(minutes=5), 9007)
    await receive(app, box, traffic.arl(address, traffic.SENDER_NUMBER, acknowledged.compostage))
    await receive(
        app,
        box,
        traffic.arl(address, traffic.SENDER_NUMBER, rejected.compostage, positive=False),
    )
    await receive(app, box, traffic.noemie(address, traffic.SENDER_NUMBER, acknowledged.compostage))
    await receive(
        app,
        box,
        traffic.return_message(
            address, description="XYZ", subject="Information", payload=b"rien", gzipped=False
        ),
    )
    async with app.db.write() as conn:
        await teletransmission.record_delivery(conn, 9004, False, "550 5.1.1 inconnu", now)
        await teletransmission.record_delivery(conn, 9001, True, "250 ok", now)
    return Seeded(box, acknowledged, rejected, late, fresh, undelivered, resent, fresh_again)
