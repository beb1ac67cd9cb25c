"""A message written in a door without a mail client of its own (the webmail, the REST API),
as RFC 5322 bytes: pure and CPU-bound for big attachments (encoding them), so that
``flows.compose.build`` runs it in a worker process when they are big (issue 17). What the
message holds is described in :mod:`caducee.flows.compose`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from caducee.errors import InvalidInput, MessageTooLarge

MAX_SUBJECT = 500
#: The MSSanté fields :attr:`Outgoing.mss_headers` may carry.
MSS_HEADERS = frozenset(("X-MSS-INS", "X-MSS-CODECDA"))
MAX_ATTACHMENTS = 20
MAX_FILENAME = 150
DEFAULT_FILENAME = "piece-jointe"
#: RFC 5322 §3.6.4 msg-id, as a client may give it for In-Reply-To and References.
_MSG_ID = re.compile(r"<[^<>\s@]+@[^<>\s@]+>")
MAX_REFERENCES = 50
#: RFC 2045 §5.1 token characters, for a type or subtype given by the sender.
_TOKEN = re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+")


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class Outgoing:
    """What the sender wrote; addresses already normalised by the door."""

    to: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()
    bcc: tuple[str, ...] = ()
    subject: str = ""
    text: str = ""
    in_reply_to: str = ""
    references: str = ""
    receipt: bool = False  # ask for a read receipt (RFC 8098 Disposition-Notification-To)
    close_exchange: bool = False  # MSSanté X-MSS-MES: FIN (end an exchange with a patient)
    attachments: tuple[Attachment, ...] = ()
    #: MSSanté fields set by the server for a message about a patient (X-MSS-INS,
    #: X-MSS-CODECDA: :mod:`caducee.flows.patient_compose`), never typed by the sender.
    mss_headers: tuple[tuple[str, str], ...] = ()

    @property
    def recipients(self) -> list[str]:
        return list(dict.fromkeys(self.to + self.cc + self.bcc))


@dataclass(frozen=True)
class Composed:
    """The message as it goes to the pipeline (and to the Sent folder)."""

    sender: str
    recipients: tuple[str, ...]
    raw: bytes
    message_id: str


def attachment_type(value: str) -> tuple[str, str]:
    """A sender-given media type as (maintype, subtype); anything that is not a plain leaf
    type is sent as application/octet-stream: a ``multipart/*`` or ``message/*`` part cannot be
    base64-encoded (RFC 2045 §6.4, RFC 2046 §5), and a malformed type must not reach a
    header."""
    maintype, _, subtype = value.strip().lower().partition("/")
    subtype = subtype.partition(";")[0].strip()
    if (
        not _TOKEN.fullmatch(maintype)
        or not _TOKEN.fullmatch(subtype)
        or maintype in ("multipart", "message")
    ):
        return "application", "octet-stream"
    return maintype, subtype


def attachment_filename(value: str) -> str:
    """A file name safe to put in Content-Disposition (RFC 2183 §2.3: no path, the receiving
    side must not be led to write elsewhere): no directory separator, no control character."""
    name = "".join("_" if c in "/\\" or ord(c) < 32 or ord(c) == 127 else c for c in value)
    return name.strip()[:MAX_FILENAME] or DEFAULT_FILENAME


def message_ids(value: str, *, most: int = MAX_REFERENCES) -> str:
    """``value`` as one or more RFC 5322 §3.6.4 msg-ids (``<left@right>``, separated by
    white space) for In-Reply-To or References, normalised to single spaces; refused when it
    is anything else (a line break would forge header fields)."""
    ids = value.split()
    if not ids or len(ids) > most or not all(_MSG_ID.fullmatch(i) for i in ids):
        raise InvalidInput(
            f"Identifiant de message invalide : « <partie@domaine> » attendu ({most} au plus).",
            f"Invalid message identifier: '<left@right>' expected (at most {most}).",
        )
    return " ".join(ids)


def check_attachments(count: int, total_bytes: int, max_bytes: int) -> None:
    """The attachment limits of every door, before the message is built."""
    if count > MAX_ATTACHMENTS:
        raise InvalidInput(
            f"Trop de pièces jointes ({MAX_ATTACHMENTS} au plus).",
            f"Too many attachments (at most {MAX_ATTACHMENTS}).",
        )
    if total_bytes > max_bytes:
        raise MessageTooLarge(
            f"Pièces jointes trop volumineuses ({max_bytes // (1024 * 1024)} Mo au plus).",
            f"Attachments too large (at most {max_bytes // (1024 * 1024)} MB).",
        )


def compose(sender: str, display_name: str, outgoing: Outgoing, *, draft: bool = False) -> Composed:
    """The RFC 5322 message (CPU work for big attachments: ``flows.compose.build`` runs it
    off the event loop, in a worker process when they are big).
    A ``draft`` (for the Drafts folder, which IMAP clients read too) may have no recipient yet
    and keeps its Bcc field (RFC 5322 §3.6.3)."""
    recipients = outgoing.recipients
    if not recipients and not draft:
        raise InvalidInput("Indiquez au moins un destinataire.", "Give at least one recipient.")
    message = EmailMessage()
    local, _, domain = sender.partition("@")
    message["From"] = Address(display_name=display_name, username=local, domain=domain)
    if outgoing.to:
        message["To"] = ", ".join(outgoing.to)
    if outgoing.cc:
        message["Cc"] = ", ".join(outgoing.cc)
    if draft and outgoing.bcc:
        message["Bcc"] = ", ".join(outgoing.bcc)
    subject = outgoing.subject[:MAX_SUBJECT]
    if outgoing.close_exchange and "[FIN]" not in subject.upper():
        subject = f"[FIN] {subject}"[:MAX_SUBJECT]  # what Mon espace santé shows the patient
    message["Subject"] = subject
    message["Date"] = format_datetime(datetime.now(UTC))
    message_id = make_msgid(domain=domain)
    message["Message-ID"] = message_id
    if outgoing.in_reply_to:
        message["In-Reply-To"] = outgoing.in_reply_to[:1000]
    if outgoing.references:
        message["References"] = outgoing.references[:4000]
    if outgoing.receipt:
        message["Disposition-Notification-To"] = sender
    if outgoing.close_exchange:
        message["X-MSS-MES"] = "FIN"
    for name, value in outgoing.mss_headers:
        if name in MSS_HEADERS:
            message[name] = value
    message.set_content(outgoing.text or "\n")
    for attachment in outgoing.attachments:
        maintype, subtype = attachment_type(attachment.content_type)
        message.add_attachment(
            attachment.data,
            maintype=maintype,
            subtype=subtype,
            filename=attachment_filename(attachment.filename),
        )
    raw = message.as_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    return Composed(sender, tuple(recipients), raw, message_id)
