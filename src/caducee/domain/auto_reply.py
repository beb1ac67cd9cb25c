"""Auto-replies (RFC 3834), purely: when a message must never be answered automatically, what
kind of answer a message gets, and the answer itself.

The decisions that need the database (who is absent, whether a patient's message opens a
conversation, who was answered when) live in :mod:`caducee.health.auto_replies`; here are the
rules that read only the message and the clock:

- :func:`suppressed`: RFC 3834 §2 and §3.1.1 — never answer ``Auto-Submitted`` other than
  ``no``, mailing lists (``List-*`` fields, ``Precedence: bulk/list/junk``), the null
  reverse-path, ``MAILER-DAEMON``, ``postmaster``, no-reply addresses, list owners and
  ``-request`` addresses, nor our own auto-replies;
- :func:`compose`: the answer — ``Auto-Submitted: auto-replied`` (§5), ``In-Reply-To`` and
  ``References`` of the original (§3.1.5), ``Subject: Réponse automatique : …`` (§3.1.5; a
  patient's subject is never copied: it may carry health content), no part of the original
  quoted, French then English.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from email.errors import HeaderParseError
from email.header import decode_header, make_header
from email.message import EmailMessage, Message
from email.parser import BytesHeaderParser
from email.policy import SMTP, compat32
from email.utils import format_datetime, getaddresses, make_msgid
from enum import Enum

from caducee.domain import charter as charters
from caducee.domain.charter import Charter

#: Our own marker (besides ``Auto-Submitted``): a message carrying it is never answered.
MARKER = "X-Caducee-Auto-Reply"

#: Local parts never answered (RFC 3834 §2: "MAILER-DAEMON", "LISTSERV", "majordomo", and
#: addresses that say they read nothing), compared after lower-casing, ``_``/``.`` → ``-``.
_NEVER_LOCAL = frozenset(
    {
        "mailer-daemon",
        "postmaster",
        "listserv",
        "majordomo",
        "bounce",
        "bounces",
        "nobody",
    }
)
_NO_REPLY = re.compile(r"^(no-?reply|do-?not-?reply|ne-?pas-?repondre|nepasrepondre|noreponse)")
_LIST_PRECEDENCE = frozenset({"bulk", "list", "junk"})
_MESSAGE_ID = re.compile(r"<[^<>\s]{1,900}>")
MAX_REFERENCES = 20
MAX_SUBJECT = 120


class Kind(Enum):
    """Why a message is answered, in the order one answer is chosen (one per message)."""

    URGENT = "urgent"  # warning signs: the emergency numbers, at once, whatever the hour
    OUT_OF_SCOPE = "hors-champ"  # a request mail cannot handle: see a practitioner
    ABSENCE = "absence"  # the mailbox's owner is away (and who replaces them)
    ACK = "accuse"  # a patient's first message, or one received while the practice is closed


PRIORITY = (Kind.URGENT, Kind.OUT_OF_SCOPE, Kind.ABSENCE, Kind.ACK)


def header_section(raw: bytes) -> bytes:
    """The header section of ``raw`` (up to the first empty line), parsed alone: the body,
    which may be large, is never scanned."""
    for separator in (b"\r\n\r\n", b"\n\n"):
        end = raw.find(separator)
        if end >= 0:
            return raw[: end + len(separator)]
    return raw


@dataclass(frozen=True)
class Original:
    """What an answer needs of the original message (its header only)."""

    message_id: str  # "" when absent
    references: tuple[str, ...]  # References then In-Reply-To ids, in order, deduplicated
    subject: str
    from_address: str
    auto_submitted: str
    precedence: str
    list_fields: bool
    ours: bool
    suppress_header: str  # X-Auto-Response-Suppress

    @classmethod
    def parse(cls, raw: bytes) -> Original:
        headers = BytesHeaderParser(policy=compat32).parsebytes(header_section(raw))
        names = {name.lower() for name in headers}
        ids: list[str] = []
        for name in ("References", "In-Reply-To"):
            for value in headers.get_all(name) or []:
                ids += _MESSAGE_ID.findall(str(value))
        found = _MESSAGE_ID.findall(str(headers.get("Message-ID") or ""))
        sender = getaddresses([str(v) for v in headers.get_all("From") or []])
        return cls(
            message_id=found[0] if found else "",
            references=tuple(dict.fromkeys(ids)),
            subject=" ".join(_decoded(_raw(headers, "Subject")).split()),
            from_address=next((a for _, a in sender if a), ""),
            auto_submitted=str(headers.get("Auto-Submitted") or "").strip(),
            precedence=str(headers.get("Precedence") or "").strip().lower(),
            list_fields=any(name.startswith("list-") for name in names),
            ours=MARKER.lower() in names,
            suppress_header=str(headers.get("X-Auto-Response-Suppress") or "").strip().lower(),
        )


def _raw(headers: Message, name: str) -> str:
    """A field's value as received (compat32 turns 8-bit text into an opaque Header)."""
    return next((str(v) for k, v in headers.raw_items() if k.lower() == name.lower()), "")


def _decoded(value: str) -> str:
    """A header value as text: raw UTF-8 (RFC 6532) and encoded words (RFC 2047) decoded."""
    text = value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    try:
        return str(make_header(decode_header(text)))
    except (ValueError, LookupError, HeaderParseError):
        return text


def _local_part(address: str) -> str:
    local = address.strip().strip("<>").rpartition("@")[0] or address.strip().strip("<>")
    return local.lower().replace("_", "-").replace(".", "-")


def never_answered(address: str) -> bool:
    """An address an automatic answer must never go to (RFC 3834 §2): the null one, a
    mail system (MAILER-DAEMON, postmaster), a no-reply address, a list's owner or its
    ``-request`` address."""
    if not address.strip().strip("<>"):
        return True
    local = _local_part(address)
    return (
        local in _NEVER_LOCAL
        or bool(_NO_REPLY.match(local))
        or local.startswith("owner-")
        or local.endswith(("-request", "-owner", "-bounces"))
    )


def suppressed(original: Original, sender: str) -> str | None:
    """Why the message must not be answered (a short code for the logs), or None."""
    if never_answered(sender):
        return "sender"
    if original.from_address and never_answered(original.from_address):
        return "from"
    value = original.auto_submitted.split(";", 1)[0].strip().lower()
    if value and value != "no":
        return "auto-submitted"
    if original.ours:
        return "ours"
    if original.list_fields:
        return "list"
    if original.precedence in _LIST_PRECEDENCE:
        return "precedence"
    if original.suppress_header and any(
        word in original.suppress_header for word in ("all", "oof", "autoreply")
    ):
        return "suppress"
    return None


# --- the answer ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Absence:
    """What an absence reply says (the stored absence is :mod:`caducee.health.absences`'s)."""

    starts: date
    ends: date
    replacement_name: str = ""
    replacement_address: str = ""
    message: str = ""


@dataclass(frozen=True)
class Answer:
    kind: Kind
    #: Whom it speaks to: a patient (neutral subject, the charter) or anyone else.
    patient: bool
    charter: Charter
    received: datetime
    expected: date | None = None  # the expected answer date (patients)
    closed: bool = False  # received outside opening hours or on a closed day
    absence: Absence | None = None


def _day(day: date, lang: str) -> str:
    return f"{day:%Y-%m-%d}" if lang == "en" else f"{day:%d/%m/%Y}"


def _subject(answer: Answer, original: Original) -> str:
    if answer.patient:
        return "Réponse automatique : votre message au cabinet"
    subject = original.subject
    if len(subject) > MAX_SUBJECT:
        subject = subject[: MAX_SUBJECT - 1] + "…"
    return f"Réponse automatique : {subject}" if subject else "Réponse automatique"


def _emergency_lines(charter: Charter, lang: str) -> list[str]:
    lines = [charter.emergency(lang), ""]
    lines += [f"  {n.number} : {n.label(lang)}" for n in charters.EMERGENCY_NUMBERS]
    return lines


def _absence_lines(absence: Absence, lang: str) -> list[str]:
    if lang == "en":
        lines = [f"I am away from {_day(absence.starts, lang)} to {_day(absence.ends, lang)}."]
        if absence.replacement_name:
            lines.append(
                f"In my absence, please write to {absence.replacement_name} "
                f"<{absence.replacement_address}>."
            )
    else:
        lines = [
            f"Je suis absent(e) du {_day(absence.starts, lang)} au {_day(absence.ends, lang)}."
        ]
        if absence.replacement_name:
            lines.append(
                f"Pendant mon absence, écrivez à {absence.replacement_name} "
                f"<{absence.replacement_address}>."
            )
    if absence.message:
        lines += ["", absence.message]
    return lines


def body_text(answer: Answer, lang: str) -> str:
    """One language's text of the answer. It advises, never diagnoses, and quotes nothing of
    the original message."""
    en = lang == "en"
    lines: list[str] = []
    if answer.kind is Kind.URGENT:
        lines += [
            (
                "Your message has been received. It may describe a situation that cannot "
                "wait: this mailbox is not watched continuously and will not answer in time."
                if en
                else "Votre message a bien été reçu. Il pourrait décrire une situation qui ne "
                "peut pas attendre : cette messagerie n'est pas lue en permanence et ne vous "
                "répondra pas à temps."
            ),
            (
                "If you or someone near you needs help now, call the emergency services:"
                if en
                else "Si vous ou un proche avez besoin d'aide maintenant, appelez les secours :"
            ),
            "",
            *_emergency_lines(answer.charter, lang),
        ]
    elif answer.kind is Kind.OUT_OF_SCOPE:
        lines += [
            (
                "Your message has been received and passed on to the practice. What you ask "
                "cannot be handled well by e-mail: it needs a consultation. Please book an "
                "appointment with the practice (or with the out-of-hours doctor, 116 117)."
                if en
                else "Votre message a bien été reçu et transmis au cabinet. Votre demande ne "
                "peut pas être traitée correctement par messagerie : elle demande une "
                "consultation. Prenez rendez-vous avec le cabinet (ou, en dehors des heures "
                "d'ouverture, appelez le 116 117)."
            )
        ]
    elif answer.kind is Kind.ABSENCE:
        assert answer.absence is not None
        lines += _absence_lines(answer.absence, lang)
    else:
        lines.append(
            "Your message has been received by the practice."
            if en
            else "Votre message a bien été reçu par le cabinet."
        )
        if answer.closed:
            lines.append(
                "It arrived while the practice is closed: it will be read at the next opening."
                if en
                else "Il est arrivé en dehors des heures d'ouverture : il sera lu à la "
                "prochaine ouverture du cabinet."
            )
    if answer.patient and answer.expected is not None and answer.kind is not Kind.URGENT:
        lines += [
            "",
            (
                f"You may expect an answer by {_day(answer.expected, lang)}."
                if en
                else f"Réponse attendue au plus tard le {_day(answer.expected, lang)}."
            ),
        ]
    if answer.patient and answer.kind is not Kind.URGENT:
        lines += ["", charters.short_text(answer.charter, lang)]
    lines += [
        "",
        (
            "This is an automatic answer: please do not reply to it."
            if en
            else "Ceci est une réponse automatique : merci de ne pas y répondre."
        ),
    ]
    return "\n".join(lines)


def compose(
    answer: Answer,
    original: Original,
    *,
    from_address: str,
    to_address: str,
    hostname: str,
    now: datetime | None = None,
) -> tuple[bytes, str]:
    """The answer as an RFC 5322 message (CRLF line ends), and its Message-ID."""
    message = EmailMessage()
    message["From"] = from_address
    message["To"] = to_address
    message["Subject"] = _subject(answer, original)
    message["Date"] = format_datetime(now or datetime.now(UTC))
    message_id = make_msgid(domain=hostname)
    message["Message-ID"] = message_id
    if original.message_id:
        message["In-Reply-To"] = original.message_id
    references = _references(original)
    if references:
        message["References"] = " ".join(references)
    message["Auto-Submitted"] = "auto-replied"
    message[MARKER] = answer.kind.value
    # Microsoft's convention, read by Exchange and Outlook: no answer to this answer.
    message["X-Auto-Response-Suppress"] = "All"
    text = body_text(answer, "fr") + "\n\n— English —\n\n" + body_text(answer, "en") + "\n"
    message.set_content(text, charset="utf-8", cte="quoted-printable")
    return message.as_bytes(policy=SMTP), message_id


def _references(original: Original) -> Sequence[str]:
    ids = list(original.references)
    if original.message_id:
        ids = [i for i in ids if i != original.message_id] + [original.message_id]
    return ids[-MAX_REFERENCES:]
