"""Télétransmission (SESAM-Vitale): what a lot of electronic care sheets (FSE) and its returns
look like on the wire, the French working-day calendar of its delays, and a lot's state.

The official specifications (ETS-DT-001/003) are not public; the recognisers are built on what
is publicly known and every pattern is configurable (``[teletransmission]`` in the settings):

- a lot goes by SMTP to a fund address (``01422@422.01.rss.fr``); its subject reads
  ``IR<6 digits>/<sender number, 14 chars>/<compostage: AAAAMMJJHHMMSS + 5 digits>/<invoice
  count, 5 digits>`` — some software writes ``IR/<sender>/<compostage>/<count>``;
- its payload is S/MIME enveloped (``smime.p7m``) around ``application/EDI-consent`` parts with
  ``Content-Description: IRIS/B2`` (``/Z`` compressed, ``IRISTEST/B2`` in test mode);
- returns (ARL, NOEMIE) carry an ``application/EDI-consent`` part, base64 and possibly gzipped;
  its Content-Description tells the kind of return; the lot is named by its compostage and
  sender number.

Delays (Code de la sécurité sociale, art. R161-47): without an ARL within 2 working days, or
with a negative one, the lot must be sent again within 2 more working days. Working days skip
weekends and French public holidays (``holidays``; Alsace-Moselle and overseas departments have
their own, chosen by subdivision).

Nothing here does I/O: :mod:`caducee.health.teletransmission` applies it.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import logging
import re
import zlib
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from email import message_from_bytes
from email.header import decode_header, make_header
from email.message import Message
from email.policy import compat32
from enum import Enum
from functools import lru_cache

from caducee.domain import working_days
from caducee.domain.working_days import PARIS, REGIONS
from caducee.errors import InvalidInput

#: The subject of a lot. Tolerant: case, blanks around the slashes, the sequence number after
#: ``IR`` optional, the invoice count optional.
DEFAULT_SUBJECT_PATTERN = (
    r"^\s*IR\s*(?P<sequence>\d{1,6})?\s*/\s*(?P<sender>[0-9A-Z]{8,14})\s*/\s*"
    r"(?P<compostage>\d{19})\s*(?:/\s*(?P<count>\d{1,5}))?\s*$"
)
#: Return kinds, tried in this order on « Content-Description + Subject » of a return.
DEFAULT_ARL_NEGATIVE_PATTERN = r"\bARL\b.*\b(?:NEG|NEGATI[FV]E?|NÉGATIF|KO|REJET|REJETE)\b"
DEFAULT_ARL_POSITIVE_PATTERN = r"\bARL\b"
DEFAULT_NOEMIE_PATTERN = r"\b(?:NOEMIE|NOE|RSP|PAIEMENT|REJETS?)\b"
#: What a lot's EDI parts say (``IRIS/B2``, ``IRIS/B2/Z``, ``IRISTEST/B2``).
LOT_DESCRIPTION = re.compile(r"^\s*IRIS(?P<test>TEST)?/B2(?P<compressed>/Z)?\s*$", re.I)
#: A compostage (AAAAMMJJHHMMSS + 5 digits) anywhere in a return, for matching.
COMPOSTAGE = re.compile(
    r"(?<!\d)(?P<c>20\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{11})(?!\d)"
)
#: Where a full TLT mailbox moves its oldest acknowledged lots past retention (a folder
#: outside the quota, filled by the server only).
ARCHIVE_FOLDER = "Archive/Télétransmission"
EDI_TYPE = "application/edi-consent"
#: How much of a return's EDI payload is read (decoded, decompressed) to find its lot.
MAX_RETURN_SCAN = 1024 * 1024


@dataclass(frozen=True)
class Patterns:
    """The recognisers' regular expressions (case-insensitive), from the settings."""

    subject: str = DEFAULT_SUBJECT_PATTERN
    arl_negative: str = DEFAULT_ARL_NEGATIVE_PATTERN
    arl_positive: str = DEFAULT_ARL_POSITIVE_PATTERN
    noemie: str = DEFAULT_NOEMIE_PATTERN

    def compiled(self) -> CompiledPatterns:
        return _compile(self)


@dataclass(frozen=True)
class CompiledPatterns:
    subject: re.Pattern[str]
    arl_negative: re.Pattern[str]
    arl_positive: re.Pattern[str]
    noemie: re.Pattern[str]


@lru_cache(maxsize=8)
def _compile(patterns: Patterns) -> CompiledPatterns:
    return CompiledPatterns(
        re.compile(patterns.subject, re.I),
        re.compile(patterns.arl_negative, re.I),
        re.compile(patterns.arl_positive, re.I),
        re.compile(patterns.noemie, re.I),
    )


def check_pattern(name: str, pattern: str) -> str:
    """A configured pattern, or InvalidInput saying which one is wrong."""
    try:
        re.compile(pattern)
    except re.error as error:
        raise InvalidInput(
            f"Motif « {name} » invalide : {error}.", f"Invalid pattern '{name}': {error}."
        ) from None
    return pattern


@dataclass(frozen=True)
class LotSubject:
    """What a lot's subject says."""

    sender_number: str
    compostage: str
    invoice_count: int | None
    sequence: str | None


def parse_lot_subject(subject: str, patterns: Patterns = Patterns()) -> LotSubject | None:
    """The lot named by ``subject``, or None when it is not a lot's subject."""
    match = patterns.compiled().subject.match(subject or "")
    if match is None:
        return None
    groups = match.groupdict()
    sender, compostage = groups.get("sender"), groups.get("compostage")
    if not sender or not compostage:
        return None
    count = groups.get("count")
    return LotSubject(
        sender_number=sender.upper(),
        compostage=compostage,
        invoice_count=int(count) if count else None,
        sequence=groups.get("sequence") or None,
    )


class ReturnKind(Enum):
    ARL_POSITIVE = "arl_positive"
    ARL_NEGATIVE = "arl_negative"
    NOEMIE = "noemie"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class ReturnFacts:
    """What a return says: its kind and the lot it names (either may be missing)."""

    kind: ReturnKind
    compostage: str | None
    sender_number: str | None
    description: str


def classify_return(description: str, subject: str, patterns: Patterns = Patterns()) -> ReturnKind:
    """The kind of a return from its EDI part's Content-Description and its subject."""
    compiled = patterns.compiled()
    text = f"{description} {subject}"
    if compiled.arl_negative.search(text):
        return ReturnKind.ARL_NEGATIVE
    if compiled.arl_positive.search(text):
        return ReturnKind.ARL_POSITIVE
    if compiled.noemie.search(text):
        return ReturnKind.NOEMIE
    return ReturnKind.UNKNOWN


def decode_payload(data: bytes) -> bytes:
    """An EDI payload as read for matching: gunzipped (or zlib-inflated) when compressed, at
    most :data:`MAX_RETURN_SCAN` bytes; the bytes themselves when not compressed or broken."""
    if data[:2] == b"\x1f\x8b":
        try:
            with gzip.GzipFile(fileobj=_Bounded(data)) as stream:
                return stream.read(MAX_RETURN_SCAN)
        except (OSError, EOFError, zlib.error):
            return data[:MAX_RETURN_SCAN]
    return data[:MAX_RETURN_SCAN]


class _Bounded:
    """A minimal read-only file over bytes for :class:`gzip.GzipFile`."""

    def __init__(self, data: bytes) -> None:
        self._data, self._pos = data, 0

    def read(self, size: int = -1) -> bytes:
        end = len(self._data) if size < 0 else min(len(self._data), self._pos + size)
        chunk, self._pos = self._data[self._pos : end], end
        return chunk

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._pos, 2: len(self._data)}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self) -> int:
        return self._pos


def find_reference(
    texts: list[str], sender_numbers: frozenset[str] = frozenset()
) -> tuple[str | None, str | None]:
    """The (compostage, sender number) a return names in ``texts`` (subject first, then the
    payload): the first compostage found, and a known sender number seen beside it."""
    compostage = sender = None
    for text in texts:
        if compostage is None:
            found = COMPOSTAGE.search(text)
            if found is not None:
                compostage = found.group("c")
        if sender is None:
            upper = text.upper()
            sender = next((s for s in sorted(sender_numbers) if s in upper), None)
        if compostage is not None and sender is not None:
            break
    return compostage, sender


# --- working days -----------------------------------------------------------------------------


def check_subdivision(subdivision: str) -> str:
    """A region with its own public holidays (:data:`caducee.domain.working_days.REGIONS`:
    ``""`` metropolitan France, ``"57"`` Alsace-Moselle, ``"971"``–``"976"`` overseas)."""
    if subdivision not in REGIONS:
        known = ", ".join(code for code in REGIONS if code)
        raise InvalidInput(
            f"Région de jours fériés inconnue « {subdivision} » (connues : {known}).",
            f"Unknown holiday subdivision '{subdivision}' (known: {known}).",
        )
    return subdivision


def is_working_day(day: date, subdivision: str | None = None) -> bool:
    """A weekday that is no public holiday of ``subdivision`` (the funds' working days: the
    practice's own opening days do not matter to them)."""
    return working_days.is_working_day(day, subdivision or "")


def add_working_days(day: date, count: int, subdivision: str | None = None) -> date:
    """The ``count``-th working day after ``day`` (``day`` itself not counted)."""
    return working_days.add_working_days(day, count, subdivision or "")


def deadline_after(
    sent_at: datetime, working_days: int, subdivision: str | None = None
) -> datetime:
    """The end (midnight, Paris time) of the ``working_days``-th working day after the day
    ``sent_at`` falls on in Paris: an ARL expected « within 2 working days » of a lot sent on a
    Friday is due by Tuesday evening."""
    return _deadline_of_day(sent_at.astimezone(PARIS).date(), working_days, subdivision)


@lru_cache(maxsize=4096)
def _deadline_of_day(day: date, working_days: int, subdivision: str | None) -> datetime:
    """:func:`deadline_after` for a Paris day (kept: a page of lots asks for few days)."""
    last = add_working_days(day, working_days, subdivision)
    return datetime.combine(last + timedelta(days=1), time(0, 0), tzinfo=PARIS)


def arl_overdue_before(
    now: datetime, working_days: int = 2, subdivision: str | None = None
) -> datetime:
    """The instant (UTC) before which a lot sent is past its ARL delay at ``now``: the « now >=
    deadline_after(sent_at) » of :func:`lot_state` is « sent_at < this », since the deadline
    depends only on the Paris day of ``sent_at`` and never decreases with it. The store filters
    and counts lots by state in SQL with it (``lots_repo.state_column``)."""
    day = now.astimezone(PARIS).date()
    while _deadline_of_day(day, working_days, subdivision) > now:
        day -= timedelta(days=1)
    return datetime.combine(day + timedelta(days=1), time(0, 0), tzinfo=PARIS).astimezone(UTC)


# --- a lot's state -----------------------------------------------------------------------------


class LotState(Enum):
    """What a practitioner needs to know of a lot, in the order of the questions asked."""

    SENT = "envoye"  # waiting for its ARL, within the delay
    ARL_POSITIVE = "arl_positif"
    ARL_NEGATIVE = "arl_negatif"  # to send again
    NO_ARL = "sans_arl"  # no ARL after the delay: to send again
    UNDELIVERED = "non_remis"  # the fund's server refused it or never took it: to send again
    RESENT = "reemis"  # a later lot carries the same compostage

    @property
    def needs_action(self) -> bool:
        return self in (LotState.ARL_NEGATIVE, LotState.NO_ARL, LotState.UNDELIVERED)


LOT_STATE_LABELS: dict[LotState, tuple[str, str]] = {
    LotState.SENT: ("envoyé, ARL attendu", "sent, awaiting ARL"),
    LotState.ARL_POSITIVE: ("ARL positif", "positive ARL"),
    LotState.ARL_NEGATIVE: ("ARL négatif : à réémettre", "negative ARL: send again"),
    LotState.NO_ARL: (
        "sans ARL après 2 jours ouvrés : à réémettre",
        "no ARL after 2 working days: send again",
    ),
    LotState.UNDELIVERED: ("non remis : à réémettre", "not delivered: send again"),
    LotState.RESENT: ("réémis", "sent again"),
}
#: What the outbound queue says of a lot (``Lot.delivery``).
DELIVERY_LABELS: dict[str, tuple[str, str]] = {
    "queued": ("en cours de remise", "being delivered"),
    "delivered": ("remis à l'organisme", "delivered to the fund"),
    "failed": ("non remis", "not delivered"),
}
RETURN_KIND_LABELS: dict[ReturnKind, tuple[str, str]] = {
    ReturnKind.ARL_POSITIVE: ("ARL positif", "positive ARL"),
    ReturnKind.ARL_NEGATIVE: ("ARL négatif", "negative ARL"),
    ReturnKind.NOEMIE: ("NOEMIE", "NOEMIE"),
    ReturnKind.UNKNOWN: ("retour non reconnu", "unrecognised return"),
}


def parse_state(value: str) -> LotState:
    """A state as typed on the command line or in a URL (``arl_negatif``, ``sans_arl``...)."""
    try:
        return LotState(value.strip().lower())
    except ValueError:
        known = ", ".join(s.value for s in LotState)
        raise InvalidInput(
            f"État de lot inconnu « {value} » (connus : {known}).",
            f"Unknown lot state '{value}' (known: {known}).",
        ) from None


def lot_state(
    *,
    sent_at: datetime,
    arl: ReturnKind | None,
    delivery: str,
    resent: bool,
    now: datetime,
    arl_working_days: int = 2,
    subdivision: str | None = None,
) -> LotState:
    """A lot's state from its facts: resent first (the new lot carries the question), then its
    ARL, then its delivery, then the delay."""
    if resent:
        return LotState.RESENT
    if arl is ReturnKind.ARL_POSITIVE:
        return LotState.ARL_POSITIVE
    if arl is ReturnKind.ARL_NEGATIVE:
        return LotState.ARL_NEGATIVE
    if delivery == "failed":
        return LotState.UNDELIVERED
    if now >= deadline_after(sent_at, arl_working_days, subdivision):
        return LotState.NO_ARL
    return LotState.SENT


def resend_deadline(
    sent_at: datetime,
    arl_at: datetime | None,
    state: LotState,
    *,
    arl_working_days: int = 2,
    resend_working_days: int = 2,
    subdivision: str | None = None,
) -> datetime | None:
    """When a lot that needs action must have been sent again (None: no action needed)."""
    if not state.needs_action:
        return None
    if state is LotState.ARL_NEGATIVE and arl_at is not None:
        return deadline_after(arl_at, resend_working_days, subdivision)
    missed = deadline_after(sent_at, arl_working_days, subdivision)
    return deadline_after(missed - timedelta(seconds=1), resend_working_days, subdivision)


def domain_matches(domain: str, pattern: str) -> bool:
    """Whether ``domain`` matches an insurer pattern: ``*.rss.fr`` (any sub-domain of rss.fr),
    or an exact domain."""
    domain, pattern = domain.lower().rstrip("."), pattern.lower().strip().rstrip(".")
    if pattern.startswith("*."):
        suffix = pattern[1:]
        return domain.endswith(suffix) and len(domain) > len(suffix)
    return domain == pattern


def check_domain_pattern(pattern: str) -> str:
    """An insurer domain pattern (``*.rss.fr`` or ``mutuelle.example``), normalised."""
    clean = pattern.strip().lower().rstrip(".")
    bare = clean[2:] if clean.startswith("*.") else clean
    labels = bare.split(".")
    if len(labels) < 2 or not all(
        re.fullmatch(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?", label) for label in labels
    ):
        raise InvalidInput(
            f"Domaine d'organisme invalide « {pattern} » : indiquez un domaine (mutuelle.fr) "
            "ou « *.domaine » (*.rss.fr).",
            f"Invalid insurer domain '{pattern}': give a domain (mutuelle.fr) or '*.domain' "
            "(*.rss.fr).",
        )
    return clean


# --- what is recorded -------------------------------------------------------------------------


@dataclass(frozen=True)
class LotReturn:
    """A return received by a TLT mailbox (its kind, the lot it names, where it is stored)."""

    id: int
    mailbox_id: int
    lot_id: int | None
    kind: ReturnKind
    description: str
    compostage: str | None
    sender_number: str | None
    size: int
    stored_message_id: int | None
    received_at: datetime


@dataclass(frozen=True)
class Lot:
    """A lot sent from a TLT mailbox, as recorded from its subject and envelope."""

    id: int
    practice_id: int
    mailbox_id: int
    sender_number: str
    compostage: str
    sequence: str | None
    invoice_count: int | None
    fund: str
    test_mode: bool
    size: int
    message_id: str
    stored_message_id: int | None
    queue_id: int | None
    sent_at: datetime
    delivery: str  # queued, delivered, failed
    delivery_detail: str
    delivery_at: datetime | None
    arl: ReturnKind | None
    arl_at: datetime | None
    resent_by: int | None
    resend_of: int | None
    notified_at: datetime | None
    archived_at: datetime | None


# --- a return's recognition (pure, CPU-bound) ---------------------------------------------

log = logging.getLogger(__name__)

#: How much of a return is parsed to recognise it (its EDI parts); a bigger return is kept
#: whole and recorded as « unknown » rather than parsed on and on.
MAX_PARSED_RETURN = 20 * 1024 * 1024


def _header_text(value: object) -> str:
    if value is None:
        return ""
    try:
        return str(make_header(decode_header(str(value))))
    except (UnicodeError, ValueError, LookupError):
        return str(value)


def _edi_parts(message: Message) -> list[Message]:
    return [
        part
        for part in message.walk()
        if not part.is_multipart() and part.get_content_type() == EDI_TYPE
    ]


def _payload_text(part: Message) -> str:
    raw = part.get_payload(decode=False)
    if not isinstance(raw, str):
        return ""
    encoding = str(part.get("Content-Transfer-Encoding", "")).strip().lower()
    data = raw.encode("ascii", "replace")
    if encoding == "base64":
        try:
            data = base64.b64decode(data, validate=False)
        except (binascii.Error, ValueError):
            return ""
    return decode_payload(data).decode("latin-1")


def recognise_return(raw: bytes, patterns: Patterns, sender_numbers: frozenset[str]) -> ReturnFacts:
    """What a return says (CPU work: a big one runs in a worker
    process, ``health.teletransmission.record_returns``). Never raises on bad input:
    what cannot be read is an « unknown » return."""
    if len(raw) > MAX_PARSED_RETURN:
        return ReturnFacts(ReturnKind.UNKNOWN, None, None, "")
    try:
        message = message_from_bytes(raw, policy=compat32)
        subject = _header_text(message.get("Subject"))
        parts = _edi_parts(message)
        descriptions = [_header_text(p.get("Content-Description")).strip() for p in parts]
        description = " ".join(d for d in descriptions if d)[:200]
        if any(LOT_DESCRIPTION.match(d) for d in descriptions):
            kind = ReturnKind.UNKNOWN  # a lot coming back is not a return
        else:
            kind = classify_return(description, subject, patterns)
        texts = [subject, description, *(_payload_text(p) for p in parts)]
        compostage, sender = find_reference(texts, sender_numbers)
        return ReturnFacts(kind, compostage, sender, description)
    except Exception:  # hostile input: keep it, recognise nothing
        log.warning("return not parsed, kept as unknown", exc_info=True)
        return ReturnFacts(ReturnKind.UNKNOWN, None, None, "")
