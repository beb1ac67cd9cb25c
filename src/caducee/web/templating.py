"""Jinja2 templates (autoescaped), gettext in templates, French dates and sizes."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from babel.dates import format_datetime
from babel.numbers import format_decimal
from jinja2 import Environment, PackageLoader, select_autoescape

from caducee.domain import charter as charter_rules
from caducee.web.i18n import N_, current_language, gettext, ngettext

PARIS = ZoneInfo("Europe/Paris")


def format_when(value: datetime | None, fmt: str = "medium") -> str:
    """A date and time in Europe/Paris, in the page's language (``d MMM y, HH:mm``)."""
    if value is None:
        return "—"
    if value.tzinfo is None:  # SQLite gives naive datetimes back: they are UTC
        value = value.replace(tzinfo=UTC)
    lang = current_language.get()
    pattern = "d MMM y, HH:mm" if fmt == "medium" else "dd/MM/y HH:mm:ss"
    return format_datetime(value, pattern, tzinfo=PARIS, locale=lang)


def format_short_when(value: datetime | None) -> str:
    """A date and time in Europe/Paris as figures (``04/12/2026 09:30``; ``2026-12-04 09:30``
    in English): for long tables, where Babel's patterns would cost most of the page's time."""
    if value is None:
        return "—"
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    pattern = "%Y-%m-%d %H:%M" if current_language.get() == "en" else "%d/%m/%Y %H:%M"
    return value.astimezone(PARIS).strftime(pattern)


_UNITS = {"fr": ("o", "Ko", "Mo", "Go", "To"), "en": ("B", "KB", "MB", "GB", "TB")}


def format_size(value: int | None) -> str:
    """1536 → « 1,5 Ko » (French) or "1.5 KB" (English): powers of 1024."""
    if value is None:
        return "—"
    lang = current_language.get()
    units = _UNITS.get(lang, _UNITS["fr"])
    number = float(value)
    unit = 0
    while number >= 1024 and unit < len(units) - 1:
        number /= 1024
        unit += 1
    text = format_decimal(number, format="#,##0.#", locale=lang)
    return f"{text}\u00a0{units[unit]}"


def percent(used: int, total: int) -> int:
    if total <= 0:
        return 0
    return min(100, round(100 * used / total))


#: Display names of stored codes (roles, mailbox types, audit results), French msgids.
LABELS: dict[str, dict[str, str]] = {
    "role": {
        "praticien": N_("Praticien"),
        "secretaire": N_("Secrétaire"),
        "admin": N_("Administrateur"),
    },
    "mailbox": {
        "PER": N_("personnelle"),
        "ORG": N_("organisationnelle (partagée)"),
        "APP": N_("applicative (logiciel métier)"),
        "TLT": N_("télétransmission"),
    },
    "result": {"ok": N_("réussi"), "denied": N_("refusé"), "failed": N_("échoué")},
    "queue": {
        "queued": N_("en attente"),
        "deferred": N_("différé"),
        "delivered": N_("remis"),
        "bounced": N_("rejeté"),
        "expired": N_("expiré"),
    },
    "trace": {
        "queued": N_("en attente d'envoi"),
        "delivered": N_("remis"),
        "deferred": N_("différé"),
        "bounced": N_("rejeté"),
        "expired": N_("expiré"),
        "read": N_("lu (accusé de lecture)"),
        "deposited": N_("déposé sur le portail"),
        "opened": N_("ouvert sur le portail"),
        "downloaded": N_("pièce jointe téléchargée"),
        "replied": N_("réponse du patient"),
        "code_sent": N_("code envoyé par SMS"),
        "code_failed": N_("code erroné"),
        "locked": N_("lien verrouillé"),
        "revoked": N_("retiré du portail"),
        "purged": N_("expiré, contenu effacé"),
        "sensitive": N_("données sensibles signalées"),
        "closed": N_("échange clos (Mon espace santé)"),
        "mdn_sent": N_("accusé de lecture envoyé"),
        "mdn_withheld": N_("accusé de lecture non envoyé"),
    },
    # Télétransmission (domain.teletransmission: LotState, Lot.delivery, ReturnKind).
    "lot_state": {
        "envoye": N_("envoyé, ARL attendu"),
        "arl_positif": N_("ARL positif"),
        "arl_negatif": N_("ARL négatif : à réémettre"),
        "sans_arl": N_("sans ARL après le délai : à réémettre"),
        "non_remis": N_("non remis : à réémettre"),
        "reemis": N_("réémis"),
    },
    "lot_delivery": {
        "queued": N_("en cours de remise"),
        "delivered": N_("remis à l'organisme"),
        "failed": N_("non remis"),
    },
    "lot_return": {
        "arl_positive": N_("ARL positif"),
        "arl_negative": N_("ARL négatif"),
        "noemie": N_("NOEMIE"),
        "unknown": N_("retour non reconnu"),
    },
    # Why a read receipt was not sent (flows.read_receipts).
    "mdn_withheld": {
        "return-path": N_("l'adresse demandée n'est pas celle de l'expéditeur (Return-Path)"),
        "patient": N_("un patient ne reçoit que les messages du canal patient"),
        "policy": N_("la règle d'envoi de la boîte ne permet pas d'écrire à cette adresse"),
    },
}


#: Display names of the special-use folders (RFC 6154), French msgids.
FOLDER_NAMES: dict[str, str] = {
    "\\Inbox": N_("Boîte de réception"),
    "\\Sent": N_("Envoyés"),
    "\\Drafts": N_("Brouillons"),
    "\\Trash": N_("Corbeille"),
    "\\Junk": N_("Indésirables"),
    "\\Archive": N_("Archives"),
}


def folder_label(folder: object) -> str:
    """A folder's name as people read it: special-use folders translated."""
    use = getattr(folder, "special_use", None)
    if use in FOLDER_NAMES:
        return gettext(FOLDER_NAMES[str(use)])
    return str(getattr(folder, "name", folder))


def person(value: str) -> str:
    """``"Dr Anne Moreau <a.moreau@chu.test>"`` → ``"Dr Anne Moreau"`` (the address if no name;
    the first of several)."""
    first = value.split(",")[0].strip() if "<" not in value.split(",")[0] else value
    name, _, rest = first.partition("<")
    name = name.strip().strip('"')
    if name and rest:
        return name
    return rest.rstrip(">").strip() or first.strip()


def label(kind: str, value: object) -> str:
    """The translated display name of a stored code (the code itself if unknown)."""
    key = str(getattr(value, "value", value))
    text = LABELS.get(kind, {}).get(key)
    return gettext(text) if text else key


def charter_emergency() -> str:
    """The charter's emergency line in the page's language (every portal page shows it, even
    when no practice is known)."""
    fr, en = charter_rules.SHORT_EMERGENCY
    return en if current_language.get() == "en" else fr


def create_environment() -> Environment:
    env = Environment(
        loader=PackageLoader("caducee.web", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_callables(gettext, ngettext, newstyle=True)  # type: ignore[attr-defined]
    env.filters["when"] = format_when
    env.filters["short_when"] = format_short_when
    env.filters["size"] = format_size
    env.globals["percent"] = percent
    env.globals["label"] = label
    env.globals["folder_label"] = folder_label
    env.globals["charter_emergency"] = charter_emergency
    env.filters["person"] = person
    return env
