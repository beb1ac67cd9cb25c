"""SQL of télétransmission: lots (``tlt_lots``), their returns (``tlt_returns``) and the
insurer domains a practice adds (``tlt_insurer_domains``). The health layer holds the rules."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from caducee.domain.teletransmission import Lot, LotReturn, ReturnKind
from caducee.store.tables import tlt_insurer_domains, tlt_lots, tlt_returns
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
) -> list[Lot]:
    """The lots of ``mailbox_ids``, newest first."""
    if not mailbox_ids:
        return []
    query = select(L).where(L.c.mailbox_id.in_(list(mailbox_ids)))
    if since is not None:
        query = query.where(L.c.sent_at >= since)
    rows = (await conn.execute(query.order_by(L.c.sent_at.desc(), L.c.id.desc()))).all()
    return [_lot(row) for row in rows]


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
    query = select(func.count()).where(
        L.c.mailbox_id.in_(list(mailbox_ids)),
        L.c.notified_at.is_not(None),
        L.c.resent_by.is_(None),
        L.c.archived_at.is_(None),
        or_(L.c.arl.is_(None), L.c.arl != ReturnKind.ARL_POSITIVE.value),
    )
    return int((await conn.execute(query)).scalar_one())


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
