"""Deleting a mailbox or an account (issue 19), the one rule every door calls (CLI, admin
console, REST API).

A deletion is confirmed by typing the address again (``confirm``), and audited (content-free:
the address, its type, how many messages; the audit trail itself stays). It begins by
crypto-shredding: the mailbox's data key is destroyed in the same transaction that marks the
mailbox deleted (``mailboxes.deleted_at``), and forgotten by this node's keyring, so every blob
and sealed field of the mailbox is unreadable from that commit on — on this node, on the other
nodes (their cached key aside, for the seconds of the purge), and in any copy of the blob files.
Backups taken before keep the key until they rotate out (docs/security.md). Then its rows are
removed, a batch at a time (a big mailbox never holds one huge transaction), and its blob files
with the blob store's removal; the practice's mailbox count is freed when the mailbox row goes.
A deletion interrupted (a crash) is finished by :func:`finish_deletions` (maintenance, or the
same command run again).

A télétransmission mailbox holding a lot or a return younger than ``[teletransmission]
retention_days`` cannot be deleted yet: :class:`RetentionHold` says why and from when.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from caducee.app import App
from caducee.domain.addresses import normalize_address
from caducee.domain.model import Mailbox, MailboxType, Role
from caducee.errors import AccessDenied, InvalidInput, RetentionHold
from caducee.services import audit, messages
from caducee.services.events import mailbox_events
from caducee.services.mailboxes import unknown_account, unknown_mailbox
from caducee.store import directory_repo, lifecycle_repo
from caducee.store.connection import AsyncConnection
from caducee.store.keyring import mailbox_scope

log = logging.getLogger(__name__)

#: Rows removed per transaction while a mailbox is purged.
BATCH = 500


@dataclass(frozen=True)
class Deleted:
    address: str
    messages: int


def check_confirmation(address: str, confirm: str) -> None:
    """The address typed again, exactly (whitespace and case aside)."""
    try:
        typed = normalize_address(confirm)
    except InvalidInput:
        typed = ""
    if typed != address:
        raise InvalidInput(
            f"Pour confirmer la suppression, saisissez l'adresse {address} à l'identique.",
            f"To confirm the deletion, type the address {address} exactly.",
        )


async def _refuse_if_retained(
    app: App, conn: AsyncConnection, mailbox: Mailbox, now: datetime
) -> None:
    """A TLT mailbox keeps its lots and returns ``retention_days``: refuse until then."""
    if mailbox.type is not MailboxType.TLT:
        return
    days = app.settings.tlt_retention_days
    held: dict[int, datetime] = {}
    for folder_id in await lifecycle_repo.folder_ids(conn, mailbox.id):
        held.update(await messages.held_in_folder(app, conn, folder_id, now))
    latest = await lifecycle_repo.latest_lot(conn, mailbox.id)
    if latest is not None and latest + timedelta(days=days) > now:
        held[0] = max(held.get(0, latest), latest + timedelta(days=days))
    if held:
        raise messages.retention_hold(mailbox.address, held, days)


async def retention_of(app: App, mailbox: Mailbox, now: datetime) -> RetentionHold | None:
    """The retention holding a mailbox back from deletion at ``now`` (None: none)."""
    async with app.db.read() as conn:
        try:
            await _refuse_if_retained(app, conn, mailbox, now)
        except RetentionHold as hold:
            return hold
    return None


async def delete_mailbox(
    app: App,
    address: str,
    *,
    confirm: str,
    actor: str = "cli",
    source: str = "cli",
    now: datetime | None = None,
    allow_personal: bool = False,
) -> Deleted:
    """Delete a mailbox for good: data key first, then rows and blobs (see the module).

    A personal mailbox goes with its account (:func:`delete_account`) unless
    ``allow_personal`` (that function's own call).
    """
    address = normalize_address(address)
    check_confirmation(address, confirm)
    now = now or datetime.now(UTC)
    async with app.db.write() as conn:
        mailbox = await directory_repo.mailbox_by_address(conn, address)
        if mailbox is None:
            raise unknown_mailbox(address)
        count = await lifecycle_repo.count_messages(conn, mailbox.id)
        if await lifecycle_repo.deleted_at(conn, mailbox.id) is None:
            owner = await directory_repo.account_by_id(conn, mailbox.owner_account_id)
            if not allow_personal and owner is not None and owner.login == address:
                raise InvalidInput(
                    f"{address} est la boîte personnelle du compte {address} : supprimez le "
                    f"compte (caducee user delete {address}).",
                    f"{address} is the personal mailbox of account {address}: delete the "
                    f"account (caducee user delete {address}).",
                )
            await _refuse_if_retained(app, conn, mailbox, now)
            await lifecycle_repo.mark_deleted(conn, mailbox.id, now)
            await audit.append(
                conn,
                audit.AuditEvent(
                    actor=actor,
                    action="mailbox.delete",
                    target=address,
                    source=source,
                    details={"type": mailbox.type.value, "messages": count},
                ),
            )
    app.keyring.forget(mailbox_scope(mailbox.id))
    # Its open IMAP and POP3 sessions end now, on every worker of every node.
    await mailbox_events(app).publish_cut(mailbox_ids=[mailbox.id])
    await _purge(app, mailbox.id)
    return Deleted(address, count)


async def _purge(app: App, mailbox_id: int) -> None:
    """Remove a deleted mailbox's rows and blobs, a batch per transaction, then the mailbox."""
    while True:
        async with app.db.write() as conn:
            removed, gone = await lifecycle_repo.delete_messages_batch(conn, mailbox_id, BATCH)
            await app.blobs.forget(conn, gone)
        await app.blobs.remove_files(gone)  # after the commit: a crash leaves an orphan only
        if not removed:
            break
    while True:
        async with app.db.write() as conn:
            if not await lifecycle_repo.delete_trace_batch(conn, mailbox_id, BATCH):
                break
    async with app.db.write() as conn:
        gone = await lifecycle_repo.delete_mailbox_row(conn, mailbox_id)
        await app.blobs.forget(conn, gone)
    await app.blobs.remove_files(gone)


async def finish_deletions(app: App) -> int:
    """Finish the deletions a crash interrupted (maintenance): how many."""
    async with app.db.read() as conn:
        pending = await lifecycle_repo.being_deleted(conn)
    for mailbox_id in pending:
        app.keyring.forget(mailbox_scope(mailbox_id))
        await _purge(app, mailbox_id)
    return len(pending)


async def delete_account(
    app: App,
    login: str,
    *,
    confirm: str,
    actor: str = "cli",
    source: str = "cli",
    now: datetime | None = None,
) -> Deleted:
    """Delete an account with its personal mailbox (as :func:`delete_mailbox`), its
    delegations, app passwords, API tokens, web sessions and second factors. Refused for the
    last administrator of a practice, and while it owns other mailboxes (shared, TLT...):
    delete them or give them to someone else first."""
    login = normalize_address(login)
    check_confirmation(login, confirm)
    async with app.db.read() as conn:
        account = await directory_repo.account_by_login(conn, login)
        if account is None:
            raise unknown_account(login)
        if account.role is Role.ADMIN and not await lifecycle_repo.other_admins(
            conn, account.practice_id, account.id
        ):
            raise AccessDenied(
                f"{login} est le dernier administrateur actif de son cabinet : nommez-en un "
                "autre avant de supprimer ce compte.",
                f"{login} is the last enabled administrator of its practice: appoint another "
                "before deleting this account.",
            )
        if actor.strip().lower() == login:  # from every door: console, API
            raise InvalidInput(
                "Vous ne pouvez pas supprimer votre propre compte.",
                "You cannot delete your own account.",
            )
        owned = [
            box
            for box in await directory_repo.list_mailboxes(conn, account.practice_id)
            if box.owner_account_id == account.id and box.address != login
        ]
    if owned:
        names = ", ".join(box.address for box in owned)
        raise InvalidInput(
            f"Le compte {login} est titulaire d'autres boîtes ({names}) : supprimez-les ou "
            "confiez-les à un autre compte d'abord.",
            f"Account {login} owns other mailboxes ({names}): delete them or give them to "
            "another account first.",
        )
    deleted = Deleted(login, 0)
    async with app.db.read() as conn:
        personal = await directory_repo.mailbox_by_address(conn, login)
    if personal is not None:
        deleted = await delete_mailbox(
            app, login, confirm=login, actor=actor, source=source, now=now, allow_personal=True
        )
    async with app.db.write() as conn:
        await lifecycle_repo.delete_account_rows(conn, account.id)
        await audit.append(
            conn,
            audit.AuditEvent(
                actor=actor,
                action="account.delete",
                target=login,
                source=source,
                details={"role": account.role.value, "messages": deleted.messages},
            ),
        )
    await mailbox_events(app).publish_cut(account_ids=[account.id])
    return deleted
