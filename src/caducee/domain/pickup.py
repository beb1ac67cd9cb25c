"""A secure pickup as every layer sees it: one message left on the server for one patient,
its state (open, revoked, locked, expired) and the refusals a closed link gives."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from caducee.errors import AccessDenied, NotFound

#: Events of a pickup, as the sender's trace shows them (≤ 12 characters: trace column).
EVENTS = (
    "deposited",
    "opened",
    "downloaded",
    "replied",
    "code_sent",
    "code_failed",
    "locked",
    "revoked",
    "purged",
)


class PickupClosed(AccessDenied):
    """The link can no longer be used: ``reason`` is expired, revoked or locked."""

    def __init__(self, reason: str, fr: str, en: str) -> None:
        super().__init__(fr, en)
        self.reason = reason


def unknown_link() -> NotFound:
    return NotFound(
        "Lien inconnu ou expiré : vérifiez l'adresse reçue par courriel, ou demandez un nouvel "
        "envoi à votre cabinet.",
        "Unknown or expired link: check the address you received by email, or ask your "
        "practice to send the message again.",
    )


@dataclass(frozen=True)
class Contact:
    email: str
    mobile: str


@dataclass(frozen=True)
class Pickup:
    """One message left on the server for one patient."""

    id: int
    practice_id: int
    sender_mailbox_id: int
    patient_id: int | None
    record_id: str
    blob_id: str | None
    size: int
    trace_key: str | None
    has_passphrase: bool
    failed_attempts: int
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    locked_at: datetime | None
    purged_at: datetime | None
    #: The patient's link, known only right after creation (never stored).
    link: str = ""

    def state(self, now: datetime | None = None) -> str:
        """``open``, or why not: ``revoked``, ``locked``, ``expired``."""
        if self.revoked_at is not None:
            return "revoked"
        if self.locked_at is not None:
            return "locked"
        if self.purged_at is not None or self.expires_at <= (now or datetime.now(UTC)):
            return "expired"
        return "open"

    def check_open(self, now: datetime | None = None) -> None:
        reason = self.state(now)
        if reason == "revoked":
            raise PickupClosed(
                reason,
                "Ce message a été retiré par votre cabinet : contactez-le si besoin.",
                "This message was withdrawn by your practice: contact it if needed.",
            )
        if reason == "locked":
            raise PickupClosed(
                reason,
                "Ce lien est verrouillé après trop de codes erronés. Votre cabinet est prévenu : "
                "contactez-le pour recevoir un nouveau lien.",
                "This link is locked after too many wrong codes. Your practice has been told: "
                "contact it to get a new link.",
            )
        if reason == "expired":
            raise PickupClosed(
                reason,
                "Ce message a expiré et n'est plus disponible : demandez un nouvel envoi à "
                "votre cabinet.",
                "This message has expired and is no longer available: ask your practice to "
                "send it again.",
            )


@dataclass(frozen=True)
class PickupEvent:
    event: str
    detail: str
    ts: datetime
