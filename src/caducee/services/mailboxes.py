"""Mailboxes (PER, ORG, APP, TLT), their quota, and delegations of access to them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar, cast

from caducee.app import App
from caducee.domain.addresses import domain_of, normalize_address
from caducee.domain.model import Account, Delegation, Folder, Mailbox, MailboxType, Practice
from caducee.errors import AccessDenied, AlreadyExists, InvalidInput, LimitReached, NotFound
from caducee.services import last_use
from caducee.services.audit import AuditEvent, append
from caducee.services.events import mailbox_events
from caducee.store import directory_repo as repo
from caducee.store.connection import AsyncConnection
from caducee.store.keyring import mailbox_scope

T = TypeVar("T")

MAX_QUOTA = 10 * 1024**4  # 10 TiB: anything larger is a typo


def unknown_mailbox(address: str) -> NotFound:
    return NotFound(f"Boîte aux lettres inconnue : {address}.", f"Unknown mailbox: {address}.")


def unknown_account(login: str) -> NotFound:
    return NotFound(f"Compte inconnu : {login}.", f"Unknown account: {login}.")


def check_quota(quota_bytes: int) -> int:
    if not 1024 * 1024 <= quota_bytes <= MAX_QUOTA:
        raise InvalidInput(
            "Quota invalide : entre 1 Mo et 10 To.", "Invalid quota: between 1 MB and 10 TB."
        )
    return quota_bytes


async def practice_for_address(conn: AsyncConnection, address: str) -> Practice:
    domain = domain_of(address)
    practice_id = await repo.domain_owner(conn, domain)
    practice = await repo.get_practice(conn, practice_id, for_update=True) if practice_id else None
    if practice is None:
        raise NotFound(
            f"Domaine inconnu : {domain} n'appartient à aucun cabinet de cette installation. "
            "Ajoutez-le avec « caducee practice update --add-domain ».",
            f"Unknown domain: {domain} belongs to no practice of this installation. "
            "Add it with 'caducee practice update --add-domain'.",
        )
    return practice


async def create_mailbox_in(
    app: App,
    conn: AsyncConnection,
    practice: Practice,
    address: str,
    mailbox_type: MailboxType,
    owner: Account,
    quota_bytes: int | None,
) -> Mailbox:
    """Create a mailbox, its data key and its default folders in the caller's transaction.

    The caller holds the practice row locked (``practice_for_address``), so two concurrent
    creations cannot both pass the limit.
    """
    if owner.practice_id != practice.id:
        raise InvalidInput(
            f"Le titulaire {owner.login} n'appartient pas au cabinet du domaine "
            f"{domain_of(address)}.",
            f"Owner {owner.login} does not belong to the practice of {domain_of(address)}.",
        )
    if await repo.mailbox_by_address(conn, address) is not None:
        raise AlreadyExists(
            f"L'adresse {address} existe déjà.", f"Address {address} already exists."
        )
    count = await repo.count_mailboxes(conn, practice.id)
    if count >= practice.mailbox_limit:
        raise LimitReached(
            f"Le cabinet « {practice.name} » a atteint sa limite de {practice.mailbox_limit} "
            f"boîtes aux lettres ({count} existantes). Supprimez une boîte inutilisée (caducee "
            "mailbox delete ADRESSE, ou sa page dans la console d'administration) ou faites "
            "relever la limite par l'administrateur (caducee practice update --mailbox-limit).",
            f"Practice '{practice.name}' has reached its limit of {practice.mailbox_limit} "
            f"mailboxes ({count} exist). Delete an unused mailbox (caducee mailbox delete ADDRESS, "
            "or its page in the admin console) or have the administrator raise the limit "
            "(caducee practice update --mailbox-limit).",
        )
    quota = check_quota(
        quota_bytes if quota_bytes is not None else app.settings.default_quota_bytes
    )
    mailbox_id = await repo.insert_mailbox(
        conn, practice.id, address, mailbox_type, owner.id, quota
    )
    await app.keyring.create_data_key(conn, mailbox_scope(mailbox_id))
    await repo.insert_default_folders(conn, mailbox_id)
    mailbox = await repo.mailbox_by_id(conn, mailbox_id)
    assert mailbox is not None
    return mailbox


async def add_mailbox(
    app: App,
    address: str,
    mailbox_type: MailboxType,
    owner_login: str,
    *,
    quota_bytes: int | None = None,
    actor: str = "cli",
    source: str = "cli",
) -> Mailbox:
    address = normalize_address(address)
    owner_login = normalize_address(owner_login)
    async with app.db.write() as conn:
        practice = await practice_for_address(conn, address)
        owner = await repo.account_by_login(conn, owner_login)
        if owner is None:
            raise unknown_account(owner_login)
        mailbox = await create_mailbox_in(
            app, conn, practice, address, mailbox_type, owner, quota_bytes
        )
        await append(
            conn,
            AuditEvent(
                actor=actor,
                action="mailbox.create",
                target=address,
                source=source,
                details={"type": mailbox_type.value, "owner": owner_login},
            ),
        )
    return mailbox


async def get_mailbox(app: App, address: str) -> Mailbox:
    address = normalize_address(address)
    async with app.db.read() as conn:
        mailbox = await repo.mailbox_by_address(conn, address)
    if mailbox is None:
        raise unknown_mailbox(address)
    return mailbox


async def list_mailboxes(app: App, practice_id: int | None = None) -> list[Mailbox]:
    async with app.db.read() as conn:
        return await repo.list_mailboxes(conn, practice_id)


async def list_folders(app: App, mailbox_id: int) -> list[Folder]:
    async with app.db.read() as conn:
        return await repo.list_folders(conn, mailbox_id)


async def set_quota(
    app: App, address: str, quota_bytes: int, *, actor: str = "cli", source: str = "cli"
) -> Mailbox:
    address = normalize_address(address)
    check_quota(quota_bytes)
    async with app.db.write() as conn:
        mailbox = await repo.mailbox_by_address(conn, address)
        if mailbox is None:
            raise unknown_mailbox(address)
        await repo.update_mailbox(conn, mailbox.id, quota_bytes=quota_bytes)
        await append(
            conn,
            AuditEvent(
                actor=actor,
                action="mailbox.quota",
                target=address,
                source=source,
                details={"quota_bytes": quota_bytes},
            ),
        )
        updated = await repo.mailbox_by_id(conn, mailbox.id)
    assert updated is not None
    return updated


async def set_mailbox_disabled(
    app: App, address: str, disabled: bool, *, actor: str = "cli", source: str = "cli"
) -> Mailbox:
    """Disable or enable a mailbox, from every door (CLI, admin console).

    A disabled mailbox is refused at once to everyone: its owner, its delegates, its own
    mailbox logins (:func:`open_mailbox` and :func:`caducee.services.auth.authenticate_mail`
    read the column on every use; open IMAP and POP3 sessions are cut: ``services.events``).
    Mail to it is still received unless ``[lifecycle] disabled_mailbox_mail = "refuse"``
    (SMTP 550 5.2.1). Audited.
    """
    address = normalize_address(address)
    async with app.db.write() as conn:
        mailbox = await repo.mailbox_by_address(conn, address)
        if mailbox is None:
            raise unknown_mailbox(address)
        await repo.update_mailbox(conn, mailbox.id, disabled=disabled)
        await append(
            conn,
            AuditEvent(
                actor=actor,
                action="mailbox.disable" if disabled else "mailbox.enable",
                target=address,
                source=source,
            ),
        )
        updated = await repo.mailbox_by_id(conn, mailbox.id)
    assert updated is not None
    if disabled:  # its open IMAP and POP3 sessions end at once, on every node
        await mailbox_events(app).publish_cut(mailbox_ids=[updated.id])
    return updated


# --- delegations -----------------------------------------------------------------------------


async def delegate(
    app: App,
    address: str,
    to_login: str,
    *,
    can_send: bool,
    actor: str = "cli",
    source: str = "cli",
) -> Delegation:
    """Grant ``to_login`` read access (and send-on-behalf if ``can_send``) to a mailbox."""
    address = normalize_address(address)
    to_login = normalize_address(to_login)
    async with app.db.write() as conn:
        mailbox = await repo.mailbox_by_address(conn, address)
        if mailbox is None:
            raise unknown_mailbox(address)
        grantee = await repo.account_by_login(conn, to_login)
        if grantee is None:
            raise unknown_account(to_login)
        if grantee.id == mailbox.owner_account_id:
            raise InvalidInput(
                f"{to_login} est déjà titulaire de {address}.",
                f"{to_login} already owns {address}.",
            )
        if grantee.practice_id != mailbox.practice_id:
            raise InvalidInput(
                f"{to_login} n'appartient pas au cabinet de {address} : une délégation reste "
                "interne au cabinet.",
                f"{to_login} does not belong to the practice of {address}: delegations stay "
                "within a practice.",
            )
        granter = await repo.account_by_login(conn, actor)
        await repo.upsert_delegation(
            conn, mailbox.id, grantee.id, can_send, granter.id if granter else None
        )
        await append(
            conn,
            AuditEvent(
                actor=actor,
                action="delegation.grant",
                target=address,
                source=source,
                details={"to": to_login, "can_send": can_send},
            ),
        )
        delegation = await repo.get_delegation(conn, mailbox.id, grantee.id)
    assert delegation is not None
    return delegation


async def revoke_delegation(
    app: App, address: str, from_login: str, *, actor: str = "cli", source: str = "cli"
) -> None:
    address = normalize_address(address)
    from_login = normalize_address(from_login)
    async with app.db.write() as conn:
        mailbox = await repo.mailbox_by_address(conn, address)
        grantee = await repo.account_by_login(conn, from_login)
        if (
            mailbox is None
            or grantee is None
            or not await repo.delete_delegation(conn, mailbox.id, grantee.id)
        ):
            raise NotFound(
                f"Aucune délégation de {address} à {from_login}.",
                f"No delegation of {address} to {from_login}.",
            )
        await append(
            conn,
            AuditEvent(
                actor=actor,
                action="delegation.revoke",
                target=address,
                source=source,
                details={"from": from_login},
            ),
        )


async def list_delegations(app: App, address: str | None = None) -> list[Delegation]:
    async with app.db.read() as conn:
        if address is None:
            return await repo.list_delegations(conn)
        mailbox = await repo.mailbox_by_address(conn, normalize_address(address))
        if mailbox is None:
            raise unknown_mailbox(address)
        return await repo.list_delegations(conn, mailbox_id=mailbox.id)


@dataclass(frozen=True)
class Access:
    """What an account may do with a mailbox, and whether it comes from a delegation."""

    mailbox: Mailbox
    account: Account  # who acts; for a mailbox login, the mailbox's owner
    can_read: bool
    can_send: bool
    delegated: bool


async def _mailbox_login_access(
    conn: AsyncConnection, login: str, mailbox: Mailbox | None
) -> Access | None:
    """What a mailbox login may do with ``mailbox``: everything if it is that mailbox (and it
    and its owner's account are enabled), else nothing. ``login`` is no account's login."""
    if mailbox is None or mailbox.address != login or mailbox.disabled:
        return None
    owner = await repo.account_by_id(conn, mailbox.owner_account_id)
    if owner is None or owner.disabled:
        return None
    return Access(mailbox, owner, True, True, delegated=False)


async def open_mailbox(
    app: App, login: str, address: str, *, need_send: bool = False, source: str = ""
) -> Access:
    """The one authorization check for using a mailbox, from every door.

    The owner has full access; a delegate has what the delegation grants; nobody else has any
    (not even admins: administering a practice is not reading its mail). A mailbox login —
    ``login`` is the address of a mailbox that is no account's login, opened with that
    mailbox's own app password (:func:`caducee.services.auth.authenticate_mail`) — has full
    access to that one mailbox and to nothing else, while the mailbox and its owner's account
    are enabled. Every use through a delegation, and every refusal, is audited.
    """
    access, _ = await open_mailbox_reading(
        app, login, address, read_nothing, need_send=need_send, source=source
    )
    return access


async def read_nothing(_conn: AsyncConnection, _mailbox: Mailbox) -> None:
    """The ``read`` of :func:`open_mailbox_reading` that reads nothing more."""
    return None


async def open_mailbox_reading(
    app: App,
    login: str,
    address: str,
    read: Callable[[AsyncConnection, Mailbox], Awaitable[T]],
    *,
    need_send: bool = False,
    source: str = "",
) -> tuple[Access, T]:
    """:func:`open_mailbox`, and ``read`` of the mailbox in the same read transaction once
    access is granted (an IMAP SELECT's folder: one transaction, not two)."""
    login = normalize_address(login)
    address = normalize_address(address)
    # The decision is read in a read transaction: an owner's use writes nothing (but the last
    # use, at most hourly), where a write transaction's commit — an fsync — was most of an
    # IMAP SELECT's time (issue 17). Delegated uses and refusals are audited in a write one.
    got: T | None = None
    async with app.db.read() as conn:
        account = await repo.account_by_login(conn, login)
        mailbox = await repo.mailbox_by_address(conn, address)
        if account is None:
            access = await _mailbox_login_access(conn, login, mailbox)
        elif account.disabled or mailbox is None or mailbox.disabled:
            access = None
        elif mailbox.owner_account_id == account.id:
            access = Access(mailbox, account, True, True, delegated=False)
        else:
            delegation = await repo.get_delegation(conn, mailbox.id, account.id)
            access = (
                Access(mailbox, account, True, delegation.can_send, delegated=True)
                if delegation
                else None
            )
        allowed = access is not None and (access.can_send or not need_send)
        if access is not None and allowed:
            got = await read(conn, access.mailbox)
    # Last use (issue 19): at most one UPDATE an hour per mailbox and account; a mailbox login
    # is a use of the mailbox, not of its owner's account.
    used_account = access.account.id if access is not None and account is not None else None
    used_mailbox = access.mailbox.id if access is not None and allowed else None
    if access is None or access.delegated or not allowed:
        async with app.db.write() as conn:
            if used_mailbox is not None:
                await last_use.note(
                    app, account_id=used_account, mailbox_id=used_mailbox, conn=conn
                )
            await append(
                conn,
                AuditEvent(
                    actor=login,
                    action="delegation.use" if access else "mailbox.access",
                    target=address,
                    source=source,
                    result="ok" if allowed else "denied",
                    details={"send": need_send},
                ),
            )
    elif used_mailbox is not None:
        await last_use.note(app, account_id=used_account, mailbox_id=used_mailbox)
    if access is None or not allowed:
        # The same answer whether the mailbox exists or not: nothing leaks.
        raise AccessDenied(
            f"Vous n'avez pas {'le droit d’envoyer depuis' if need_send else 'accès à'} "
            f"la boîte {address}.",
            f"You may not {'send from' if need_send else 'access'} mailbox {address}.",
        )
    return access, cast(T, got)  # ``read`` ran: access was granted
