"""Housekeeping: audit retention and stale lockout counters, and the worker's schedule."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, insert, select

from caducee.app import App
from caducee.flows import maintenance
from caducee.services import audit
from caducee.services.audit import AuditEvent
from caducee.store.tables import audit_log, auth_failures


async def test_run_once_purges_what_is_past_its_date(app: App) -> None:
    old = datetime.now(UTC) - timedelta(days=400)
    async with app.db.write() as conn:
        for n in range(3):
            await audit.append(
                conn, AuditEvent(actor="x", action="auth.login"), now=old + timedelta(minutes=n)
            )
        await audit.append(conn, AuditEvent(actor="x", action="auth.login"))
        await conn.execute(
            insert(auth_failures),
            [
                {
                    "key": "ip:192.0.2.1",
                    "failures": 3,
                    "last_failure_at": old,
                    "locked_until": None,
                },
                {
                    "key": "ip:192.0.2.2",
                    "failures": 1,
                    "last_failure_at": datetime.now(UTC),
                    "locked_until": None,
                },
            ],
        )
    done = await maintenance.run_once(app)
    assert done == {
        "audit-retention": 3,
        "trace-retention": 0,
        "clear-addresses": 0,
        "stale-lockouts": 1,
        "rate-buckets": 0,
        "imap-expunged": 0,
        "portal-expiry": 0,
        "text-index": 0,
        "metadata-split": 0,  # every message stored since migration 0039
        "lot-watchdog": 0,
        "lot-purge": 0,
        "quota-notices": 0,
        "auto-replies": 0,
        "backup": 0,  # off: no [backup] dir
        "mailbox-deletions": 0,
        "orphan-objects": 0,  # not on the S3 blob store
        "blob-orphans": 0,  # no blob file older than an hour
        "inactivity": 0,  # nothing unused for 12 months
    }
    assert (await audit.verify(app.db)).ok
    async with app.db.read() as conn:
        assert await conn.scalar(select(func.count()).select_from(auth_failures)) == 1
        assert await conn.scalar(select(func.count()).select_from(audit_log)) == 2


async def test_worker_runs_tasks_and_stops_promptly(app: App) -> None:
    calls: list[str] = []

    async def task(_: App) -> int:
        calls.append("ran")
        return 0

    stop = asyncio.Event()
    worker = maintenance.MaintenanceWorker(app, (maintenance.Task("t", 0.05, task),), first_delay=0)
    running = asyncio.create_task(worker.run(stop))
    await asyncio.sleep(0.22)
    stop.set()
    await asyncio.wait_for(running, 0.5)
    assert 3 <= len(calls) <= 6  # every 50 ms
    waiting = maintenance.MaintenanceWorker(app, (maintenance.Task("t", 1, task),))
    calls.clear()
    stop = asyncio.Event()
    running = asyncio.create_task(waiting.run(stop))
    await asyncio.sleep(0.1)
    stop.set()
    await asyncio.wait_for(running, 0.5)  # stops at once, even while waiting 60 s
    assert calls == []
