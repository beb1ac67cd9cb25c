"""Télétransmission: what a TLT mailbox may send, and every lot tracked to its ARL.

A TLT mailbox is the address billing software (logiciel SESAM-Vitale) sends its lots of
electronic care sheets (FSE) from and reads their returns in. The rules, called from every door
through the one pipeline (:mod:`caducee.flows.submission`, :mod:`caducee.flows.inbound`, the
outbound worker):

- it writes only to the insurers' domains (``[teletransmission] insurer_domains``, default
  ``*.rss.fr``, plus those its practice adds for complementary insurers), never to a patient;
  lots never get the DLP, the patient channel or the trust-space rules
  (:func:`caducee.health.recipient_policy.decide`);
- every lot it sends is recorded from its subject and envelope (:func:`record_lot`) with a copy
  in its ``Sent`` folder, byte for byte; the outbound queue's verdict is written on it
  (:func:`record_delivery`);
- every message it receives is a return, recognised (ARL positive or negative, NOEMIE, unknown)
  and matched to its lot by compostage and sender number (:func:`record_returns`); an unmatched
  return is kept and shown;
- a lot's state (:func:`caducee.domain.teletransmission.lot_state`) is computed in French working
  days; the watchdog (:func:`watchdog`) tells the practitioner once per lot, by an e-mail to
  their personal mailbox and a badge in the webmail, when a lot must be sent again.
"""

from __future__ import annotations

import asyncio
import csv
import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from caducee.app import App
from caducee.domain.model import Flag, Mailbox, MailboxType, StoredMessage
from caducee.domain.recipient_route import Purpose
from caducee.domain.teletransmission import (
    ARCHIVE_FOLDER,
    DELIVERY_LABELS,
    LOT_STATE_LABELS,
    RETURN_KIND_LABELS,
    Lot,
    LotReturn,
    LotState,
    ReturnKind,
    arl_overdue_before,
    lot_state,
    parse_lot_subject,
    parse_state,
    recognise_return,
    resend_deadline,
)
from caducee.domain.working_days import PARIS
from caducee.errors import CaduceeError, InvalidInput, NotFound
from caducee.health.generated_mail import send_generated
from caducee.services import audit, cpu_pool, mailboxes, quota_notices
from caducee.services.events import mailbox_events
from caducee.services.messages import Delivery, expunge_messages, store_batch
from caducee.store import directory_repo, lots_repo, mailstore_repo
from caducee.store.connection import AsyncConnection

log = logging.getLogger(__name__)


# --- lots ------------------------------------------------------------------------------------


def _looks_test_mode(raw: bytes) -> bool:
    """``IRISTEST/B2`` in a part's Content-Description the MTA can see (an enveloped lot hides
    it: then the lot is taken for a real one)."""
    return b"IRISTEST/B2" in raw[:262_144].upper()


async def record_lot(
    app: App,
    mailbox: Mailbox,
    *,
    subject: str,
    funds: Sequence[str],
    message: bytes,
    message_id: str,
    queue_id: int | None,
    source: str,
    actor: str,
    now: datetime | None = None,
) -> Lot:
    """Record a lot just queued from ``mailbox`` and keep its copy in the mailbox's ``Sent``
    folder (byte for byte). A subject that is not a lot's is recorded too (sender number and
    compostage empty): the practitioner sees it, and the watchdog warns when no ARL comes."""
    now = now or datetime.now(UTC)
    parsed = parse_lot_subject(subject, app.settings.tlt_patterns)
    stored_id: int | None = None
    # Past the quota if need be: a lot sent is kept (then old acknowledged lots are archived).
    delivery = Delivery(
        message, [mailbox.id], "Sent", Flag.SEEN, internal_date=now, past_quota=True
    )
    [result] = await store_batch(app, [delivery])
    if isinstance(result, CaduceeError):
        log.warning("lot copy not kept in Sent mailbox_id=%d reason=%s", mailbox.id, result.en)
    else:
        stored_id = result[0].id
    values = {
        "practice_id": mailbox.practice_id,
        "mailbox_id": mailbox.id,
        "sender_number": parsed.sender_number if parsed else "",
        "compostage": parsed.compostage if parsed else "",
        "sequence": parsed.sequence if parsed else None,
        "invoice_count": parsed.invoice_count if parsed else None,
        "fund": ", ".join(funds)[:254],
        "test_mode": _looks_test_mode(message),
        "size": len(message),
        "message_id": message_id[:255],
        "stored_message_id": stored_id,
        "queue_id": queue_id,
        "sent_at": now,
        "delivery": "queued",
    }
    async with app.db.write() as conn:
        lot = await lots_repo.insert_lot(conn, values)
        if queue_id is not None:
            await lots_repo.catch_up_delivery(conn, lot.id, queue_id)
        await audit.append(
            conn,
            audit.AuditEvent(
                actor=actor,
                action="tlt.lot",
                target=mailbox.address,
                source=source,
                details={
                    "lot": lot.id,
                    "compostage": lot.compostage,
                    "sender_number": lot.sender_number,
                    "resend_of": lot.resend_of or "",
                    "size": lot.size,
                },
            ),
        )
    await after_delivery(app, [mailbox.id], now)
    return lot


async def record_delivery(
    conn: AsyncConnection, queue_id: int, delivered: bool, detail: str, at: datetime
) -> None:
    """The outbound queue's final verdict on a message it carried, written on the lot it is
    (nothing when it is no lot), in the queue's transaction ``conn``."""
    await lots_repo.set_delivery(conn, queue_id, "delivered" if delivered else "failed", detail, at)


# --- returns ---------------------------------------------------------------------------------


async def record_returns(
    app: App,
    raw: bytes,
    stored: Sequence[StoredMessage],
    tlt_boxes: Sequence[Mailbox],
    now: datetime | None = None,
) -> list[int]:
    """Record the returns just delivered to TLT mailboxes (``stored``: the copies, some in
    ``tlt_boxes``); match each to its lot; an ARL sets the lot's ARL. Returns the ids."""
    now = now or datetime.now(UTC)
    by_id = {box.id: box for box in tlt_boxes}
    copies = [s for s in stored if s.mailbox_id in by_id]
    if not copies:
        return []
    made: list[int] = []
    for copy in copies:
        box = by_id[copy.mailbox_id]
        async with app.db.read() as conn:
            numbers = await lots_repo.sender_numbers(conn, box.practice_id)
        # a big return (cpu_pool.PROCESS_THRESHOLD) is parsed in a worker process (issue 17)
        facts = await cpu_pool.run_sized(
            len(raw), recognise_return, raw, app.settings.tlt_patterns, numbers
        )
        async with app.db.write() as conn:
            lot: Lot | None = None
            if facts.compostage:
                named = await lots_repo.lots_named(
                    conn, box.practice_id, facts.compostage, facts.sender_number
                )
                lot = next((x for x in named if x.mailbox_id == box.id), None) or (
                    named[0] if named else None
                )
            return_id = await lots_repo.insert_return(
                conn,
                {
                    "practice_id": box.practice_id,
                    "mailbox_id": box.id,
                    "lot_id": lot.id if lot else None,
                    "kind": facts.kind.value,
                    "description": facts.description[:200],
                    "compostage": facts.compostage,
                    "sender_number": facts.sender_number or (lot.sender_number if lot else None),
                    "size": copy.size,
                    "stored_message_id": copy.id,
                    "received_at": now,
                },
            )
            if lot is not None and facts.kind in (ReturnKind.ARL_POSITIVE, ReturnKind.ARL_NEGATIVE):
                await lots_repo.set_arl(conn, lot.id, facts.kind, now)
            await audit.append(
                conn,
                audit.AuditEvent(
                    actor="system",
                    action="tlt.return",
                    target=box.address,
                    source="inbound",
                    details={
                        "return": return_id,
                        "kind": facts.kind.value,
                        "lot": lot.id if lot else "",
                    },
                ),
            )
        made.append(return_id)
    return made


# --- reading lots ----------------------------------------------------------------------------


@dataclass(frozen=True)
class LotView:
    """A lot as the practitioner sees it: its state, when to act, its returns."""

    lot: Lot
    mailbox_address: str
    state: LotState
    deadline: datetime | None
    returns: tuple[LotReturn, ...]

    @property
    def label_fr(self) -> str:
        return LOT_STATE_LABELS[self.state][0]

    @property
    def label_en(self) -> str:
        return LOT_STATE_LABELS[self.state][1]


def state_of(app: App, lot: Lot, now: datetime) -> tuple[LotState, datetime | None]:
    settings = app.settings
    state = lot_state(
        sent_at=lot.sent_at,
        arl=lot.arl,
        delivery=lot.delivery,
        resent=lot.resent_by is not None,
        now=now,
        arl_working_days=settings.tlt_arl_working_days,
        subdivision=settings.tlt_holiday_region or None,
    )
    deadline = resend_deadline(
        lot.sent_at,
        lot.arl_at,
        state,
        arl_working_days=settings.tlt_arl_working_days,
        resend_working_days=settings.tlt_resend_working_days,
        subdivision=settings.tlt_holiday_region or None,
    )
    return state, deadline


async def tlt_mailboxes_of(app: App, login: str) -> list[Mailbox]:
    """The TLT mailboxes ``login`` may read: owned, delegated, or itself (a mailbox login)."""
    async with app.db.read() as conn:
        account = await directory_repo.account_by_login(conn, login)
        boxes: list[Mailbox] = []
        if account is None:
            own = await directory_repo.mailbox_by_address(conn, login)
            return [own] if own is not None and own.type is MailboxType.TLT else []
        for box in await directory_repo.list_mailboxes(conn, account.practice_id):
            if box.type is not MailboxType.TLT or box.disabled:
                continue
            if box.owner_account_id == account.id or await directory_repo.get_delegation(
                conn, box.id, account.id
            ):
                boxes.append(box)
    return boxes


async def resolve_mailboxes(app: App, login: str, address: str | None) -> list[Mailbox]:
    """The TLT mailboxes to list for ``login``: one (checked through
    :func:`caducee.services.mailboxes.open_mailbox`, audited) or all it may read."""
    if address:
        access = await mailboxes.open_mailbox(app, login, address, source="lots")
        if access.mailbox.type is not MailboxType.TLT:
            raise InvalidInput(
                f"{access.mailbox.address} n'est pas une boîte de télétransmission.",
                f"{access.mailbox.address} is not a télétransmission mailbox.",
            )
        return [access.mailbox]
    return await tlt_mailboxes_of(app, login)


async def list_lots(
    app: App,
    boxes: Sequence[Mailbox],
    *,
    state: LotState | None = None,
    since: datetime | None = None,
    now: datetime | None = None,
) -> list[LotView]:
    """The lots of ``boxes`` (already authorised), newest first, with their state and returns,
    filtered by state."""
    now = now or datetime.now(UTC)
    ids = [box.id for box in boxes]
    async with app.db.read() as conn:
        lots = await lots_repo.list_lots(
            conn, ids, since=since, state=state, overdue_before=overdue_before(app, now)
        )
        returns = await lots_repo.returns_of_mailboxes(
            conn, ids, since=(since - timedelta(days=30)) if since else None
        )
    if len(lots) > 500:  # thousands of lots: their states are computed off the event loop
        return await asyncio.to_thread(_views, app, boxes, lots, returns, now)
    return _views(app, boxes, lots, returns, now)


def _views(
    app: App,
    boxes: Sequence[Mailbox],
    lots: Sequence[Lot],
    returns: Sequence[LotReturn],
    now: datetime,
) -> list[LotView]:
    address = {box.id: box.address for box in boxes}
    by_lot: dict[int, list[LotReturn]] = {}
    for item in sorted(returns, key=lambda r: (r.received_at, r.id)):
        if item.lot_id is not None:
            by_lot.setdefault(item.lot_id, []).append(item)
    views = []
    for lot in lots:
        lot_state_now, deadline = state_of(app, lot, now)
        views.append(
            LotView(
                lot,
                address.get(lot.mailbox_id, ""),
                lot_state_now,
                deadline,
                tuple(by_lot.get(lot.id, ())),
            )
        )
    return views


async def unmatched_returns(
    app: App, boxes: Sequence[Mailbox], since: datetime | None = None, limit: int | None = None
) -> list[LotReturn]:
    """The returns of ``boxes`` matched to no lot, newest first (the ``limit`` newest)."""
    return await list_returns(app, boxes, unmatched=True, since=since, limit=limit)


async def unmatched_summary(
    app: App, boxes: Sequence[Mailbox], limit: int = 20
) -> tuple[int, list[LotReturn]]:
    """How many returns of ``boxes`` match no lot, and the ``limit`` newest of them."""
    ids = [b.id for b in boxes]
    async with app.db.read() as conn:
        count = await lots_repo.count_unmatched(conn, ids)
        newest = await lots_repo.list_returns(conn, ids, unmatched=True, limit=limit)
    return count, newest


async def list_returns(
    app: App,
    boxes: Sequence[Mailbox],
    *,
    unmatched: bool = False,
    since: datetime | None = None,
    limit: int | None = None,
) -> list[LotReturn]:
    """The returns received by ``boxes`` (already authorised), newest first."""
    async with app.db.read() as conn:
        return await lots_repo.list_returns(
            conn, [b.id for b in boxes], unmatched=unmatched, since=since, limit=limit
        )


async def attention_count(app: App, login: str) -> int:
    """The webmail badge: lots the watchdog flagged in ``login``'s TLT mailboxes, not resent."""
    async with app.db.read() as conn:
        account = await directory_repo.account_by_login(conn, login)
        if account is not None:
            return (await lots_repo.tlt_summary_of_account(conn, account.id))[1]
    boxes = await tlt_mailboxes_of(app, login)  # a TLT mailbox's own login
    if not boxes:
        return 0
    async with app.db.read() as conn:
        return await lots_repo.count_needing_attention(conn, [b.id for b in boxes])


async def navigation(app: App, account_id: int) -> tuple[int, int]:
    """What the webmail's navigation shows of télétransmission, in one query: how many TLT
    mailboxes the account reads (the « Télétransmission » link shows when there are some), and
    the badge (:func:`attention_count`)."""
    async with app.db.read() as conn:
        return await lots_repo.tlt_summary_of_account(conn, account_id)


# --- lots by page, for people and software ---------------------------------------------------

#: The most lots one page (webmail, API) holds.
MAX_PER_PAGE = 500


def overdue_before(app: App, now: datetime) -> datetime:
    """The instant before which a lot without ARL is late at ``now`` (what lets the store filter
    and count lots by state)."""
    return arl_overdue_before(
        now, app.settings.tlt_arl_working_days, app.settings.tlt_holiday_region or None
    )


def parse_since(value: str | None) -> datetime | None:
    """``AAAA-MM-JJ`` (a day in Paris) as the instant it starts, or None when empty."""
    text = (value or "").strip()
    if not text:
        return None
    try:
        day = date.fromisoformat(text)
        if not 1970 <= day.year <= 9999:
            raise ValueError(day)
    except ValueError:
        raise InvalidInput(
            f"Date invalide « {text[:20]} » : utilisez le format AAAA-MM-JJ.",
            f"Invalid date '{text[:20]}': use YYYY-MM-DD.",
        ) from None
    return datetime.combine(day, time(0, 0), tzinfo=PARIS).astimezone(UTC)


def parse_state_filter(value: str | None) -> LotState | None:
    """A state filter as typed (empty: every state)."""
    text = (value or "").strip()
    return parse_state(text) if text else None


@dataclass(frozen=True)
class LotPage:
    """One page of lots (those needing action first), and how many lots each state holds."""

    items: list[LotView]
    page: int
    pages: int
    per_page: int
    total: int  # lots matching the filter
    counts: dict[LotState, int]  # per state, under the mailbox and date filters

    @property
    def needing_action(self) -> int:
        return sum(count for state, count in self.counts.items() if state.needs_action)


async def lots_page(
    app: App,
    boxes: Sequence[Mailbox],
    *,
    state: LotState | None = None,
    since: datetime | None = None,
    page: int = 1,
    per_page: int = 100,
    now: datetime | None = None,
) -> LotPage:
    """A page of the lots of ``boxes`` (already authorised): the states are filtered, counted
    and ordered in SQL, and computed (with deadlines and returns) only for the page's lots."""
    now = now or datetime.now(UTC)
    per_page = max(1, min(per_page, MAX_PER_PAGE))
    ids = [box.id for box in boxes]
    cutoff = overdue_before(app, now)
    async with app.db.read() as conn:
        counts = await lots_repo.count_by_state(conn, ids, overdue_before=cutoff, since=since)
        total = counts[state] if state is not None else sum(counts.values())
        pages = max(1, -(-total // per_page))
        page = max(1, min(page, pages))
        lots = await lots_repo.lots_page(
            conn,
            ids,
            overdue_before=cutoff,
            since=since,
            state=state,
            offset=(page - 1) * per_page,
            limit=per_page,
        )
        returns = await lots_repo.returns_of_lots(conn, [lot.id for lot in lots])
    return LotPage(_views(app, boxes, lots, returns, now), page, pages, per_page, total, counts)


async def operator_mailboxes(
    app: App, *, address: str | None = None, practice_id: int | None = None
) -> list[Mailbox]:
    """The TLT mailboxes the operator (command line) lists: one, those of a practice, or all."""
    async with app.db.read() as conn:
        if address:
            box = await directory_repo.mailbox_by_address(conn, address.strip().lower())
            if box is None:
                raise NotFound(f"Aucune boîte {address}.", f"No mailbox {address}.")
            if box.type is not MailboxType.TLT:
                raise InvalidInput(
                    f"{box.address} n'est pas une boîte de télétransmission.",
                    f"{box.address} is not a télétransmission mailbox.",
                )
            if practice_id is not None and box.practice_id != practice_id:
                raise NotFound(
                    f"Le cabinet n° {practice_id} n'a pas de boîte {box.address}.",
                    f"Practice #{practice_id} has no mailbox {box.address}.",
                )
            return [box]
        return await lots_repo.tlt_mailboxes(conn, practice_id)


# --- exports ---------------------------------------------------------------------------------

CSV_HEADER = (
    ("boîte", "mailbox"),
    ("n° émetteur", "sender number"),
    ("compostage", "compostage"),
    ("factures", "invoices"),
    ("organisme", "fund"),
    ("envoyé le", "sent"),
    ("remise", "delivery"),
    ("état", "state"),
    ("à réémettre avant", "send again before"),
    ("retours", "returns"),
)


def local_time(value: datetime | None) -> str:
    """A timestamp as people of the practice read it (Paris time), for exports and tables."""
    return "" if value is None else value.astimezone(PARIS).strftime("%Y-%m-%d %H:%M")


def returns_text(view: LotView, english: bool = False) -> str:
    return " ; ".join(
        f"{RETURN_KIND_LABELS[r.kind][english]} {local_time(r.received_at)}" for r in view.returns
    )


def csv_row(view: LotView, english: bool = False) -> list[str]:
    lot = view.lot
    delivery = DELIVERY_LABELS.get(lot.delivery, (lot.delivery, lot.delivery))
    return [
        view.mailbox_address,
        lot.sender_number,
        lot.compostage,
        "" if lot.invoice_count is None else str(lot.invoice_count),
        lot.fund,
        local_time(lot.sent_at),
        delivery[english],
        LOT_STATE_LABELS[view.state][english],
        local_time(view.deadline),
        returns_text(view, english),
    ]


def lots_csv(views: Sequence[LotView], english: bool = False) -> str:
    """The lots as CSV (RFC 4180, CRLF), a header line first, Paris times."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([pair[english] for pair in CSV_HEADER])
    for view in views:
        writer.writerow(_no_formula(csv_row(view, english)))
    return out.getvalue()


def _no_formula(cells: list[str]) -> list[str]:
    """Cells a spreadsheet would run as a formula (CSV injection) are quoted with a ``'``."""
    return ["'" + c if c[:1] in ("=", "+", "-", "@", "\t", "\r") else c for c in cells]


async def export_csv(
    app: App,
    boxes: Sequence[Mailbox],
    *,
    state: LotState | None = None,
    since: datetime | None = None,
    english: bool = False,
    now: datetime | None = None,
    actor: str | None = None,
    source: str = "",
) -> str:
    """Every lot of ``boxes`` matching the filter, newest first, as CSV (written in a worker
    thread: an export may hold thousands of lots). An export for someone (``actor``) is
    audited (``tlt.export``)."""
    views = await list_lots(app, boxes, state=state, since=since, now=now)
    text = await asyncio.to_thread(lots_csv, views, english)
    if actor is not None:
        async with app.db.write() as conn:
            await audit.append(
                conn,
                audit.AuditEvent(
                    actor=actor,
                    action="tlt.export",
                    target=",".join(b.address for b in boxes)[:255],
                    source=source,
                    details={"lots": len(views), "state": state.value if state else ""},
                ),
            )
    return text


# --- the watchdog ----------------------------------------------------------------------------


def _notice(app: App, to: str, box: Mailbox, views: Sequence[LotView]) -> bytes:
    """The watchdog's notice to the practitioner: which lots to send again, and by when."""
    lines_fr, lines_en = [], []
    for view in views:
        lot = view.lot
        when = view.deadline.astimezone().strftime("%d/%m/%Y") if view.deadline else "—"
        ref = f"{lot.sender_number or '?'} / {lot.compostage or '(objet non reconnu)'}"
        lines_fr.append(
            f"- lot {ref}, envoyé le {lot.sent_at.astimezone().strftime('%d/%m/%Y %H:%M')} à "
            f"{lot.fund} : {view.label_fr} (avant le {when})."
        )
        lines_en.append(
            f"- lot {ref}, sent {lot.sent_at.astimezone().strftime('%Y-%m-%d %H:%M')} to "
            f"{lot.fund}: {view.label_en} (before {when})."
        )
    fr = (
        f"Des lots de télétransmission de la boîte {box.address} doivent être réémis depuis "
        "votre logiciel de facturation (Code de la sécurité sociale, art. R161-47) :\r\n\r\n"
        + "\r\n".join(lines_fr)
        + "\r\n\r\nLa page « Télétransmission » du webmail montre l'état de tous vos lots."
    )
    en = (
        f"Some télétransmission lots of mailbox {box.address} must be sent again from your "
        "billing software:\r\n\r\n" + "\r\n".join(lines_en)
    )
    subject = "Télétransmission : lots à réémettre"
    return quota_notices.notice_message(app, to, subject, fr, en)


async def watchdog(app: App, now: datetime | None = None) -> int:
    """Tell each practitioner, once per lot, which lots of their TLT mailboxes must be sent
    again: one e-mail to the mailbox owner's personal mailbox, and the webmail badge. Returns
    how many lots were flagged."""
    now = now or datetime.now(UTC)
    async with app.db.read() as conn:
        candidates = await lots_repo.unsettled_lots(conn, now - timedelta(days=1))
    due: dict[int, list[LotView]] = {}
    for lot in candidates:
        state, deadline = state_of(app, lot, now)
        if state.needs_action:
            due.setdefault(lot.mailbox_id, []).append(LotView(lot, "", state, deadline, ()))
    flagged = 0
    for mailbox_id, views in due.items():
        async with app.db.read() as conn:
            box = await directory_repo.mailbox_by_id(conn, mailbox_id)
        if box is None:
            continue
        personal = await quota_notices.owner_address(app, box)
        if personal is not None:
            # Into the owner's own Inbox, like the quota notices (the badge shows them anyway).
            notice = _notice(app, personal, box, views)
            await quota_notices.deliver_notice(app, box, personal, notice, source="watchdog")
        async with app.db.write() as conn:
            await lots_repo.mark_notified(conn, [v.lot.id for v in views], now)
            await audit.append(
                conn,
                audit.AuditEvent(
                    actor="system",
                    action="tlt.watchdog",
                    target=box.address,
                    source="maintenance",
                    details={"lots": ",".join(str(v.lot.id) for v in views)},
                ),
            )
        flagged += len(views)
    return flagged


# --- quota: a full TLT mailbox never refuses a return -----------------------------------------


def _archive_notice(app: App, to: str, box: Mailbox, lots: Sequence[Lot], over: bool) -> bytes:
    count = len(lots)
    days = app.settings.tlt_retention_days
    oldest = min(lot.sent_at for lot in lots).astimezone().strftime("%d/%m/%Y")
    newest = max(lot.sent_at for lot in lots).astimezone().strftime("%d/%m/%Y")
    fr = (
        f"La boîte de télétransmission {box.address} était pleine. Pour qu'elle continue de "
        f"recevoir les retours des caisses, {count} lot(s) acquitté(s) (ARL positif) de plus "
        f"de {days} jours, envoyés du {oldest} au {newest}, ont été déplacés dans son dossier "
        f"« {ARCHIVE_FOLDER} », qui ne compte pas dans le quota. Rien n'a été supprimé."
    )
    en = (
        f"Télétransmission mailbox {box.address} was full. So that it keeps receiving the "
        f"funds' returns, {count} acknowledged lot(s) (positive ARL) older than {days} days, "
        f"sent from {oldest} to {newest}, were moved to its folder '{ARCHIVE_FOLDER}', which "
        "does not count in the quota. Nothing was deleted."
    )
    if over:
        fr += " La boîte dépasse encore son quota : demandez à l'administrateur de l'augmenter."
        en += " The mailbox is still over its quota: ask the practice's admin for more."
    subject = f"Télétransmission : lots archivés ({box.address})"
    return quota_notices.notice_message(app, to, subject, fr, en)


async def _archive_folder(conn: AsyncConnection, mailbox_id: int) -> int:
    """The archive folder of a TLT mailbox (created, with its parents, when needed)."""
    levels = ARCHIVE_FOLDER.split("/")
    for depth in range(1, len(levels) + 1):
        path = "/".join(levels[:depth])
        if await mailstore_repo.folder_by_name(conn, mailbox_id, path) is None:
            await mailstore_repo.insert_folder(conn, mailbox_id, path, None)
    folder = await mailstore_repo.folder_by_name(conn, mailbox_id, ARCHIVE_FOLDER)
    assert folder is not None
    if not folder.quota_exempt:
        await mailstore_repo.set_quota_exempt(conn, folder.id)
    return folder.id


async def make_room(app: App, mailbox_id: int, now: datetime | None = None) -> list[Lot]:
    """When a TLT mailbox is past its quota, move its oldest lots acknowledged positively and
    older than the retention period to its archive folder (outside the quota: moved, never
    deleted; IMAP clients see the move), until it is under its quota again, and tell its
    owner. Returns the lots archived (none: nothing could be, or no need)."""
    now = now or datetime.now(UTC)
    async with app.db.read() as conn:
        box = await directory_repo.mailbox_by_id(conn, mailbox_id)
    if box is None or box.type is not MailboxType.TLT or box.used_bytes <= box.quota_bytes:
        return []
    cutoff = now - timedelta(days=app.settings.tlt_retention_days)
    archived: list[Lot] = []
    async with app.db.write() as conn:
        used, quota = await mailstore_repo.lock_mailbox_usage(conn, mailbox_id)
        candidates = await lots_repo.archivable_lots(conn, mailbox_id, cutoff)
        if used <= quota or not candidates:
            return []
        archive_id = await _archive_folder(conn, mailbox_id)
        rows = {
            int(r.id): r
            for r in await mailstore_repo.messages_by_id(
                conn, [lot.stored_message_id for lot in candidates if lot.stored_message_id]
            )
        }
        moving: dict[int, list[int]] = {}
        freed = 0
        for lot in candidates:
            row = rows.get(lot.stored_message_id or 0)
            if row is None or int(row.mailbox_id) != mailbox_id:
                continue  # its copy was deleted (after retention) or moved elsewhere
            archived.append(lot)
            if int(row.folder_id) != archive_id:
                moving.setdefault(int(row.folder_id), []).append(int(row.id))
                freed += int(row.size)
            if used - freed <= quota:
                break
        for folder_id, ids in moving.items():
            await mailstore_repo.move_rows(conn, folder_id, archive_id, ids)
        await lots_repo.set_archived(conn, [lot.id for lot in archived], now)
        if archived:
            await audit.append(
                conn,
                audit.AuditEvent(
                    actor="system",
                    action="tlt.archive",
                    target=box.address,
                    source="quota",
                    details={
                        "lots": ",".join(str(lot.id) for lot in archived),
                        "bytes": freed,
                        "folder_id": archive_id,
                    },
                ),
            )
    if not archived:
        return []
    try:
        await mailbox_events(app).publish({mailbox_id})
    except Exception:  # a lost wake-up only delays IDLE sessions
        log.exception("could not publish mailbox events")
    to = await quota_notices.owner_address(app, box)
    if to is not None:
        notice = _archive_notice(app, to, box, archived, used - freed > quota)
        try:
            await send_generated(
                app,
                notice,
                f"no-reply@{app.settings.hostname}",
                to,
                purpose=Purpose.MAIL,
                source="quota",
            )
        except CaduceeError as error:
            log.warning("archive notice not delivered mailbox_id=%d reason=%s", box.id, error.en)
    return archived


async def after_delivery(app: App, mailbox_ids: Sequence[int], now: datetime | None = None) -> None:
    """After returns or a lot's copy went into TLT mailboxes past their quota: archive what
    may be, then tell the owner of a quota threshold crossed (quota notices)."""
    for mailbox_id in dict.fromkeys(mailbox_ids):
        await make_room(app, mailbox_id, now)
    await quota_notices.check(app, mailbox_ids)


# --- purge after [teletransmission] purge_days -------------------------------------------------


async def purge(app: App, now: datetime | None = None) -> int:
    """When ``purge_days`` is set (> 0, never less than ``retention_days``): remove the lots
    sent and the returns received before it, and their stored messages (through the one
    expunge, audited by ``system``; the retention rule lets them go, being older). Returns
    how many lots and returns were removed."""
    days = app.settings.tlt_purge_days
    if days <= 0:
        return 0
    now = now or datetime.now(UTC)
    before = now - timedelta(days=days)
    async with app.db.read() as conn:
        lots, returns = await lots_repo.purgeable(conn, before)
        stored = [s for _, _, s in (*lots, *returns) if s is not None]
        rows = await mailstore_repo.messages_by_id(conn, stored)
    by_folder: dict[int, list[int]] = {}
    for row in rows:
        by_folder.setdefault(int(row.folder_id), []).append(int(row.id))
    for folder_id, ids in sorted(by_folder.items()):
        try:
            await expunge_messages(app, folder_id, ids, actor="system", source="tlt-purge", now=now)
        except CaduceeError as error:  # kept: a later run tries again
            log.warning("tlt purge: messages kept folder_id=%d reason=%s", folder_id, error.en)
            return 0
    if not lots and not returns:
        return 0
    async with app.db.write() as conn:
        await lots_repo.delete_lots_and_returns(
            conn, [i for i, _, _ in lots], [i for i, _, _ in returns]
        )
        await audit.append(
            conn,
            audit.AuditEvent(
                actor="system",
                action="tlt.purge",
                target="teletransmission",
                source="maintenance",
                details={
                    "lots": len(lots),
                    "returns": len(returns),
                    "messages": len(rows),
                    "before": before.isoformat(),
                },
            ),
        )
    return len(lots) + len(returns)
