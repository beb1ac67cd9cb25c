"""Periodic housekeeping of a node: audit and trace retention, stale lockout counters, full
rate-limit buckets, expired portal pickups, the télétransmission watchdog (lots to send again)
and purge, quota notices, the CNIL inactivity rule, the conversion of addresses stored in
clear before migration 0019, the split of message metadata stored before migration 0039,
scheduled backups, and blob files or objects a crash left behind.

Each task is idempotent and safe to run on several nodes at once (they only delete what is
past its date), so every node runs the worker; no leader election is needed. Scheduled backups
are the exception: set ``[backup] dir`` on one node only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from caducee.app import App
from caducee.health import auto_replies, pickup, pickup_store, teletransmission
from caducee.services import (
    audit,
    backup,
    blob_sweep,
    inactivity,
    lifecycle,
    lockout,
    mailstore,
    quota_notices,
    rate_limits,
    text_index,
    trace,
)
from caducee.store import mailstore_repo

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Task:
    name: str
    every_seconds: float
    run: Callable[[App], Awaitable[int]]


async def _audit_retention(app: App) -> int:
    return await audit.purge(app.db, app.settings.audit_retention_days)


async def _trace_retention(app: App) -> int:
    return await trace.purge(app.db, app.settings.trace_retention_days)


async def conceal_clear_addresses(app: App) -> int:
    """Addresses written in clear before migration 0019 (trace, pickups, finished queue rows):
    pseudonymised and sealed. Run by ``caducee migrate`` and by this worker; nothing to do
    after the first run."""
    done = await pickup_store.conceal_clear_patients(app)
    return done + await trace.conceal_clear_addresses(app)


async def _stale_lockouts(app: App) -> int:
    return await lockout.purge_stale(app.db, app.settings)


#: Expunged UIDs kept per folder for QRESYNC before older ones are pruned (see
#: ``mailstore_repo.prune_expunged``): a client resyncing from before gets a conservative list.
EXPUNGED_KEPT = 10_000


async def _rate_buckets(app: App) -> int:
    return await rate_limits.forget_full_buckets(app)


async def _expunged_uids(app: App) -> int:
    async with app.db.write() as conn:
        return await mailstore_repo.prune_expunged(conn, EXPUNGED_KEPT)


async def _expired_pickups(app: App) -> int:
    return await pickup.purge_expired(app)


async def _lot_watchdog(app: App) -> int:
    return await teletransmission.watchdog(app)


async def _lot_purge(app: App) -> int:
    return await teletransmission.purge(app)


async def _quota_notices(app: App) -> int:
    return await quota_notices.sweep(app)


async def _auto_replies(app: App) -> int:
    return await auto_replies.purge(app)


async def _backup(app: App) -> int:
    return await backup.scheduled(app)  # off unless [backup] dir is set; work in a thread


async def _text_index(app: App) -> int:
    return await text_index.index_unindexed(app)


async def _orphan_objects(app: App) -> int:
    """S3 objects no row names (uploads of deliveries that never committed, deletions that
    failed while the store was unreachable); nothing to do on the other blob stores."""
    if app.settings.blob_store != "s3":
        return 0
    from caducee.store.s3_blobs import ORPHAN_GRACE, S3BlobStore  # botocore: S3 nodes only

    assert isinstance(app.blobs, S3BlobStore)
    return await app.blobs.sweep_orphans(app.db, ORPHAN_GRACE)


#: Messages whose metadata one maintenance round splits (``mailstore.reseal``): a
#: 100,000-message installation is done in an hour of rounds, a few seconds of work each.
RESEAL_PER_ROUND = 20_000


async def _metadata_split(app: App) -> int:
    return await mailstore.reseal(app, limit=RESEAL_PER_ROUND)


async def _inactivity(app: App) -> int:
    return await inactivity.sweep(app)


TASKS: tuple[Task, ...] = (
    Task("audit-retention", 6 * 3600, _audit_retention),
    Task("trace-retention", 6 * 3600, _trace_retention),
    Task("clear-addresses", 6 * 3600, conceal_clear_addresses),
    Task("stale-lockouts", 3600, _stale_lockouts),
    Task("rate-buckets", 600, _rate_buckets),
    Task("imap-expunged", 6 * 3600, _expunged_uids),
    Task("portal-expiry", 3600, _expired_pickups),
    Task("text-index", 600, _text_index),
    # metadata stored before migration 0039: its IMAP structure sealed apart (issue 17)
    Task("metadata-split", 600, _metadata_split),
    Task("lot-watchdog", 600, _lot_watchdog),
    Task("lot-purge", 6 * 3600, _lot_purge),
    Task("quota-notices", 600, _quota_notices),
    Task("auto-replies", 6 * 3600, _auto_replies),
    Task("backup", 300, _backup),
    # mailbox deletions a crash interrupted: their keys are gone already, their rows go now
    Task("mailbox-deletions", 3600, lifecycle.finish_deletions),
    # blob files a crash left behind (staged, never named by a committed row)
    Task("blob-orphans", 6 * 3600, blob_sweep.sweep_orphan_files),
    Task("orphan-objects", 6 * 3600, _orphan_objects),
    # the CNIL inactivity rule: notices due sent once, deletions due done
    Task("inactivity", 3600, _inactivity),
)


async def run_once(app: App, tasks: tuple[Task, ...] = TASKS) -> dict[str, int]:
    """Run every task now; what each removed. A failing task is logged, the others still run."""
    done: dict[str, int] = {}
    for task in tasks:
        try:
            done[task.name] = await task.run(app)
        except Exception:
            log.exception("maintenance task failed task=%s", task.name)
    return done


class MaintenanceWorker:
    """Runs :data:`TASKS` on their schedules until stopped."""

    name = "maintenance"

    def __init__(
        self, app: App, tasks: tuple[Task, ...] = TASKS, *, first_delay: float = 60.0
    ) -> None:
        self.app = app
        self.tasks = tasks
        self.first_delay = first_delay  # let start-up settle before the first run

    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        due = {task.name: loop.time() + self.first_delay for task in self.tasks}
        while not stop.is_set():
            now = loop.time()
            for task in self.tasks:
                if now >= due[task.name]:
                    await run_once(self.app, (task,))
                    due[task.name] = now + task.every_seconds
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=max(0.01, min(due.values()) - now))
