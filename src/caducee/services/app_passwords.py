"""App passwords: one random password per mail client (IMAP, POP3, SMTP), shown once.

Mail protocols accept only app passwords (see :func:`caducee.services.auth.authenticate_mail`):
the account password and its second factor stay on the web. An app password is 28 symbols
from a 31-symbol alphabet without look-alikes (no i, l, o, 0, 1), in four groups of seven:
28 × log2(31) ≈ 138.7 bits of entropy. Being that random, it is stored as a plain SHA-256
(a slow hash adds nothing against guessing 2**138 values); the password itself is never
stored, logged or audited. Dashes, spaces and case are ignored when it is typed.
"""

from __future__ import annotations

import hashlib
import secrets
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from caducee.app import App
from caducee.errors import InvalidInput, LimitReached, NotFound
from caducee.services import audit
from caducee.services.audit import AuditEvent
from caducee.services.lockout import normalize_login, normalize_source, utcnow
from caducee.store import auth_repo

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

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


def account_not_found(login: str) -> NotFound:
    return NotFound(
        f"Compte « {login} » introuvable. Vérifiez l'adresse (« caducee user list »).",
        f"Account '{login}' not found. Check the address ('caducee user list').",
    )


async def create_app_password(
    app: App,
    login: str,
    label: str,
    scopes: Iterable[str] = MAIL_SCOPES,
    actor: str = "cli",
    *,
    source: str = "cli",
    now: datetime | None = None,
) -> str:
    """Create an app password for ``login``; return it (the only time it can be read)."""
    login = normalize_login(login)
    label = check_label(label)
    chosen = parse_scopes(scopes)
    now = now or utcnow()
    password = generate_app_password()
    async with app.db.write() as conn:
        creds = await auth_repo.account_credentials(conn, login)
        if creds is None:
            raise account_not_found(login)
        if await auth_repo.count_active_app_passwords(conn, creds.account.id) >= MAX_ACTIVE:
            raise LimitReached(
                f"Ce compte a déjà {MAX_ACTIVE} mots de passe d'application actifs : révoquez "
                "ceux qui ne servent plus (« caducee app-password list » puis « revoke »).",
                f"This account already has {MAX_ACTIVE} active app passwords: revoke unused "
                "ones ('caducee app-password list', then 'revoke').",
            )
        new_id = await auth_repo.insert_app_password(
            conn, creds.account.id, label, app_password_digest(password), ",".join(chosen), now
        )
        await audit.append(
            conn,
            AuditEvent(
                actor=actor,
                action="app_password.create",
                target=login,
                source=normalize_source(source),
                result="ok",
                details={"id": new_id, "label": label, "scopes": ",".join(chosen)},
            ),
        )
    return password


async def list_app_passwords(app: App, login: str) -> list[AppPasswordInfo]:
    """Every app password of ``login`` (revoked ones too), oldest first."""
    login = normalize_login(login)
    async with app.db.read() as conn:
        creds = await auth_repo.account_credentials(conn, login)
        if creds is None:
            raise account_not_found(login)
        rows = await auth_repo.app_passwords_of(conn, creds.account.id)
    return [
        AppPasswordInfo(
            id=row.id,
            label=row.label,
            scopes=tuple(s for s in row.scopes.split(",") if s),
            created_at=row.created_at,
            last_used_at=row.last_used_at,
            revoked_at=row.revoked_at,
        )
        for row in rows
    ]


async def revoke_app_password(
    app: App,
    login: str,
    app_password_id: int,
    actor: str,
    *,
    source: str = "cli",
    now: datetime | None = None,
) -> None:
    """Revoke one app password of ``login``: mail clients using it are refused from now on."""
    login = normalize_login(login)
    now = now or utcnow()
    async with app.db.write() as conn:
        creds = await auth_repo.account_credentials(conn, login)
        if creds is None:
            raise account_not_found(login)
        rows = {row.id: row for row in await auth_repo.app_passwords_of(conn, creds.account.id)}
        row = rows.get(app_password_id)
        if row is None:
            raise NotFound(
                f"Le compte {login} n'a pas de mot de passe d'application n° {app_password_id} "
                "(voir « caducee app-password list »).",
                f"Account {login} has no app password #{app_password_id} "
                "(see 'caducee app-password list').",
            )
        if row.revoked_at is not None:
            raise InvalidInput(
                f"Le mot de passe d'application n° {app_password_id} est déjà révoqué.",
                f"App password #{app_password_id} is already revoked.",
            )
        await auth_repo.revoke_app_password(conn, creds.account.id, app_password_id, now)
        await audit.append(
            conn,
            AuditEvent(
                actor=actor,
                action="app_password.revoke",
                target=login,
                source=normalize_source(source),
                result="ok",
                details={"id": app_password_id, "label": row.label},
            ),
        )
