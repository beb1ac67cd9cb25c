"""The sensitive French terms the DLP looks for: a default list shipped with Caducée (diagnoses,
treatments, situations whose mere mention reveals health data), to which a practice adds its
own. Kept as a Python module so that it always ships with the package.

Terms are matched on whole words, accent- and case-insensitively (see :func:`fold`).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field

DEFAULT_TERMS: tuple[str, ...] = (
    # Infections
    "VIH", "sida", "séropositif", "séropositive", "séropositivité", "antirétroviral",
    "trithérapie", "PrEP", "hépatite B", "hépatite C", "syphilis", "gonorrhée", "chlamydia",
    "IST", "MST", "herpès génital", "tuberculose",
    # Cancer
    "cancer", "tumeur", "métastase", "métastases", "leucémie", "lymphome", "chimiothérapie",
    "radiothérapie", "oncologie",
    # Mental health and addictions
    "dépression", "dépressif", "dépressive", "antidépresseur", "trouble bipolaire",
    "bipolaire", "schizophrénie", "schizophrène", "psychose", "neuroleptique",
    "tentative de suicide", "idées suicidaires", "anorexie", "boulimie", "alcoolisme",
    "toxicomanie", "addiction", "méthadone", "buprénorphine", "Subutex",
    "hospitalisation psychiatrique", "hospitalisation sous contrainte",
    # Reproductive health
    "IVG", "interruption volontaire de grossesse", "fausse couche", "infertilité", "PMA",
    "stérilité",
    # Chronic and neurological conditions
    "diabète", "épilepsie", "sclérose en plaques", "Alzheimer", "Parkinson", "démence",
    "dialyse", "greffe", "mucoviscidose", "myopathie",
)  # fmt: skip

#: Longest term accepted (a practice's terms are short words or phrases).
MAX_TERM_CHARS = 80
#: Most terms in one list.
MAX_TERMS = 2000


#: Letters NFKD does not decompose.
LIGATURES = {"œ": "oe", "Œ": "oe", "æ": "ae", "Æ": "ae"}


def fold(text: str) -> tuple[str, list[int]]:
    """``text`` without accents and case-folded (``Œ`` → ``oe``), and, for every character of
    the result, the index of the character of ``text`` it comes from."""
    folded: list[str] = []
    origin: list[int] = []
    for index, char in enumerate(text):
        if char.isascii():
            piece = char.lower()
        elif char in LIGATURES:
            piece = LIGATURES[char]
        else:
            decomposed = unicodedata.normalize("NFKD", char)
            piece = "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()
        folded.append(piece)
        origin.extend([index] * len(piece))
    return "".join(folded), origin


def fold_text(text: str) -> str:
    return fold(text)[0]


def _term_pattern(term: str) -> str:
    words = [re.escape(word) for word in re.split(r"[\s\-'’]+", fold_text(term)) if word]
    return r"[\s\-'’]+".join(words)


@dataclass(frozen=True)
class TermList:
    """Terms to find, as given (for display) and compiled into one whole-word pattern."""

    terms: tuple[str, ...]
    pattern: re.Pattern[str] | None = field(compare=False, repr=False)

    @classmethod
    def of(cls, terms: Iterable[str]) -> TermList:
        kept: dict[str, str] = {}
        for term in terms:
            cleaned = " ".join(term.split())[:MAX_TERM_CHARS]
            if cleaned and fold_text(cleaned) not in kept and len(kept) < MAX_TERMS:
                kept[fold_text(cleaned)] = cleaned
        if not kept:
            return cls((), None)
        alternatives = sorted((_term_pattern(t) for t in kept.values()), key=len, reverse=True)
        compiled = re.compile(r"(?<!\w)(?:" + "|".join(a for a in alternatives if a) + r")(?!\w)")
        return cls(tuple(kept.values()), compiled)

    @classmethod
    def default(cls, extra: Iterable[str] = ()) -> TermList:
        """The shipped list plus a practice's own terms."""
        return cls.of([*DEFAULT_TERMS, *extra])


def parse_terms(text: str) -> list[str]:
    """A practice's term list as typed: one term per line (or separated by ``;``), ``#`` starts
    a comment."""
    terms: list[str] = []
    for line in text.splitlines():
        line = line.split("#", 1)[0]
        terms += [" ".join(t.split()) for t in line.split(";") if t.strip()]
    return terms
