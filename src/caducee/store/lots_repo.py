"""SQL of télétransmission: lots (``tlt_lots``), their returns (``tlt_returns``) and the
insurer domains a practice adds (``tlt_insurer_domains``). The health layer holds the rules."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, case, delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from caducee.domain.model import Mailbox, MailboxType
from caducee.domain.teletransmission import Lot, LotReturn, LotState, ReturnKind
from caducee.store import directory_repo
from caducee.store.tables import (
    delegations,
    mailboxes,
    outbound_recipients,
    tlt_insurer_domains,
    tlt_lots,
    tlt_returns,
)
from caducee.store.times import aware

L, R = tlt_lots, tlt_returns


def _maybe(value: datetime | None) -> datetime | None:
    return None if value is None else aware(value)


def _lot(row: Any) -> Lot:
    r = row._mapping
    return Lot(
        id=int(r["id"]),
        practice_id=int(r["practice_id"]),
        mailbox_id=int(r["mailbox_id"]),
        sender_number=r["sender_number"],
        compostage=r["compostage"],
        sequence=r["sequence"],
        invoice_count=r["invoice_count"],
        fund=r["fund"],
        test_mode=bool(r["test_mode"]),
        size=int(r["size"]),
        message_id=r["message_id"],
        stored_message_id=r["stored_message_id"],
        queue_id=r["queue_id"],
        sent_at=aware(r["sent_at"]),
        delivery=r["delivery"],
        delivery_detail=r["delivery_detail"],
        delivery_at=_maybe(r["delivery_at"]),
        arl=ReturnKind(r["arl"]) if r["arl"] else None,
        arl_at=_maybe(r["arl_at"]),
        resent_by=r["resent_by"],
        resend_of=r["resend_of"],
        notified_at=_maybe(r["notified_at"]),
        archived_at=_maybe(r["archived_at"]),
    )


def _return(row: Any) -> LotReturn:
    r = row._mapping
    return LotReturn(
        id=int(r["id"]),
        mailbox_id=int(r["mailbox_id"]),
        lot_id=r["lot_id"],
        kind=ReturnKind(r["kind"]),
        description=r["description"],
        compostage=r["compostage"],
        sender_number=r["sender_number"],
        size=int(r["size"]),
        stored_message_id=r["stored_message_id"],
        received_at=aware(r["received_at"]),
    )


async def insert_lot(conn: AsyncConnection, values: dict[str, Any]) -> Lot:
    """Record a lot; a lot of the same practice, sender number and compostage sent before (and
    not already resent) becomes « resent by » this one."""
    earlier = (
        await conn.execute(
            select(L.c.id)
            .where(
                L.c.practice_id == values["practice_id"],
                L.c.compostage == values["compostage"],
                L.c.sender_number == values["sender_number"],
                L.c.resent_by.is_(None),
            )
            .order_by(L.c.sent_at.desc(), L.c.id.desc())
            .limit(1)
        )
    ).scalar()
    row = {**values, "resend_of": earlier}
    new_id = (await conn.execute(insert(L).values(**row).returning(L.c.id))).scalar_one()
    if earlier is not None:
        await conn.execute(update(L).where(L.c.id == earlier).values(resent_by=new_id))
    return await lot_by_id(conn, int(new_id))  # type: ignore[return-value]


async def lot_by_id(conn: AsyncConnection, lot_id: int) -> Lot | None:
    row = (await conn.execute(select(L).where(L.c.id == lot_id))).first()
    return None if row is None else _lot(row)


async def set_delivery(
    conn: AsyncConnection, queue_id: int, delivery: str, detail: str, at: datetime
) -> int:
    """The outbound queue's verdict on the lots it carried; how many lots it names."""
    result = await conn.execute(
        update(L)
        .where(L.c.queue_id == queue_id)
        .values(delivery=delivery, delivery_detail=detail[:300], delivery_at=at)
    )
    return int(result.rowcount or 0)


async def catch_up_delivery(conn: AsyncConnection, lot_id: int, queue_id: int) -> None:
    """A lot recorded after the outbound worker already finished with it (it may deliver
    before the submission records the lot): copy the queue's final verdict onto it.

    The recipients are read ``FOR UPDATE``: under PostgreSQL's READ COMMITTED, a worker that
    wrote its verdict but has not committed yet would otherwise leave both sides blind (its
    ``UPDATE`` cannot see this uncommitted lot, and this read sees the old state). Locking
    waits for that worker and then reads its verdict; a worker that comes after waits for this
    transaction and then finds the lot. SQLite has one writer at a time and needs no lock."""
    rows = (
        await conn.execute(
            select(
                outbound_recipients.c.state,
                outbound_recipients.c.last_status,
                outbound_recipients.c.last_reply,
                outbound_recipients.c.finished_at,
            )
            .where(outbound_recipients.c.message_id == queue_id)
            .order_by(outbound_recipients.c.id)
            .with_for_update()
        )
    ).all()
    if not rows or any(row.state not in ("delivered", "bounced", "expired") for row in rows):
        return
    failed = [row for row in rows if row.state != "delivered"]
    last = (failed or rows)[-1]
    await conn.execute(
        update(L)
        .where(L.c.id == lot_id)
        .values(
            delivery="failed" if failed else "delivered",
            delivery_detail=f"{last.last_status or ''} {last.last_reply or ''}".strip()[:300],
            delivery_at=last.finished_at,
        )
    )


async def lots_named(
    conn: AsyncConnection, practice_id: int, compostage: str, sender_number: str | None
) -> list[Lot]:
    """The practice's lots carrying ``compostage`` (and ``sender_number`` when known), newest
    first."""
    query = select(L).where(L.c.practice_id == practice_id, L.c.compostage == compostage)
    if sender_number:
        query = query.where(L.c.sender_number == sender_number)
    rows = (await conn.execute(query.order_by(L.c.sent_at.desc(), L.c.id.desc()))).all()
    return [_lot(row) for row in rows]


async def sender_numbers(conn: AsyncConnection, practice_id: int) -> frozenset[str]:
    """The sender numbers the practice's lots used (to find one in a return)."""
    rows = await conn.execute(
        select(L.c.sender_number).where(L.c.practice_id == practice_id).distinct()
    )
    return frozenset(row[0] for row in rows)


async def set_arl(conn: AsyncConnection, lot_id: int, kind: ReturnKind, at: datetime) -> None:
    await conn.execute(update(L).where(L.c.id == lot_id).values(arl=kind.value, arl_at=at))


async def insert_return(conn: AsyncConnection, values: dict[str, Any]) -> int:
    return int((await conn.execute(insert(R).values(**values).returning(R.c.id))).scalar_one())


async def list_lots(
    conn: AsyncConnection,
    mailbox_ids: Sequence[int],
    *,
    since: datetime | None = None,
    state: LotState | None = None,
    overdue_before: datetime | None = None,
) -> list[Lot]:
    """The lots of ``mailbox_ids``, newest first (in ``state`` only, given the instant before
    which a lot is past its ARL delay: see :func:`state_column`)."""
    if not mailbox_ids:
        return []
    query = select(L).where(*_lots_where(mailbox_ids, since, state, overdue_before))
    rows = (await conn.execute(query.order_by(L.c.sent_at.desc(), L.c.id.desc()))).all()
    return [_lot(row) for row in rows]


# --- lots by state, in SQL -----------------------------------------------------------------
# A lot's state depends on the time: the domain computes it (``lot_state``); these queries only
# filter, count and order by it, with the same cases in the same order, so that a page of 100
# lots is read without computing the state of the 10,000 others.

_ACTION_STATES = [s.value for s in LotState if s.needs_action]


def state_column(overdue_before: datetime) -> ColumnElement[str]:
    """A lot's :class:`LotState` value in SQL, case for case as ``domain.teletransmission.
    lot_state``: resent, then its ARL, then its delivery, then the delay (``overdue_before``:
    ``arl_overdue_before(now)``, the instant before which a lot without ARL is late)."""
    return case(
        (L.c.resent_by.is_not(None), LotState.RESENT.value),
        (L.c.arl == ReturnKind.ARL_POSITIVE.value, LotState.ARL_POSITIVE.value),
        (L.c.arl == ReturnKind.ARL_NEGATIVE.value, LotState.ARL_NEGATIVE.value),
        (L.c.delivery == "failed", LotState.UNDELIVERED.value),
        (L.c.sent_at < _utc(overdue_before), LotState.NO_ARL.value),
        else_=LotState.SENT.value,
    )


def _utc(value: datetime) -> datetime:
    # SQLite keeps the wall-clock digits of what it is given: always bind UTC.
    return aware(value)


def _lots_where(
    mailbox_ids: Sequence[int],
    since: datetime | None,
    state: LotState | None,
    overdue_before: datetime | None,
) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = [L.c.mailbox_id.in_(list(mailbox_ids))]
    if since is not None:
        where.append(L.c.sent_at >= _utc(since))
    if state is not None:
        if overdue_before is None:
            raise ValueError("a state filter needs overdue_before")
        where.append(state_column(overdue_before) == state.value)
    return where


async def count_by_state(
    conn: AsyncConnection,
    mailbox_ids: Sequence[int],
    *,
    overdue_before: datetime,
    since: datetime | None = None,
) -> dict[LotState, int]:
    """How many lots of ``mailbox_ids`` (sent since ``since``) are in each state (one query)."""
    counts = {s: 0 for s in LotState}
    if not mailbox_ids:
        return counts
    inner = (
        select(state_column(overdue_before).label("state"))
        .where(*_lots_where(mailbox_ids, since, None, None))
        .subquery()
    )
    rows = await conn.execute(select(inner.c.state, func.count()).group_by(inner.c.state))
    for value, count in rows:
        counts[LotState(value)] = int(count)
    return counts


async def lots_page(
    conn: AsyncConnection,
    mailbox_ids: Sequence[int],
    *,
    overdue_before: datetime,
    since: datetime | None = None,
    state: LotState | None = None,
    offset: int = 0,
    limit: int = 100,
) -> list[Lot]:
    """One page of lots: those needing action first (oldest first: the nearest deadline), then
    the others, newest first."""
    if not mailbox_ids:
        return []
    column = state_column(overdue_before)
    action = column.in_(_ACTION_STATES)
    # The sort runs over every lot of the mailboxes: it carries ids only (narrow rows sort
    # several times faster in SQLite), then the page's rows are read by id.
    ids = (
        (
            await conn.execute(
                select(L.c.id)
                .where(*_lots_where(mailbox_ids, since, state, overdue_before))
                .order_by(
                    case((action, 0), else_=1),
                    case((action, L.c.sent_at), else_=None),
                    L.c.sent_at.desc(),
                    L.c.id.desc(),
                )
                .offset(offset)
                .limit(limit)
            )
        )
        .scalars()
        .all()
    )
    if not ids:
        return []
    rows = {row.id: _lot(row) for row in (await conn.execute(select(L).where(L.c.id.in_(ids))))}
    return [rows[lot_id] for lot_id in ids]


async def returns_of_lots(conn: AsyncConnection, lot_ids: Sequence[int]) -> list[LotReturn]:
    """The returns matched to ``lot_ids`` (a page of lots), oldest first."""
    if not lot_ids:
        return []
    rows = await conn.execute(
        select(R).where(R.c.lot_id.in_(list(lot_ids))).order_by(R.c.received_at, R.c.id)
    )
    return [_return(row) for row in rows.all()]


async def list_returns(
    conn: AsyncConnection,
    mailbox_ids: Sequence[int],
    *,
    unmatched: bool = False,
    since: datetime | None = None,
    limit: int | None = None,
) -> list[LotReturn]:
    """The returns received by ``mailbox_ids`` (only those matched to no lot: ``unmatched``),
    newest first."""
    if not mailbox_ids:
        return []
    query = select(R).where(R.c.mailbox_id.in_(list(mailbox_ids)))
    if unmatched:
        query = query.where(R.c.lot_id.is_(None))
    if since is not None:
        query = query.where(R.c.received_at >= _utc(since))
    query = query.order_by(R.c.received_at.desc(), R.c.id.desc())
    if limit is not None:
        query = query.limit(limit)
    return [_return(row) for row in (await conn.execute(query)).all()]


async def count_unmatched(
    conn: AsyncConnection, mailbox_ids: Sequence[int], *, since: datetime | None = None
) -> int:
    if not mailbox_ids:
        return 0
    query = select(func.count()).where(R.c.mailbox_id.in_(list(mailbox_ids)), R.c.lot_id.is_(None))
    if since is not None:
        query = query.where(R.c.received_at >= _utc(since))
    return int((await conn.execute(query)).scalar_one())


async def tlt_summary_of_account(conn: AsyncConnection, account_id: int) -> tuple[int, int]:
    """(TLT mailboxes ``account_id`` owns or is delegated, lots of theirs the watchdog flagged
    and nobody resent yet) in one query: the webmail's navigation asks it on every page."""
    M = mailboxes
    delegated = select(delegations.c.mailbox_id).where(delegations.c.account_id == account_id)
    query = (
        select(func.count(func.distinct(M.c.id)), func.count(L.c.id))
        .select_from(M.outerjoin(L, and_(L.c.mailbox_id == M.c.id, *_attention_where())))
        .where(
            M.c.type == MailboxType.TLT.value,
            M.c.disabled.is_(False),
            or_(M.c.owner_account_id == account_id, M.c.id.in_(delegated)),
        )
    )
    boxes, flagged = (await conn.execute(query)).one()
    return int(boxes), int(flagged)


async def tlt_mailboxes(conn: AsyncConnection, practice_id: int | None = None) -> list[Mailbox]:
    """Every TLT mailbox (of ``practice_id``), by address."""
    boxes = await directory_repo.list_mailboxes(conn, practice_id)
    return sorted((b for b in boxes if b.type is MailboxType.TLT), key=lambda b: b.address)


async def returns_of_mailboxes(
    conn: AsyncConnection, mailbox_ids: Sequence[int], *, since: datetime | None = None
) -> list[LotReturn]:
    """The returns received by ``mailbox_ids`` (matched or not), newest first."""
    if not mailbox_ids:
        return []
    query = select(R).where(R.c.mailbox_id.in_(list(mailbox_ids)))
    if since is not None:
        query = query.where(R.c.received_at >= since)
    rows = (await conn.execute(query.order_by(R.c.received_at.desc(), R.c.id.desc()))).all()
    return [_return(row) for row in rows]


async def unsettled_lots(conn: AsyncConnection, sent_before: datetime) -> list[Lot]:
    """Lots that may need action and whose practitioner was not told yet: not resent, not
    acknowledged positively, not archived, sent before ``sent_before`` or refused by the fund's
    server."""
    query = select(L).where(
        L.c.notified_at.is_(None),
        L.c.resent_by.is_(None),
        L.c.archived_at.is_(None),
        or_(L.c.arl.is_(None), L.c.arl != ReturnKind.ARL_POSITIVE.value),
        or_(L.c.sent_at < sent_before, L.c.arl.is_not(None), L.c.delivery == "failed"),
    )
    return [_lot(row) for row in (await conn.execute(query.order_by(L.c.id))).all()]


async def mark_notified(conn: AsyncConnection, lot_ids: Sequence[int], at: datetime) -> None:
    if lot_ids:
        await conn.execute(
            update(L)
            .where(L.c.id.in_(list(lot_ids)), L.c.notified_at.is_(None))
            .values(notified_at=at)
        )


async def count_needing_attention(conn: AsyncConnection, mailbox_ids: Sequence[int]) -> int:
    """Lots of ``mailbox_ids`` the watchdog flagged and nobody resent yet (the webmail badge)."""
    if not mailbox_ids:
        return 0
    query = select(func.count()).where(L.c.mailbox_id.in_(list(mailbox_ids)), *_attention_where())
    return int((await conn.execute(query)).scalar_one())


def _attention_where() -> list[ColumnElement[bool]]:
    """A lot the watchdog flagged and nobody resent, acknowledged or archived since."""
    return [
        L.c.notified_at.is_not(None),
        L.c.resent_by.is_(None),
        L.c.archived_at.is_(None),
        or_(L.c.arl.is_(None), L.c.arl != ReturnKind.ARL_POSITIVE.value),
    ]


async def insurer_domains(conn: AsyncConnection, practice_id: int) -> list[str]:
    rows = await conn.execute(
        select(tlt_insurer_domains.c.pattern)
        .where(tlt_insurer_domains.c.practice_id == practice_id)
        .order_by(tlt_insurer_domains.c.pattern)
    )
    return [row[0] for row in rows]


async def add_insurer_domain(conn: AsyncConnection, practice_id: int, pattern: str) -> bool:
    """Add a pattern; False when the practice already has it."""
    exists = (
        await conn.execute(
            select(tlt_insurer_domains.c.pattern).where(
                and_(
                    tlt_insurer_domains.c.practice_id == practice_id,
                    tlt_insurer_domains.c.pattern == pattern,
                )
            )
        )
    ).first()
    if exists is not None:
        return False
    await conn.execute(insert(tlt_insurer_domains).values(practice_id=practice_id, pattern=pattern))
    return True


async def remove_insurer_domain(conn: AsyncConnection, practice_id: int, pattern: str) -> bool:
    result = await conn.execute(
        delete(tlt_insurer_domains).where(
            tlt_insurer_domains.c.practice_id == practice_id,
            tlt_insurer_domains.c.pattern == pattern,
        )
    )
    return bool(result.rowcount)


async def archivable_lots(
    conn: AsyncConnection, mailbox_id: int, sent_before: datetime
) -> list[Lot]:
    """Lots of ``mailbox_id`` acknowledged positively, sent before ``sent_before``, not archived
    yet, whose copy is kept: oldest first (what a full mailbox may move to its archive)."""
    query = select(L).where(
        L.c.mailbox_id == mailbox_id,
        L.c.arl == ReturnKind.ARL_POSITIVE.value,
        L.c.archived_at.is_(None),
        L.c.stored_message_id.is_not(None),
        L.c.sent_at < sent_before,
    )
    rows = (await conn.execute(query.order_by(L.c.sent_at, L.c.id))).all()
    return [_lot(row) for row in rows]


async def set_archived(conn: AsyncConnection, lot_ids: Sequence[int], at: datetime) -> None:
    if lot_ids:
        await conn.execute(update(L).where(L.c.id.in_(list(lot_ids))).values(archived_at=at))


async def purgeable(
    conn: AsyncConnection, before: datetime
) -> tuple[list[tuple[int, int, int | None]], list[tuple[int, int, int | None]]]:
    """Lots sent and returns received before ``before``: (id, mailbox id, stored message id)."""
    lots = await conn.execute(
        select(L.c.id, L.c.mailbox_id, L.c.stored_message_id).where(L.c.sent_at < before)
    )
    returns = await conn.execute(
        select(R.c.id, R.c.mailbox_id, R.c.stored_message_id).where(R.c.received_at < before)
    )
    return (
        [(int(r.id), int(r.mailbox_id), r.stored_message_id) for r in lots],
        [(int(r.id), int(r.mailbox_id), r.stored_message_id) for r in returns],
    )


async def delete_lots_and_returns(
    conn: AsyncConnection, lot_ids: Sequence[int], return_ids: Sequence[int]
) -> None:
    """Delete returns, then lots (a later return still naming a purged lot loses the link)."""
    for start in range(0, len(return_ids), 500):
        chunk = list(return_ids[start : start + 500])
        await conn.execute(delete(R).where(R.c.id.in_(chunk)))
    for start in range(0, len(lot_ids), 500):
        chunk = list(lot_ids[start : start + 500])
        await conn.execute(update(R).where(R.c.lot_id.in_(chunk)).values(lot_id=None))
        await conn.execute(delete(L).where(L.c.id.in_(chunk)))


async def count_awaiting_arl(
    conn: AsyncConnection, *, overdue_before: datetime
) -> dict[LotState, int]:
    """Lots of every mailbox still waiting for their ARL: within the delay (``SENT``) and past
    it (``NO_ARL``) — for the node's metrics (one query, no mailbox named)."""
    column = state_column(overdue_before)
    waiting = [LotState.SENT.value, LotState.NO_ARL.value]
    inner = select(column.label("state")).subquery()
    rows = await conn.execute(
        select(inner.c.state, func.count())
        .where(inner.c.state.in_(waiting))
        .group_by(inner.c.state)
    )
    counts = {LotState.SENT: 0, LotState.NO_ARL: 0}
    for value, count in rows:
        counts[LotState(value)] = int(count)
    return counts
