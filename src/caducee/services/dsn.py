"""Delivery status notifications (RFC 3464) for the outbound queue.

A report is ``multipart/report; report-type=delivery-status`` (RFC 6522) with three parts:

1. a human-readable ``text/plain`` part, French first, then the same in English;
2. the ``message/delivery-status`` part (RFC 3464 §2): per-message fields (Reporting-MTA,
   Original-Envelope-Id, Arrival-Date), then one block per recipient (Original-Recipient,
   Final-Recipient, Action, Status, Remote-MTA, Diagnostic-Code, Last-Attempt-Date,
   Will-Retry-Until);
3. the original message (``message/rfc822``) when the sender asked for it with RET=FULL, else
   only its header (``text/rfc822-headers``). Headers are the default on purpose: a report
   travels again, may be read by whoever reads the sender's box (secretariat, delegates) or
   end in a remote box, and the body of a health message (diagnoses, results) has no reason to
   be copied once more — the sender still has it in their Sent folder. The header block is
   enough to recognise the message (Subject, Date, Message-ID, To).

Reports come from ``MAILER-DAEMON@<domain of the sender>`` (our host name when the sender is
not one of our mailboxes: their domain is not ours to use) with the null reverse-path, carry
``Auto-Submitted: auto-replied`` (RFC 3834) and are never sent about a message whose own
sender is null (no report loops, RFC 3461 §6.2). A report to one of our mailboxes is stored
in its Inbox directly; otherwise it goes through the outbound queue — both by the routing tail
of everything the server sends, :func:`caducee.services.outgoing.route`.
"""

from __future__ import annotations

import contextlib
import logging
import quopri
import secrets
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, tzinfo
from email.header import Header
from email.utils import format_datetime, formataddr, make_msgid

from caducee.app import App
from caducee.domain.addresses import domain_of
from caducee.services import outgoing
from caducee.services.envelope import Envelope
from caducee.services.queue import QueueRecipient

log = logging.getLogger(__name__)

REPORTER_NAME = "Système de messagerie Caducée"
#: Room kept for the report's own parts when the whole original goes back (RET=FULL).
REPORT_OVERHEAD = 64 * 1024

ACTIONS = ("failed", "delayed", "delivered", "relayed", "expanded")


@dataclass(frozen=True)
class RecipientStatus:
    """What happened to one recipient (RFC 3464 §2.3)."""

    final_recipient: str
    action: str  # failed, delayed, delivered, relayed (RFC 3464 §2.3.3)
    status: str  # RFC 3463 enhanced status, e.g. "5.1.1"
    #: RFC 3461 ORCPT as received ("rfc822;addr", xtext-encoded)
    original_recipient: str | None = None
    remote_mta: str | None = None
    #: The remote server's reply code, when the diagnostic is an SMTP reply.
    smtp_code: int | None = None
    #: The remote reply text (with ``smtp_code``) or our own explanation.
    diagnostic: str = ""
    last_attempt: datetime | None = None
    will_retry_until: datetime | None = None


@dataclass(frozen=True)
class Report:
    """One report about one message, for one or more of its recipients."""

    reporting_mta: str  # our host name
    sender: str  # the original envelope sender: the report's recipient
    original: bytes
    recipients: Sequence[RecipientStatus]
    arrival: datetime
    envid: str | None = None  # RFC 3461 ENVID, xtext-decoded
    ret: str | None = None  # RFC 3461 RET: FULL returns the whole message, else headers
    queue_id: int | None = None
    #: The largest report we may send (the original is cut to its headers beyond).
    max_bytes: int = 25 * 1024 * 1024
    #: The domain of the report's From (MAILER-DAEMON@…); default: the sender's domain.
    reporter_domain: str = ""


# ----- RFC 3461 §4 xtext -----------------------------------------------------------------------


def xtext_encode(value: str) -> str:
    """RFC 3461 §4: '+', '=', controls, space and non-ASCII become '+XX'."""
    out = []
    for byte in value.encode("utf-8"):
        if 33 <= byte <= 126 and byte not in (ord("+"), ord("=")):
            out.append(chr(byte))
        else:
            out.append(f"+{byte:02X}")
    return "".join(out)


def xtext_decode(value: str) -> str:
    """Decode ``+XX`` sequences; anything else is kept as is."""
    data = bytearray()
    i = 0
    while i < len(value):
        char = value[i]
        hexa = value[i + 1 : i + 3]
        if char == "+" and len(hexa) == 2 and all(c in "0123456789ABCDEFabcdef" for c in hexa):
            data.append(int(hexa, 16))
            i += 3
        else:
            data += char.encode("utf-8")
            i += 1
    return data.decode("utf-8", "replace")


# ----- helpers -----------------------------------------------------------------------------------


def ascii_line(text: str, limit: int = 900) -> str:
    """One line of printable ASCII for a delivery-status field (accents folded)."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    clean = " ".join("".join(c if c.isprintable() else " " for c in folded).split())
    return clean[:limit]


def _rfc822_date(when: datetime) -> str:
    return format_datetime(when.astimezone(UTC))


def _paris() -> tzinfo:
    with contextlib.suppress(Exception):
        from zoneinfo import ZoneInfo

        return ZoneInfo("Europe/Paris")
    return UTC


def _fr_date(when: datetime) -> str:
    zone = _paris()
    local = when.astimezone(zone)
    suffix = "heure de Paris" if zone is not UTC else "UTC"
    return f"{local:%d/%m/%Y à %H:%M} ({suffix})"


def _en_date(when: datetime) -> str:
    return f"{when.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def header_block(raw: bytes) -> bytes:
    """The header section of a message, ending with its line break (no blank line)."""
    for separator in (b"\r\n\r\n", b"\n\n"):
        index = raw.find(separator)
        if index >= 0:
            return raw[: index + len(separator) // 2]
    return raw if raw.endswith(b"\n") else raw + b"\r\n"


def _crlf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")


def _cte(data: bytes) -> str:
    return "7bit" if data.isascii() else "8bit"


def _diagnostic_field(status: RecipientStatus) -> str | None:
    if status.smtp_code is not None:
        return f"smtp; {status.smtp_code} {ascii_line(status.diagnostic)}".rstrip()
    if status.diagnostic:
        return f"X-Caducee; {ascii_line(status.diagnostic)}"
    return None


def _address_field(value: str) -> str:
    """``rfc822; addr`` (RFC 3464 §2.3.2), or ``utf-8; addr`` for an internationalised one."""
    if value.isascii():
        return f"rfc822; {value}"
    return f"utf-8; {value}"


def _original_recipient_field(orcpt: str) -> str:
    kind, _, address = xtext_decode(orcpt).partition(";")
    return f"{ascii_line(kind) or 'rfc822'}; {ascii_line(address.strip())}"


def delivery_status(report: Report) -> bytes:
    """The ``message/delivery-status`` body (RFC 3464 §2.1)."""
    lines = [f"Reporting-MTA: dns; {report.reporting_mta}"]
    if report.queue_id is not None:
        lines.append(f"X-Caducee-Queue-ID: {report.queue_id}")
    if report.envid:
        lines.append(f"Original-Envelope-Id: {ascii_line(report.envid)}")
    lines.append(f"Arrival-Date: {_rfc822_date(report.arrival)}")
    for status in report.recipients:
        lines.append("")
        if status.original_recipient:
            lines.append(
                f"Original-Recipient: {_original_recipient_field(status.original_recipient)}"
            )
        lines.append(f"Final-Recipient: {_address_field(status.final_recipient)}")
        lines.append(f"Action: {status.action}")
        lines.append(f"Status: {status.status}")
        if status.remote_mta:
            lines.append(f"Remote-MTA: dns; {ascii_line(status.remote_mta)}")
        diagnostic = _diagnostic_field(status)
        if diagnostic:
            lines.append(f"Diagnostic-Code: {diagnostic}")
        if status.last_attempt is not None:
            lines.append(f"Last-Attempt-Date: {_rfc822_date(status.last_attempt)}")
        if status.will_retry_until is not None:
            lines.append(f"Will-Retry-Until: {_rfc822_date(status.will_retry_until)}")
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


# ----- the human-readable part -------------------------------------------------------------------

_SUBJECTS = {
    "failed": "Non remis : votre message n'a pas pu être délivré / Undelivered mail",
    "delayed": "Remise retardée : votre message est toujours en attente / Delivery delayed",
    "relayed": "Message transmis au serveur du destinataire / Message relayed",
    "delivered": "Message remis / Message delivered",
}

_INTRO_FR = {
    "failed": (
        "Votre message n'a pas pu être remis aux destinataires ci-dessous. Il ne sera plus "
        "réessayé : vérifiez l'adresse, ou joignez le destinataire par un autre moyen."
    ),
    "delayed": (
        "Votre message n'a pas encore pu être remis aux destinataires ci-dessous. Nous "
        "continuons d'essayer ; vous n'avez rien à faire pour l'instant. Vous serez prévenu "
        "si la remise échoue définitivement."
    ),
    "relayed": (
        "Votre message a été transmis au serveur des destinataires ci-dessous, qui ne "
        "confirmera pas sa remise finale."
    ),
    "delivered": "Votre message a été remis aux destinataires ci-dessous.",
}

_INTRO_EN = {
    "failed": (
        "Your message could not be delivered to the recipients below. It will not be retried: "
        "check the address, or reach the recipient another way."
    ),
    "delayed": (
        "Your message could not be delivered yet to the recipients below. We keep trying; "
        "there is nothing for you to do now. You will be told if delivery finally fails."
    ),
    "relayed": (
        "Your message was handed to the server of the recipients below, which will not "
        "confirm its final delivery."
    ),
    "delivered": "Your message was delivered to the recipients below.",
}


def _main_action(report: Report) -> str:
    actions = {s.action for s in report.recipients}
    for action in ("failed", "delayed", "relayed", "delivered"):
        if action in actions:
            return action
    return "failed"


def _reason(status: RecipientStatus) -> str:
    if status.smtp_code is not None:
        server = f" ({status.remote_mta})" if status.remote_mta else ""
        return f"{status.smtp_code} {status.diagnostic}{server}".strip()
    return status.diagnostic or status.status


def _includes_full(report: Report) -> bool:
    return report.ret == "FULL" and len(report.original) + REPORT_OVERHEAD <= report.max_bytes


def human_text(report: Report) -> str:
    """French first, then English; one paragraph per kind of outcome."""
    fr = [f"Ceci est le système de messagerie Caducée de {report.reporting_mta}.", ""]
    en = [f"This is the Caducée mail system at {report.reporting_mta}.", ""]
    fr.append(f"Message déposé le {_fr_date(report.arrival)}.")
    en.append(f"Message submitted on {_en_date(report.arrival)}.")
    for action in ("failed", "delayed", "relayed", "delivered", "expanded"):
        group = [s for s in report.recipients if s.action == action]
        if not group:
            continue
        fr += ["", _INTRO_FR.get(action, action), ""]
        en += ["", _INTRO_EN.get(action, action), ""]
        for status in group:
            fr.append(f"  <{status.final_recipient}>")
            fr.append(f"    {_reason(status)}")
            en.append(f"  <{status.final_recipient}>")
            en.append(f"    {_reason(status)}")
            if status.will_retry_until is not None:
                fr.append(f"    Nouvelles tentatives jusqu'au {_fr_date(status.will_retry_until)}.")
                en.append(f"    Retrying until {_en_date(status.will_retry_until)}.")
    fr.append("")
    en.append("")
    if _includes_full(report):
        fr.append("Votre message est joint en entier, comme vous l'avez demandé.")
        en.append("Your message is attached in full, as you asked.")
    else:
        fr.append(
            "Par confidentialité, seuls les en-têtes de votre message sont joints, pas son "
            "contenu : vous le retrouverez dans vos éléments envoyés."
        )
        en.append(
            "For confidentiality, only the headers of your message are attached, not its "
            "content: you will find it in your Sent folder."
        )
    return "\n".join([*fr, "", "--- English ---", "", *en, ""])


def _qp(text: str) -> bytes:
    return _crlf(quopri.encodestring(text.encode("utf-8")))


# ----- the whole report --------------------------------------------------------------------------


def build_dsn(report: Report, *, now: datetime | None = None) -> bytes:
    """The report as a message ready to store or send (CRLF line endings)."""
    when = (now or datetime.now(UTC)).astimezone(UTC)
    from_domain = report.reporter_domain or domain_of(report.sender) or report.reporting_mta
    boundary = f"=_caducee_report_{secrets.token_hex(12)}"
    action = _main_action(report)
    headers = [
        f"From: {formataddr((REPORTER_NAME, f'MAILER-DAEMON@{from_domain}'), 'utf-8')}",
        f"To: <{report.sender}>",
        f"Subject: {Header(_SUBJECTS[action], 'utf-8').encode(linesep=chr(13) + chr(10))}",
        f"Date: {format_datetime(when)}",
        f"Message-ID: {make_msgid('dsn', domain=report.reporting_mta)}",
        "Auto-Submitted: auto-replied",
        "MIME-Version: 1.0",
        "Content-Type: multipart/report; report-type=delivery-status;",
        f'\tboundary="{boundary}"',
    ]
    if _includes_full(report):
        original = _crlf(report.original)
        if not original.endswith(b"\r\n"):
            original += b"\r\n"
        third_type = "message/rfc822"
    else:
        original = _crlf(header_block(report.original))
        third_type = "text/rfc822-headers"
    dash = f"--{boundary}".encode()
    parts = [
        "\r\n".join(headers).encode("utf-8"),
        b"",
        b"This is a MIME-encapsulated delivery status report (RFC 3464).",
        b"",
        dash,
        b'Content-Type: text/plain; charset="utf-8"',
        b"Content-Transfer-Encoding: quoted-printable",
        b"Content-Description: Notification",
        b"",
        _qp(human_text(report)).rstrip(b"\r\n"),
        b"",
        dash,
        b"Content-Type: message/delivery-status",
        b"Content-Description: Delivery report",
        b"",
        delivery_status(report).rstrip(b"\r\n"),
        b"",
        dash,
        f"Content-Type: {third_type}".encode(),
        f"Content-Transfer-Encoding: {_cte(original)}".encode(),
        b"Content-Description: Undelivered message"
        if third_type == "message/rfc822"
        else b"Content-Description: Undelivered message headers",
        b"",
        original.rstrip(b"\r\n"),
        b"",
        f"--{boundary}--".encode(),
        b"",
    ]
    return b"\r\n".join(parts)


async def send_report(app: App, report: Report, *, now: datetime | None = None) -> None:
    """Build the report and hand it to the sender: stored in their Inbox when the sender is
    one of our mailboxes, else queued with the null reverse-path. Never for a null sender."""
    if not report.sender:
        return
    if await outgoing.is_local(app, report.sender):
        await outgoing.route(app, build_dsn(report, now=now), "", local=[report.sender])
        return
    # A remote sender's domain is not ours to write From: in (their DMARC would refuse it).
    remote = replace(report, reporter_domain=report.reporter_domain or report.reporting_mta)
    recipient = QueueRecipient(report.sender, notify=("NEVER",))
    await outgoing.route(app, build_dsn(remote, now=now), "", remote=[recipient], now=now)


async def report_local_delivery(
    app: App, envelope: Envelope, original: bytes, delivered: Sequence[str]
) -> None:
    """RFC 3461 §5.2.2 and §6.2: a « delivered » report for the recipients that asked for one
    (NOTIFY=SUCCESS) and whose copy is now in one of our mailboxes. A failure to report is
    logged, never passed on: the message itself is stored."""
    wanted = set(delivered)
    statuses = [
        RecipientStatus(
            recipient.address,
            "delivered",
            "2.0.0",
            original_recipient=recipient.orcpt,
            diagnostic="Remis dans la boîte du destinataire / delivered to the mailbox",
        )
        for recipient in envelope.recipients
        if "SUCCESS" in recipient.notify and recipient.address in wanted
    ]
    if not statuses or not envelope.mail_from:
        return
    report = Report(
        reporting_mta=app.settings.hostname,
        sender=envelope.mail_from,
        original=original,
        recipients=statuses,
        arrival=datetime.now(UTC),
        envid=envelope.envid,
        ret=envelope.ret,
        max_bytes=app.settings.max_message_bytes,
    )
    try:
        await send_report(app, report)
    except Exception:
        log.exception("could not send the success report (%d recipients)", len(statuses))
