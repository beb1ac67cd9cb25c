"""Télétransmission: the recognisers, French working days, and every lot tracked to its ARL
through the real pipeline (submission, outbound queue, MX), on both backends."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from sqlalchemy import update

from caducee.app import App
from caducee.domain import teletransmission as tlt
from caducee.domain import working_days
from caducee.domain.model import MailboxType
from caducee.domain.teletransmission import LotState, ReturnKind
from caducee.errors import InvalidInput, PolicyRejected
from caducee.flows import inbound, submission
from caducee.health import insurers, teletransmission
from caducee.services import mailboxes
from caducee.services.envelope import ClientInfo, Envelope, EnvelopeRecipient
from caducee.services.messages import read_message
from caducee.store import directory_repo
from caducee.store.tables import outbound_recipients
from tests.dnsserver import LocalDNS
from tests.health import tlt as traffic
from tests.services.helpers import person, practice

PARIS = working_days.PARIS
TLT = "tlt.dr@cabinet.test"
CLIENT = ClientInfo("192.0.2.20", "facturation", tls="TLSv1.3", login=TLT, protocol="ESMTPSA")
FUND_IP = "192.0.2.99"


def paris(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=PARIS)  # type: ignore[misc]


# --- the recognisers ---------------------------------------------------------------------------


def test_lot_subjects_with_and_without_sequence() -> None:
    parsed = tlt.parse_lot_subject("IR000042/12345678901234/2026120409301500001/00012")
    assert parsed == tlt.LotSubject("12345678901234", "2026120409301500001", 12, "000042")
    loose = tlt.parse_lot_subject(" ir / 1234567890123A / 2026120409301500001 / 3 ")
    assert loose is not None and loose.sender_number == "1234567890123A"
    assert loose.sequence is None and loose.invoice_count == 3
    assert tlt.parse_lot_subject("Re: compte rendu") is None
    assert tlt.parse_lot_subject("IR000042/12345678901234/20261204/00012") is None


def test_configurable_subject_pattern() -> None:
    custom = tlt.Patterns(subject=r"^LOT (?P<sender>\d{14}) (?P<compostage>\d{19})$")
    assert tlt.parse_lot_subject("LOT 12345678901234 2026120409301500001", custom) is not None
    with pytest.raises(InvalidInput, match="Motif"):
        tlt.check_pattern("subject_pattern", "IR(")


def test_return_kinds() -> None:
    assert tlt.classify_return("ARL POSITIF/B2", "") is ReturnKind.ARL_POSITIVE
    assert tlt.classify_return("ARL NEGATIF/B2", "") is ReturnKind.ARL_NEGATIVE
    assert tlt.classify_return("ARL", "ARL négatif") is ReturnKind.ARL_NEGATIVE
    assert tlt.classify_return("NOEMIE/PS", "") is ReturnKind.NOEMIE
    assert tlt.classify_return("", "Bonjour") is ReturnKind.UNKNOWN


def test_working_days_skip_weekends_and_public_holidays() -> None:
    # Friday 2026-12-18 → Monday 21, Tuesday 22: due by Tuesday evening.
    assert tlt.deadline_after(paris(2026, 12, 18, 17, 0), 2) == paris(2026, 12, 23, 0, 0)
    # Thursday 2026-12-24: Friday 25 is Christmas → Monday 28, Tuesday 29.
    assert tlt.deadline_after(paris(2026, 12, 24, 10, 0), 2) == paris(2026, 12, 30, 0, 0)
    # Saint Stephen (26 December) counts only in Alsace-Moselle; 2025-12-26 is a Friday.
    assert tlt.is_working_day(dt.date(2025, 12, 26))
    assert not tlt.is_working_day(dt.date(2025, 12, 26), "57")
    with pytest.raises(InvalidInput, match="Région"):
        tlt.check_subdivision("Bretagne")


def test_lot_state_in_working_days() -> None:
    sent = paris(2026, 12, 24, 10, 0)  # Christmas Eve, before a holiday and a weekend

    def state(now: dt.datetime, **kw: object) -> LotState:
        facts: dict[str, object] = {"arl": None, "delivery": "delivered", "resent": False}
        facts.update(kw)
        return tlt.lot_state(sent_at=sent, now=now, **facts)  # type: ignore[arg-type]

    assert state(paris(2026, 12, 29, 23, 59)) is LotState.SENT
    assert state(paris(2026, 12, 30, 0, 1)) is LotState.NO_ARL
    assert state(paris(2026, 12, 30, 0, 1), arl=ReturnKind.ARL_POSITIVE) is LotState.ARL_POSITIVE
    assert state(paris(2026, 12, 26), arl=ReturnKind.ARL_NEGATIVE) is LotState.ARL_NEGATIVE
    assert state(paris(2026, 12, 26), delivery="failed") is LotState.UNDELIVERED
    assert state(paris(2027, 1, 5), resent=True) is LotState.RESENT
    deadline = tlt.resend_deadline(sent, None, LotState.NO_ARL)
    # No ARL by the end of Tuesday 29 → send again within Wednesday 30 and Thursday 31.
    assert deadline == paris(2027, 1, 1, 0, 0)


def test_insurer_domains() -> None:
    assert insurers.is_insurer(["*.rss.fr"], "01422@422.01.rss.fr")
    assert not insurers.is_insurer(["*.rss.fr"], "x@rss.fr.evil.test")
    assert not insurers.is_insurer(["*.rss.fr"], "x@notrss.fr")
    assert tlt.check_domain_pattern(" *.Mutuelle.FR. ") == "*.mutuelle.fr"
    with pytest.raises(InvalidInput):
        tlt.check_domain_pattern("*")


# --- through the pipeline ---------------------------------------------------------------------


@pytest.fixture
async def ready(app: App, test_dns: LocalDNS) -> App:
    await practice(app)
    await person(app, "dr@cabinet.test")
    await mailboxes.add_mailbox(app, TLT, MailboxType.TLT, "dr@cabinet.test")
    test_dns.add("422.01.rss.fr", "TXT", f"v=spf1 ip4:{FUND_IP} -all")
    return app


async def send_lot(app: App, subject: str, *, to: str = traffic.FUND) -> bytes:
    raw = traffic.lot_message(TLT, subject=subject, fund=to)
    await submission.submit(
        app, "dr@cabinet.test", Envelope(TLT, (EnvelopeRecipient(to),)), raw, CLIENT
    )
    return raw


async def receive(app: App, raw: bytes) -> None:
    await inbound.receive(
        app,
        Envelope(traffic.FUND, (EnvelopeRecipient(TLT),)),
        raw,
        ClientInfo(FUND_IP, "mx.422.01.rss.fr"),
    )


async def lots(app: App, now: dt.datetime | None = None) -> list[teletransmission.LotView]:
    boxes = await teletransmission.resolve_mailboxes(app, "dr@cabinet.test", TLT)
    return await teletransmission.list_lots(app, boxes, now=now)


async def test_a_lot_is_recorded_kept_in_sent_and_acknowledged(ready: App) -> None:
    now = dt.datetime.now(dt.UTC)
    number = traffic.compostage(now)
    raw = await send_lot(ready, traffic.lot_subject(traffic.SENDER_NUMBER, number))
    [view] = await lots(ready)
    assert (view.lot.sender_number, view.lot.compostage) == (traffic.SENDER_NUMBER, number)
    assert view.lot.invoice_count == 12 and view.lot.fund == traffic.FUND
    assert view.lot.queue_id is not None and view.state is LotState.SENT
    stored, copy = await read_message(ready, view.lot.stored_message_id or 0)
    assert copy.endswith(raw)  # byte for byte after the prepended trace header
    async with ready.db.read() as conn:
        box = await directory_repo.mailbox_by_address(conn, TLT)
        folders = {f.id: f.name for f in await directory_repo.list_folders(conn, box.id)}  # type: ignore[union-attr]
    assert folders[stored.folder_id] == "Sent"

    await receive(ready, traffic.arl(TLT, traffic.SENDER_NUMBER, number, positive=True))
    [view] = await lots(ready)
    assert view.state is LotState.ARL_POSITIVE
    assert [r.kind for r in view.returns] == [ReturnKind.ARL_POSITIVE]


async def test_negative_arl_and_resend(ready: App) -> None:
    number = traffic.compostage(dt.datetime.now(dt.UTC), 7)
    subject = traffic.lot_subject(traffic.SENDER_NUMBER, number)
    await send_lot(ready, subject)
    await receive(ready, traffic.arl(TLT, traffic.SENDER_NUMBER, number, positive=False))
    [view] = await lots(ready)
    assert view.state is LotState.ARL_NEGATIVE and view.state.needs_action
    assert view.deadline is not None
    await send_lot(ready, subject)  # the same compostage again: a resend
    newer, older = await lots(ready)
    assert older.state is LotState.RESENT and newer.lot.resend_of == older.lot.id
    assert newer.state is LotState.SENT


async def test_no_arl_across_a_weekend_and_a_holiday_warns_once(ready: App) -> None:
    await send_lot(ready, traffic.lot_subject(traffic.SENDER_NUMBER, "2026122410000000001"))
    [view] = await lots(ready)
    sent = view.lot.sent_at
    later = sent + dt.timedelta(days=10)
    [late] = await lots(ready, now=later)
    assert late.state is LotState.NO_ARL
    assert await teletransmission.watchdog(ready, now=later) == 1
    assert await teletransmission.watchdog(ready, now=later + dt.timedelta(hours=1)) == 0
    assert await teletransmission.attention_count(ready, "dr@cabinet.test") == 1
    # The notice is in the practitioner's personal Inbox, naming the lot.
    from tests.flows.test_inbound import inbox_rows

    ids = await inbox_rows(ready)
    _, notice = await read_message(ready, ids[-1])
    assert b"2026122410000000001" in notice and b"Auto-Submitted: auto-generated" in notice


async def test_noemie_and_unknown_returns_are_kept_unmatched_or_matched(ready: App) -> None:
    number = traffic.compostage(dt.datetime.now(dt.UTC), 3)
    await send_lot(ready, traffic.lot_subject(traffic.SENDER_NUMBER, number))
    await receive(ready, traffic.noemie(TLT, traffic.SENDER_NUMBER, number))
    stray = traffic.return_message(
        TLT, description="XYZ", subject="Information", payload=b"rien", gzipped=False
    )
    await receive(ready, stray)
    [view] = await lots(ready)
    assert [r.kind for r in view.returns] == [ReturnKind.NOEMIE]
    assert view.state is LotState.SENT  # a NOEMIE return is no ARL
    boxes = await teletransmission.resolve_mailboxes(ready, "dr@cabinet.test", None)
    [unmatched] = await teletransmission.unmatched_returns(ready, boxes)
    assert unmatched.kind is ReturnKind.UNKNOWN and unmatched.stored_message_id


async def test_a_tlt_mailbox_writes_only_to_insurers(ready: App) -> None:
    with pytest.raises(PolicyRejected, match="télétransmission"):
        await send_lot(ready, "IR/12345678901234/2026120409301500001/00001", to="x@ailleurs.test")
    with pytest.raises(PolicyRejected, match="télétransmission"):
        await send_lot(ready, "x", to="dr@cabinet.test")
    practice_id = (await mailboxes.get_mailbox(ready, TLT)).practice_id
    await insurers.add_insurer_domain(ready, practice_id, "mutuelle.test", actor="cli")
    await send_lot(ready, "IR/12345678901234/2026120409301500009/00001", to="lots@mutuelle.test")
    assert len(await lots(ready)) == 1


async def test_a_verdict_written_while_the_lot_is_recorded_is_not_lost(ready: App) -> None:
    """The outbound worker writes its verdict in a transaction that commits while the
    submission is recording the lot (another process, or another connection): the lot still
    ends with the verdict, whichever commits first."""
    number = traffic.compostage(dt.datetime.now(dt.UTC), 8)
    await send_lot(ready, traffic.lot_subject(traffic.SENDER_NUMBER, number))
    [first] = await lots(ready)
    queue_id = first.lot.queue_id
    assert queue_id is not None and first.lot.delivery == "queued"
    async with ready.db.read() as conn:
        box = await directory_repo.mailbox_by_address(conn, TLT)
    assert box is not None
    now = dt.datetime.now(dt.UTC)
    again = traffic.compostage(now, 9)
    subject = traffic.lot_subject(traffic.SENDER_NUMBER, again)
    async with ready.db.write() as worker:
        # The worker's verdict, written but not committed yet.
        await worker.execute(
            update(outbound_recipients)
            .where(outbound_recipients.c.message_id == queue_id)
            .values(state="delivered", last_status=250, last_reply="2.0.0 Ok", finished_at=now)
        )
        await teletransmission.record_delivery(worker, queue_id, True, "250 2.0.0 Ok", now)
        recording = asyncio.create_task(
            teletransmission.record_lot(
                ready,
                box,
                subject=subject,
                funds=[traffic.FUND],
                message=traffic.lot_message(TLT, subject=subject),
                message_id=f"<{again}@facturation.test>",
                queue_id=queue_id,
                source="test",
                actor=TLT,
                now=now,
            )
        )
        await asyncio.sleep(0.5)  # the lot is being recorded meanwhile (PostgreSQL)
    lot = await asyncio.wait_for(recording, 20)
    views = {view.lot.id: view.lot for view in await lots(ready)}
    assert views[lot.id].delivery == "delivered"
    assert views[first.lot.id].delivery == "delivered"
