"""Sensitive-data detection (DLP) in a message: NIR / INS, RPPS, dates of birth, CIM-10 codes
and French health terms — the pure scanning half of :mod:`caducee.health.dlp`, in the domain so
that a big message is scanned in a worker process (``services.cpu_pool``, issue 17).

Pure functions, no I/O: :func:`scan_text` and :func:`scan_message` return :class:`Finding`
objects whose excerpt is MASKED — the raw value never leaves this module, so findings can be
shown, counted in a trace or an audit record (:func:`summary`) without copying health data.
The work is bounded: at most :data:`MAX_SCAN_CHARS` characters of a text and
:data:`MAX_FINDINGS` findings.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from caducee.domain.dlp_detectors import (
    Span,
    find_birth_dates,
    find_cim10,
    find_nir,
    find_rpps,
)
from caducee.domain.dlp_mime import message_texts
from caducee.domain.dlp_terms import TermList, fold

#: Characters of one text scanned (the rest is ignored).
MAX_SCAN_CHARS = 200_000
#: Findings reported at most (per text, and per message).
MAX_FINDINGS = 100

LABELS: dict[str, tuple[str, str]] = {
    "nir": ("Numéro de sécurité sociale (NIR / INS)", "Social security number (NIR / INS)"),
    "rpps": ("Numéro RPPS", "RPPS number"),
    "date_naissance": ("Date de naissance", "Date of birth"),
    "cim10": ("Code de diagnostic CIM-10", "ICD-10 diagnosis code"),
    "terme": ("Terme médical sensible", "Sensitive medical term"),
}


@dataclass(frozen=True)
class Finding:
    kind: str  # "nir", "rpps", "date_naissance", "cim10", "terme"
    label_fr: str
    label_en: str
    excerpt: str  # masked: "1 85 05 ** *** *** 42", "**/**/****", "c*****"
    offset: int  # in the scanned text (characters)
    where: str = "texte"  # "texte", "sujet", "html", "nom de fichier"

    def label(self, lang: str = "fr") -> str:
        return self.label_en if lang == "en" else self.label_fr


def mask(kind: str, value: str) -> str:
    """The shown form of a detected ``value``: enough to find it again, not to read it."""
    if kind == "nir":
        digits = [i for i, c in enumerate(value) if c.isalnum()]
        shown = set(digits[:5] + digits[-2:])  # sex, year, month; the key
    elif kind == "rpps":
        digits = [i for i, c in enumerate(value) if c.isalnum()]
        shown = set(digits[:2] + digits[-2:])
    elif kind == "terme":
        shown = {0}
    else:
        shown = set()
    return "".join(c if i in shown or not c.isalnum() else "*" for i, c in enumerate(value))


def _spans(folded: str, original: str, origin: list[int], terms: TermList) -> list[Span]:
    upper = [original[i].isupper() for i in origin]
    spans: list[Span] = [
        *find_nir(folded),
        *find_rpps(folded),
        *find_birth_dates(folded),
        *find_cim10(folded, upper),
    ]
    if terms.pattern is not None:
        spans += [("terme", m.start(), m.end()) for m in terms.pattern.finditer(folded)]
    return spans


def scan_text(text: str, terms: TermList, *, where: str = "texte") -> list[Finding]:
    """Findings in ``text`` (its first :data:`MAX_SCAN_CHARS` characters), in text order."""
    original = text[:MAX_SCAN_CHARS]
    folded, origin = fold(original)
    findings: list[Finding] = []
    taken: list[tuple[int, int]] = []
    for kind, start, end in sorted(_spans(folded, original, origin, terms), key=lambda s: s[1]):
        first, last = origin[start], origin[end - 1] + 1
        if any(first < t_end and t_start < last for t_start, t_end in taken):
            continue  # inside a finding already made (a date inside a NIR...)
        taken.append((first, last))
        fr, en = LABELS[kind]
        findings.append(Finding(kind, fr, en, mask(kind, original[first:last]), first, where))
        if len(findings) >= MAX_FINDINGS:
            break
    return findings


def scan_message(raw: bytes, terms: TermList) -> list[Finding]:
    """Findings in a message's subject, text and HTML parts, and attachment file names (never
    raises on malformed MIME; bounded, see :func:`caducee.domain.dlp_mime.message_texts`)."""
    findings: list[Finding] = []
    for where, text in message_texts(raw):
        findings += scan_text(text, terms, where=where)
        if len(findings) >= MAX_FINDINGS:
            return findings[:MAX_FINDINGS]
    return findings


def summary(findings: list[Finding]) -> dict[str, int]:
    """Counts per kind, e.g. ``{"nir": 1, "terme": 2}``: safe for a trace or an audit record."""
    return dict(sorted(Counter(f.kind for f in findings).items()))
