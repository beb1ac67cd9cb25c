"""A practitioner's export of a mailbox (RGPD, issue 19), the one rule the webmail and the CLI
call: a ZIP holding every folder as mbox (RFC 4155, "mboxrd" quoting) or Maildir (Maildir++,
flags in the file names), a ``manifest.json`` (folder, UID, flags, internal date, size and
SHA-256 of each message's exact bytes) and a French ``LISEZMOI.txt``.

Who may export: whoever may read the mailbox (:func:`caducee.services.mailboxes.open_mailbox`:
its owner or a delegate; an administrator is not a reader of the practice's mail). The CLI,
run by the machine's operator, names the mailbox directly.

It streams: the clear columns of a folder are read first (no content), then its messages a
batch at a time (:data:`BATCH_BYTES`), decrypted, hashed and written to the ZIP file in a
worker thread; the archive is a file on disk, never a buffer. ``[rgpd] export_max_bytes``
bounds it, checked before anything is written. The audit record is content-free (the address,
the format, how many messages and bytes).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from caducee.app import App
from caducee.domain import mail_export
from caducee.domain.mail_export import ExportedFolder, ExportedMessage
from caducee.domain.model import Folder, Mailbox, MessageSummary
from caducee.errors import InvalidInput, LimitReached
from caducee.services import audit, mailboxes
from caducee.store import crypto, directory_repo
from caducee.store import mailstore_repo as repo
from caducee.store.keyring import mailbox_scope

log = logging.getLogger(__name__)

#: Stored bytes read, decrypted and written per step (memory held by an export at a time).
BATCH_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class ExportDone:
    address: str
    format: str
    messages: int
    bytes: int
    path: Path


def check_format(fmt: str) -> str:
    clean = fmt.strip().lower()
    if clean not in mail_export.FORMATS:
        raise InvalidInput(
            f"Format d'export inconnu : {fmt!r} (mbox ou maildir).",
            f"Unknown export format: {fmt!r} (mbox or maildir).",
        )
    return clean


def too_large(size: int, limit: int) -> LimitReached:
    mib = 1024 * 1024
    return LimitReached(
        f"Boîte trop volumineuse pour un export : {size / mib:.0f} Mo pour {limit / mib:.0f} Mo "
        "au plus ([rgpd] export_max_bytes). Videz la corbeille ou archivez d'anciens dossiers, "
        "ou demandez à l'exploitant un export par la ligne de commande.",
        f"Mailbox too large to export: {size / mib:.0f} MB for at most {limit / mib:.0f} MB "
        "([rgpd] export_max_bytes). Empty the trash or archive old folders, or ask the "
        "operator for an export from the command line.",
    )


async def readable_mailbox(app: App, login: str, address: str, *, source: str) -> Mailbox:
    """The mailbox ``login`` may export: the one authorization check every door uses
    (AccessDenied, the same for an unknown mailbox and a forbidden one)."""
    access = await mailboxes.open_mailbox(app, login, address, source=source)
    return access.mailbox


async def readable_mailboxes(app: App, login: str) -> list[str]:
    """Addresses ``login`` may export: its own mailboxes and those delegated to it."""
    async with app.db.read() as conn:
        account = await directory_repo.account_by_login(conn, login)
    if account is None:
        return []
    own = [
        m.address
        for m in await mailboxes.list_mailboxes(app, account.practice_id)
        if m.owner_account_id == account.id and not m.disabled
    ]
    delegated = [
        d.mailbox_address
        for d in await mailboxes.list_delegations(app)
        if d.account_login == account.login
    ]
    return sorted(dict.fromkeys([*own, *delegated]))


class _Writer:
    """The ZIP being written, used by one worker thread at a time."""

    def __init__(self, path: Path, fmt: str) -> None:
        self.zip = zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True)
        self.fmt = fmt
        self.entry: IO[bytes] | None = None
        self.used: set[str] = set()

    def unique(self, path: str) -> str:
        candidate, n = path, 1
        while candidate in self.used:
            n += 1
            candidate = f"{path}~{n}"
        self.used.add(candidate)
        return candidate

    def begin_mbox(self, path: str) -> None:
        self.entry = self.zip.open(path, "w", force_zip64=True)

    def end_entry(self) -> None:
        if self.entry is not None:
            self.entry.close()
            self.entry = None

    def write_batch(
        self,
        key: bytes,
        scope: str,
        folder_path: str,
        rows: Sequence[MessageSummary],
        sealed: dict[str, bytes],
    ) -> list[ExportedMessage]:
        """Decrypt, hash and write a batch (CPU and file work: a worker thread's)."""
        out: list[ExportedMessage] = []
        for row in rows:
            found = sealed.get(row.blob_id)
            if found is None:  # expunged meanwhile
                continue
            raw = crypto.open_sealed(key, found, crypto.aad_for(scope, row.blob_id, "raw"))
            if self.fmt == "mbox":
                assert self.entry is not None
                self.entry.write(mail_export.mbox_entry(raw, row.internal_date))
                path = folder_path
            else:
                sub, name = mail_export.maildir_name(row.uid, row.internal_date, row.flags)
                path = f"{folder_path}/{sub}/{name}"
                info = zipfile.ZipInfo(path, date_time=_zip_time(row.internal_date))
                info.compress_type = zipfile.ZIP_DEFLATED
                self.zip.writestr(info, raw)
            out.append(
                ExportedMessage(
                    uid=row.uid,
                    flags=mail_export.flag_names(row.flags, row.keywords),
                    internal_date=row.internal_date,
                    size=len(raw),
                    sha256=hashlib.sha256(raw).hexdigest(),
                    path=path,
                )
            )
        return out

    def finish(self, manifest: dict[str, object], readme: str, folders: list[str]) -> None:
        self.end_entry()
        if self.fmt == "maildir":  # empty folders and tmp/ exist too (Maildir's layout)
            for folder_path in folders:
                for sub in ("cur", "new", "tmp"):
                    name = f"{folder_path}/{sub}/"
                    if name not in self.zip.NameToInfo:
                        self.zip.writestr(name, b"")
        self.zip.writestr("manifest.json", json.dumps(manifest, ensure_ascii=False, indent=1))
        self.zip.writestr("LISEZMOI.txt", readme)
        self.zip.close()

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self.end_entry()
        with contextlib.suppress(Exception):
            self.zip.close()


def _zip_time(when: datetime) -> tuple[int, int, int, int, int, int]:
    utc = when.astimezone(UTC)
    year = min(max(utc.year, 1980), 2107)
    return (year, utc.month, utc.day, utc.hour, utc.minute, utc.second)


def _batches(rows: Sequence[MessageSummary]) -> list[list[MessageSummary]]:
    out: list[list[MessageSummary]] = [[]]
    size = 0
    for row in rows:
        if out[-1] and size + row.size > BATCH_BYTES:
            out.append([])
            size = 0
        out[-1].append(row)
        size += row.size
    return [batch for batch in out if batch]


async def export_mailbox(
    app: App,
    mailbox: Mailbox,
    target: Path,
    *,
    fmt: str,
    actor: str,
    source: str,
    limit: int | None = None,
    progress: Callable[[int, int | None], None] | None = None,
) -> ExportDone:
    """Write ``mailbox`` to ``target`` (a new ZIP file) as ``fmt``; see the module.
    ``progress`` is told (bytes of messages written, bytes in all) after each batch.

    The caller has decided who may (:func:`readable_mailbox`, or the CLI's operator)."""
    fmt = check_format(fmt)
    limit = app.settings.export_max_bytes if limit is None else limit
    scope = mailbox_scope(mailbox.id)
    async with app.db.read() as conn:
        folders: list[Folder] = await repo.list_folders(conn, mailbox.id)
        owner = await directory_repo.account_by_id(conn, mailbox.owner_account_id)
        listing: list[tuple[Folder, list[MessageSummary]]] = []
        for folder in folders:
            rows = await repo.fetch_rows(conn, folder.id, None)
            listing.append((folder, sorted(rows, key=lambda r: r.uid)))
    total = sum(r.size for _f, rows in listing for r in rows)
    if total > limit:
        raise too_large(total, limit)
    generated = datetime.now(UTC)
    written = 0
    if progress is not None:
        progress(written, total)
    writer = await asyncio.to_thread(_Writer, target, fmt)
    exported: list[ExportedFolder] = []
    try:
        for folder, rows in listing:
            if fmt == "mbox":
                path = writer.unique(mail_export.mbox_path(folder.name))
                await asyncio.to_thread(writer.begin_mbox, path)
            else:
                path = writer.unique(mail_export.maildir_path(folder.name))
            done = ExportedFolder(folder.name, folder.uidvalidity, path, [])
            for batch in _batches(rows):
                async with app.db.read() as conn:
                    key = await app.keyring.data_key(conn, scope)
                    sealed = await app.blobs.get_many(conn, [r.blob_id for r in batch])
                done.messages.extend(
                    await asyncio.to_thread(writer.write_batch, key, scope, path, batch, sealed)
                )
                del sealed
                written += sum(r.size for r in batch)
                if progress is not None:
                    progress(written, total)
            await asyncio.to_thread(writer.end_entry)
            exported.append(done)
        manifest = mail_export.manifest(
            account=owner.login if owner is not None else "",
            mailbox=mailbox.address,
            fmt=fmt,
            generated_at=generated,
            folders=exported,
        )
        readme = mail_export.readme(
            mailbox=mailbox.address,
            fmt=fmt,
            generated_at=generated,
            messages=sum(len(f.messages) for f in exported),
        )
        await asyncio.to_thread(writer.finish, manifest, readme, [f.path for f in exported])
    except BaseException:
        await asyncio.to_thread(writer.abort)
        target.unlink(missing_ok=True)
        raise
    count = sum(len(f.messages) for f in exported)
    size = sum(m.size for f in exported for m in f.messages)
    async with app.db.write() as conn:
        await audit.append(
            conn,
            audit.AuditEvent(
                actor=actor,
                action="mailbox.export",
                target=mailbox.address,
                source=source,
                details={"format": fmt, "messages": count, "bytes": size},
            ),
        )
    log.info("mailbox exported mailbox=%d messages=%d bytes=%d", mailbox.id, count, size)
    return ExportDone(mailbox.address, fmt, count, size, target)
