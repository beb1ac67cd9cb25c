"""Detectors of identifying or health data in a text, run on its folded form (no accents,
lower case, see :func:`caducee.domain.dlp_terms.fold`). Each yields ``(kind, start, end)``
spans in the folded text. Pure functions, linear regular expressions (no nested repetition).

- ``nir``: NIR / INS, 13 characters and a 2-digit key, a space or a dot allowed between any two
  digits; first digit 1, 2 (sex), 3 (people born abroad, provisional), 7 or 8 (temporary
  numbers); Corsica's departments 2A and 2B count as 19 and 18 for the key, which is
  97 − (number mod 97). Only numbers whose key is right are reported.
- ``rpps``: 11 digits with a right Luhn key, either after the word "RPPS" (20 characters
  before at most) or starting with "10" like every RPPS number issued.
- ``date_naissance``: a date (01/02/1980, 1-2-1980, 1.02.80, 1er février 1980, 1980-02-01)
  at most 25 characters after "né le", "née le", "né(e) le", "date de naissance" or "DDN".
- ``cim10``: a CIM-10 code (capital letter, 2 digits, optionally "." and 1–2 digits) at most
  40 characters after "CIM", "code" or "diagnostic". Every letter A–Z opens a CIM-10 chapter
  (U holds special codes such as U07.1), so the letter alone filters nothing: without this
  context, references such as "A12", "B52" or "E10" in ordinary mail would all be reported.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date

from caducee.domain.identifiers import luhn_valid, nir_key_valid

Span = tuple[str, int, int]

_SEP = r"[ .]?"
NIR = re.compile(
    r"(?<![\w.])[1-478]"
    + rf"(?:{_SEP}\d){{4}}"
    + rf"{_SEP}(?:\d{_SEP}\d|2{_SEP}[ab])"
    + rf"(?:{_SEP}\d){{6}}"
    + rf"{_SEP}\d{_SEP}\d(?![\w])"
)
RPPS = re.compile(r"(?<![\w.])\d{11}(?![\w])")
RPPS_CONTEXT = re.compile(r"rpps[^\d]{0,20}$")

MONTHS = {
    "janvier": 1, "fevrier": 2, "mars": 3, "avril": 4, "mai": 5, "juin": 6, "juillet": 7,
    "aout": 8, "septembre": 9, "octobre": 10, "novembre": 11, "decembre": 12,
    "janv": 1, "fev": 2, "fevr": 2, "avr": 4, "juil": 7, "sept": 9, "oct": 10, "nov": 11,
    "dec": 12,
}  # fmt: skip
_MONTH_NAMES = "|".join(sorted(MONTHS, key=len, reverse=True))
BIRTH_CONTEXT = re.compile(r"(?<!\w)(?:nee?(?:\(e\))?\s+le|date\s+de\s+naissance|ddn)(?!\w)")
DATE_NUMERIC = re.compile(r"(?<!\d)(\d{1,2})[/.\-](\d{1,2})[/.\-](\d{4}|\d{2})(?!\d)")
DATE_WORDS = re.compile(rf"(?<!\d)(\d{{1,2}})(?:er)?\s+({_MONTH_NAMES})\.?\s+(\d{{4}})(?!\d)")
DATE_ISO = re.compile(r"(?<!\d)(\d{4})-(\d{2})-(\d{2})(?!\d)")
BIRTH_WINDOW = 25

CIM10 = re.compile(r"(?<![\w.])[a-z]\d{2}(?:\.\d{1,2})?(?![\w])")
CIM10_CONTEXT = re.compile(r"(?<!\w)(?:cim|code|diagnostic)")
CIM10_WINDOW = 40


def find_nir(folded: str) -> Iterator[Span]:
    for match in NIR.finditer(folded):
        if nir_key_valid(re.sub(r"[ .]", "", match.group())):
            yield ("nir", match.start(), match.end())


def find_rpps(folded: str) -> Iterator[Span]:
    for match in RPPS.finditer(folded):
        digits = match.group()
        if not luhn_valid(digits):
            continue
        after_word = RPPS_CONTEXT.search(folded, max(0, match.start() - 24), match.start())
        if after_word or digits.startswith("10"):
            yield ("rpps", match.start(), match.end())


def _real_date(year: int, month: int, day: int) -> bool:
    if year < 100:
        year += 1900 if year > date.today().year % 100 else 2000
    try:
        return date(1870, 1, 1) <= date(year, month, day) <= date.today()
    except ValueError:
        return False


def find_birth_dates(folded: str) -> Iterator[Span]:
    for context in BIRTH_CONTEXT.finditer(folded):
        window_end = min(len(folded), context.end() + BIRTH_WINDOW)
        found: list[tuple[int, int]] = []
        for pattern, order in ((DATE_NUMERIC, "dmy"), (DATE_WORDS, "dmy"), (DATE_ISO, "ymd")):
            match = pattern.search(folded, context.end(), window_end)
            if match is None:
                continue
            parts = dict(zip(order, match.groups(), strict=True))
            month = MONTHS.get(parts["m"]) or (int(parts["m"]) if parts["m"].isdigit() else 0)
            if _real_date(int(parts["y"]), month, int(parts["d"])):
                found.append((match.start(), match.end()))
        if found:
            start, end = min(found)
            yield ("date_naissance", start, end)


def find_cim10(folded: str, original_upper: list[bool]) -> Iterator[Span]:
    """``original_upper[i]``: the original character of folded position ``i`` is a capital."""
    for match in CIM10.finditer(folded):
        if not original_upper[match.start()]:
            continue
        if CIM10_CONTEXT.search(folded, max(0, match.start() - CIM10_WINDOW), match.start()):
            yield ("cim10", match.start(), match.end())
