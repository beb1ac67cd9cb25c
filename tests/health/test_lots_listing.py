"""Lots by page, for people and software: the states the store filters and counts in SQL are
the states the domain computes, lots needing action come first, returns and CSV (both
backends)."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from caducee.app import App
from caducee.domain import teletransmission as tlt
from caducee.domain.model import MailboxType
from caducee.domain.teletransmission import LotState, ReturnKind
from caducee.errors import AccessDenied, InvalidInput, NotFound
from caducee.health import teletransmission
from caducee.services import mailboxes
from tests.health.lots_seed import Seeded, seed
from tests.services.helpers import person, practice

TLT = "tlt.dr@cabinet.test"
PARIS = tlt.PARIS


@given(
    sent=st.datetimes(
        min_value=dt.datetime(2026, 12, 1),
        max_value=dt.datetime(2027, 1, 15),
        timezones=st.just(PARIS),
    ),
    after=st.timedeltas(min_value=dt.timedelta(0), max_value=dt.timedelta(days=9)),
    working_days=st.integers(min_value=1, max_value=3),
)
@settings(max_examples=300, deadline=None)
def test_overdue_instant_agrees_with_lot_state(
    sent: dt.datetime, after: dt.timedelta, working_days: int
) -> None:
    """Across Christmas, New Year and weekends, « sent before the instant » is « past the ARL
    delay » for any lot and any moment."""
    now = sent + after
    state = tlt.lot_state(
        sent_at=sent,
        arl=None,
        delivery="delivered",
        resent=False,
        now=now,
        arl_working_days=working_days,
    )
    late = sent < tlt.arl_overdue_before(now, working_days)
    assert late == (state is LotState.NO_ARL)


def test_overdue_instant_is_a_paris_midnight_in_utc() -> None:
    # Wednesday 30 December 2026, 10:00: a lot of Sunday 27 was due by Tuesday 29 (Monday 28,
    # Tuesday 29), one of Monday 28 by Wednesday 30 → lots sent before Monday 28, 00:00 Paris,
    # are late.
    now = dt.datetime(2026, 12, 30, 10, 0, tzinfo=PARIS)
    cutoff = tlt.arl_overdue_before(now)
    assert cutoff.tzinfo is dt.UTC
    assert cutoff == dt.datetime(2026, 12, 28, 0, 0, tzinfo=PARIS)
    assert tlt.arl_overdue_before(now, subdivision="57") == cutoff


@pytest.fixture
async def seeded(app: App) -> Seeded:
    await practice(app)
    await person(app, "dr@cabinet.test")
    await person(app, "secretariat@cabinet.test")
    await mailboxes.add_mailbox(app, TLT, MailboxType.TLT, "dr@cabinet.test")
    return await seed(app, TLT)


async def test_every_state_filtered_in_sql_is_the_state_computed(app: App, seeded: Seeded) -> None:
    boxes = await teletransmission.resolve_mailboxes(app, "dr@cabinet.test", None)
    every = await teletransmission.list_lots(app, boxes)
    assert {v.lot.id: v.state for v in every} == {
        seeded.acknowledged.id: LotState.ARL_POSITIVE,
        seeded.rejected.id: LotState.ARL_NEGATIVE,
        seeded.late.id: LotState.NO_ARL,
        seeded.undelivered.id: LotState.UNDELIVERED,
        seeded.resent.id: LotState.RESENT,
        seeded.fresh.id: LotState.SENT,
        seeded.fresh_again.id: LotState.SENT,
    }
    page = await teletransmission.lots_page(app, boxes)
    assert page.total == 7 and page.pages == 1 and page.needing_action == 3
    assert page.counts[LotState.SENT] == 2 and page.counts[LotState.RESENT] == 1
    for state in LotState:
        only = await teletransmission.lots_page(app, boxes, state=state)
        listed = await teletransmission.list_lots(app, boxes, state=state)
        expected = {v.lot.id for v in every if v.state is state}
        assert {v.lot.id for v in only.items} == expected == {v.lot.id for v in listed}
        assert only.total == len(expected)
        assert all(v.state is state for v in only.items)


async def test_a_page_puts_lots_needing_action_first_with_deadlines_and_returns(
    app: App, seeded: Seeded
) -> None:
    boxes = await teletransmission.resolve_mailboxes(app, "dr@cabinet.test", TLT)
    page = await teletransmission.lots_page(app, boxes, per_page=3)
    assert page.pages == 3 and page.total == 7
    # Needing action, oldest first (the nearest deadline): late, rejected, undelivered.
    assert [v.lot.id for v in page.items] == [
        seeded.late.id,
        seeded.rejected.id,
        seeded.undelivered.id,
    ]
    assert all(v.deadline is not None for v in page.items)
    second = await teletransmission.lots_page(app, boxes, per_page=3, page=2)
    # Then the others, newest first.
    assert [v.lot.id for v in second.items] == [
        seeded.fresh.id,
        seeded.fresh_again.id,
        seeded.acknowledged.id,
    ]
    acknowledged = second.items[2]
    assert [r.kind for r in acknowledged.returns] == [ReturnKind.ARL_POSITIVE, ReturnKind.NOEMIE]
    assert acknowledged.deadline is None
    beyond = await teletransmission.lots_page(app, boxes, per_page=3, page=99)
    assert beyond.page == 3 and [v.lot.id for v in beyond.items] == [seeded.resent.id]
    since = teletransmission.parse_since(
        (dt.datetime.now(PARIS) - dt.timedelta(days=4)).date().isoformat()
    )
    recent = await teletransmission.lots_page(app, boxes, since=since)
    assert seeded.late.id not in {v.lot.id for v in recent.items} and recent.total == 5


async def test_returns_unmatched_and_access(app: App, seeded: Seeded) -> None:
    boxes = await teletransmission.resolve_mailboxes(app, "dr@cabinet.test", None)
    every = await teletransmission.list_returns(app, boxes)
    assert len(every) == 4
    [stray] = await teletransmission.unmatched_returns(app, boxes)
    assert stray.kind is ReturnKind.UNKNOWN and stray.lot_id is None
    # The secretary has no delegation: no TLT mailbox, and naming it is refused.
    assert await teletransmission.resolve_mailboxes(app, "secretariat@cabinet.test", None) == []
    with pytest.raises(AccessDenied):
        await teletransmission.resolve_mailboxes(app, "secretariat@cabinet.test", TLT)
    await mailboxes.delegate(app, TLT, "secretariat@cabinet.test", can_send=False)
    assert [b.address for b in await teletransmission.tlt_mailboxes_of(
        app, "secretariat@cabinet.test"
    )] == [TLT]  # fmt: skip
    with pytest.raises(InvalidInput, match="télétransmission"):
        await teletransmission.resolve_mailboxes(app, "dr@cabinet.test", "dr@cabinet.test")


async def test_badge_and_navigation_in_one_query(app: App, seeded: Seeded) -> None:
    doctor = await _account_id(app, "dr@cabinet.test")
    assert await teletransmission.navigation(app, doctor) == (1, 0)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    assert await teletransmission.watchdog(app, now=later) == 3
    assert await teletransmission.navigation(app, doctor) == (1, 3)
    assert await teletransmission.attention_count(app, "dr@cabinet.test") == 3
    secretary = await _account_id(app, "secretariat@cabinet.test")
    assert await teletransmission.navigation(app, secretary) == (0, 0)
    await mailboxes.delegate(app, TLT, "secretariat@cabinet.test", can_send=False)
    assert await teletransmission.navigation(app, secretary) == (1, 3)


async def _account_id(app: App, login: str) -> int:
    from caducee.store import directory_repo

    async with app.db.read() as conn:
        account = await directory_repo.account_by_login(conn, login)
    assert account is not None
    return account.id


async def test_csv_export(app: App, seeded: Seeded) -> None:
    boxes = await teletransmission.operator_mailboxes(app)
    text = await teletransmission.export_csv(app, boxes, state=LotState.ARL_NEGATIVE)
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0][:3] == ["boîte", "n° émetteur", "compostage"] and len(rows) == 2
    assert rows[1][0] == TLT and rows[1][2] == seeded.rejected.compostage
    assert rows[1][7] == "ARL négatif : à réémettre" and rows[1][8]  # a deadline
    assert rows[1][9].startswith("ARL négatif ")
    english = await teletransmission.export_csv(app, boxes, english=True)
    assert english.startswith("mailbox,sender number,") and english.count("\r\n") == 8
    with pytest.raises(InvalidInput, match="AAAA-MM-JJ"):
        teletransmission.parse_since("04/12/2026")
    with pytest.raises(InvalidInput, match="inconnu"):
        teletransmission.parse_state_filter("perdu")
    with pytest.raises(NotFound):
        await teletransmission.operator_mailboxes(app, address="personne@cabinet.test")
    with pytest.raises(InvalidInput):
        await teletransmission.operator_mailboxes(app, address="dr@cabinet.test")
    assert await teletransmission.operator_mailboxes(app, practice_id=999) == []
