"""The practice's charter as every door reads it (issue 16): the portal's pages, the patient
e-mails (pickup notices, address verification), the admin console, the REST API and the
auto-replies all call this module, so a practitioner's override and the defaults apply the same
everywhere.

- :func:`charter_of`: a practitioner's own charter if they saved one, else the practice's,
  else the defaults (a practice that changes nothing shows a correct charter);
- :func:`charter_for_mailbox`: the charter that applies to mail from a mailbox (its owner's,
  when it is a personal mailbox);
- :func:`save` / :func:`reset`: checked by :mod:`caducee.domain.charter`, audited
  ``charter.update``;
- :func:`expected_answer`: when a message received at an instant may expect its answer.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, date, datetime

from caducee.app import App
from caducee.domain import charter as rules
from caducee.domain.charter import Charter
from caducee.domain.model import MailboxType
from caducee.errors import InvalidInput, NotFound
from caducee.services import practice_scope
from caducee.services.audit import AuditEvent, append
from caducee.store import charter_repo, directory_repo

log = logging.getLogger(__name__)

__all__ = [
    "Charter",
    "charter_for_mailbox",
    "charter_of",
    "expected_answer",
    "has_own_charter",
    "overriding_accounts",
    "reset",
    "save",
]


def _parsed(row: charter_repo.CharterRow) -> Charter | None:
    try:
        return rules.from_dict(json.loads(row.settings))
    except (ValueError, InvalidInput):
        # Never seen unless the stored JSON was edited by hand or a limit tightened: the next
        # charter in line (the practice's, or the defaults) is shown rather than no page.
        log.error("unreadable charter of practice %s (account %s)", row.practice_id, row.account_id)
        return None


async def charter_of(app: App, practice_id: int, account_id: int | None = None) -> Charter:
    """The charter that applies: ``account_id``'s own, else the practice's, else defaults."""
    async with app.db.read() as conn:
        rows = await charter_repo.charter_rows(conn, practice_id, account_id)
    for row in reversed(rows):  # the practitioner's row comes last
        found = _parsed(row)
        if found is not None:
            return found
    return Charter()


async def charter_for_mailbox(app: App, mailbox_id: int) -> Charter:
    """The charter shown with mail from ``mailbox_id``: its owner's for a personal mailbox,
    the practice's for a shared one."""
    async with app.db.read() as conn:
        box = await directory_repo.mailbox_by_id(conn, mailbox_id)
    if box is None:
        raise NotFound("Boîte introuvable.", "Mailbox not found.")
    owner = box.owner_account_id if box.type is MailboxType.PER else None
    return await charter_of(app, box.practice_id, owner)


async def has_own_charter(app: App, practice_id: int, account_id: int | None) -> bool:
    """Whether that charter was saved (``account_id`` None: the practice-wide one)."""
    async with app.db.read() as conn:
        rows = await charter_repo.charter_rows(conn, practice_id, account_id)
    return any(r.account_id == account_id for r in rows)


async def overriding_accounts(app: App, practice_id: int) -> list[int]:
    async with app.db.read() as conn:
        return await charter_repo.overriding_accounts(conn, practice_id)


async def _check_account(app: App, practice_id: int, account_id: int | None) -> None:
    if account_id is not None:
        await practice_scope.account_of_practice(app, practice_id, account_id)


async def save(
    app: App,
    practice_id: int,
    charter: Charter,
    *,
    account_id: int | None = None,
    actor: str,
    source: str,
) -> Charter:
    """Save the practice's charter, or ``account_id``'s override (an account of the practice,
    else NotFound). ``charter`` is checked again (InvalidInput)."""
    checked = rules.from_dict(rules.to_dict(charter))
    await _check_account(app, practice_id, account_id)
    async with app.db.write() as conn:
        await charter_repo.save_charter(
            conn,
            practice_id,
            account_id,
            json.dumps(rules.to_dict(checked), ensure_ascii=False, sort_keys=True),
            now=datetime.now(UTC),
            actor=actor,
        )
        await append(
            conn,
            AuditEvent(
                actor=actor,
                action="charter.update",
                target=f"practice:{practice_id}",
                source=source,
                details={
                    "account": account_id,
                    "types": ",".join(checked.accepted),
                    "delay": checked.delay_days,
                    "closures": len(checked.closures),
                    "region": checked.region,
                },
            ),
        )
    return checked


async def reset(
    app: App, practice_id: int, account_id: int | None, *, actor: str, source: str
) -> bool:
    """Remove a practitioner's override (back to the practice's charter) or, with None, the
    practice's (back to the defaults). Audited ``charter.update`` with ``reset``."""
    await _check_account(app, practice_id, account_id)
    async with app.db.write() as conn:
        removed = await charter_repo.delete_charter(conn, practice_id, account_id)
        if removed:
            await append(
                conn,
                AuditEvent(
                    actor=actor,
                    action="charter.update",
                    target=f"practice:{practice_id}",
                    source=source,
                    details={"account": account_id, "reset": True},
                ),
            )
    return removed


async def expected_answer(
    app: App, practice_id: int, received: datetime, account_id: int | None = None
) -> date:
    """The date by which a message received at ``received`` may expect its answer."""
    return (await charter_of(app, practice_id, account_id)).expected_answer(received)
