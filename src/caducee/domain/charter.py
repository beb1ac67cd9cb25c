"""The practice's charter (issue 16): the rules a practice states to the patients who write to
it — which messages it handles, how fast it answers, when it is open, and that e-mail never
replaces a consultation and is never for an emergency.

One :class:`Charter` per practice, optionally one per practitioner overriding it. The type is
pure data with its rules: defaults (a practice that changes nothing shows a correct charter),
validation with explicit limits and French/English errors, parsing of the admin console's
fields, a JSON form for storage, and the renderings every door shows — the short form (portal
pages, patient e-mails, auto-replies) and the full form (plain text for e-mails,
:class:`CharterView` for templates). The message types are data (:data:`MESSAGE_TYPES`), shared
with the triage of incoming messages.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any

from caducee.domain.working_days import REGIONS, Closure, Interval, expected_answer, is_open
from caducee.errors import InvalidInput

__all__ = [
    "DEFAULT_HOURS",
    "EMERGENCY_NUMBERS",
    "MESSAGE_TYPES",
    "OUT_OF_SCOPE",
    "REGIONS",
    "Charter",
    "CharterView",
    "Closure",
    "EmergencyNumber",
    "Interval",
    "MessageType",
]


# --- message types ----------------------------------------------------------------------------


@dataclass(frozen=True)
class MessageType:
    """A kind of message a patient may send; ``id`` is stable (stored, used by the triage)."""

    id: str
    fr: str
    en: str
    hint_fr: str
    hint_en: str

    def label(self, lang: str) -> str:
        return self.en if lang == "en" else self.fr

    def hint(self, lang: str) -> str:
        return self.hint_en if lang == "en" else self.hint_fr


#: What a practice may accept by e-mail, in display order.
MESSAGE_TYPES: tuple[MessageType, ...] = (
    MessageType(
        "resultats",
        "Résultats d'examens",
        "Test results",
        "transmission de vos résultats et questions simples à leur sujet",
        "sending your results and simple questions about them",
    ),
    MessageType(
        "conseil",
        "Conseil simple",
        "Simple advice",
        "une question courte qui ne demande pas d'examen",
        "a short question that needs no examination",
    ),
    MessageType(
        "renouvellement",
        "Renouvellement d'ordonnance",
        "Prescription renewal",
        "pour un traitement habituel, déjà prescrit par le cabinet",
        "for a usual treatment already prescribed by the practice",
    ),
    MessageType(
        "rendez-vous",
        "Rendez-vous",
        "Appointments",
        "prendre, déplacer ou annuler un rendez-vous",
        "booking, moving or cancelling an appointment",
    ),
    MessageType(
        "administratif",
        "Démarches administratives",
        "Paperwork",
        "certificats, attestations, courriers, documents à transmettre",
        "certificates, statements, letters, documents to send",
    ),
)

#: What the triage gives a message that fits none of the types: never "accepted".
OUT_OF_SCOPE = MessageType(
    "hors-champ",
    "Hors du champ de la messagerie",
    "Outside the scope of e-mail",
    "ce qui demande une consultation, un examen ou une réponse urgente",
    "what needs a consultation, an examination or an urgent answer",
)

ALL_MESSAGE_TYPES: tuple[MessageType, ...] = (*MESSAGE_TYPES, OUT_OF_SCOPE)
_TYPES_BY_ID = {t.id: t for t in ALL_MESSAGE_TYPES}


def message_type(type_id: str) -> MessageType:
    """The message type of ``type_id`` (accepted ones and ``hors-champ``), or InvalidInput."""
    try:
        return _TYPES_BY_ID[type_id]
    except KeyError:
        raise InvalidInput(
            f"Type de message inconnu « {type_id[:40]} ».",
            f"Unknown message type '{type_id[:40]}'.",
        ) from None


# --- emergency --------------------------------------------------------------------------------


@dataclass(frozen=True)
class EmergencyNumber:
    number: str
    fr: str
    en: str

    def label(self, lang: str) -> str:
        return self.en if lang == "en" else self.fr


#: National numbers, always shown in the full charter (a practice cannot remove them).
EMERGENCY_NUMBERS: tuple[EmergencyNumber, ...] = (
    EmergencyNumber("15", "SAMU, urgence médicale", "SAMU, medical emergency"),
    EmergencyNumber("112", "numéro d'urgence européen", "European emergency number"),
    EmergencyNumber(
        "114",
        "par SMS ou avec l'application 114, pour les personnes sourdes, malentendantes ou qui "
        "ne peuvent pas parler",
        "by text message or with the 114 app, for deaf or hard-of-hearing people and those who "
        "cannot speak",
    ),
    EmergencyNumber(
        "3114",
        "prévention du suicide, 24 h/24, 7 j/7",
        "suicide prevention, 24 hours a day, 7 days a week",
    ),
    EmergencyNumber(
        "116 117",
        "médecin de garde le soir, la nuit et le week-end (permanence des soins)",
        "doctor on call in the evening, at night and at weekends (out-of-hours care)",
    ),
)

DEFAULT_EMERGENCY = (
    "N'utilisez jamais la messagerie en cas d'urgence : elle n'est pas lue en dehors des "
    "heures d'ouverture, et une réponse peut prendre plusieurs jours. En cas d'urgence, "
    "appelez le 15 ou le 112.",
    "Never use e-mail in an emergency: it is not read outside opening hours, and an answer may "
    "take several days. In an emergency, call 15 or 112.",
)

SHORT_EMERGENCY = (
    "Ce service ne remplace pas une consultation. En cas d'urgence : 15 ou 112 (114 par SMS "
    "pour les personnes sourdes ou malentendantes).",
    "This service does not replace a consultation. In an emergency: 15 or 112 (114 by text "
    "message for deaf or hard-of-hearing people).",
)


# --- limits and defaults ----------------------------------------------------------------------

MAX_DELAY_DAYS = 15
MAX_INTERVALS_PER_DAY = 4
MAX_CLOSURES = 30
MAX_CLOSURE_DAYS = 366
MAX_LABEL_CHARS = 80
MAX_EMERGENCY_CHARS = 1_000
MAX_FREE_TEXT_CHARS = 2_000

WEEKDAY_NAMES: tuple[tuple[str, str], ...] = (
    ("lundi", "Monday"),
    ("mardi", "Tuesday"),
    ("mercredi", "Wednesday"),
    ("jeudi", "Thursday"),
    ("vendredi", "Friday"),
    ("samedi", "Saturday"),
    ("dimanche", "Sunday"),
)

_DAY = ((time(9), time(12)), (time(14), time(18)))
#: Monday to Friday, 9:00–12:00 and 14:00–18:00.
DEFAULT_HOURS: tuple[tuple[Interval, ...], ...] = (_DAY, _DAY, _DAY, _DAY, _DAY, (), ())


@dataclass(frozen=True)
class Charter:
    """A practice's (or a practitioner's) charter. Build it with :func:`validated` or
    :func:`from_form`; the defaults are a correct charter."""

    accepted: tuple[str, ...] = tuple(t.id for t in MESSAGE_TYPES)
    delay_days: int = 2
    hours: tuple[tuple[Interval, ...], ...] = DEFAULT_HOURS
    closures: tuple[Closure, ...] = ()
    region: str = ""
    emergency_text: str = ""  # empty: DEFAULT_EMERGENCY
    free_text: str = ""

    def accepts(self, type_id: str) -> bool:
        return type_id in self.accepted and type_id != OUT_OF_SCOPE.id

    def expected_answer(self, received: datetime) -> date:
        """The date by which a message received at ``received`` may expect its answer."""
        return expected_answer(received, self.delay_days, self.hours, self.region, self.closures)

    def is_open(self, at: datetime) -> bool:
        """Whether ``at`` falls within opening hours on a working day of the practice."""
        return is_open(at, self.hours, self.region, self.closures)

    def emergency(self, lang: str) -> str:
        if self.emergency_text:
            return self.emergency_text
        return DEFAULT_EMERGENCY[1] if lang == "en" else DEFAULT_EMERGENCY[0]


# --- validation -------------------------------------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def _clean_text(value: str, limit: int, what_fr: str, what_en: str) -> str:
    text = value.replace("\r\n", "\n").replace("\r", "\n").strip()
    if len(text) > limit:
        raise InvalidInput(
            f"{what_fr} trop long : {limit} caractères au plus ({len(text)} saisis).",
            f"{what_en} too long: at most {limit} characters ({len(text)} given).",
        )
    if _CONTROL.search(text):
        raise InvalidInput(
            f"{what_fr} : caractère de contrôle interdit.",
            f"{what_en}: control characters are not allowed.",
        )
    return text


def _check_day(day: int, intervals: Sequence[Interval]) -> tuple[Interval, ...]:
    name_fr, name_en = WEEKDAY_NAMES[day]
    if len(intervals) > MAX_INTERVALS_PER_DAY:
        raise InvalidInput(
            f"Horaires du {name_fr} : {MAX_INTERVALS_PER_DAY} plages au plus.",
            f"{name_en} hours: at most {MAX_INTERVALS_PER_DAY} time ranges.",
        )
    ordered = tuple(sorted(intervals))
    previous_end: time | None = None
    for start, end in ordered:
        if start >= end:
            raise InvalidInput(
                f"Horaires du {name_fr} : la plage {start:%H:%M}–{end:%H:%M} finit avant de "
                "commencer.",
                f"{name_en} hours: the range {start:%H:%M}–{end:%H:%M} ends before it starts.",
            )
        if previous_end is not None and start < previous_end:
            raise InvalidInput(
                f"Horaires du {name_fr} : des plages se chevauchent.",
                f"{name_en} hours: time ranges overlap.",
            )
        previous_end = end
    return ordered


def validated(
    *,
    accepted: Sequence[str],
    delay_days: int,
    hours: Sequence[Sequence[Interval]],
    closures: Sequence[Closure] = (),
    region: str = "",
    emergency_text: str = "",
    free_text: str = "",
) -> Charter:
    """A :class:`Charter` from its parts, or InvalidInput saying what to fix."""
    unknown = [a for a in accepted if a not in {t.id for t in MESSAGE_TYPES}]
    if unknown:
        raise InvalidInput(
            f"Type de message non acceptable : « {unknown[0][:40]} ».",
            f"Message type that cannot be accepted: '{unknown[0][:40]}'.",
        )
    if not accepted:
        raise InvalidInput(
            "Cochez au moins un type de message traité par la messagerie.",
            "Tick at least one type of message handled by e-mail.",
        )
    order = [t.id for t in MESSAGE_TYPES]
    kept = tuple(sorted(set(accepted), key=order.index))
    if not 0 <= delay_days <= MAX_DELAY_DAYS:
        raise InvalidInput(
            f"Délai de réponse : de 0 à {MAX_DELAY_DAYS} jours ouvrés.",
            f"Response delay: from 0 to {MAX_DELAY_DAYS} working days.",
        )
    if len(hours) != 7:
        raise InvalidInput(
            "Horaires : un jour de la semaine manque.", "Opening hours: a weekday is missing."
        )
    checked = tuple(_check_day(d, hours[d]) for d in range(7))
    if not any(checked):
        raise InvalidInput(
            "Indiquez au moins une plage d'ouverture dans la semaine : le délai de réponse se "
            "compte en jours d'ouverture.",
            "Give at least one opening time range in the week: the response delay counts "
            "opening days.",
        )
    if len(closures) > MAX_CLOSURES:
        raise InvalidInput(
            f"Fermetures : {MAX_CLOSURES} au plus (retirez les plus anciennes).",
            f"Closures: at most {MAX_CLOSURES} (remove the oldest ones).",
        )
    kept_closures: list[Closure] = []
    for closure in closures:
        if closure.end < closure.start:
            raise InvalidInput(
                f"Fermeture du {closure.start:%d/%m/%Y} : la fin précède le début.",
                f"Closure of {closure.start:%Y-%m-%d}: it ends before it starts.",
            )
        if (closure.end - closure.start).days >= MAX_CLOSURE_DAYS:
            raise InvalidInput(
                f"Fermeture du {closure.start:%d/%m/%Y} : {MAX_CLOSURE_DAYS} jours au plus.",
                f"Closure of {closure.start:%Y-%m-%d}: at most {MAX_CLOSURE_DAYS} days.",
            )
        label = _clean_text(closure.label, MAX_LABEL_CHARS, "Motif de fermeture", "Closure label")
        if "\n" in label:
            raise InvalidInput(
                "Motif de fermeture : une seule ligne.", "Closure label: a single line."
            )
        kept_closures.append(Closure(closure.start, closure.end, label))
    if region not in REGIONS:
        raise InvalidInput(
            f"Région inconnue « {region[:10]} » : choisissez-en une dans la liste.",
            f"Unknown region '{region[:10]}': choose one from the list.",
        )
    emergency = _clean_text(
        emergency_text, MAX_EMERGENCY_CHARS, "Texte sur les urgences", "Emergency text"
    )
    if emergency and not (_mentions(emergency, "15") and _mentions(emergency, "112")):
        raise InvalidInput(
            "Le texte sur les urgences doit citer le 15 et le 112 (ou laissez-le vide pour le "
            "texte par défaut).",
            "The emergency text must mention 15 and 112 (or leave it empty for the default text).",
        )
    return Charter(
        accepted=kept,
        delay_days=delay_days,
        hours=checked,
        closures=tuple(sorted(kept_closures, key=lambda c: (c.start, c.end))),
        region=region,
        emergency_text=emergency,
        free_text=_clean_text(free_text, MAX_FREE_TEXT_CHARS, "Texte libre", "Free text"),
    )


def _mentions(text: str, number: str) -> bool:
    return re.search(rf"(?<!\d)(?<!\d ){re.escape(number)}(?!\d)(?! \d)", text) is not None


# --- the admin console's fields ---------------------------------------------------------------

_CLOCK = r"(\d{1,2})\s*(?:[:h]\s*(\d{2})?)?"
_RANGE = re.compile(rf"^{_CLOCK}\s*(?:-|–|—|à|a)\s*{_CLOCK}$", re.IGNORECASE)


def _clock(hour: str, minute: str | None, where_fr: str, where_en: str) -> time:
    h, m = int(hour), int(minute or 0)
    if h == 24 and m == 0:
        return time(23, 59)
    if h > 23 or m > 59:
        raise InvalidInput(f"{where_fr} : heure invalide.", f"{where_en}: invalid time.")
    return time(h, m)


def parse_hours(text: str, day: int = 0) -> tuple[Interval, ...]:
    """``"09:00-12:00, 14h-18h30"`` → intervals; empty (or « fermé ») is a closed day."""
    name_fr, name_en = WEEKDAY_NAMES[day]
    cleaned = text.strip().lower()
    if cleaned in ("", "fermé", "ferme", "closed", "-"):
        return ()
    if len(cleaned) > 200:
        raise InvalidInput(f"Horaires du {name_fr} : trop longs.", f"{name_en} hours: too long.")
    found: list[Interval] = []
    for part in re.split(r"[,;/]|\bet\b", cleaned):
        part = part.strip()
        if not part:
            continue
        matched = _RANGE.match(part)
        if matched is None:
            raise InvalidInput(
                f"Horaires du {name_fr} : « {part[:30]} » n'est pas une plage comme 09:00-12:00.",
                f"{name_en} hours: '{part[:30]}' is not a range like 09:00-12:00.",
            )
        where = (f"Horaires du {name_fr}", f"{name_en} hours")
        start = _clock(matched.group(1), matched.group(2), *where)
        end = _clock(matched.group(3), matched.group(4), *where)
        found.append((start, end))
    return tuple(found)


def format_hours(intervals: Sequence[Interval]) -> str:
    """Intervals as the console's field shows them: ``"09:00-12:00, 14:00-18:00"``."""
    return ", ".join(f"{s:%H:%M}-{e:%H:%M}" for s, e in intervals)


_DATE = r"(\d{1,2}/\d{1,2}/\d{4}|\d{4}-\d{2}-\d{2})"
_CLOSURE = re.compile(
    rf"^{_DATE}(?:\s*(?:-|–|—|au|à)\s*{_DATE})?\s*(?:[:,;–—-]\s*)?(.*)$", re.IGNORECASE
)


def _date(text: str, line: int) -> date:
    try:
        if "/" in text:
            d, m, y = (int(p) for p in text.split("/"))
            return date(y, m, d)
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidInput(
            f"Fermetures, ligne {line} : date « {text} » invalide.",
            f"Closures, line {line}: invalid date '{text}'.",
        ) from None


def parse_closures(text: str) -> tuple[Closure, ...]:
    """One closure a line: ``JJ/MM/AAAA [au JJ/MM/AAAA] motif`` (ISO dates too)."""
    lines = [line.strip() for line in text.replace("\r", "").split("\n")]
    filled = [(n, line) for n, line in enumerate(lines, 1) if line]
    if len(filled) > MAX_CLOSURES:
        raise InvalidInput(
            f"Fermetures : {MAX_CLOSURES} au plus (retirez les plus anciennes).",
            f"Closures: at most {MAX_CLOSURES} (remove the oldest ones).",
        )
    found: list[Closure] = []
    for number, line in filled:
        matched = _CLOSURE.match(line)
        if matched is None:
            raise InvalidInput(
                f"Fermetures, ligne {number} : commencez par une date, comme « 04/08/2025 au "
                "22/08/2025 Congés d'été ».",
                f"Closures, line {number}: start with a date, such as '04/08/2025 au 22/08/2025 "
                "Summer holidays'.",
            )
        start = _date(matched.group(1), number)
        end = _date(matched.group(2), number) if matched.group(2) else start
        found.append(Closure(start, end, matched.group(3).strip()))
    return tuple(found)


def format_closures(closures: Sequence[Closure]) -> str:
    """Closures as the console's field shows them (what :func:`parse_closures` reads)."""
    lines = []
    for c in closures:
        span = f"{c.start:%d/%m/%Y}" + (f" au {c.end:%d/%m/%Y}" if c.end != c.start else "")
        lines.append(f"{span} {c.label}".strip())
    return "\n".join(lines)


def from_form(form: Mapping[str, str], accepted: Sequence[str]) -> Charter:
    """The charter the admin console's form describes (field names in French: ``delai``,
    ``horaires_lundi`` … ``horaires_dimanche``, ``fermetures``, ``region``, ``urgences``,
    ``texte_libre``; the ticked types come apart, a form may repeat ``types``)."""
    raw_delay = form.get("delai", "").strip()
    try:
        delay = int(raw_delay)
    except ValueError:
        raise InvalidInput(
            "Délai de réponse : un nombre de jours ouvrés.",
            "Response delay: a number of working days.",
        ) from None
    hours = tuple(
        parse_hours(form.get(f"horaires_{fr}", ""), d) for d, (fr, _en) in enumerate(WEEKDAY_NAMES)
    )
    return validated(
        accepted=list(accepted),
        delay_days=delay,
        hours=hours,
        closures=parse_closures(form.get("fermetures", "")),
        region=form.get("region", "").strip(),
        emergency_text=form.get("urgences", ""),
        free_text=form.get("texte_libre", ""),
    )


def form_values(charter: Charter) -> dict[str, Any]:
    """The console's field values for ``charter`` (the inverse of :func:`from_form`)."""
    values: dict[str, Any] = {
        "types": list(charter.accepted),
        "delai": str(charter.delay_days),
        "fermetures": format_closures(charter.closures),
        "region": charter.region,
        "urgences": charter.emergency_text,
        "texte_libre": charter.free_text,
    }
    for d, (fr, _en) in enumerate(WEEKDAY_NAMES):
        values[f"horaires_{fr}"] = format_hours(charter.hours[d])
    return values


# --- storage (JSON) ---------------------------------------------------------------------------

FORMAT_VERSION = 1


def to_dict(charter: Charter) -> dict[str, Any]:
    """The JSON-ready form of ``charter`` (stored, and the REST API's ``charte``)."""
    return {
        "version": FORMAT_VERSION,
        "types": list(charter.accepted),
        "delai_jours_ouvres": charter.delay_days,
        "horaires": {
            WEEKDAY_NAMES[d][0]: [{"debut": f"{s:%H:%M}", "fin": f"{e:%H:%M}"} for s, e in day]
            for d, day in enumerate(charter.hours)
        },
        "fermetures": [
            {"debut": c.start.isoformat(), "fin": c.end.isoformat(), "motif": c.label}
            for c in charter.closures
        ],
        "region": charter.region,
        "urgences": charter.emergency_text,
        "texte_libre": charter.free_text,
    }


def from_dict(data: Mapping[str, Any]) -> Charter:
    """A charter from :func:`to_dict`'s form, validated again (InvalidInput if broken); a
    missing key keeps its default."""
    try:
        hours_data = data.get("horaires")
        hours = (
            DEFAULT_HOURS
            if hours_data is None
            else tuple(
                tuple(
                    (time.fromisoformat(r["debut"]), time.fromisoformat(r["fin"]))
                    for r in hours_data.get(fr, [])
                )
                for fr, _en in WEEKDAY_NAMES
            )
        )
        closures = tuple(
            Closure(
                date.fromisoformat(c["debut"]), date.fromisoformat(c["fin"]), c.get("motif", "")
            )
            for c in data.get("fermetures", [])
        )
        return validated(
            accepted=[str(t) for t in data.get("types", Charter().accepted)],
            delay_days=int(data.get("delai_jours_ouvres", 2)),
            hours=hours,
            closures=closures,
            region=str(data.get("region", "")),
            emergency_text=str(data.get("urgences", "")),
            free_text=str(data.get("texte_libre", "")),
        )
    except (KeyError, TypeError, ValueError, AttributeError):
        raise InvalidInput("Charte enregistrée illisible.", "Unreadable stored charter.") from None


# --- renderings -------------------------------------------------------------------------------


def _pick(pair: tuple[str, str], lang: str) -> str:
    return pair[1] if lang == "en" else pair[0]


def delay_sentence(charter: Charter, lang: str) -> str:
    n = charter.delay_days
    if lang == "en":
        if n == 0:
            return "Answer on the same working day."
        return f"Answer within {n} working day{'s' if n > 1 else ''}."
    if n == 0:
        return "Réponse le jour ouvré même."
    return f"Réponse sous {n} jour{'s' if n > 1 else ''} ouvré{'s' if n > 1 else ''}."


def short_text(charter: Charter, lang: str = "fr", link: str = "") -> str:
    """The short form, one paragraph of plain text: not a consultation, the emergency numbers,
    the response delay, and the full charter's link when there is one."""
    parts = [_pick(SHORT_EMERGENCY, lang), delay_sentence(charter, lang)]
    if link:
        parts.append(
            ("Charter of the practice: " if lang == "en" else "Charte du cabinet : ") + link
        )
    return " ".join(parts)


def short_text_bilingual(charter: Charter, link: str = "") -> str:
    """The short form in French then English, for the e-mails (which carry both)."""
    return f"{short_text(charter, 'fr', link)}\n\n{short_text(charter, 'en', link)}"


def _date_text(day: date, lang: str) -> str:
    return f"{day:%Y-%m-%d}" if lang == "en" else f"{day:%d/%m/%Y}"


def closure_text(closure: Closure, lang: str) -> str:
    start, end = _date_text(closure.start, lang), _date_text(closure.end, lang)
    if closure.start == closure.end:
        span = f"on {start}" if lang == "en" else f"le {start}"
    else:
        span = f"from {start} to {end}" if lang == "en" else f"du {start} au {end}"
    return f"{closure.label} ({span})" if closure.label else span


def hours_text(intervals: Sequence[Interval], lang: str) -> str:
    if not intervals:
        return "closed" if lang == "en" else "fermé"
    return ", ".join(f"{s:%H:%M}–{e:%H:%M}" for s, e in intervals)


@dataclass(frozen=True)
class DayHours:
    day: str
    hours: str
    open: bool


@dataclass(frozen=True)
class AcceptedType:
    id: str
    label: str
    hint: str


@dataclass(frozen=True)
class CharterView:
    """What the templates show, in one language (the page's)."""

    lang: str
    not_a_consultation: str
    delay: str
    accepted: tuple[AcceptedType, ...]
    refused: tuple[str, ...]
    out_of_scope: str
    delay_detail: str
    hours: tuple[DayHours, ...]
    closures: tuple[str, ...]
    region: str
    emergency: str
    numbers: tuple[tuple[str, str], ...]
    free_text: str
    next_answer: str = ""
    paragraphs: tuple[str, ...] = field(default=())


def delay_detail(charter: Charter, lang: str) -> str:
    if lang == "en":
        return (
            f"{delay_sentence(charter, lang)} Working days are the practice's opening days, "
            "except public holidays and closures. A message received outside opening hours, "
            "on a public holiday or during a closure counts from the next opening."
        )
    return (
        f"{delay_sentence(charter, lang)} Les jours ouvrés sont les jours d'ouverture du "
        "cabinet, hors jours fériés et fermetures. Un message reçu en dehors des heures "
        "d'ouverture, un jour férié ou pendant une fermeture compte à partir de la réouverture."
    )


def view(
    charter: Charter, lang: str = "fr", today: date | None = None, now: datetime | None = None
) -> CharterView:
    """The structured full form for templates: closures ended before ``today`` are left out;
    ``now`` (aware) adds when a message sent now may expect its answer."""
    accepted = tuple(
        AcceptedType(t.id, t.label(lang), t.hint(lang))
        for t in MESSAGE_TYPES
        if t.id in charter.accepted
    )
    refused = tuple(t.label(lang) for t in MESSAGE_TYPES if t.id not in charter.accepted)
    upcoming = tuple(
        closure_text(c, lang) for c in charter.closures if today is None or c.end >= today
    )
    next_answer = ""
    if now is not None:
        answer = _date_text(charter.expected_answer(now), lang)
        next_answer = (
            f"A message sent now may expect its answer by {answer}."
            if lang == "en"
            else f"Un message envoyé maintenant peut attendre sa réponse au plus tard le {answer}."
        )
    return CharterView(
        lang=lang,
        not_a_consultation=_pick(SHORT_EMERGENCY, lang),
        delay=delay_sentence(charter, lang),
        accepted=accepted,
        refused=refused,
        out_of_scope=OUT_OF_SCOPE.hint(lang),
        delay_detail=delay_detail(charter, lang),
        hours=tuple(
            DayHours(
                _pick(WEEKDAY_NAMES[d], lang),
                hours_text(charter.hours[d], lang),
                bool(charter.hours[d]),
            )
            for d in range(7)
        ),
        closures=upcoming,
        region=_pick(REGIONS[charter.region], lang),
        emergency=charter.emergency(lang),
        numbers=tuple((n.number, n.label(lang)) for n in EMERGENCY_NUMBERS),
        free_text=charter.free_text,
        next_answer=next_answer,
        paragraphs=tuple(p for p in charter.free_text.split("\n\n") if p.strip()),
    )


def full_text(charter: Charter, lang: str = "fr", today: date | None = None) -> str:
    """The full charter as plain text (e-mails)."""
    shown = view(charter, lang, today)
    en = lang == "en"
    lines = ["CHARTER OF THE PRACTICE" if en else "CHARTE DU CABINET", "", shown.not_a_consultation]
    lines += ["", "Handled by e-mail:" if en else "Ce que le cabinet traite par messagerie :"]
    lines += [
        f"- {a.label} : {a.hint}" if not en else f"- {a.label}: {a.hint}" for a in shown.accepted
    ]
    not_handled = [*shown.refused, shown.out_of_scope]
    lines += [
        "",
        ("Not handled by e-mail: " if en else "Ne sont pas traités par messagerie : ")
        + "; ".join(not_handled)
        + ".",
    ]
    lines += ["", shown.delay_detail, "", "Opening hours:" if en else "Horaires d'ouverture :"]
    lines += [f"- {h.day} : {h.hours}" if not en else f"- {h.day}: {h.hours}" for h in shown.hours]
    if shown.closures:
        lines += ["", "Closures:" if en else "Fermetures :"] + [f"- {c}" for c in shown.closures]
    lines += [
        "",
        (
            f"Public holidays of: {shown.region}."
            if en
            else f"Jours fériés pris en compte : {shown.region}."
        ),
        "",
        "EMERGENCIES" if en else "URGENCES",
        shown.emergency,
    ]
    lines += [
        f"- {number} : {label}" if not en else f"- {number}: {label}"
        for number, label in shown.numbers
    ]
    if shown.free_text:
        lines += ["", shown.free_text]
    return "\n".join(lines)
