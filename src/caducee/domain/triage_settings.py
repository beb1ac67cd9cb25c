"""A practice's triage settings (issue 16), purely: its message types (renamed, disabled,
added), the default type, and the optional urgent alert; the IMAP keyword of each type, so
Thunderbird sees the triage too; and the admin console's form.

The stored JSON is ``rules_from_json``'s shape plus ``alert_email`` and ``alert_mobile``
(:func:`to_dict`, :func:`from_dict`). The default types are the charter's message types
(:data:`caducee.domain.charter.MESSAGE_TYPES`, with ``hors-champ``): the same identifiers,
so what a practice accepts by e-mail and what the triage calls a message speak of one thing.
``hors-champ`` cannot be disabled: it is what the triage gives a message no other type fits
(an urgent one among them), never hidden nor discarded.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from caducee.domain.addresses import normalize_address
from caducee.domain.triage import (
    DEFAULT_RULES,
    DEFAULT_TYPES,
    MessageType,
    Triage,
    TriageRules,
    strip_accents,
)
from caducee.domain.triage_input import rules_from_json
from caducee.errors import InvalidInput

__all__ = [
    "KEYWORD_PREFIX",
    "MAX_KEYWORDS",
    "MAX_LABEL_CHARS",
    "MAX_TYPES",
    "OUT_OF_SCOPE_ID",
    "URGENT_KEYWORD",
    "TriageSettings",
    "from_dict",
    "from_form",
    "keyword_of",
    "keywords",
    "labels_of_keywords",
    "to_dict",
]

KEYWORD_PREFIX = "$Caducee-"
#: The « Urgent ? » keyword, beside the type's.
URGENT_KEYWORD = "$Caducee-Urgent"
OUT_OF_SCOPE_ID = "hors-champ"
MAX_TYPES = 20
MAX_LABEL_CHARS = 80
MAX_KEYWORDS = 30
MAX_KEYWORD_CHARS = 60

#: The keywords of the default types, spelled as the issue names them.
DEFAULT_KEYWORDS: dict[str, str] = {
    "resultats": "$Caducee-Resultats",
    "conseil": "$Caducee-Conseil",
    "renouvellement": "$Caducee-Renouvellement",
    "rendez-vous": "$Caducee-RendezVous",
    "administratif": "$Caducee-Administratif",
    "hors-champ": "$Caducee-HorsChamp",
}
_DEFAULT_IDS = frozenset(t.id for t in DEFAULT_TYPES)
_RESERVED = {k.lower() for k in (*DEFAULT_KEYWORDS.values(), URGENT_KEYWORD)}


@dataclass(frozen=True)
class TriageSettings:
    rules: TriageRules = DEFAULT_RULES
    #: The practice's address the urgent alert is mailed to ("" : no e-mail alert).
    alert_email: str = ""
    #: The mobile number the urgent alert is sent to by SMS ("" : none), E.164 once checked.
    alert_mobile: str = ""

    @property
    def alerts(self) -> bool:
        return bool(self.alert_email or self.alert_mobile)


def keyword_of(type_id: str) -> str:
    """The IMAP keyword of a type: the default ones as named, an added one from its id in
    CamelCase (« certif-sport » → ``$Caducee-CertifSport``): letters, digits and ``-`` only, an
    atom every IMAP client accepts (RFC 9051 §9 ``flag-keyword``)."""
    if type_id in DEFAULT_KEYWORDS:
        return DEFAULT_KEYWORDS[type_id]
    parts = re.split(r"[^a-z0-9]+", strip_accents(type_id.lower()))
    name = "".join(p[:1].upper() + p[1:] for p in parts if p) or "Autre"
    return KEYWORD_PREFIX + name[:40]


def keywords(triage: Triage) -> tuple[str, ...]:
    """The IMAP keywords a classified message is stored with: its type's, then « Urgent »."""
    found = (keyword_of(triage.type),)
    return (*found, URGENT_KEYWORD) if triage.urgent else found


def labels_of_keywords(rules: TriageRules, lang: str = "fr") -> dict[str, str]:
    """Keyword → the type's label (disabled types too: messages keep their label)."""
    return {keyword_of(t.id): t.label(lang) for t in rules.types}


# --- stored form ----------------------------------------------------------------------------


def _check(settings: TriageSettings) -> TriageSettings:
    rules = settings.rules
    if len(rules.types) > MAX_TYPES:
        raise InvalidInput(
            f"{MAX_TYPES} types de message au plus.", f"At most {MAX_TYPES} message types."
        )
    seen: dict[str, str] = {}
    for t in rules.types:
        for label in (t.label_fr, t.label_en):
            if not label.strip() or len(label) > MAX_LABEL_CHARS:
                raise InvalidInput(
                    f"Type « {t.id} » : libellé de 1 à {MAX_LABEL_CHARS} caractères.",
                    f"Type '{t.id}': a label of 1 to {MAX_LABEL_CHARS} characters.",
                )
        if len(t.keywords) > MAX_KEYWORDS or any(len(k) > MAX_KEYWORD_CHARS for k in t.keywords):
            raise InvalidInput(
                f"Type « {t.label_fr} » : {MAX_KEYWORDS} mots-clés au plus, "
                f"de {MAX_KEYWORD_CHARS} caractères au plus.",
                f"Type '{t.label_en}': at most {MAX_KEYWORDS} keywords of at most "
                f"{MAX_KEYWORD_CHARS} characters.",
            )
        keyword = keyword_of(t.id).lower()
        if (t.id not in _DEFAULT_IDS and keyword in _RESERVED) or keyword in seen:
            raise InvalidInput(
                f"Le type « {t.label_fr} » se confond avec un autre ; choisissez un autre nom.",
                f"Type '{t.label_en}' would be confused with another; choose another name.",
            )
        seen[keyword] = t.id
    out_of_scope = rules.type(OUT_OF_SCOPE_ID)
    if out_of_scope is None or not out_of_scope.enabled:
        raise InvalidInput(
            "Le type « hors champ » ne peut pas être désactivé : c'est lui qui reçoit ce que "
            "la messagerie ne traite pas.",
            "The 'out of scope' type cannot be disabled: it receives what e-mail cannot handle.",
        )
    default = rules.type(rules.default_type)
    if default is None or not default.enabled:
        raise InvalidInput(
            "Le type par défaut doit être un type activé.",
            "The default type must be an enabled type.",
        )
    email = settings.alert_email.strip()
    if email:
        try:
            email = normalize_address(email)
        except InvalidInput:
            raise InvalidInput(
                f"Adresse d'alerte invalide : « {email[:80]} ».",
                f"Invalid alert address: '{email[:80]}'.",
            ) from None
    return replace(settings, alert_email=email, alert_mobile=settings.alert_mobile.strip())


def to_dict(settings: TriageSettings) -> dict[str, Any]:
    return {
        "default_type": settings.rules.default_type,
        "types": [
            {
                "id": t.id,
                "label_fr": t.label_fr,
                "label_en": t.label_en,
                "enabled": t.enabled,
                "keywords": list(t.keywords),
            }
            for t in settings.rules.types
        ],
        "alert_email": settings.alert_email,
        "alert_mobile": settings.alert_mobile,
    }


def from_dict(data: Any) -> TriageSettings:
    """Settings from their JSON; :class:`InvalidInput` (French, English) when wrong."""
    try:
        rules = rules_from_json(data)
    except ValueError as error:
        raise InvalidInput(
            f"Réglages de tri illisibles : {error}.", f"Unreadable triage settings: {error}."
        ) from None
    assert isinstance(data, dict)
    email, mobile = data.get("alert_email", ""), data.get("alert_mobile", "")
    if not isinstance(email, str) or not isinstance(mobile, str):
        raise InvalidInput("Alerte illisible.", "Unreadable alert.")
    return _check(TriageSettings(rules, email, mobile))


# --- the admin console's form ---------------------------------------------------------------


def slug(label: str) -> str:
    """A new type's id from its French label: « Certificat de sport » → ``certificat-de-sport``."""
    words = re.split(r"[^a-z0-9]+", strip_accents(label.lower()))
    return "-".join(w for w in words if w)[:40].strip("-")


def _words(text: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(w.strip() for w in re.split(r"[,;\n]", text) if w.strip()))


def from_form(
    form: Mapping[str, str], enabled: Sequence[str], removed: Sequence[str] = ()
) -> TriageSettings:
    """The console's fields: per type ``libelle_<id>``, ``libelle_en_<id>``, ``mots_<id>``, the
    ticked ``actifs`` and, for an added type, ``supprimer``; a new type from ``nouveau_libelle``
    (its id made from it), ``nouveau_libelle_en``, ``nouveau_mots``; ``defaut``;
    ``alerte_courriel`` and ``alerte_sms``. Checked like stored settings."""
    current = [t.id for t in DEFAULT_TYPES]
    current += [
        k[len("libelle_") :]
        for k in form
        if k.startswith("libelle_")
        and not k.startswith("libelle_en_")
        and k[len("libelle_") :] not in current
    ]
    types: list[MessageType] = []
    for type_id in current:
        if type_id in removed and type_id not in _DEFAULT_IDS:
            continue
        base = next((t for t in DEFAULT_TYPES if t.id == type_id), None)
        label_fr = form.get(f"libelle_{type_id}", "").strip() or (base.label_fr if base else "")
        label_en = form.get(f"libelle_en_{type_id}", "").strip() or (
            base.label_en if base else label_fr
        )
        types.append(
            MessageType(
                type_id,
                label_fr,
                label_en,
                type_id in enabled,
                _words(form.get(f"mots_{type_id}", "")),
            )
        )
    new_label = form.get("nouveau_libelle", "").strip()
    if new_label:
        new_id = slug(new_label)
        if not new_id or any(t.id == new_id for t in types):
            raise InvalidInput(
                f"Le type « {new_label[:80]} » existe déjà ou n'a pas de nom utilisable.",
                f"Type '{new_label[:80]}' already exists or has no usable name.",
            )
        types.append(
            MessageType(
                new_id,
                new_label,
                form.get("nouveau_libelle_en", "").strip() or new_label,
                True,
                _words(form.get("nouveau_mots", "")),
            )
        )
    default_type = form.get("defaut", "") or DEFAULT_RULES.default_type
    if default_type in removed or not any(t.id == default_type for t in types):
        default_type = DEFAULT_RULES.default_type
    return _check(
        TriageSettings(
            TriageRules(tuple(types), default_type),
            form.get("alerte_courriel", ""),
            form.get("alerte_sms", ""),
        )
    )


def form_values(settings: TriageSettings) -> dict[str, Any]:
    """What the console's form shows for stored settings."""
    return {
        "types": [
            {
                "id": t.id,
                "label_fr": t.label_fr,
                "label_en": t.label_en,
                "enabled": t.enabled,
                "keywords": ", ".join(t.keywords),
                "keyword": keyword_of(t.id),
                "added": t.id not in _DEFAULT_IDS,
                "fixed": t.id == OUT_OF_SCOPE_ID,
            }
            for t in settings.rules.types
        ],
        "defaut": settings.rules.default_type,
        "alerte_courriel": settings.alert_email,
        "alerte_sms": settings.alert_mobile,
    }
