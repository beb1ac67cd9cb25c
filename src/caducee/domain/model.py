"""Plain data types of the model: practices, accounts, mailboxes, delegations, folders."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from caducee.errors import InvalidInput

DEFAULT_MAILBOX_LIMIT = 19


class Role(StrEnum):
    PRATICIEN = "praticien"
    SECRETAIRE = "secretaire"
    ADMIN = "admin"

    @classmethod
    def parse(cls, value: str) -> Role:
        try:
            return cls(value.strip().lower())
        except ValueError:
            raise InvalidInput(
                f"Rôle inconnu « {value} » : praticien, secretaire ou admin.",
                f"Unknown role '{value}': praticien, secretaire or admin.",
            ) from None


class MailboxType(StrEnum):
    PER = "PER"  # personal
    ORG = "ORG"  # organisational / shared
    APP = "APP"  # application (practice software)
    TLT = "TLT"  # télétransmission

    @classmethod
    def parse(cls, value: str) -> MailboxType:
        try:
            return cls(value.strip().upper())
        except ValueError:
            raise InvalidInput(
                f"Type de boîte inconnu « {value} » : PER, ORG, APP ou TLT.",
                f"Unknown mailbox type '{value}': PER, ORG, APP or TLT.",
            ) from None


class SpecialUse(StrEnum):
    """RFC 6154 special-use attributes (and the Inbox, which RFC 3501 §5.1 names)."""

    INBOX = "\\Inbox"
    SENT = "\\Sent"
    DRAFTS = "\\Drafts"
    TRASH = "\\Trash"
    JUNK = "\\Junk"
    ARCHIVE = "\\Archive"


#: The folders every mailbox starts with: IMAP name → special use.
DEFAULT_FOLDERS: tuple[tuple[str, SpecialUse], ...] = (
    ("INBOX", SpecialUse.INBOX),
    ("Sent", SpecialUse.SENT),
    ("Drafts", SpecialUse.DRAFTS),
    ("Trash", SpecialUse.TRASH),
    ("Junk", SpecialUse.JUNK),
    ("Archive", SpecialUse.ARCHIVE),
)


class Flag:
    """IMAP system flags (RFC 3501 §2.3.2) stored as a bit mask; keywords are stored as text."""

    SEEN = 1
    ANSWERED = 2
    FLAGGED = 4
    DELETED = 8
    DRAFT = 16

    NAMES: dict[str, int] = {  # noqa: RUF012
        "\\Seen": SEEN,
        "\\Answered": ANSWERED,
        "\\Flagged": FLAGGED,
        "\\Deleted": DELETED,
        "\\Draft": DRAFT,
    }


@dataclass(frozen=True)
class Practice:
    id: int
    name: str
    finess: str | None
    siret: str | None
    mailbox_limit: int
    domains: tuple[str, ...]


@dataclass(frozen=True)
class Account:
    id: int
    practice_id: int
    login: str
    civility: str
    last_name: str
    first_name: str
    profession: str
    rpps: str | None
    adeli: str | None
    role: Role
    disabled: bool
    totp_enabled: bool
    #: Its last use on any door, to within an hour (``services.last_use``); None: never.
    last_used_at: datetime | None = None

    @property
    def display_name(self) -> str:
        return " ".join(p for p in (self.civility, self.first_name, self.last_name) if p)


@dataclass(frozen=True)
class Mailbox:
    id: int
    practice_id: int
    address: str
    type: MailboxType
    owner_account_id: int
    quota_bytes: int
    used_bytes: int
    disabled: bool
    #: Its last use on any door, to within an hour (``services.last_use``); None: never.
    last_used_at: datetime | None = None


@dataclass(frozen=True)
class MailPrincipal:
    """Who a mail door (IMAP, POP3, SMTP submission) authenticated.

    Either an account (``login`` is the account's login, ``mailbox_id`` None), or a mailbox
    that logs in with its own address and app passwords (a TLT mailbox's billing software):
    ``login`` is then the mailbox's address, ``mailbox_id`` its id and ``account`` its owner,
    whose being enabled the mailbox's use depends on. The doors keep only ``login``: every
    later access goes through ``services.mailboxes.open_mailbox``, which knows both kinds.
    """

    login: str
    account: Account
    mailbox_id: int | None = None

    @property
    def is_mailbox(self) -> bool:
        return self.mailbox_id is not None


@dataclass(frozen=True)
class Delegation:
    mailbox_id: int
    mailbox_address: str
    account_id: int
    account_login: str
    can_send: bool


@dataclass(frozen=True)
class Folder:
    id: int
    mailbox_id: int
    name: str
    special_use: str | None
    uidvalidity: int
    uidnext: int
    highestmodseq: int
    subscribed: bool
    #: Its messages do not count in the mailbox's quota (the télétransmission archive, filled
    #: by the server only: users may read, move out and delete, never put in).
    quota_exempt: bool = False


@dataclass(frozen=True)
class StoredMessage:
    """A message in a folder, with its clear columns and its opened metadata."""

    id: int
    mailbox_id: int
    folder_id: int
    uid: int
    modseq: int
    flags: int
    keywords: tuple[str, ...]
    internal_date: datetime
    size: int
    blob_id: str
    meta: dict[str, object]


@dataclass(slots=True)
class IndexEntry:
    """What an IMAP session keeps per message of its folder: UID, id, flags, keywords, MODSEQ
    (changed in place as the session learns of flag changes)."""

    uid: int
    id: int
    flags: int
    keywords: str
    modseq: int


@dataclass(slots=True)
class MessageSummary:
    """A message's clear columns, without its metadata: what FETCH, SEARCH and the webmail's
    lists start from."""

    id: int
    uid: int
    flags: int
    keywords: str
    modseq: int
    internal_date: datetime
    size: int
    blob_id: str
    mailbox_id: int


@dataclass(frozen=True)
class FolderCounts:
    """A folder's STATUS counts (RFC 9051 §6.3.11: MESSAGES, UNSEEN, DELETED, SIZE)."""

    messages: int
    unseen: int
    deleted: int
    size: int
