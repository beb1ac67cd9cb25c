"""Errors shown to people: French first, English available.

Every error a user can meet is a :class:`CaduceeError` carrying both languages; the door that
shows it (CLI, protocol reply, web page) picks the language with :func:`caducee.i18n.language`.
"""

from __future__ import annotations

from datetime import datetime

from caducee.i18n import language


class CaduceeError(Exception):
    """An error with a message for people, in French and English."""

    def __init__(self, fr: str, en: str) -> None:
        super().__init__(fr)
        self.fr = fr
        self.en = en

    def __reduce__(self) -> tuple[type[CaduceeError], tuple[str, str], dict[str, object]]:
        """Both languages (and any other attribute) survive pickling: an error raised in a
        worker process (``services.cpu_pool``) reaches the door that shows it."""
        return type(self), (self.fr, self.en), self.__dict__

    def message(self, lang: str | None = None) -> str:
        return self.en if (lang or language()) == "en" else self.fr

    def __str__(self) -> str:
        return self.message()


class InvalidInput(CaduceeError):
    """The input is malformed or breaks a rule (bad RPPS, weak password, ...)."""


class NotFound(CaduceeError):
    """The named thing does not exist (or the caller may not know it exists)."""


class AlreadyExists(CaduceeError):
    """A unique name (address, domain, ...) is already taken."""


class LimitReached(CaduceeError):
    """A configured limit (mailboxes per practice, quota, ...) forbids the action."""


class AccessDenied(CaduceeError):
    """Authentication failed or the caller lacks the right."""


class ConfigurationError(CaduceeError):
    """The installation is misconfigured (key file permissions, missing files, ...)."""


class IntegrityError(CaduceeError):
    """Stored data failed an integrity check (decryption, audit chain)."""


class QuotaExceeded(LimitReached):
    """The recipient's mailbox is full (SMTP 452 4.2.2)."""


class MessageTooLarge(LimitReached):
    """The message exceeds the size limit (SMTP 552 5.3.4)."""


class BudgetExceeded(LimitReached):
    """A request would take longer than its budget of work (``[imap] search_budget_seconds``):
    refused rather than let it hold the node (IMAP ``NO [LIMIT]``, RFC 5530 §3)."""


class SenderNotAllowed(AccessDenied):
    """The authenticated account may not send as this address (SMTP 553 5.7.1)."""


class RetentionHold(AccessDenied):
    """Messages under a legal retention period cannot be deleted yet (télétransmission lots
    and returns: ``[teletransmission] retention_days``): IMAP ``NO [CANNOT]``, POP3 ``-ERR``,
    HTTP 409. ``count`` messages are held; all of them may be deleted from ``until``."""

    def __init__(self, fr: str, en: str, *, count: int = 0, until: datetime | None = None) -> None:
        super().__init__(fr, en)
        self.count = count
        self.until = until


class MailboxDisabled(NotFound):
    """The recipient's mailbox is disabled and ``[lifecycle] disabled_mailbox_mail`` is
    ``"refuse"`` (SMTP 550 5.2.1, RFC 3463 X.2.1 « mailbox disabled, not accepting messages »)."""

    def __init__(self, address: str) -> None:
        super().__init__(
            f"La boîte {address} est désactivée et ne reçoit plus de messages.",
            f"Mailbox {address} is disabled and does not accept messages.",
        )


class PolicyRejected(AccessDenied):
    """A mail policy refuses the message (spoofed own domain, DMARC reject...; SMTP 550 5.7.1)."""


class TemporaryFailure(CaduceeError):
    """Something outside our control failed for now (DNS...): the client should retry later
    (SMTP 451 4.7.0 / 4.3.0)."""


class StorageFull(TemporaryFailure):
    """The disk holding the database or the blobs is full: nothing was stored, retry later
    (SMTP 452 4.3.1, RFC 3463 §3.4 « mail system full »)."""

    def __init__(
        self,
        fr: str = "Espace disque du serveur épuisé : rien n'a été enregistré, réessayez plus tard.",
        en: str = "The server's disk is full: nothing was stored, try again later.",
    ) -> None:
        super().__init__(fr, en)


class DatabaseUnavailable(TemporaryFailure):
    """The database cannot be reached for now (restarting, network): nothing was done; the
    node reconnects by itself (SMTP 451 4.3.0, IMAP NO [UNAVAILABLE])."""

    def __init__(
        self,
        fr: str = "Base de données momentanément indisponible : rien n'a été fait, réessayez.",
        en: str = "Database temporarily unavailable: nothing was done, try again.",
    ) -> None:
        super().__init__(fr, en)


class VirusFound(PolicyRejected):
    """The antivirus found a signature in the message (SMTP 554 5.7.1); nothing was stored."""

    def __init__(self, fr: str, en: str, signature: str) -> None:
        super().__init__(fr, en)
        self.signature = signature


class StorageUnavailable(TemporaryFailure):
    """Where message contents are kept (the S3 object store) cannot be reached now: nothing
    was stored or read, retry later (SMTP 451 4.3.0, IMAP ``NO [UNAVAILABLE]``, HTTP 503)."""


class ScanUnavailable(TemporaryFailure):
    """The antivirus could not scan the message now (SMTP 451 4.7.1): retry later."""
