"""What a failing handler hook becomes on the wire: CaduceeError → SMTP reply (RFC 3463 codes).

Services raise the project's errors (French and English texts); this module picks the reply
code and enhanced status for each, taking into account the command being answered. Anything
unexpected becomes ``451 4.3.0`` with a reference that is logged with the traceback (never the
message content), so an administrator can find it.
"""

from __future__ import annotations

import logging
import secrets
from typing import Literal

from caducee.errors import (
    AccessDenied,
    CaduceeError,
    DatabaseUnavailable,
    InvalidInput,
    LimitReached,
    MailboxDisabled,
    MessageTooLarge,
    NotFound,
    PolicyRejected,
    QuotaExceeded,
    ScanUnavailable,
    SenderNotAllowed,
    StorageFull,
    StorageUnavailable,
    TemporaryFailure,
    VirusFound,
)
from caducee.protocols.smtp import replies
from caducee.protocols.smtp.replies import Reply, bilingual
from caducee.services.lockout import AccountLocked

log = logging.getLogger(__name__)

Phase = Literal["auth", "mail", "rcpt", "data", "session"]


class SmtpRefusal(Exception):
    """A handler hook's refusal that is already an SMTP reply (530 AUTH required, ...)."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.text)
        self.reply = reply


def _with(code: int, enhanced: str, error: CaduceeError) -> Reply:
    return bilingual(code, enhanced, error.fr, error.en)


def _invalid_input(error: InvalidInput, phase: Phase) -> Reply:
    if phase == "mail":
        return _with(553, "5.1.7", error)  # bad sender mailbox address syntax
    if phase == "rcpt":
        return _with(553, "5.1.3", error)  # bad destination mailbox address syntax
    if phase == "data":
        return _with(550, "5.6.0", error)
    return _with(501, "5.5.4", error)


def reply_for_error(error: BaseException, phase: Phase) -> Reply:
    """The reply for ``error`` raised while answering a command of ``phase``."""
    if isinstance(error, SmtpRefusal):
        return error.reply
    if isinstance(error, AccountLocked):
        # RFC 4954 §6: 454 4.7.0 temporary authentication failure; the text says how long.
        return _with(454, "4.7.0", error)
    if isinstance(error, SenderNotAllowed):
        return _with(553, "5.7.1", error)
    if isinstance(error, VirusFound):  # RFC 3463 §3.8: 5.7.1 delivery not authorized
        return _with(554, "5.7.1", error)
    if isinstance(error, StorageFull):  # RFC 3463 §3.4: X.3.1 mail system full
        return _with(452, "4.3.1", error)
    if isinstance(error, (DatabaseUnavailable, StorageUnavailable)):  # RFC 3463 §3.4: X.3.0
        return _with(451, "4.3.0", error)
    if isinstance(error, ScanUnavailable):  # the scan could not run: retry (4.7.1)
        return _with(451, "4.7.1", error)
    if isinstance(error, PolicyRejected):
        return _with(550, "5.7.1", error)
    if isinstance(error, AccessDenied):
        return replies.AUTH_FAILED if phase == "auth" else _with(550, "5.7.1", error)
    if isinstance(error, MailboxDisabled):
        return _with(550, "5.2.1", error)  # RFC 3463 §3.3 X.2.1: mailbox disabled
    if isinstance(error, NotFound):
        return _with(550, "5.1.1", error)
    if isinstance(error, QuotaExceeded):
        return _with(452, "4.2.2", error)
    if isinstance(error, MessageTooLarge):
        return _with(552, "5.3.4", error)
    if isinstance(error, LimitReached):
        return _with(452, "4.3.1", error)
    if isinstance(error, InvalidInput):
        return _invalid_input(error, phase)
    if isinstance(error, TemporaryFailure):
        return _with(451, "4.7.0", error)
    return internal_error(error, phase)


def internal_error(error: BaseException, phase: Phase, code: int = 451) -> Reply:
    """``451 4.3.0`` (or ``code``) with a reference; the traceback is logged under it."""
    reference = secrets.token_hex(6)
    log.error(
        "smtp internal error ref=%s phase=%s error=%s",
        reference,
        phase,
        type(error).__name__,
        exc_info=(type(error), error, error.__traceback__),
    )
    return bilingual(
        code,
        "4.3.0",
        f"Erreur temporaire du serveur, reessayez plus tard (ref. {reference})",
        f"Temporary server error, try again later (ref. {reference})",
    )
