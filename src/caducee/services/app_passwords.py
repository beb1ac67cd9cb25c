"""App passwords: one random password per mail client (IMAP, POP3, SMTP), shown once.

Mail protocols accept only app passwords (see :func:`caducee.services.auth.authenticate_mail`):
the account password and its second factor stay on the web. An app password is 28 symbols
from a 31-symbol alphabet without look-alikes (no i, l, o, 0, 1), in four groups of seven:
28 × log2(31) ≈ 138.7 bits of entropy. Being that random, it is stored as a plain SHA-256
(a slow hash adds nothing against guessing 2**138 values); the password itself is never
stored, logged or audited. Dashes, spaces and case are ignored when it is typed.

App passwords belong either to an account (its login opens the account) or to a mailbox that
is not an account's personal one — TLT, ORG, APP, delegated or not — whose address is then a
login of its own, opening that one mailbox (issue 15: the billing software of a TLT mailbox).
The two never mix: an account's app password does not open its mailboxes' logins, nor the
reverse. Who may manage them is checked here, not only by the pages: the account itself or an
admin of its practice for an account's; the mailbox's owner or an admin of its practice for a
mailbox's; the node's operator (command line) for both. Every creation and revocation is
audited with who did it, and the creator's login is kept with the password.
"""

from __future__ import annotations

import hashlib
import secrets
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from caducee.app import App
from caducee.domain.model import Account, Mailbox, Role
from caducee.errors import AccessDenied, InvalidInput, LimitReached, NotFound
from caducee.services import audit
from caducee.services.audit import AuditEvent
from caducee.services.lockout import normalize_login, normalize_source, utcnow
from caducee.store import auth_repo, directory_repo
from caducee.store.connection import AsyncConnection

MAIL_SCOPES: frozenset[str] = frozenset({"imap", "pop3", "smtp"})
ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # 31 symbols: no i, l, o, 0, 1
GROUPS = 4
GROUP_LENGTH = 7
MAX_LABEL_LENGTH = 100
MAX_ACTIVE = 50  # each mail login compares against every active one


def generate_app_password() -> str:
    """A new random app password, e.g. ``k7pq2xm-a9dfr3w-...`` (≈ 138.7 bits)."""
    return "-".join(
        "".join(secrets.choice(ALPHABET) for _ in range(GROUP_LENGTH)) for _ in range(GROUPS)
    )


def normalize_app_password(text: str) -> str:
    """What is hashed: the symbols only, in lower case (dashes and spaces are for reading)."""
    return "".join(c for c in text.lower() if c not in "- \t")


def app_password_digest(text: str) -> str:
    """The SHA-256 (hex) stored for an app password."""
    return hashlib.sha256(normalize_app_password(text).encode("utf-8")).hexdigest()


def parse_scopes(scopes: Iterable[str]) -> tuple[str, ...]:
    """Validated, sorted, de-duplicated scopes (imap, pop3, smtp)."""
    chosen = {s.strip().lower() for s in scopes if s.strip()}
    unknown = sorted(chosen - MAIL_SCOPES)
    if unknown:
        names = ", ".join(unknown)
        raise InvalidInput(
            f"Protocole inconnu : {names}. Choisissez parmi imap, pop3 et smtp.",
            f"Unknown protocol: {names}. Choose among imap, pop3 and smtp.",
        )
    if not chosen:
        raise InvalidInput(
            "Indiquez au moins un protocole : imap, pop3 ou smtp.",
            "Give at least one protocol: imap, pop3 or smtp.",
        )
    return tuple(sorted(chosen))


def check_label(label: str) -> str:
    """The label, trimmed; 1 to 100 printable characters."""
    label = label.strip()
    if not label:
        raise InvalidInput(
            "Donnez un libellé au mot de passe d'application (par exemple « Thunderbird "
            "cabinet »), pour le reconnaître et le révoquer plus tard.",
            "Give the app password a label (for example 'Office Thunderbird'), to recognise "
            "and revoke it later.",
        )
    if len(label) > MAX_LABEL_LENGTH:
        raise InvalidInput(
            f"Libellé trop long : {MAX_LABEL_LENGTH} caractères au plus (il en a {len(label)}).",
            f"Label too long: at most {MAX_LABEL_LENGTH} characters (it has {len(label)}).",
        )
    if any(unicodedata.category(c).startswith("C") for c in label):
        raise InvalidInput(
            "Le libellé ne doit pas contenir de caractères de contrôle.",
            "The label must not contain control characters.",
        )
    return label


@dataclass(frozen=True)
class AppPasswordInfo:
    """What may be shown about an app password (never the secret nor its hash)."""

    id: int
    label: str
    scopes: tuple[str, ...]
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
    created_by: str | None = None  # the login of who created it (None: before migration 0021)

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


#: The actor of a command-line call: the node's operator, who may manage every app password.
OPERATOR = "cli"

#: Who manages app passwords: an account (its rights are checked) or, as a string, the node's
#: operator on the command line (trusted as every ``caducee`` command is).
Actor = Account | str


def account_not_found(login: str) -> NotFound:
    return NotFound(
        f"Compte « {login} » introuvable. Vérifiez l'adresse (« caducee user list »).",
        f"Account '{login}' not found. Check the address ('caducee user list').",
    )


def login_not_found(login: str) -> NotFound:
    return NotFound(
        f"Compte ou boîte aux lettres « {login} » introuvable. Vérifiez l'adresse (« caducee "
        "user list », « caducee mailbox list »).",
        f"Account or mailbox '{login}' not found. Check the address ('caducee user list', "
        "'caducee mailbox list').",
    )


def not_allowed(login: str) -> AccessDenied:
    return AccessDenied(
        f"Vous ne pouvez pas gérer les mots de passe d'application de {login} : seuls son "
        "titulaire et un administrateur de son cabinet le peuvent.",
        f"You may not manage the app passwords of {login}: only its owner and an admin of its "
        "practice may.",
    )


@dataclass(frozen=True)
class Target:
    """Whose app passwords a login names: an account's own, or a mailbox's."""

    login: str
    holder: auth_repo.Holder
    owner: Account  # the account itself, or the mailbox's owner
    mailbox: Mailbox | None  # None: the account's own app passwords


async def find_target(conn: AsyncConnection, login: str) -> Target | None:
    """``login`` (normalised) as an account's login, else as the address of a mailbox that is
    no account's login (TLT, ORG, APP, ...); None when it is neither."""
    account = await directory_repo.account_by_login(conn, login)
    if account is not None:
        return Target(login, auth_repo.Holder(account.id), account, None)
    mailbox = await directory_repo.mailbox_by_address(conn, login)
    if mailbox is None:
        return None
    owner = await directory_repo.account_by_id(conn, mailbox.owner_account_id)
    if owner is None:  # pragma: no cover - the foreign key forbids it
        return None
    return Target(login, auth_repo.Holder(owner.id, mailbox.id), owner, mailbox)


async def _may_manage(conn: AsyncConnection, actor: Actor, target: Target) -> bool:
    """The rule, with the actor's account as it is now (role, disabled), not as a web
    session once loaded it."""
    if isinstance(actor, str):
        return True  # the node's operator
    current = await directory_repo.account_by_id(conn, actor.id)
    if current is None or current.disabled:
        return False
    practice_id = target.mailbox.practice_id if target.mailbox else target.owner.practice_id
    owner_id = target.mailbox.owner_account_id if target.mailbox else target.owner.id
    return current.id == owner_id or (
        current.role is Role.ADMIN and current.practice_id == practice_id
    )


def actor_login(actor: Actor) -> str:
    return actor if isinstance(actor, str) else actor.login


async def _authorized_target(
    conn: AsyncConnection, login: str, actor: Actor, action: str, source: str
) -> Target | None:
    """The target, or None after auditing a refusal (the caller raises once the transaction
    that holds that audit record has committed)."""
    target = await find_target(conn, login)
    if target is None:
        raise login_not_found(login)
    if await _may_manage(conn, actor, target):
        return target
    await audit.append(
        conn,
        AuditEvent(
            actor=actor_login(actor),
            action=action,
            target=login,
            source=normalize_source(source),
            result="denied",
        ),
    )
    return None


async def create_app_password(
    app: App,
    login: str,
    label: str,
    scopes: Iterable[str] = MAIL_SCOPES,
    actor: Actor = OPERATOR,
    *,
    source: str = "cli",
    now: datetime | None = None,
) -> str:
    """Create an app password for ``login`` — an account's login, or the address of a mailbox
    that is not an account's (its own login then) — and return it, the only time it can be
    read. ``actor`` must be allowed to manage ``login``'s app passwords (see the module)."""
    login = normalize_login(login)
    label = check_label(label)
    chosen = parse_scopes(scopes)
    now = now or utcnow()
    password = generate_app_password()
    new_id: int | None = None
    async with app.db.write() as conn:
        target = await _authorized_target(conn, login, actor, "app_password.create", source)
        if target is not None:
            if await auth_repo.count_active_app_passwords(conn, target.holder) >= MAX_ACTIVE:
                what_fr = "Cette boîte" if target.mailbox else "Ce compte"
                what_en = "This mailbox" if target.mailbox else "This account"
                raise LimitReached(
                    f"{what_fr} a déjà {MAX_ACTIVE} mots de passe d'application actifs : "
                    "révoquez ceux qui ne servent plus (« caducee app-password list » puis "
                    "« revoke »).",
                    f"{what_en} already has {MAX_ACTIVE} active app passwords: revoke unused "
                    "ones ('caducee app-password list', then 'revoke').",
                )
            new_id = await auth_repo.insert_app_password(
                conn,
                target.holder,
                label,
                app_password_digest(password),
                ",".join(chosen),
                now,
                actor_login(actor),
            )
            await audit.append(
                conn,
                AuditEvent(
                    actor=actor_login(actor),
                    action="app_password.create",
                    target=login,
                    source=normalize_source(source),
                    result="ok",
                    details={
                        "id": new_id,
                        "label": label,
                        "scopes": ",".join(chosen),
                        "kind": "mailbox" if target.mailbox else "account",
                    },
                ),
            )
    if new_id is None:
        raise not_allowed(login)
    return password


async def list_app_passwords(
    app: App, login: str, actor: Actor = OPERATOR
) -> list[AppPasswordInfo]:
    """Every app password of ``login`` (an account's or a mailbox's; revoked ones too),
    oldest first."""
    login = normalize_login(login)
    async with app.db.read() as conn:
        target = await find_target(conn, login)
        if target is None:
            raise login_not_found(login)
        if not await _may_manage(conn, actor, target):
            raise not_allowed(login)
        rows = await auth_repo.app_passwords_of(conn, target.holder)
    return [
        AppPasswordInfo(
            id=row.id,
            label=row.label,
            scopes=tuple(s for s in row.scopes.split(",") if s),
            created_at=row.created_at,
            last_used_at=row.last_used_at,
            revoked_at=row.revoked_at,
            created_by=row.created_by,
        )
        for row in rows
    ]


async def revoke_app_password(
    app: App,
    login: str,
    app_password_id: int,
    actor: Actor,
    *,
    source: str = "cli",
    now: datetime | None = None,
) -> None:
    """Revoke one app password of ``login``: mail clients using it are refused from now on."""
    login = normalize_login(login)
    now = now or utcnow()
    async with app.db.write() as conn:
        target = await _authorized_target(conn, login, actor, "app_password.revoke", source)
        if target is not None:
            rows = {row.id: row for row in await auth_repo.app_passwords_of(conn, target.holder)}
            row = rows.get(app_password_id)
            if row is None:
                raise NotFound(
                    f"{login} n'a pas de mot de passe d'application n° {app_password_id} "
                    "(voir « caducee app-password list »).",
                    f"{login} has no app password #{app_password_id} "
                    "(see 'caducee app-password list').",
                )
            if row.revoked_at is not None:
                raise InvalidInput(
                    f"Le mot de passe d'application n° {app_password_id} est déjà révoqué.",
                    f"App password #{app_password_id} is already revoked.",
                )
            await auth_repo.revoke_app_password(conn, target.holder, app_password_id, now)
            await audit.append(
                conn,
                AuditEvent(
                    actor=actor_login(actor),
                    action="app_password.revoke",
                    target=login,
                    source=normalize_source(source),
                    result="ok",
                    details={"id": app_password_id, "label": row.label},
                ),
            )
    if target is None:
        raise not_allowed(login)


async def mailbox_logins(
    app: App, *, practice_id: int | None = None, owner: Account | None = None
) -> list[Mailbox]:
    """The mailboxes that may have app passwords of their own (their address is no account's
    login), of a practice (its admin's console) or of an owner (their account page)."""
    async with app.db.read() as conn:
        return await directory_repo.mailbox_logins(
            conn,
            practice_id=practice_id,
            owner_account_id=owner.id if owner is not None else None,
        )
