"""Backup and restore (issue 19): what the command line and the scheduled maintenance call.

The archive itself (snapshot, encryption, manifest, restore) is ``store/backup.py``; this
module adds the backup key's life, the audit records (content-free: the archive's name, its
size and counts), the schedule with its rotation, and keeps the blocking work off the event
loop (a worker thread).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path

from caducee.app import App
from caducee.config import Settings
from caducee.domain.audit import AuditEvent
from caducee.errors import AlreadyExists
from caducee.store import audit_repo, node_repo
from caducee.store import backup as archive
from caducee.store.backup import ArchiveReport, RestoreReport
from caducee.store.backup_crypto import BackupPrivateKey, parse_private_key

log = logging.getLogger(__name__)

__all__ = [
    "ArchiveReport",
    "RestoreReport",
    "VerifyReport",
    "back_up",
    "create_key",
    "read_private_key",
    "restore",
    "scheduled",
    "verify",
]


def caducee_version() -> str:
    try:
        return package_version("caducee")
    except PackageNotFoundError:
        return "dev"


async def _audit(app: App, event: AuditEvent) -> None:
    async with app.db.write() as conn:
        await audit_repo.append(conn, event)


async def create_key(app: App, *, replace: bool = False, actor: str = "cli") -> BackupPrivateKey:
    """A new backup key pair: the public key kept in ``keys/backup.pub``, the private key
    returned to be shown (or written) once and kept away from the server."""
    path = archive.public_key_path(app.settings)
    if path.exists() and not replace:
        raise AlreadyExists(
            f"Une clé de sauvegarde existe déjà ({path}). La remplacer rend les prochaines "
            "archives illisibles avec l'ancienne clé privée : ajoutez --replace si c'est voulu.",
            f"A backup key already exists ({path}). Replacing it makes the next archives "
            "unreadable with the old private key: add --replace if that is what you want.",
        )
    replaced = path.exists()
    key = BackupPrivateKey.generate()
    archive.write_public_key(app.settings, key.public)
    await _audit(
        app,
        AuditEvent(
            actor=actor,
            action="backup.key_create",
            source="cli",
            details={"fingerprint": key.public.fingerprint, "replaced": replaced},
        ),
    )
    return key


def read_private_key(path: Path) -> BackupPrivateKey:
    return parse_private_key(path.read_text("ascii", errors="replace"))


async def back_up(
    app: App,
    dest: Path,
    *,
    actor: str = "cli",
    now: datetime | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ArchiveReport:
    """Write an archive of the node into ``dest`` (in a worker thread), audited;
    ``progress(done, total)`` is called from that thread."""
    try:
        report = await asyncio.to_thread(
            archive.create_archive,
            app.settings,
            dest,
            caducee_version=caducee_version(),
            now=now,
            progress=progress,
        )
    except Exception as error:
        await _audit(
            app,
            AuditEvent(
                actor=actor,
                action="backup.create",
                source=actor,
                result="failed",
                details={"error": type(error).__name__},
            ),
        )
        raise
    await _audit(
        app,
        AuditEvent(
            actor=actor,
            action="backup.create",
            target=report.path.name,
            source=actor,
            details={
                "files": report.files,
                "bytes": report.bytes,
                "messages": report.counts.get("messages", 0),
                "mailboxes": report.counts.get("mailboxes", 0),
            },
        ),
    )
    return report


@dataclass(frozen=True)
class VerifyReport:
    archive: Path
    files: int
    bytes: int
    authenticated: bool  # the manifest's HMAC checked and every file decrypted
    counts: dict[str, int]
    created_at: str
    backend: str


def verify(path: Path, key: BackupPrivateKey | None = None) -> VerifyReport:
    """Without the key: every file's presence, size and checksum. With it: the manifest's
    authentication too, and every file decrypted (to nowhere). Blocking: run it off the loop."""
    manifest = archive.read_manifest(archive.find_archive(path))
    if key is None:
        total = archive.check_checksums(manifest)
    else:
        archive.authenticate(manifest, key)
        archive.check_checksums(manifest)  # a damaged file named as such, before decryption
        total = archive.decrypt_all(manifest, key)
    return VerifyReport(
        archive=manifest.path,
        files=len(manifest.files),
        bytes=total,
        authenticated=key is not None,
        counts=dict(manifest.body.get("counts", {})),
        created_at=str(manifest.body.get("created_at", "")),
        backend=str(manifest.body.get("backend", "")),
    )


def restore(
    path: Path,
    new_dir: Path,
    key: BackupPrivateKey,
    *,
    database_url: str = "",
    pg_bin: str = "",
    progress: Callable[[int, int], None] | None = None,
) -> RestoreReport:
    """Restore the archive at ``path`` (or the newest in it) into ``new_dir``: all or nothing.
    Blocking: run it off the loop."""
    return archive.restore_archive(
        archive.find_archive(path),
        new_dir,
        key,
        database_url=database_url,
        pg_bin=pg_bin,
        progress=progress,
    )


async def audit_restore(app: App, report: RestoreReport) -> None:
    """The restored installation's first record: where it came from (content-free). The node
    registry copied with the database names the original installation's nodes, seen alive
    moments ago: it is emptied, so the restored node neither sees ghosts nor is refused as a
    second node beside them (``services.cluster``)."""
    async with app.db.write() as conn:
        await node_repo.forget_all_nodes(conn)
    await _audit(
        app,
        AuditEvent(
            actor="cli",
            action="backup.restore",
            source="cli",
            details={"files": report.files, "backend": report.backend},
        ),
    )


def _stamp_of(path: Path) -> datetime | None:
    try:
        return datetime.strptime(path.name[len(archive.PREFIX) :], "%Y%m%dT%H%M%SZ").replace(
            tzinfo=UTC
        )
    except ValueError:
        return None


def due(settings: Settings, last: datetime | None, now: datetime) -> bool:
    """Whether a scheduled backup is due: never before the interval (less an hour of slack
    when a fixed hour is set), and at the set hour (local time) for daily or rarer ones."""
    interval = timedelta(hours=settings.backup_interval_hours)
    fixed = settings.backup_hour >= 0 and settings.backup_interval_hours >= 24
    if last is not None and now - last < interval - (timedelta(hours=1) if fixed else timedelta()):
        return False
    return not fixed or now.astimezone().hour == settings.backup_hour


async def scheduled(app: App, *, now: datetime | None = None) -> int:
    """The maintenance task: an archive when one is due ([backup] dir set), then rotation to
    the ``keep`` newest. Returns how many archives it wrote (0 or 1)."""
    settings = app.settings
    if not settings.backup_dir:
        return 0
    root = Path(settings.backup_dir)
    if not root.is_absolute():
        root = settings.data_dir / root
    now = now or datetime.now(UTC)
    existing = await asyncio.to_thread(archive.archives, root)
    last = _stamp_of(existing[-1]) if existing else None
    if not due(settings, last, now):
        return 0
    report = await back_up(app, root, actor="system", now=now)
    removed = await asyncio.to_thread(archive.rotate, root, settings.backup_keep)
    log.info(
        "backup written archive=%s bytes=%d rotated=%d",
        report.path.name,
        report.bytes,
        len(removed),
    )
    if removed:
        await _audit(
            app,
            AuditEvent(
                actor="system",
                action="backup.rotate",
                source="system",
                details={"removed": len(removed), "kept": settings.backup_keep},
            ),
        )
    return 1
