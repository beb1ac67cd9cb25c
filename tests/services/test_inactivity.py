"""The CNIL inactivity rule (issue 19), on both backends, the clock driven by the tests: a
mailbox unused for 12 months is deleted after a notice to its owner and the practice's admins
30 days before; a use cancels the countdown; an exemption keeps it; a télétransmission mailbox
under retention waits; a personal mailbox goes with its account; all audited."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.policy import default

import pytest

from caducee.app import App
from caducee.domain.inactivity import Step, add_months, standing
from caducee.domain.model import MailboxType, Role
from caducee.errors import InvalidInput, NotFound
from caducee.services import accounts, inactivity, last_use, mailboxes, maildrop
from caducee.services.audit import iter_records
from caducee.services.delivery import deliver_local
from tests.services.helpers import person, practice

ADMIN = "admin@cabinet.test"
OWNER = "dr@cabinet.test"
SHARED = "accueil@cabinet.test"


async def _notices(app: App, login: str) -> list[str]:
    drop = await maildrop.open_maildrop(app, login, "test")
    found = []
    for entry in drop.messages:
        message = message_from_bytes(await maildrop.retrieve(app, drop, entry), policy=default)
        if "inutilisée" in str(message["Subject"]):
            found.append(str(message["Subject"]) + "\n" + message.get_content())
    return found


async def _used(app: App, at: datetime, *logins: str) -> None:
    """The accounts (and so their personal mailboxes) used at ``at``, on any door."""
    for login in logins:
        account = await accounts.get_account(app, login)
        await last_use.note(app, account_id=account.id, now=at)


async def _audit(app: App, action: str) -> list[dict[str, object]]:
    return [
        {"target": r.target, "actor": r.actor, "source": r.source, "details": r.details}
        async for r in iter_records(app.db)
        if r.action == action
    ]


def test_the_dates_of_the_rule() -> None:
    last = datetime(2025, 3, 31, 10, tzinfo=UTC)
    assert add_months(last, 12) == datetime(2026, 3, 31, 10, tzinfo=UTC)
    assert add_months(last, 11) == datetime(2026, 2, 28, 10, tzinfo=UTC)
    rule = {"months": 12, "notice_days": 30}
    due = add_months(last, 12)
    assert standing(last, None, False, due - timedelta(days=31), **rule).step is Step.NONE
    told = due - timedelta(days=30)
    assert standing(last, None, False, told, **rule).step is Step.NOTICE
    # Told late (a server stopped): never less than the notice's days after it.
    late = standing(last, None, False, due + timedelta(days=5), **rule)
    assert late.step is Step.NOTICE and late.deletion_at == due + timedelta(days=35)
    assert standing(last, told, False, due - timedelta(days=1), **rule).step is Step.WAITING
    assert standing(last, told, False, due, **rule).step is Step.DELETE
    # Used after the notice: the countdown starts again.
    used = told + timedelta(days=2)
    again = standing(used, told, False, due, **rule)
    assert again.step is Step.NONE and again.notice_at is None
    assert standing(last, told, True, due, **rule).step is Step.EXEMPT


async def test_an_unused_mailbox_is_told_then_deleted(app: App) -> None:
    await practice(app)
    await person(app, ADMIN, Role.ADMIN)
    await person(app, OWNER)
    box = await mailboxes.add_mailbox(app, SHARED, MailboxType.ORG, OWNER)
    created = datetime.now(UTC)
    due = add_months(created, 12)

    at = add_months(created, 11) - timedelta(days=1)
    await _used(app, at, ADMIN, OWNER)
    assert await inactivity.sweep(app, at) == 0
    assert (await inactivity.report(app, at)).notices == []

    # 29 days before the date: the notice, once, to the owner and the admin.
    told = due - timedelta(days=29)
    await _used(app, told, ADMIN, OWNER)
    planned = await inactivity.report(app, told)
    assert [e.address for e in planned.notices] == [SHARED]
    assert planned.notices[0].deletion_at == told + timedelta(days=30)
    assert await inactivity.sweep(app, told) == 1
    assert await inactivity.sweep(app, told + timedelta(hours=1)) == 0  # remembered
    [to_owner] = await _notices(app, OWNER)
    [to_admin] = await _notices(app, ADMIN)
    assert to_owner == to_admin
    assert to_owner.startswith(f"Boîte {SHARED} inutilisée : suppression prévue le ")
    assert "n'a pas été utilisée depuis le" in to_owner and "Mailbox " in to_owner
    [record] = await _audit(app, "mailbox.inactivity_notice")
    assert record["target"] == SHARED and record["actor"] == "system"

    later = told + timedelta(days=29)
    await _used(app, later, ADMIN, OWNER)
    waiting = await inactivity.report(app, later)
    assert [e.address for e in waiting.waiting] == [SHARED] and waiting.deletions == []
    assert await inactivity.sweep(app, later) == 0
    assert (await mailboxes.get_mailbox(app, SHARED)).id == box.id

    gone = told + timedelta(days=30)
    await _used(app, gone, ADMIN, OWNER)
    assert [e.address for e in (await inactivity.report(app, gone)).deletions] == [SHARED]
    assert await inactivity.sweep(app, gone) == 1
    with pytest.raises(NotFound):
        await mailboxes.get_mailbox(app, SHARED)
    [deleted] = await _audit(app, "mailbox.delete")
    assert deleted["target"] == SHARED and deleted["source"] == "inactivity"


async def test_a_use_after_the_notice_cancels_the_countdown(app: App) -> None:
    await practice(app)
    await person(app, ADMIN, Role.ADMIN)
    await person(app, OWNER)
    box = await mailboxes.add_mailbox(app, SHARED, MailboxType.ORG, OWNER)
    told = add_months(datetime.now(UTC), 12) - timedelta(days=10)
    await _used(app, told, ADMIN, OWNER)
    assert await inactivity.sweep(app, told) == 1
    await last_use.note(app, mailbox_id=box.id, now=told + timedelta(days=3))  # a door
    after = told + timedelta(days=40)
    await _used(app, after, ADMIN, OWNER)
    planned = await inactivity.report(app, after)
    assert planned.deletions == [] and planned.waiting == [] and planned.notices == []
    assert await inactivity.sweep(app, after) == 0
    assert (await mailboxes.get_mailbox(app, SHARED)).id == box.id
    assert [r["target"] for r in await _audit(app, "mailbox.inactivity_cancel")] == [SHARED]
    # Twelve months after that use, a new notice.
    again = add_months(told + timedelta(days=3), 12) - timedelta(days=30)
    await _used(app, again, ADMIN, OWNER)
    assert await inactivity.sweep(app, again) == 1
    assert len(await _notices(app, OWNER)) == 2


async def test_an_exempted_mailbox_is_kept_and_shown(app: App) -> None:
    await practice(app)
    await person(app, ADMIN, Role.ADMIN)
    await person(app, OWNER)
    await mailboxes.add_mailbox(app, SHARED, MailboxType.ORG, OWNER)
    with pytest.raises(InvalidInput, match="motif"):
        await inactivity.exempt(app, SHARED, "  ", actor=ADMIN, source="test")
    await inactivity.exempt(
        app, SHARED, "Boîte des archives du cabinet", actor=ADMIN, source="test"
    )
    late = add_months(datetime.now(UTC), 14)
    await _used(app, late, ADMIN, OWNER)
    assert await inactivity.sweep(app, late) == 0
    planned = await inactivity.report(app, late)
    [entry] = planned.exempted
    assert (entry.address, entry.exempt_reason, entry.exempt_by) == (
        SHARED,
        "Boîte des archives du cabinet",
        ADMIN,
    )
    assert await _notices(app, OWNER) == []
    [record] = await _audit(app, "mailbox.inactivity_exempt")
    assert "Boîte des archives du cabinet" in str(record["details"])
    # Another practice's admin console cannot touch it.
    with pytest.raises(NotFound):
        await inactivity.exempt(app, SHARED, "x", actor=ADMIN, source="test", practice_id=999)
    # Without the exemption, the rule applies again: a notice first, never a deletion at once.
    await inactivity.unexempt(app, SHARED, actor=ADMIN, source="test")
    assert await inactivity.sweep(app, late) == 1
    assert (await mailboxes.get_mailbox(app, SHARED)).address == SHARED
    assert len(await _notices(app, OWNER)) == 1


async def test_a_tlt_mailbox_under_retention_waits(app: App) -> None:
    app.settings.tlt_retention_days = 500
    await practice(app)
    await person(app, ADMIN, Role.ADMIN)
    await person(app, OWNER)
    tlt = await mailboxes.add_mailbox(app, "tlt@cabinet.test", MailboxType.TLT, OWNER)
    await deliver_local(app, b"From: cpam@rss.fr\r\nSubject: ARL\r\n\r\nOK\r\n", [tlt.address])
    told = add_months(datetime.now(UTC), 12) - timedelta(days=30)
    await _used(app, told, ADMIN, OWNER)
    assert await inactivity.sweep(app, told) == 1
    due = told + timedelta(days=31)
    await _used(app, due, ADMIN, OWNER)
    [entry] = (await inactivity.report(app, due)).deletions
    assert entry.held_until is not None and entry.held_until > due + timedelta(days=100)
    assert await inactivity.sweep(app, due) == 0
    assert (await mailboxes.get_mailbox(app, tlt.address)).id == tlt.id
    assert await inactivity.sweep(app, entry.held_until + timedelta(hours=1)) >= 1
    with pytest.raises(NotFound):
        await mailboxes.get_mailbox(app, tlt.address)


async def test_a_personal_mailbox_goes_with_its_account(app: App) -> None:
    await practice(app)
    await person(app, ADMIN, Role.ADMIN)
    await person(app, OWNER)
    told = add_months(datetime.now(UTC), 12) - timedelta(days=30)
    await _used(app, told, ADMIN)
    planned = await inactivity.report(app, told)
    assert [(e.address, e.personal) for e in planned.notices] == [(OWNER, True)]
    assert await inactivity.sweep(app, told) == 1
    [notice] = await _notices(app, OWNER)
    assert "Le compte du même nom sera supprimé avec elle." in notice
    assert len(await _notices(app, ADMIN)) == 1  # (reading it was a use, minutes after "now")
    gone = told + timedelta(days=31)
    await _used(app, gone, ADMIN)
    assert await inactivity.sweep(app, gone) == 1
    with pytest.raises(NotFound):
        await accounts.get_account(app, OWNER)
    assert [r["target"] for r in await _audit(app, "account.delete")] == [OWNER]
