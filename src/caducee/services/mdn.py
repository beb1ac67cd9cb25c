"""Read receipts (RFC 8098 message disposition notifications).

- Sending: when a message asking for one (``Disposition-Notification-To``) is first opened in
  the webmail and the mailbox's setting allows it, a ``displayed`` MDN goes back through the
  submission pipeline, with the null reverse-path (RFC 8098 §2.1) and automatic-action mode
  (§3.2.6.1), under the mailbox's recipient rule (:mod:`.read_receipts`). Never for an MDN, a
  delivery report, a message without a Message-ID, nor when the Return-Path differs.
- Receiving: an MDN delivered to one of our mailboxes adds ``read`` to that mailbox's trace of
  the original message (by Original-Message-ID)."""

from __future__ import annotations

import email
import email.policy
import quopri
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.header import Header, decode_header, make_header
from email.message import Message
from email.utils import format_datetime, getaddresses, make_msgid

from caducee.app import App
from caducee.domain.model import StoredMessage
from caducee.services import trace

#: Only this much of a message's header is looked at to recognise an MDN.
_HEAD = 16 * 1024


@dataclass(frozen=True)
class ReceiptRequest:
    """What a message asks: a receipt to ``target`` about ``message_id``."""

    target: str
    message_id: str
    #: RFC 8098 §2.1: an automatic receipt goes only where the Return-Path (the envelope
    #: sender, inserted at final delivery) says; a different address may be a trap.
    matches_return_path: bool


def receipt_request(raw: bytes) -> ReceiptRequest | None:
    """The receipt a message asks for, if it asks one (never for a report or a message
    without a Message-ID, nor to several addresses)."""
    message = email.message_from_bytes(raw[:_HEAD], policy=email.policy.compat32)
    target = message.get("Disposition-Notification-To")
    message_id = str(message.get("Message-ID") or "").strip()
    if not target or not message_id:
        return None
    if message.get_content_type() == "multipart/report":
        return None  # never answer a report (RFC 8098 §2.1)
    found = [a for _n, a in getaddresses([str(target)]) if a]
    if len(found) != 1:
        return None
    return_path = [a for _n, a in getaddresses([str(message.get("Return-Path") or "")]) if a]
    matches = bool(return_path) and return_path[0].lower() == found[0].lower()
    return ReceiptRequest(found[0], message_id, matches)


def requested_by(raw: bytes) -> str | None:
    """The address a receipt should go to, if the message asks for one."""
    request = receipt_request(raw)
    return request.target if request is not None else None


def build(
    reporter: str,
    to: str,
    original: bytes,
    hostname: str,
    *,
    include_subject: bool = False,
    now: datetime | None = None,
) -> bytes:
    """A ``displayed`` MDN from ``reporter`` about ``original`` (RFC 8098 §3): a
    ``multipart/report`` with a human-readable part and the ``message/disposition-notification``
    fields in clear (7-bit). The original subject is repeated only when ``include_subject``
    (inside the trust space): §3.2.1 leaves the receipt's subject free."""
    head = email.message_from_bytes(original[:_HEAD], policy=email.policy.compat32)
    original_id = " ".join(str(head.get("Message-ID", "")).split())
    subject = " ".join(_decoded(head.get("Subject", "")).split())[:300]
    when = now or datetime.now(UTC)
    boundary = f"=_mdn_{secrets.token_hex(12)}"
    text = (
        f"Votre message a été affiché par {reporter} le {format_datetime(when)}. Cela ne "
        "garantit pas qu'il a été lu ou compris.\n\n"
        f"Your message was displayed by {reporter} on {format_datetime(when)}. This does not "
        "guarantee that it was read or understood.\n"
    )
    encoded_text = quopri.encodestring(text.encode("utf-8")).replace(b"\n", b"\r\n")
    title = "Accusé de lecture / Read receipt"
    subject_header = Header(f"{title}: {subject}" if include_subject else title, "utf-8").encode()
    domain = reporter.rpartition("@")[2] or hostname
    lines = [
        f"From: {reporter}",
        f"To: {to}",
        f"Subject: {subject_header}",
        f"Date: {format_datetime(when)}",
        f"Message-ID: {make_msgid(domain=domain)}",
        "Auto-Submitted: auto-replied",
        "MIME-Version: 1.0",
        "Content-Type: multipart/report; report-type=disposition-notification;",
        f' boundary="{boundary}"',
        "",
        f"--{boundary}",
        'Content-Type: text/plain; charset="utf-8"',
        "Content-Transfer-Encoding: quoted-printable",
        "",
        "",
    ]
    fields = [
        f"--{boundary}",
        "Content-Type: message/disposition-notification",
        "",
        f"Reporting-UA: {hostname}; Caducee",
        f"Final-Recipient: rfc822;{reporter}",
        f"Original-Message-ID: {original_id}",
        "Disposition: automatic-action/MDN-sent-automatically; displayed",
        "",
        f"--{boundary}--",
        "",
    ]
    return (
        "\r\n".join(lines).encode("ascii", "replace")
        + encoded_text.rstrip(b"\r\n")
        + b"\r\n"
        + "\r\n".join(fields).encode("ascii", "replace")
    )


def _decoded(value: object) -> str:
    """A header's text with its RFC 2047 encoded words decoded (undecodable parts kept)."""
    try:
        return str(make_header(decode_header(str(value))))
    except (ValueError, LookupError):
        return str(value)


def _notification(message: Message) -> tuple[str, str, str] | None:
    """(Original-Message-ID, Final-Recipient address, disposition) of an MDN."""
    if message.get_content_type() != "multipart/report":
        return None
    if str(message.get_param("report-type", "")).lower() != "disposition-notification":
        return None
    for part in message.walk():
        if part.get_content_type() != "message/disposition-notification":
            continue
        payload = part.get_payload()
        if isinstance(payload, list):  # parsed as message/*: the fields are sub-parts
            text = "".join(p.as_string() if isinstance(p, Message) else str(p) for p in payload)
        else:
            decoded = part.get_payload(decode=True)
            text = (
                decoded.decode("utf-8", "replace") if isinstance(decoded, bytes) else str(payload)
            )
        parsed = email.message_from_string(text, policy=email.policy.compat32)
        original = str(parsed.get("Original-Message-ID", "")).strip()
        final = str(parsed.get("Final-Recipient", "")).partition(";")[2].strip()
        disposition = str(parsed.get("Disposition", "")).rpartition(";")[2].strip().lower()
        if original:
            return original, final, disposition
    return None


async def record_received(app: App, raw: bytes, stored: Sequence[StoredMessage]) -> None:
    """If ``raw`` is an MDN, add ``read`` to each receiving mailbox's trace of the original."""
    end = raw.find(b"\r\n\r\n", 0, _HEAD)  # an MDN says so in its top-level Content-Type
    if b"disposition-notification" not in raw[: end if end >= 0 else _HEAD].lower():
        return
    message = email.message_from_bytes(raw, policy=email.policy.compat32)
    found = _notification(message)
    if found is None:
        return
    original, final, disposition = found
    key = trace.trace_key(original)
    if key is None or disposition not in ("displayed", "deleted", "dispatched", "processed"):
        return
    event = "read" if disposition == "displayed" else disposition[:12]
    async with app.db.write() as conn:
        for message_row in stored:
            await trace.record(app, conn, message_row.mailbox_id, key, final or "?", event)
