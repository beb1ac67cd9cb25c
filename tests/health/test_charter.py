"""The charter service on both backends: defaults when nothing is saved, the practice's
charter, a practitioner's override (and only for the practice's own accounts), the mailbox's
charter, reset, the audit trail, the schema of migration 0024, and the expected answer."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from caducee.app import App
from caducee.domain.charter import Charter, Closure
from caducee.domain.model import MailboxType
from caducee.errors import InvalidInput, NotFound
from caducee.health import charter
from caducee.services import mailboxes, practices
from caducee.services.audit import iter_records
from caducee.store.tables import metadata, practice_charters
from tests.services.helpers import person, practice

DOCTOR = "dr.martin@cabinet.test"
PARIS = ZoneInfo("Europe/Paris")


async def test_defaults_then_practice_then_practitioner(app: App) -> None:
    cabinet = await practice(app)
    doctor, box = await person(app, DOCTOR)
    colleague, _box = await person(app, "dr.leroy@cabinet.test")
    assert await charter.charter_of(app, cabinet.id) == Charter()
    assert await charter.charter_of(app, cabinet.id, doctor.id) == Charter()
    assert not await charter.has_own_charter(app, cabinet.id, None)

    practice_wide = replace(Charter(), delay_days=3, region="57")
    await charter.save(app, cabinet.id, practice_wide, actor="admin", source="test")
    assert await charter.charter_of(app, cabinet.id) == practice_wide
    assert await charter.charter_of(app, cabinet.id, doctor.id) == practice_wide

    own = replace(Charter(), accepted=("resultats",), delay_days=1)
    await charter.save(app, cabinet.id, own, account_id=doctor.id, actor="admin", source="t")
    assert await charter.charter_of(app, cabinet.id, doctor.id) == own
    assert await charter.charter_of(app, cabinet.id, colleague.id) == practice_wide
    assert await charter.charter_for_mailbox(app, box.id) == own
    assert await charter.overriding_accounts(app, cabinet.id) == [doctor.id]

    # Saving again replaces (one row each), on both backends.
    await charter.save(app, cabinet.id, replace(own, delay_days=4), account_id=doctor.id,
                       actor="admin", source="t")  # fmt: skip
    await charter.save(app, cabinet.id, practice_wide, actor="admin", source="t")
    async with app.db.read() as conn:
        rows = (await conn.execute(select(practice_charters))).all()
    assert len(rows) == 2
    assert (await charter.charter_of(app, cabinet.id, doctor.id)).delay_days == 4

    assert await charter.reset(app, cabinet.id, doctor.id, actor="admin", source="t")
    assert not await charter.reset(app, cabinet.id, doctor.id, actor="admin", source="t")
    assert await charter.charter_of(app, cabinet.id, doctor.id) == practice_wide
    assert await charter.reset(app, cabinet.id, None, actor="admin", source="t")
    assert await charter.charter_of(app, cabinet.id) == Charter()

    records = [r async for r in iter_records(app.db)]
    updates = [r for r in records if r.action == "charter.update"]
    assert len(updates) == 6
    assert updates[0].target == f"practice:{cabinet.id}" and updates[0].actor == "admin"
    assert json.loads(updates[1].details)["account"] == doctor.id
    assert json.loads(updates[-1].details) == {"account": None, "reset": True}


async def test_shared_mailbox_shows_the_practice_charter(app: App) -> None:
    cabinet = await practice(app)
    doctor, _box = await person(app, DOCTOR)
    shared = await mailboxes.add_mailbox(
        app, "accueil@cabinet.test", MailboxType.ORG, owner_login=DOCTOR
    )
    await charter.save(app, cabinet.id, replace(Charter(), delay_days=5), actor="a", source="t")
    await charter.save(app, cabinet.id, replace(Charter(), delay_days=1), account_id=doctor.id,
                       actor="a", source="t")  # fmt: skip
    assert (await charter.charter_for_mailbox(app, shared.id)).delay_days == 5
    with pytest.raises(NotFound):
        await charter.charter_for_mailbox(app, 99_999)


async def test_another_practice_account_and_invalid_charters_are_refused(app: App) -> None:
    cabinet = await practice(app)
    other = await practices.create_practice(app, "Autre", ["autre.test"])
    await person(app, DOCTOR)
    stranger, _box = await person(app, "dr.x@autre.test")
    with pytest.raises(NotFound):
        await charter.save(app, cabinet.id, Charter(), account_id=stranger.id, actor="a",
                           source="t")  # fmt: skip
    with pytest.raises(InvalidInput):
        await charter.save(app, cabinet.id, replace(Charter(), delay_days=99), actor="a",
                           source="t")  # fmt: skip
    assert await charter.charter_of(app, other.id, stranger.id) == Charter()


async def test_broken_stored_charter_falls_back(app: App) -> None:
    cabinet = await practice(app)
    doctor, _box = await person(app, DOCTOR)
    practice_wide = replace(Charter(), delay_days=3)
    await charter.save(app, cabinet.id, practice_wide, actor="a", source="t")
    await charter.save(app, cabinet.id, Charter(), account_id=doctor.id, actor="a", source="t")
    async with app.db.write() as conn:
        await conn.execute(
            update(practice_charters)
            .where(practice_charters.c.account_id == doctor.id)
            .values(settings='{"types": ["hors-champ"]}')
        )
    assert await charter.charter_of(app, cabinet.id, doctor.id) == practice_wide


async def test_expected_answer_uses_the_saved_calendar(app: App) -> None:
    cabinet = await practice(app)
    closed = replace(Charter(), closures=(Closure(date(2025, 8, 4), date(2025, 8, 22), "Congés"),))
    await charter.save(app, cabinet.id, closed, actor="a", source="t")
    received = datetime(2025, 8, 6, 10, tzinfo=PARIS)
    assert await charter.expected_answer(app, cabinet.id, received) == date(2025, 8, 27)
    friday_evening = datetime(2025, 4, 17, 19, tzinfo=PARIS)
    assert await charter.expected_answer(app, cabinet.id, friday_evening) == date(2025, 4, 23)


async def test_migration_matches_the_table(app: App) -> None:
    def diff(conn: Connection) -> list[object]:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return [d for d in compare_metadata(context, metadata) if "charter" in repr(d)]

    async with app.db.read() as conn:
        assert await conn.run_sync(diff) == []
