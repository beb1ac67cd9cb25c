"""The audit chain: verification names the first edited, removed or reordered record."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from alembic import command
from sqlalchemy import column, delete, insert, select, table, update
from sqlalchemy.engine import Connection

from caducee.app import App, open_app
from caducee.config import Settings
from caducee.errors import IntegrityError
from caducee.services import audit
from caducee.services.audit import AuditEvent
from caducee.store.database import Database
from caducee.store.migrate import alembic_config
from caducee.store.tables import audit_anchor, audit_log


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


async def forge_keyless(app: App, seq: int, *, mark_first_chain: bool = False) -> Any:
    """What a forger with database access only can do: edit record ``seq``'s actor and give it
    a keyless SHA-256 (the first chain's hash; with ``mark_first_chain``, the record also claims
    to belong to that chain). Returns the original row."""
    async with app.db.write() as conn:
        row = (await conn.execute(select(audit_log).where(audit_log.c.seq == seq))).one()
        forged = audit.record_hash(
            row.prev_hash, seq, row.ts, "intrus", row.action, row.target, row.source,
            row.result, row.details,
        )  # fmt: skip
        await conn.execute(
            update(audit_log)
            .where(audit_log.c.seq == seq)
            .values(actor="intrus", hash=forged, **({"chain": 1} if mark_first_chain else {}))
        )
    return row


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


async def test_a_record_rehashed_without_the_key_is_named(app: App) -> None:
    await fill(app, 5)
    # The chain is keyed: a forger who edits record 3 and recomputes a keyless SHA-256 for it
    # (what the first chain used) is caught at record 3 itself.
    await forge_keyless(app, 3)
    result = await audit.verify(app.db)
    assert not result.ok and result.first_bad_seq == 3 and "modifié" in result.reason_fr


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


async def test_deleted_last_records_are_reported_as_a_missing_tail(app: App) -> None:
    await fill(app, 10)
    async with app.db.write() as conn:
        await conn.execute(delete(audit_log).where(audit_log.c.seq >= 8))
    result = await audit.verify(app.db)
    assert not result.ok and result.first_bad_seq == 8
    assert result.missing_tail == (8, 10)
    assert "fin du journal manquante" in result.reason_fr and "8 à 10" in result.reason_fr


async def test_every_record_deleted_is_reported(app: App) -> None:
    await fill(app, 3)
    async with app.db.write() as conn:
        await conn.execute(delete(audit_log))
    result = await audit.verify(app.db)
    assert not result.ok and result.missing_tail == (1, 3)


async def test_a_rewound_head_is_refused_by_verify_and_by_appends(app: App) -> None:
    await fill(app, 10)
    async with app.db.write() as conn:
        last_kept = (await conn.execute(select(audit_log).where(audit_log.c.seq == 7))).one()
        await conn.execute(delete(audit_log).where(audit_log.c.seq >= 8))
        # The forger also moves the head back to the last record left: without the key, the
        # anchor's MAC no longer fits.
        await conn.execute(update(audit_anchor).values(head_seq=7, head_hash=last_kept.hash))
    result = await audit.verify(app.db)
    assert not result.ok and "ancre" in result.reason_fr
    with pytest.raises(IntegrityError):  # fail closed: a forged head is never re-sealed
        await audit.record(app.db, AuditEvent(actor="cli", action="test"))
    with pytest.raises(IntegrityError):
        await audit.purge(app.db, retention_days=1)


async def test_verify_reports_the_sealed_head(app: App) -> None:
    await fill(app, 4)
    result = await audit.verify(app.db)
    async with app.db.read() as conn:
        last = (await conn.execute(select(audit_log).where(audit_log.c.seq == 4))).one()
    assert result.ok and result.head_seq == 4 and result.head_hash == last.hash


def _legacy_rows(count: int, start: datetime) -> list[dict[str, object]]:
    """Records as revisions before 0018 wrote them: a keyless SHA-256 chain."""
    rows: list[dict[str, object]] = []
    prev = audit.GENESIS_HASH
    for n in range(1, count + 1):
        ts = start + timedelta(minutes=n)
        fields = (f"old{n}@cabinet.test", "auth.login", "", "192.0.2.9", "ok", "{}")
        digest = audit.record_hash(prev, n, ts, *fields)
        rows.append(
            dict(
                zip(
                    ("actor", "action", "target", "source", "result", "details"),
                    fields,
                    strict=True,
                ),
                seq=n,
                ts=ts,
                prev_hash=prev,
                hash=digest,
            )
        )
        prev = digest
    return rows


async def test_records_written_before_the_keyed_chain_keep_verifying(settings: Settings) -> None:
    # An installation at revision 0017 with a SHA-256 chain of 5 records ...
    db = Database(settings.effective_database_url)
    old = datetime.now(UTC) - timedelta(days=400)

    def to_0017(conn: Connection) -> None:
        command.upgrade(alembic_config(conn), "0017")
        before_0018 = table(
            "audit_log", *(column(c.name, c.type) for c in audit_log.columns if c.name != "chain")
        )
        conn.execute(insert(before_0018), _legacy_rows(5, old))

    async with db.write() as conn:
        await conn.run_sync(to_0017)
    await db.dispose()
    # ... is upgraded: the anchor is sealed with the 5 old records as its head ...
    async with open_app(settings, upgrade=True) as app:
        result = await audit.verify(app.db)
        assert result.ok and result.checked == 5 and result.head_seq == 5
        await fill(app, 3)
        result = await audit.verify(app.db)
        assert result.ok and result.checked == 8
        async with app.db.read() as conn:
            chains = dict((await conn.execute(select(audit_log.c.seq, audit_log.c.chain))).all())
        assert chains == {1: 1, 2: 1, 3: 1, 4: 1, 5: 1, 6: 2, 7: 2, 8: 2}
        # a keyed record cannot be downgraded to the keyless hash
        row = await forge_keyless(app, 7, mark_first_chain=True)
        result = await audit.verify(app.db)
        assert not result.ok and result.first_bad_seq == 7
        async with app.db.write() as conn:
            await conn.execute(
                update(audit_log)
                .where(audit_log.c.seq == 7)
                .values(actor=row.actor, hash=row.hash, chain=2)
            )
        # retention purges the old records; what remains still verifies
        assert await audit.purge(app.db, retention_days=183) == 5
        result = await audit.verify(app.db)
        assert result.ok and result.checked == 4  # 3 recent + the purge record
