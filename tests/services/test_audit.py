"""The audit chain: verification names the first edited, removed or reordered record."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select, update

from caducee.app import App
from caducee.services import audit
from caducee.services.audit import AuditEvent
from caducee.store.tables import audit_log


async def fill(app: App, count: int, start: datetime | None = None) -> None:
    start = start or datetime.now(UTC)
    for n in range(count):
        async with app.db.write() as conn:
            await audit.append(
                conn,
                AuditEvent(
                    actor=f"user{n}@cabinet.test",
                    action="auth.login",
                    target=f"user{n}@cabinet.test",
                    source="192.0.2.1",
                    details={"n": n},
                ),
                now=start + timedelta(minutes=n),
            )


async def test_intact_chain_verifies(app: App) -> None:
    await fill(app, 25)
    result = await audit.verify(app.db, batch=7)
    assert result.ok and result.checked == 25


async def test_edited_record_is_named(app: App) -> None:
    await fill(app, 10)
    async with app.db.write() as conn:
        await conn.execute(update(audit_log).where(audit_log.c.seq == 6).values(result="denied"))
    result = await audit.verify(app.db)
    assert not result.ok and result.first_bad_seq == 6 and "modifié" in result.reason_fr


async def test_removed_record_is_named(app: App) -> None:
    await fill(app, 10)
    async with app.db.write() as conn:
        await conn.execute(delete(audit_log).where(audit_log.c.seq == 4))
    result = await audit.verify(app.db)
    assert not result.ok and result.first_bad_seq == 4 and "manque" in result.reason_fr


async def test_removed_last_records_cannot_hide_behind_a_recomputed_chain(app: App) -> None:
    await fill(app, 5)
    # Forging needs recomputing every later hash: a forger who edits record 3 *and* fixes its
    # hash still breaks record 4's link.
    async with app.db.write() as conn:
        row = (await conn.execute(select(audit_log).where(audit_log.c.seq == 3))).one()
        forged = audit.record_hash(
            row.prev_hash,
            3,
            row.ts,
            "intrus",
            row.action,
            row.target,
            row.source,
            row.result,
            row.details,
        )
        await conn.execute(
            update(audit_log).where(audit_log.c.seq == 3).values(actor="intrus", hash=forged)
        )
    result = await audit.verify(app.db)
    assert result.first_bad_seq == 4


async def test_reordered_records_are_named(app: App) -> None:
    await fill(app, 8)
    async with app.db.write() as conn:
        rows = {r.seq: r for r in (await conn.execute(select(audit_log))).all()}
        fields = (
            "ts",
            "actor",
            "action",
            "target",
            "source",
            "result",
            "details",
            "prev_hash",
            "hash",
        )
        for a, b in ((3, 5), (5, 3)):
            await conn.execute(
                update(audit_log)
                .where(audit_log.c.seq == a)
                .values({f: getattr(rows[b], f) for f in fields})
            )
    result = await audit.verify(app.db)
    assert not result.ok and result.first_bad_seq == 3


async def test_purge_keeps_the_chain_verifiable(app: App) -> None:
    old = datetime.now(UTC) - timedelta(days=400)
    await fill(app, 6, start=old)
    await fill(app, 4)
    deleted = await audit.purge(app.db, retention_days=183)
    assert deleted == 6
    result = await audit.verify(app.db)
    assert result.ok and result.checked == 5  # 4 recent + the purge record itself
    async with app.db.read() as conn:
        last = (await conn.execute(select(audit_log).order_by(audit_log.c.seq.desc()))).first()
    assert (
        last is not None
        and last.action == "audit.purge"
        and json.loads(last.details)["deleted"] == 6
    )
    assert await audit.purge(app.db, retention_days=183) == 0


async def test_export_period_csv_and_json(app: App) -> None:
    start = datetime(2026, 1, 1, 8, 0, tzinfo=UTC)
    await fill(app, 10, start=start)
    text = await audit.export(
        app.db, "csv", since=start + timedelta(minutes=2), until=start + timedelta(minutes=5)
    )
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [int(r["seq"]) for r in rows] == [3, 4, 5]
    assert rows[0]["actor"] == "user2@cabinet.test" and rows[0]["ts"].startswith("2026-01-01T08:02")
    items = json.loads(await audit.export(app.db, "json"))
    assert len(items) == 10 and items[9]["prev_hash"] == items[8]["hash"]
