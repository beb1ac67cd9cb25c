"""Télétransmission mailboxes when full, quota notices, and the purge (issue 15), on both
backends: a full TLT mailbox takes a return from the MX and archives its old acknowledged lots
outside its quota; owners are told once per threshold crossed; lots and returns past
``purge_days`` go with their stored messages."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import func, select, update

from caducee.app import App
from caducee.domain.model import MailboxType
from caducee.domain.teletransmission import ARCHIVE_FOLDER, ReturnKind
from caducee.flows import inbound, maintenance, submission
from caducee.health import teletransmission
from caducee.services import audit, mailboxes, mailstore, quota_notices
from caducee.services.delivery import deliver_local
from caducee.services.envelope import ClientInfo, Envelope, EnvelopeRecipient
from caducee.services.messages import read_message
from caducee.services.recipient_cache import recipient_cache
from caducee.store import directory_repo
from caducee.store.tables import mailboxes as mailboxes_table
from caducee.store.tables import messages, tlt_lots, tlt_returns
from tests.dnsserver import LocalDNS
from tests.health import tlt as traffic
from tests.services.helpers import person, practice

DOCTOR = "dr@cabinet.test"
TLT = "tlt.dr@cabinet.test"
SHARED = "secretariat@cabinet.test"
CLIENT = ClientInfo("192.0.2.20", "facturation", tls="TLSv1.3", login=TLT, protocol="ESMTPSA")
FUND_IP = "192.0.2.99"


@pytest.fixture
async def ready(app: App, test_dns: LocalDNS) -> App:
    await practice(app)
    await person(app, DOCTOR)
    await mailboxes.add_mailbox(app, TLT, MailboxType.TLT, DOCTOR)
    test_dns.add("422.01.rss.fr", "TXT", f"v=spf1 ip4:{FUND_IP} -all")
    return app


async def send_lot(app: App, number: str) -> None:
    raw = traffic.lot_message(TLT, subject=traffic.lot_subject(traffic.SENDER_NUMBER, number))
    envelope = Envelope(TLT, (EnvelopeRecipient(traffic.FUND),))
    await submission.submit(app, DOCTOR, envelope, raw, CLIENT)


async def receive(app: App, raw: bytes) -> None:
    recipient_cache(app)._entries.clear()  # the RCPT answer as the MX would get it now
    await inbound.check_recipient(app, TLT, len(raw))
    await inbound.receive(
        app,
        Envelope(traffic.FUND, (EnvelopeRecipient(TLT),)),
        raw,
        ClientInfo(FUND_IP, "mx.422.01.rss.fr"),
    )


async def set_quota(app: App, address: str, quota: int) -> None:
    """Below the 1 MB the admin may set: the tests' messages are small."""
    async with app.db.write() as conn:
        await conn.execute(
            update(mailboxes_table)
            .where(mailboxes_table.c.address == address)
            .values(quota_bytes=quota)
        )


async def age_lots(app: App, days: int) -> None:
    async with app.db.write() as conn:
        await conn.execute(
            update(tlt_lots).values(sent_at=dt.datetime.now(dt.UTC) - dt.timedelta(days=days))
        )


async def inbox_subjects(app: App, name: str = "INBOX") -> list[str]:
    """Subjects of the messages of a folder DOCTOR sees (their Inbox by default)."""
    of = await mailstore.open_folder(app, DOCTOR, name, source="test")
    _, rows = await mailstore.index(app, of.folder.id)
    subjects = []
    for row in rows:
        stored, _raw = await read_message(app, row.id)
        subjects.append(str(stored.meta.get("subject", "")))
    return subjects


async def folder_of(app: App, message_id: int) -> str:
    stored, _ = await read_message(app, message_id)
    return (await mailstore.folder_state(app, stored.folder_id)).name


# --- a full TLT mailbox never refuses a return --------------------------------------------------


async def test_a_full_tlt_mailbox_takes_a_return_and_archives_old_acknowledged_lots(
    ready: App,
) -> None:
    old, recent = "2026010109000000001", "2026010109000000002"
    await send_lot(ready, old)
    await receive(ready, traffic.arl(TLT, traffic.SENDER_NUMBER, old, positive=True))
    await age_lots(ready, 100)  # the first lot: acknowledged, past its 90 days
    await send_lot(ready, recent)
    box = await mailboxes.get_mailbox(ready, TLT)
    await set_quota(ready, TLT, box.used_bytes)  # full

    return_raw = traffic.arl(TLT, traffic.SENDER_NUMBER, recent, positive=True)
    await receive(ready, return_raw)  # RCPT accepted, stored past the quota

    views = await teletransmission.list_lots(ready, [box])
    by_number = {v.lot.compostage: v for v in views}
    assert by_number[recent].lot.arl is ReturnKind.ARL_POSITIVE  # the return is in
    archived = by_number[old].lot
    assert archived.archived_at is not None and by_number[recent].lot.archived_at is None
    assert await folder_of(ready, archived.stored_message_id or 0) == ARCHIVE_FOLDER
    after = await mailboxes.get_mailbox(ready, TLT)
    assert after.used_bytes <= after.quota_bytes  # the archive is outside the quota
    async with ready.db.read() as conn:
        total = (
            await conn.execute(
                select(func.sum(messages.c.size)).where(messages.c.mailbox_id == box.id)
            )
        ).scalar_one()
    copy, _ = await read_message(ready, archived.stored_message_id or 0)
    assert total - after.used_bytes == copy.size  # stored, not counted
    # The practitioner is told, in their personal Inbox.
    await quota_notices.notices(ready).drain()
    subjects = await inbox_subjects(ready)
    assert any("lots archivés" in s for s in subjects), subjects
    records = [r async for r in audit.iter_records(ready.db) if r.action == "tlt.archive"]
    assert len(records) == 1 and json.loads(records[0].details)["lots"] == str(archived.id)
    # Nothing is put in the archive by hand; a lot may be moved out (it counts again).
    of = await mailstore.open_folder(ready, DOCTOR, "INBOX", source="test")
    target = await mailstore.open_folder(
        ready, DOCTOR, f"Partagés/{TLT}/{ARCHIVE_FOLDER}", source="test", write=True
    )
    _, rows = await mailstore.index(ready, of.folder.id)
    with pytest.raises(mailstore.NoPermission, match="rempli par le serveur"):
        await mailstore.copy(ready, of, [rows[0].id], target)


async def test_a_full_tlt_mailbox_with_nothing_to_archive_still_takes_returns(
    ready: App,
) -> None:
    number = "2026010109000000003"
    await send_lot(ready, number)  # recent: it must stay where it is
    box = await mailboxes.get_mailbox(ready, TLT)
    await set_quota(ready, TLT, box.used_bytes)
    await receive(ready, traffic.noemie(TLT, traffic.SENDER_NUMBER, number))
    await receive(ready, traffic.noemie(TLT, traffic.SENDER_NUMBER, number))
    after = await mailboxes.get_mailbox(ready, TLT)
    assert after.used_bytes > after.quota_bytes  # over quota, nothing lost
    assert len(await inbox_subjects(ready, f"Partagés/{TLT}/INBOX")) == 2
    [view] = await teletransmission.list_lots(ready, [box])
    assert view.lot.archived_at is None and len(view.returns) == 2
    await quota_notices.notices(ready).drain()
    told = [s for s in await inbox_subjects(ready) if TLT in s]
    assert told == [f"Boîte {TLT} : quota dépassé"]  # once, though two returns came


# --- quota notices -------------------------------------------------------------------------------


async def test_quota_notices_once_per_threshold_crossed(ready: App) -> None:
    await mailboxes.add_mailbox(ready, SHARED, MailboxType.ORG, DOCTOR)
    await set_quota(ready, SHARED, 10_000)
    chunk = b"Subject: x\r\n\r\n" + b"a" * 2_000 + b"\r\n"  # 2,033 bytes stored (Return-Path added)

    async def deliver(count: int) -> list[str]:
        for _ in range(count):
            await deliver_local(ready, chunk, [SHARED])
        await quota_notices.notices(ready).drain()
        return [s for s in await inbox_subjects(ready) if SHARED in s]

    assert await deliver(3) == []  # ~60 %
    assert await deliver(1) == [f"Boîte {SHARED} remplie à 80 %"]
    assert await deliver(0) == [f"Boîte {SHARED} remplie à 80 %"]
    assert await quota_notices.sweep(ready) == 0  # told already
    # The fifth would pass the quota: refused, nothing told; 95 % is crossed by a smaller one.
    with pytest.raises(Exception, match="pleine"):
        await deliver(1)
    small = b"Subject: y\r\n\r\n" + b"b" * 1_500 + b"\r\n"
    await deliver_local(ready, small, [SHARED])
    await quota_notices.notices(ready).drain()
    told = [s for s in await inbox_subjects(ready) if SHARED in s]
    assert told == [f"Boîte {SHARED} remplie à 80 %", f"Boîte {SHARED} remplie à 95 %"]
    # Emptied: the sweep lowers the mark silently; filled again: told again.
    of = await mailstore.open_folder(ready, DOCTOR, f"Partagés/{SHARED}/INBOX", source="t")
    _, rows = await mailstore.index(ready, of.folder.id)
    await mailstore.expunge(ready, of, [r.id for r in rows])
    assert await maintenance.run_once(
        ready, tuple(t for t in maintenance.TASKS if t.name == "quota-notices")
    ) == {"quota-notices": 0}
    async with ready.db.read() as conn:
        box = await directory_repo.mailbox_by_address(conn, SHARED)
        assert box is not None and await directory_repo.quota_notified(conn, box.id) == 0
    assert len(await deliver(4)) == 3  # 80 % again


# --- retention and purge --------------------------------------------------------------------------


async def test_purge_removes_lots_returns_and_their_messages_after_purge_days(
    ready: App,
) -> None:
    number = "2026010109000000004"
    await send_lot(ready, number)
    await receive(ready, traffic.arl(TLT, traffic.SENDER_NUMBER, number, positive=True))
    box = await mailboxes.get_mailbox(ready, TLT)
    [view] = await teletransmission.list_lots(ready, [box])
    kept = [view.lot.stored_message_id, view.returns[0].stored_message_id]
    now = dt.datetime.now(dt.UTC)
    assert await teletransmission.purge(ready, now=now + dt.timedelta(days=400)) == 0  # off
    ready.settings.tlt_purge_days = 120
    assert await teletransmission.purge(ready, now=now + dt.timedelta(days=100)) == 0
    assert await teletransmission.purge(ready, now=now + dt.timedelta(days=121)) == 2
    async with ready.db.read() as conn:
        assert (await conn.execute(select(func.count()).select_from(tlt_lots))).scalar() == 0
        assert (await conn.execute(select(func.count()).select_from(tlt_returns))).scalar() == 0
        left = await conn.execute(select(messages.c.id).where(messages.c.id.in_(kept)))
        assert left.all() == []
    assert (await mailboxes.get_mailbox(ready, TLT)).used_bytes == 0
    actions = [(r.actor, r.action) async for r in audit.iter_records(ready.db)]
    assert ("system", "tlt.purge") in actions
    assert actions.count(("system", "message.delete")) == 2  # the Sent copy, the return
    assert (await audit.verify(ready.db)).ok
