"""Quota notices: a mailbox's owner is told once when its usage crosses 80 %, 95 % of its quota,
or goes past it (only a télétransmission mailbox does: it never refuses a return).

``mailboxes.quota_notified`` holds the last threshold told (0, 80, 95, 100); it is raised, with
a notice, when the usage reaches a higher one, and lowered, silently, when the usage falls back
under it — so a mailbox emptied then filled again warns again. Moving it is a compare-and-set:
of several nodes seeing the same crossing, one sends the notice.

When it is checked, without slowing ordinary mail:

- the group commit finds, from the mailbox rows it locks anyway, which mailboxes its deliveries
  took across a threshold (:func:`caducee.services.messages.commit_group`, no query); the
  node's pipeline then checks those in a background task (:class:`QuotaNotices`), after the
  senders were answered;
- deliveries past the quota (a TLT mailbox's returns and lot copies) are checked by the
  télétransmission flow itself, once it has archived what it could;
- the maintenance task ``quota-notices`` (:func:`sweep`) checks every mailbox at 80 % or more
  and every one told before: crossings made by IMAP APPEND or COPY, notices lost in a crash,
  and usage fallen back (expunges) are caught there.

The notice is written by the server (From ``no-reply@<hostname>``) into the Inbox of the
owner's personal mailbox, stored directly (it never leaves the server, and its only reader is
the owner the mailbox belongs to), audited as a delivery by ``system``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from datetime import UTC, datetime
from email.header import Header
from email.utils import format_datetime, formataddr, make_msgid

from caducee.app import App
from caducee.domain.model import Mailbox, MailboxType
from caducee.domain.teletransmission import ARCHIVE_FOLDER
from caducee.errors import CaduceeError
from caducee.services.messages import QUOTA_THRESHOLDS, Delivery, quota_level, store_batch
from caducee.store import directory_repo

log = logging.getLogger(__name__)


def _size(value: int) -> str:
    return f"{value / (1024 * 1024):.1f} Mo"


def notice_text(box: Mailbox, level: int, retention_days: int) -> tuple[str, str, str]:
    """(subject, French text, English text) of the notice for ``level``."""
    used, quota = box.used_bytes, box.quota_bytes
    percent = used * 100 // quota if quota else 100
    tlt = box.type is MailboxType.TLT
    if level >= 100:
        subject = f"Boîte {box.address} : quota dépassé"
        fr = f"La boîte {box.address} dépasse son quota ({_size(used)} sur {_size(quota)})."
        en = f"Mailbox {box.address} is over its quota ({_size(used)} of {_size(quota)})."
        if tlt:
            fr += (
                " Les retours des caisses restent acceptés, mais aucun lot acquitté de plus de "
                f"{retention_days} jours ne pouvait être archivé pour faire de la place."
            )
            en += (
                " Returns from the funds are still accepted, but no acknowledged lot older "
                f"than {retention_days} days could be archived to make room."
            )
        else:
            fr += " Les nouveaux messages sont refusés."
            en += " New messages are refused."
    else:
        subject = f"Boîte {box.address} remplie à {level} %"
        fr = (
            f"La boîte {box.address} est remplie à {percent} % de son quota "
            f"({_size(used)} sur {_size(quota)})."
        )
        en = f"Mailbox {box.address} is {percent}% full ({_size(used)} of {_size(quota)})."
        if tlt:
            fr += (
                " Une boîte de télétransmission ne refuse jamais un retour : pleine, elle "
                f"déplace ses plus anciens lots acquittés (ARL positif) de plus de "
                f"{retention_days} jours dans le dossier « {ARCHIVE_FOLDER} », hors quota."
            )
            en += (
                " A télétransmission mailbox never refuses a return: when full, it moves its "
                f"oldest acknowledged lots older than {retention_days} days to the folder "
                f"'{ARCHIVE_FOLDER}', outside the quota."
            )
        else:
            fr += " Au-delà de son quota, elle refusera les nouveaux messages."
            en += " Past its quota, it will refuse new messages."
    fr += (
        " Supprimez des messages anciens (et videz la corbeille) ou demandez à l'administrateur "
        "du cabinet d'augmenter le quota."
    )
    en += " Delete old messages (and empty the Trash) or ask the practice's admin for more."
    return subject, fr, en


def notice_message(app: App, to: str, subject: str, fr: str, en: str) -> bytes:
    """A plain-text notice from the server (French, then English)."""
    host = app.settings.hostname
    headers = [
        ("From", formataddr(("Caducée", f"no-reply@{host}"))),
        ("To", to),
        ("Subject", Header(subject, "utf-8").encode()),
        ("Date", format_datetime(datetime.now(UTC))),
        ("Message-ID", make_msgid(domain=host)),
        ("Auto-Submitted", "auto-generated"),
        ("MIME-Version", "1.0"),
        ("Content-Type", 'text/plain; charset="utf-8"'),
        ("Content-Transfer-Encoding", "8bit"),
    ]
    head = "".join(f"{name}: {value}\r\n" for name, value in headers)
    body = f"Bonjour,\r\n\r\n{fr}\r\n\r\n-- \r\nCaducée\r\n\r\n{en}\r\n"
    return (f"Return-Path: <>\r\n{head}\r\n{body}").encode()


async def deliver_notice(
    app: App, box: Mailbox, to: str, message: bytes, *, source: str = "quota"
) -> None:
    """Store a notice about ``box`` in the Inbox of the personal mailbox ``to`` (audited from
    ``source``, past its quota if need be: it may tell of the quota)."""
    [result] = await store_batch(
        app,
        [
            Delivery(
                message,
                addresses=[to],
                audit_actor="system",
                audit_source=source,
                past_quota=True,
            )
        ],
    )
    if isinstance(result, CaduceeError):
        log.warning("quota notice not delivered mailbox_id=%d reason=%s", box.id, result.en)


async def owner_address(app: App, box: Mailbox) -> str | None:
    """The owner's personal mailbox, where notices about ``box`` go (None: none usable)."""
    async with app.db.read() as conn:
        owner = await directory_repo.account_by_id(conn, box.owner_account_id)
        personal = await directory_repo.mailbox_by_address(conn, owner.login) if owner else None
    if personal is None or personal.disabled:
        return None
    return personal.address


async def check(app: App, mailbox_ids: Iterable[int]) -> int:
    """Compare each mailbox's usage with the threshold its owner was told of: raise it with a
    notice, or lower it silently. Returns how many notices were sent."""
    sent = 0
    for mailbox_id in sorted(set(mailbox_ids)):
        async with app.db.write() as conn:
            box = await directory_repo.mailbox_by_id(conn, mailbox_id)
            if box is None:
                continue
            told = await directory_repo.quota_notified(conn, mailbox_id)
            level = quota_level(box.used_bytes, box.quota_bytes)
            if level == told or not await directory_repo.set_quota_notified(
                conn, mailbox_id, told, level
            ):
                continue
        if level < told or box.disabled:
            continue
        to = await owner_address(app, box)
        if to is None:
            continue
        subject, fr, en = notice_text(box, level, app.settings.tlt_retention_days)
        await deliver_notice(app, box, to, notice_message(app, to, subject, fr, en))
        sent += 1
    return sent


async def sweep(app: App) -> int:
    """The maintenance task: :func:`check` every mailbox at the first threshold or more, and
    every one whose owner was told of one."""
    async with app.db.read() as conn:
        ids = await directory_repo.quota_watched(conn, QUOTA_THRESHOLDS[0])
    return await check(app, ids)


class QuotaNotices:
    """The node's background checks of mailboxes a group commit took across a threshold."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.tasks: set[asyncio.Task[int]] = set()

    def schedule(self, mailbox_ids: Iterable[int]) -> None:
        task = asyncio.create_task(self._check(list(mailbox_ids)), name="quota-notices")
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _check(self, mailbox_ids: list[int]) -> int:
        try:
            return await check(self.app, mailbox_ids)
        except Exception:  # the sweep catches up
            log.exception("quota notices failed")
            return 0

    async def drain(self) -> None:
        """Wait for the checks under way (tests, shutdown)."""
        while self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)

    async def close(self) -> None:
        await self.drain()


def notices(app: App) -> QuotaNotices:
    return app.component(QuotaNotices, QuotaNotices)
