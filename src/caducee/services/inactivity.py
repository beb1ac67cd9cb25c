"""The CNIL inactivity rule (issue 19): a mailbox unused for ``[lifecycle] inactive_months``
(12) is deleted, after a notice to its owner and the practice's administrators
``[lifecycle] notice_days`` (30) before. The dates are :mod:`caducee.domain.inactivity`'s.

The maintenance task ``inactivity`` (:func:`sweep`, worker 0 of each node) sends each notice
once — ``mailbox_inactivity.notice_at`` remembers it, moved by a compare-and-set so that of
several nodes one tells — and deletes when due through :func:`caducee.services.lifecycle`'s
own path (crypto-shredding first; a télétransmission mailbox under retention is never deleted
early: it waits, and the report says until when). A personal mailbox goes with its account
(:func:`lifecycle.delete_account`, whose refusals — the last administrator, other mailboxes
owned — keep both, logged and shown in the report). A use of the mailbox (any door: its last
use, or its account's for a personal mailbox) after the notice cancels the countdown.

The practice may exempt a mailbox with a reason (:func:`exempt`, admin console and CLI); the
report shows it. Notices, cancellations, exemptions and deletions are audited (content-free).

The notice is written by the server into the Inbox of the owner's personal mailbox and of each
administrator's, as the quota notices are (:func:`caducee.services.quota_notices.deliver_notice`):
local mailboxes of the practice's own accounts, which every mailbox's recipient rule admits; it
never leaves the server. French first, then English.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from caducee.app import App
from caducee.domain.addresses import normalize_address
from caducee.domain.inactivity import Step, add_months, standing
from caducee.domain.working_days import PARIS
from caducee.errors import CaduceeError, InvalidInput, RetentionHold
from caducee.services import audit, lifecycle, quota_notices
from caducee.services.mailboxes import unknown_mailbox
from caducee.store import directory_repo, inactivity_repo
from caducee.store.inactivity_repo import Inactive

log = logging.getLogger(__name__)

REASON_MAX = 500


@dataclass(frozen=True)
class Entry:
    """One mailbox as the rule sees it at a moment."""

    address: str
    personal: bool
    last_use: datetime
    step: Step
    deletion_at: datetime
    notice_at: datetime | None
    exempt_reason: str | None = None
    exempt_by: str | None = None
    exempt_at: datetime | None = None
    #: A télétransmission mailbox under retention: not before this date.
    held_until: datetime | None = None


@dataclass
class Report:
    """What the task will do: notices due, deletions due, the countdowns under way, the
    exempted mailboxes."""

    now: datetime
    notices: list[Entry] = field(default_factory=list)
    deletions: list[Entry] = field(default_factory=list)
    waiting: list[Entry] = field(default_factory=list)
    exempted: list[Entry] = field(default_factory=list)


def _last_use(app: App, item: Inactive, account_use: datetime | None) -> datetime:
    """A personal mailbox is used when its account is (a web login, an API call)."""
    if item.owner_login == item.address and account_use is not None:
        return max(item.last_use, account_use)
    return item.last_use


async def _entries(app: App, now: datetime) -> list[tuple[Inactive, Entry]]:
    settings = app.settings
    margin = timedelta(days=settings.notice_days + 3)  # month lengths: filtered below
    since = add_months(now + margin, -settings.inactive_months)
    found: list[tuple[Inactive, Entry]] = []
    async with app.db.read() as conn:
        items = await inactivity_repo.watched(conn, since)
        for item in items:
            owner = await directory_repo.account_by_id(conn, item.owner_account_id)
            last = _last_use(app, item, owner.last_used_at if owner else None)
            where = standing(
                last,
                item.notice_at,
                item.exempt_reason is not None,
                now,
                months=settings.inactive_months,
                notice_days=settings.notice_days,
            )
            found.append(
                (
                    item,
                    Entry(
                        address=item.address,
                        personal=item.owner_login == item.address,
                        last_use=last,
                        step=where.step,
                        deletion_at=where.deletion_at,
                        notice_at=where.notice_at,
                        exempt_reason=item.exempt_reason,
                        exempt_by=item.exempt_by,
                        exempt_at=item.exempt_at,
                    ),
                )
            )
    return found


async def _held_until(app: App, item: Inactive, now: datetime) -> datetime | None:
    async with app.db.read() as conn:
        box = await directory_repo.mailbox_by_id(conn, item.mailbox_id)
    if box is None:
        return None
    hold = await lifecycle.retention_of(app, box, now)
    return hold.until if hold is not None else None


async def report(app: App, now: datetime | None = None) -> Report:
    """What :func:`sweep` would do at ``now`` (``caducee lifecycle report``)."""
    now = now or datetime.now(UTC)
    result = Report(now)
    for item, entry in await _entries(app, now):
        if entry.step is Step.NOTICE:
            result.notices.append(entry)
        elif entry.step is Step.DELETE:
            held = await _held_until(app, item, now)
            result.deletions.append(replace(entry, held_until=held) if held else entry)
        elif entry.step is Step.WAITING:
            result.waiting.append(entry)
        elif entry.step is Step.EXEMPT:
            result.exempted.append(entry)
    return result


def _day(moment: datetime) -> str:
    return f"{moment.astimezone(PARIS):%d/%m/%Y}"


def notice_text(app: App, entry: Entry) -> tuple[str, str, str]:
    """(subject, French text, English text) of the notice."""
    months = app.settings.inactive_months
    last, when = _day(entry.last_use), _day(entry.deletion_at)
    iso_last = f"{entry.last_use.astimezone(PARIS):%Y-%m-%d}"
    iso_when = f"{entry.deletion_at.astimezone(PARIS):%Y-%m-%d}"
    subject = f"Boîte {entry.address} inutilisée : suppression prévue le {when}"
    fr = (
        f"La boîte {entry.address} n'a pas été utilisée depuis le {last}. Les données d'une "
        f"messagerie inutilisée ne sont pas conservées au-delà de {months} mois (règle du "
        f"cabinet, recommandation de la CNIL) : elle sera supprimée avec tous ses messages le "
        f"{when}, sans retour possible."
    )
    if entry.personal:
        fr += " Le compte du même nom sera supprimé avec elle."
    fr += (
        " Pour la garder, il suffit de l'utiliser d'ici là (webmail, logiciel de messagerie "
        "ou API) ; l'administrateur du cabinet peut aussi l'exempter en indiquant un motif "
        "(console d'administration, page de la boîte)."
    )
    en = (
        f"Mailbox {entry.address} has not been used since {iso_last}. The data of an unused "
        f"mailbox is not kept past {months} months (the practice's rule, as the CNIL "
        f"recommends): it will be deleted with all its messages on {iso_when}, for good."
    )
    if entry.personal:
        en += " The account of the same name will be deleted with it."
    en += (
        " To keep it, just use it before then (webmail, mail client or API); the practice's "
        "administrator may also exempt it, giving a reason (admin console, the mailbox's page)."
    )
    return subject, fr, en


async def _recipients(app: App, item: Inactive) -> list[str]:
    """The owner's personal mailbox and each enabled administrator's (enabled ones)."""
    async with app.db.read() as conn:
        logins = [item.owner_login, *await inactivity_repo.admins_of(conn, item.practice_id)]
        found: list[str] = []
        for login in logins:
            box = await directory_repo.mailbox_by_address(conn, login)
            if box is not None and not box.disabled and box.address not in found:
                found.append(box.address)
    return found


async def _notify(app: App, item: Inactive, entry: Entry, now: datetime) -> bool:
    """Tell once (the compare-and-set decides which node); audited."""
    async with app.db.write() as conn:
        if not await inactivity_repo.set_notice(conn, item.mailbox_id, None, now):
            return False
        await audit.append(
            conn,
            audit.AuditEvent(
                actor="system",
                action="mailbox.inactivity_notice",
                target=item.address,
                source="inactivity",
                details={"deletion_at": entry.deletion_at.isoformat()},
            ),
        )
    subject, fr, en = notice_text(app, entry)
    async with app.db.read() as conn:
        box = await directory_repo.mailbox_by_id(conn, item.mailbox_id)
    assert box is not None
    for to in await _recipients(app, item):
        message = quota_notices.notice_message(app, to, subject, fr, en)
        await quota_notices.deliver_notice(app, box, to, message, source="inactivity")
    return True


async def _cancel(app: App, item: Inactive) -> None:
    """Used since it was told: the countdown starts again (audited)."""
    async with app.db.write() as conn:
        if await inactivity_repo.set_notice(conn, item.mailbox_id, item.notice_at, None):
            await audit.append(
                conn,
                audit.AuditEvent(
                    actor="system",
                    action="mailbox.inactivity_cancel",
                    target=item.address,
                    source="inactivity",
                ),
            )


async def _delete(app: App, entry: Entry, now: datetime) -> bool:
    try:
        if entry.personal:
            await lifecycle.delete_account(
                app,
                entry.address,
                confirm=entry.address,
                actor="system",
                source="inactivity",
                now=now,
            )
        else:
            await lifecycle.delete_mailbox(
                app,
                entry.address,
                confirm=entry.address,
                actor="system",
                source="inactivity",
                now=now,
            )
    except RetentionHold:
        return False  # a télétransmission mailbox waits for its retention to end
    except CaduceeError as refused:
        log.warning(
            "inactive mailbox not deleted kind=%s reason=%s", type(refused).__name__, refused.en
        )
        return False
    return True


async def sweep(app: App, now: datetime | None = None) -> int:
    """The maintenance task: notices due sent, cancelled countdowns forgotten, deletions due
    done. Returns how many notices and deletions."""
    now = now or datetime.now(UTC)
    done = 0
    for item, entry in await _entries(app, now):
        if item.notice_at is not None and entry.notice_at is None:
            await _cancel(app, item)
        if entry.step is Step.NOTICE:
            done += await _notify(app, item, entry, now)
        elif entry.step is Step.DELETE:
            done += await _delete(app, entry, now)
    return done


async def _mailbox(app: App, address: str, practice_id: int | None) -> Inactive:
    address = normalize_address(address)
    async with app.db.read() as conn:
        box = await directory_repo.mailbox_by_address(conn, address)
        item = await inactivity_repo.one(conn, box.id) if box is not None else None
    if item is None or (practice_id is not None and item.practice_id != practice_id):
        raise unknown_mailbox(address)
    return item


async def exempt(
    app: App,
    address: str,
    reason: str,
    *,
    actor: str = "cli",
    source: str = "cli",
    practice_id: int | None = None,
    now: datetime | None = None,
) -> None:
    """Exempt a mailbox from the rule, with the practice's reason (audited, with it): any
    notice standing is withdrawn. ``practice_id``: the admin console's practice."""
    reason = " ".join(reason.split())
    if not reason or len(reason) > REASON_MAX:
        raise InvalidInput(
            f"Indiquez le motif de l'exemption (au plus {REASON_MAX} caractères).",
            f"Give the reason for the exemption (at most {REASON_MAX} characters).",
        )
    item = await _mailbox(app, address, practice_id)
    now = now or datetime.now(UTC)
    async with app.db.write() as conn:
        await inactivity_repo.set_exemption(conn, item.mailbox_id, reason, actor, now)
        await inactivity_repo.set_notice(conn, item.mailbox_id, item.notice_at, None)
        await audit.append(
            conn,
            audit.AuditEvent(
                actor=actor,
                action="mailbox.inactivity_exempt",
                target=item.address,
                source=source,
                details={"reason": reason},
            ),
        )


async def unexempt(
    app: App,
    address: str,
    *,
    actor: str = "cli",
    source: str = "cli",
    practice_id: int | None = None,
) -> None:
    """End a mailbox's exemption: the rule applies again from its last use (audited)."""
    item = await _mailbox(app, address, practice_id)
    async with app.db.write() as conn:
        await inactivity_repo.set_exemption(conn, item.mailbox_id, None, None, None)
        await audit.append(
            conn,
            audit.AuditEvent(
                actor=actor,
                action="mailbox.inactivity_unexempt",
                target=item.address,
                source=source,
            ),
        )


async def exemption_of(
    app: App, address: str, practice_id: int | None = None
) -> tuple[str, str, datetime] | None:
    """(reason, by whom, when) of a mailbox's exemption, None when it has none."""
    item = await _mailbox(app, address, practice_id)
    if item.exempt_reason is None or item.exempt_at is None:
        return None
    return item.exempt_reason, item.exempt_by or "", item.exempt_at
