"""Accounts (people): identity, identifiers, role, password; each has a personal mailbox."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from caducee.app import App
from caducee.domain.addresses import normalize_address
from caducee.domain.identifiers import normalize_adeli, normalize_rpps
from caducee.domain.model import Account, Mailbox, MailboxType, Role
from caducee.errors import AlreadyExists, InvalidInput
from caducee.services import web_sessions
from caducee.services.audit import AuditEvent, append
from caducee.services.events import mailbox_events
from caducee.services.mailboxes import create_mailbox_in, practice_for_address, unknown_account
from caducee.services.passwords import check_strength, hash_password
from caducee.store import directory_repo as repo

MAX_NAME = 100


@dataclass(frozen=True)
class NewAccount:
    login: str
    last_name: str
    role: Role
    password: str
    first_name: str = ""
    civility: str = ""
    profession: str = ""
    rpps: str | None = None
    adeli: str | None = None
    quota_bytes: int | None = None


def split_name(full_name: str) -> tuple[str, str]:
    """``"Jeanne Martin"`` → (first, last); a single word is a last name."""
    parts = full_name.strip().split(maxsplit=1)
    if len(parts) == 2:
        return parts[0], parts[1]
    return "", parts[0] if parts else ""


def _check_text(value: str, what_fr: str, what_en: str, required: bool) -> str:
    value = " ".join(value.split())
    if (required and not value) or len(value) > MAX_NAME or any(c in value for c in '<>"@'):
        raise InvalidInput(
            f"{what_fr} invalide : {'obligatoire, ' if required else ''}{MAX_NAME} caractères au "
            'plus, sans < > " @.',
            f"Invalid {what_en}: {'required, ' if required else ''}at most {MAX_NAME} characters, "
            'without < > " @.',
        )
    return value


async def add_account(
    app: App, new: NewAccount, *, actor: str = "cli", source: str = "cli"
) -> tuple[Account, Mailbox]:
    """Create an account and its personal (PER) mailbox, whose address is the login."""
    login = normalize_address(new.login)
    last_name = _check_text(new.last_name, "Nom", "last name", required=True)
    first_name = _check_text(new.first_name, "Prénom", "first name", required=False)
    civility = _check_text(new.civility, "Civilité", "civility", required=False)
    profession = _check_text(new.profession, "Profession", "profession", required=False)
    rpps = normalize_rpps(new.rpps) if new.rpps else None
    adeli = normalize_adeli(new.adeli) if new.adeli else None
    if rpps and adeli:
        raise InvalidInput(
            "Indiquez un numéro RPPS ou un numéro ADELI, pas les deux.",
            "Give an RPPS or an ADELI number, not both.",
        )
    check_strength(new.password, login)
    password_hash = hash_password(new.password)
    async with app.db.write() as conn:
        practice = await practice_for_address(conn, login)
        if await repo.account_by_login(conn, login) or await repo.mailbox_by_address(conn, login):
            raise AlreadyExists(
                f"L'adresse {login} existe déjà.", f"Address {login} already exists."
            )
        for column, value, label in (("rpps", rpps, "RPPS"), ("adeli", adeli, "ADELI")):
            if value and await repo.account_exists_with(conn, column, value):
                raise AlreadyExists(
                    f"Le numéro {label} {value} est déjà celui d'un autre compte.",
                    f"{label} number {value} already belongs to another account.",
                )
        account_id = await repo.insert_account(
            conn,
            practice_id=practice.id,
            login=login,
            civility=civility,
            last_name=last_name,
            first_name=first_name,
            profession=profession,
            rpps=rpps,
            adeli=adeli,
            role=new.role.value,
            disabled=False,
            password_hash=password_hash,
            totp_enabled=False,
        )
        account = await repo.account_by_id(conn, account_id)
        assert account is not None
        mailbox = await create_mailbox_in(
            app, conn, practice, login, MailboxType.PER, account, new.quota_bytes
        )
        await append(
            conn,
            AuditEvent(
                actor=actor,
                action="account.create",
                target=login,
                source=source,
                details={"role": new.role.value},
            ),
        )
    return account, mailbox


async def get_account(app: App, login: str) -> Account:
    login = normalize_address(login)
    async with app.db.read() as conn:
        account = await repo.account_by_login(conn, login)
    if account is None:
        raise unknown_account(login)
    return account


async def list_accounts(app: App, practice_id: int | None = None) -> list[Account]:
    async with app.db.read() as conn:
        return await repo.list_accounts(conn, practice_id)


async def set_disabled(
    app: App, login: str, disabled: bool, *, actor: str = "cli", source: str = "cli"
) -> Account:
    """Disable or enable an account, from every door (CLI, admin console). Audited.

    A disabled account is refused at once everywhere: web logins and open web sessions (at
    their next request), open IMAP and POP3 sessions (cut: ``services.events``), app
    passwords on IMAP, POP3 and SMTP, its mailboxes' own logins, API
    tokens, delegations it holds — each check reads the column on every use. Its web sessions
    are ended too, so enabling it again does not bring them back.
    """
    login = normalize_address(login)
    if disabled and actor.strip().lower() == login:  # from every door: console, API
        raise InvalidInput(
            "Vous ne pouvez pas désactiver votre propre compte.",
            "You cannot disable your own account.",
        )
    async with app.db.write() as conn:
        account = await repo.account_by_login(conn, login)
        if account is None:
            raise unknown_account(login)
        await repo.update_account(conn, account.id, disabled=disabled)
        await append(
            conn,
            AuditEvent(
                actor=actor,
                action="account.disable" if disabled else "account.enable",
                target=login,
                source=source,
            ),
        )
        updated = await repo.account_by_id(conn, account.id)
    assert updated is not None
    if disabled:
        await web_sessions.end_all_sessions(
            app, updated, actor=actor, source=source, reason="disabled"
        )
        # Its open IMAP and POP3 sessions end at once, on every worker of every node.
        await mailbox_events(app).publish_cut(account_ids=[updated.id])
    return updated


async def set_password(
    app: App, login: str, password: str, *, actor: str = "cli", source: str = "cli"
) -> None:
    login = normalize_address(login)
    check_strength(password, login)
    password_hash = hash_password(password)
    async with app.db.write() as conn:
        account = await repo.account_by_login(conn, login)
        if account is None:
            raise unknown_account(login)
        await repo.update_account(
            conn, account.id, password_hash=password_hash, password_changed_at=datetime.now(UTC)
        )
        await append(
            conn, AuditEvent(actor=actor, action="account.password", target=login, source=source)
        )
