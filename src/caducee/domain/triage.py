"""Triage of patient messages: the practice's message type and the warning signs that make a
message urgent. Pure: no I/O; never raises on any text.

The pipeline (see docs/triage.md):

1. *Tokens.* The text is cut into words, numbers (« 38,5 » → 38.5) and punctuation; each word is
   lower-cased, its accents stripped, letters repeated three times or more collapsed
   (« auuuuxx » → « aux »), SMS spellings expanded (« jai » → « j ai », « o » → « au »), elisions
   written without apostrophe split (« jarrive » → « j arrive »), and an unknown word one edit
   away from a word of the lexicon corrected (« poitrinne » → « poitrine »). Each word also
   gets its simplemma lemma (« veux » → « vouloir »), cached.
2. *Signs.* The patterns of ``triage_lexicon.URGENCY_PATTERNS`` are matched over the tokens;
   the feverish infant (three months or less, with fever) is found by reading ages and
   temperatures. Each match is then set aside if it is negated (« pas de douleur dans la
   poitrine », « il ne saigne pas »), only hypothetical (« en cas de douleur thoracique »), or
   history (« un AVC il y a 3 ans », « suite à son infarctus ») in a message that says nothing
   of now. What is left makes the message urgent; every sign carries its words as evidence.
3. *Type.* Weighted cues per type, the subject counting double, plus the practice's keywords;
   the best enabled type wins, the practice's default type when nothing speaks.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal, NamedTuple

from caducee.domain import triage_lexicon as lex

#: Only the start of a very long message is read (a patient writes the point first).
MAX_CHARS = 20_000
#: Below this score no type speaks and the practice's default type is chosen.
MIN_TYPE_SCORE = 1.0

# ---------------------------------------------------------------------------------------------
# Message types: the practice's settings
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MessageType:
    """One type of patient message as a practice configures it."""

    id: str
    label_fr: str
    label_en: str
    enabled: bool = True
    #: Extra words or phrases (« vaccin grippe », « ordonnance* ») that point to this type.
    keywords: tuple[str, ...] = ()

    def label(self, lang: str = "fr") -> str:
        return self.label_en if lang == "en" else self.label_fr


DEFAULT_TYPES: tuple[MessageType, ...] = (
    MessageType("resultats", "Résultats d'examens", "Test results"),
    MessageType("conseil", "Conseil simple", "Simple advice"),
    MessageType("renouvellement", "Renouvellement d'ordonnance", "Prescription renewal"),
    MessageType("rendez-vous", "Rendez-vous", "Appointment"),
    MessageType("administratif", "Administratif (certificats, arrêts, factures)", "Paperwork"),
    MessageType("hors-champ", "Hors champ (consultation nécessaire)", "Out of scope"),
)


@dataclass(frozen=True)
class TriageRules:
    """A practice's triage settings: its types (renamed, disabled, added) and the default."""

    types: tuple[MessageType, ...] = DEFAULT_TYPES
    #: When no cue speaks: a person reads it (« hors-champ ») rather than a canned answer.
    default_type: str = "hors-champ"

    def type(self, type_id: str) -> MessageType | None:
        return next((t for t in self.types if t.id == type_id), None)


DEFAULT_RULES = TriageRules()

# ---------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------

SetAside = Literal["negated", "hypothetical", "past"]


@dataclass(frozen=True)
class Sign:
    """A warning sign found in the message: its kind and the words that show it."""

    kind: str
    words: str
    set_aside: SetAside | None = None

    @property
    def label_fr(self) -> str:
        return lex.URGENCY_LABELS.get(self.kind, (self.kind, self.kind))[0]

    @property
    def label_en(self) -> str:
        return lex.URGENCY_LABELS.get(self.kind, (self.kind, self.kind))[1]


@dataclass(frozen=True)
class Triage:
    type: str
    urgent: bool
    #: The signs that make the message urgent, in the order found.
    signs: tuple[Sign, ...] = ()
    #: Signs found but set aside (negated, hypothetical, past): shown to explain, never alarming.
    set_aside: tuple[Sign, ...] = ()
    scores: dict[str, float] = field(default_factory=dict)

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(s.kind for s in self.signs))

    def as_json(self, rules: TriageRules = DEFAULT_RULES, lang: str = "fr") -> dict[str, object]:
        chosen = rules.type(self.type)

        def sign(s: Sign) -> dict[str, object]:
            out: dict[str, object] = {
                "kind": s.kind,
                "label": s.label_en if lang == "en" else s.label_fr,
                "words": s.words,
            }
            if s.set_aside:
                out["reason"] = s.set_aside
            return out

        return {
            "type": self.type,
            "type_label": chosen.label(lang) if chosen else self.type,
            "urgent": self.urgent,
            "signs": [sign(s) for s in self.signs],
            "set_aside": [sign(s) for s in self.set_aside],
            "scores": {k: round(v, 2) for k, v in self.scores.items()},
        }


# ---------------------------------------------------------------------------------------------
# Tokens
# ---------------------------------------------------------------------------------------------


class Token(NamedTuple):
    norm: str  # lower case, no accents, SMS expanded, typo corrected
    lemma: str  # simplemma lemma without accents ("" for punctuation)
    surface: str  # as written
    punct: str  # "" for a word or number; "," for a clause mark; "." for a sentence end
    number: float | None = None


_TOKEN_RE = re.compile(
    r"(?P<num>\d+(?:\s?[.,°]\s?\d+)?)|(?P<word>[^\W\d_]+)|(?P<end>[.!?]+|\n\s*\n)|(?P<clause>[,;:()\[\]/]|\s-\s)"
)
_REPEATS = re.compile(r"([^\W\d_])\1{2,}")
_LIGATURES = str.maketrans({"œ": "oe", "æ": "ae", "ß": "ss", "’": "'"})


@lru_cache(maxsize=65_536)
def strip_accents(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.translate(_LIGATURES))
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _lemmatizer() -> tuple[object, object]:
    import simplemma  # imported on first use: loading its French dictionary takes a second

    # The dictionary read as simplemma's compressed stream, not as a dict: 4 MB instead of
    # 24 MB in every serving process (issue 17's per-worker memory); a word not yet seen
    # costs ~0.15 ms instead of ~0.02 ms, and each word's answer is cached below.
    return (
        functools.partial(simplemma.lemmatize, low_memory=True),
        functools.partial(simplemma.is_known, low_memory=True),
    )


_simplemma: tuple[object, object] | None = None


def _known_and_lemma(word: str) -> tuple[bool, str]:
    global _simplemma
    if _simplemma is None:
        _simplemma = _lemmatizer()
    lemmatize, is_known = _simplemma
    try:
        known = bool(is_known(word, lang="fr"))  # type: ignore[operator]
        lemma = str(lemmatize(word, lang="fr")) if known else word  # type: ignore[operator]
    except Exception:  # a lemmatizer hiccup must never stop triage
        return False, word
    return known, lemma


def _damerau1(a: str, b: str) -> bool:
    """Whether ``a`` and ``b`` are at most one edit apart (insert, delete, substitute, swap)."""
    if a == b:
        return True
    la, lb = len(a), len(b)
    if abs(la - lb) > 1:
        return False
    i = 0
    while i < min(la, lb) and a[i] == b[i]:
        i += 1
    if la == lb:
        if a[i + 1 :] == b[i + 1 :]:
            return True
        return i + 1 < la and a[i] == b[i + 1] and a[i + 1] == b[i] and a[i + 2 :] == b[i + 2 :]
    if la > lb:
        return a[i + 1 :] == b[i:]
    return a[i:] == b[i + 1 :]


@lru_cache(maxsize=65_536)
def _analyse(word: str) -> tuple[tuple[str, str], ...]:
    """One written word → its (norm, lemma) words (several when SMS spelling stands for more)."""
    word = _REPEATS.sub(r"\1", word)
    norm = strip_accents(word)
    if norm in lex.SMS:
        return tuple((w, _lemma_of(w)) for w in lex.SMS[norm])
    known, lemma = _known_and_lemma(word)
    if known or norm in lex.KNOWN_WORDS or _LEXICON.knows(norm):
        return ((norm, strip_accents(lemma)),)
    # Elision written without its apostrophe: « jarrive », « narrive », « larrive », « quelle ».
    for head in ("qu", "j", "n", "l", "m", "t", "s", "d"):
        rest = norm[len(head) :]
        if norm.startswith(head) and len(rest) >= 3 and rest[0] in "aeiouyh":
            rest_known, rest_lemma = _known_and_lemma(word[len(head) :])
            if rest_known or _LEXICON.knows(rest):
                return ((head, head), (rest, strip_accents(rest_lemma)))
    fixed = _LEXICON.correct(norm)
    if fixed is not None:
        return ((fixed, fixed),)
    return ((norm, norm),)


@lru_cache(maxsize=65_536)
def _lemma_of(norm: str) -> str:
    known, lemma = _known_and_lemma(norm)
    return strip_accents(lemma) if known else norm


def _number(text: str) -> float | None:
    cleaned = re.sub(r"\s", "", text).replace(",", ".").replace("°", ".")
    try:
        return float(cleaned)
    except ValueError:
        return None


def tokenize(text: str) -> list[Token]:
    """The tokens of a text (see the module's docstring)."""
    tokens: list[Token] = []
    for m in _TOKEN_RE.finditer(text[:MAX_CHARS].lower()):
        kind = m.lastgroup
        surface = m.group()
        if kind == "num":
            value = _number(surface)
            norm = re.sub(r"\s", "", surface).replace(",", ".").replace("°", ".")
            tokens.append(Token(norm, norm, surface, "", value))
        elif kind == "word":
            for norm, lemma in _analyse(surface):
                tokens.append(Token(norm, lemma, surface, ""))
        elif kind == "end":
            tokens.append(Token(".", "", surface.strip() or "¶", "."))
        else:
            tokens.append(Token(",", "", surface.strip(), ","))
    # « avc » is SMS for « avec » before a determiner or a pronoun.
    for i, tok in enumerate(tokens[:-1]):
        if tok.norm == "avc" and tokens[i + 1].norm in lex.AVEC_BEFORE:
            tokens[i] = tok._replace(norm="avec", lemma="avec")
    return tokens


# ---------------------------------------------------------------------------------------------
# Patterns
# ---------------------------------------------------------------------------------------------


class Word(NamedTuple):
    text: str
    prefix: bool
    exact: bool  # "=word": the spelling only, never the lemma

    def matches(self, tok: Token) -> bool:
        if tok.punct:
            return False
        if self.prefix:
            return tok.norm.startswith(self.text) or tok.lemma.startswith(self.text)
        return tok.norm == self.text or (not self.exact and tok.lemma == self.text)


Alternative = tuple[Word, ...]  # a phrase: consecutive words (fillers may stand between)


class Slot(NamedTuple):
    alternatives: tuple[Alternative, ...]
    gap: int  # how many non-filler words may stand before this slot
    negative: bool  # "!a|b": the word after the match must not be one of these


@dataclass(frozen=True)
class Pattern:
    source: str
    label: str  # the sign kind or the type id
    weight: float
    slots: tuple[Slot, ...]


def _word(text: str) -> Word:
    exact = text.startswith("=")
    text = text.lstrip("=")
    return Word(text.rstrip("*"), text.endswith("*"), exact)


def compile_pattern(source: str, label: str, weight: float = 1.0) -> Pattern:
    slots: list[Slot] = []
    gap = 0
    for part in source.split():
        if part.startswith("~") and part[1:].isdigit():
            gap = int(part[1:])
            continue
        negative = part.startswith("!")
        alternatives = tuple(
            tuple(_word(w) for w in alt.split("_") if w)
            for alt in part.lstrip("!").split("|")
            if alt
        )
        slots.append(Slot(alternatives, gap, negative))
        gap = 0
    return Pattern(source, label, weight, tuple(slots))


def _match_alternative(alt: Alternative, tokens: Sequence[Token], j: int) -> list[int] | None:
    found: list[int] = []
    for w in alt:
        while j < len(tokens) and found and not w.matches(tokens[j]):
            if tokens[j].norm not in lex.FILLERS:
                return None
            j += 1
        if j >= len(tokens) or not w.matches(tokens[j]):
            return None
        found.append(j)
        j += 1
    return found


def _match_slot(slot: Slot, tokens: Sequence[Token], j: int) -> list[int] | None:
    for alt in slot.alternatives:
        found = _match_alternative(alt, tokens, j)
        if found:
            return found
    return None


def _next_words(tokens: Sequence[Token], pos: int, count: int) -> list[int]:
    out: list[int] = []
    while pos < len(tokens) and len(out) < count and tokens[pos].punct != ".":
        if not tokens[pos].punct and tokens[pos].norm not in lex.FILLERS:
            out.append(pos)
        pos += 1
    return out


def match_at(pattern: Pattern, tokens: Sequence[Token], start: int) -> list[int] | None:
    """The token indices a pattern matches when its first slot starts at ``start``."""
    first = _match_slot(pattern.slots[0], tokens, start)
    if not first:
        return None
    matched = list(first)
    pos = first[-1] + 1
    for slot in pattern.slots[1:]:
        if slot.negative:  # none of these among the next few words
            if any(_match_slot(slot, tokens, j) for j in _next_words(tokens, pos, 3)):
                return None
            continue
        allowed = slot.gap
        j = pos
        while True:
            if j >= len(tokens) or tokens[j].punct == ".":
                return None
            found = _match_slot(slot, tokens, j)
            if found:
                break
            if tokens[j].norm in lex.FILLERS and not tokens[j].punct:
                j += 1
                continue
            if allowed <= 0:
                return None
            allowed -= 1
            j += 1
        matched.extend(found)
        pos = found[-1] + 1
    return matched


class PatternSet:
    """Patterns indexed by their first words, so a message is read once whatever their number."""

    def __init__(self, patterns: Iterable[Pattern]) -> None:
        self.patterns = tuple(patterns)
        self._exact: dict[str, list[int]] = {}
        self._prefix: dict[str, list[int]] = {}
        for n, p in enumerate(self.patterns):
            for alt in p.slots[0].alternatives:
                first = alt[0]
                index = self._prefix if first.prefix else self._exact
                index.setdefault(first.text, []).append(n)

    def candidates(self, tok: Token) -> set[int]:
        found: set[int] = set()
        if tok.punct:
            return found
        for key in {tok.norm, tok.lemma}:
            found.update(self._exact.get(key, ()))
            for length in range(1, len(key) + 1):
                found.update(self._prefix.get(key[:length], ()))
        return found

    def find(self, tokens: Sequence[Token]) -> list[tuple[Pattern, list[int]]]:
        """Every match, at most one per pattern and start, in text order."""
        out: list[tuple[Pattern, list[int]]] = []
        for i, tok in enumerate(tokens):
            for n in sorted(self.candidates(tok)):
                pattern = self.patterns[n]
                matched = match_at(pattern, tokens, i)
                if matched:
                    out.append((pattern, matched))
        return out


class _Lexicon:
    """The words of the lexicon, to know a word and to correct a typo one edit away."""

    def __init__(self, sets: Iterable[PatternSet]) -> None:
        words: set[str] = set()
        prefixes: set[str] = set()
        for ps in sets:
            for p in ps.patterns:
                for slot in p.slots:
                    for alt in slot.alternatives:
                        for w in alt:
                            (prefixes if w.prefix else words).add(w.text)
        self.words = frozenset(words)
        self.prefixes = frozenset(prefixes)
        # Only long words are corrected: short ones have too many real neighbours (« repas »).
        self._long_words = tuple(sorted(w for w in words if len(w) >= 6))
        self._long_prefixes = tuple(sorted(p for p in prefixes if len(p) >= 6))

    def knows(self, norm: str) -> bool:
        if norm in self.words:
            return True
        return any(norm[:n] in self.prefixes for n in range(3, len(norm) + 1))

    def correct(self, norm: str) -> str | None:
        """The lexicon word one edit away from an unknown word, if any (« poitrinne »)."""
        if len(norm) < 6 or not norm.isalpha():
            return None
        for w in self._long_words:
            if _damerau1(norm, w):
                return w
        for p in self._long_prefixes:
            n = len(p)
            if len(norm) > n + 4:  # a stem plus a short ending (« respiree »), not a brand name
                continue
            for cut in (n, n + 1, n - 1):
                if cut <= len(norm) and _damerau1(norm[:cut], p):
                    return p + norm[cut:]
        return None


def _pattern_set(groups: dict[str, tuple[str, ...]]) -> PatternSet:
    return PatternSet(compile_pattern(src, label) for label, srcs in groups.items() for src in srcs)


URGENCY = _pattern_set(lex.URGENCY_PATTERNS)
PAST = PatternSet(compile_pattern(s, "past") for s in lex.PAST_MARKERS)
EVENT_PAST = PatternSet(compile_pattern(s, "past") for s in lex.EVENT_PAST_MARKERS)
PRESENT = PatternSet(compile_pattern(s, "present") for s in lex.PRESENT_MARKERS)
HYPOTHETICAL = PatternSet(compile_pattern(s, "hypothetical") for s in lex.HYPOTHETICAL_MARKERS)
TYPE_CUES = PatternSet(
    compile_pattern(src, type_id, weight)
    for type_id, cues in lex.TYPE_CUES.items()
    for src, weight in cues
)
_LEXICON = _Lexicon((URGENCY, TYPE_CUES))

# ---------------------------------------------------------------------------------------------
# Negation, hypotheses, history
# ---------------------------------------------------------------------------------------------


def _is_negator(tokens: Sequence[Token], i: int) -> bool:
    tok = tokens[i]
    if tok.norm not in lex.NEGATORS:
        return False
    nxt = tokens[i + 1].norm if i + 1 < len(tokens) else ""
    prev = tokens[i - 1].norm if i > 0 else ""
    if nxt in ("que", "qu", "seulement"):  # « pas que », « plus que »: not only / more than
        return False
    after_next = tokens[i + 2].norm if i + 2 < len(tokens) else ""
    if tok.norm == "pas" and nxt == "mal" and after_next in ("de", "d"):
        return False  # « pas mal de » : quite a lot of
    if tok.norm == "plus":
        if prev in ("de", "le", "la", "les", "en", "au", "un", "peu", "encore", "bien", "beaucoup"):
            return False  # « de plus en plus », « en plus », « le plus », « encore plus »
        if nxt in ("en", "fort", "forte", "grave", "intense", "important", "importante"):
            return False
        for later in tokens[i + 1 : i + 8]:  # « plus de fièvre qu'hier »: a comparison
            if later.punct:
                break
            if later.norm in ("que", "qu"):
                return False
    # « sans arrêt », « sans cesse »: without a pause, not without the sign.
    return not (tok.norm == "sans" and nxt in ("arret", "cesse", "interruption", "doute"))


def _negated(tokens: Sequence[Token], matched: list[int]) -> bool:
    start, end = matched[0], matched[-1]
    inside = set(matched)
    # A negator between the matched words (« je ne veux pas mourir »).
    if any(_is_negator(tokens, k) for k in range(start + 1, end) if k not in inside):
        return True
    # « ne respire pas »: the verb followed by pas/plus/jamais, « ne » before it.
    after = start + 1
    if (
        after < len(tokens)
        and after not in inside
        and tokens[after].norm
        in (
            "pas",
            "plus",
            "jamais",
            "rien",
        )
    ):
        before = {t.norm for t in tokens[max(0, start - 3) : start]}
        if before & {"ne", "n"} and _is_negator(tokens, after):
            return True
    # « douleur thoracique : non ».
    k = end + 1
    while k < len(tokens) and tokens[k].punct == ",":
        k += 1
    if k < len(tokens) and tokens[k].norm in ("non", "absent", "absente", "absents", "absentes"):
        return True
    # A negator shortly before, in the same clause (« pas de », « aucune », « sans », « ni »).
    words = 0
    k = start - 1
    while k >= 0 and words <= lex.NEGATION_WINDOW:
        tok = tokens[k]
        if tok.punct:
            return False
        if _is_negator(tokens, k):
            return True
        if tok.norm in lex.SCOPE_BREAKERS:
            return False
        if tok.norm not in lex.FILLERS:
            words += 1
        k -= 1
    return False


def _marker_ends(markers: PatternSet, tokens: Sequence[Token]) -> list[int]:
    return [matched[-1] for _, matched in markers.find(tokens)]


def _clause_before(tokens: Sequence[Token], start: int, ends: list[int], reach: int) -> bool:
    """Whether a marker ends shortly before ``start`` in the same clause."""
    for end in ends:
        if end >= start or start - end > reach:
            continue
        between = tokens[end + 1 : start]
        if not any(t.punct or t.norm in ("mais", "cependant", "pourtant") for t in between):
            return True
    return False


def _sentence_ids(tokens: Sequence[Token]) -> list[int]:
    ids, current = [], 0
    for tok in tokens:
        ids.append(current)
        if tok.punct == ".":
            current += 1
    return ids


def _years(tokens: Sequence[Token]) -> list[int]:
    return [
        i
        for i, t in enumerate(tokens)
        if t.number is not None and len(t.norm) == 4 and 1950 <= t.number <= 2035
    ]


# ---------------------------------------------------------------------------------------------
# The feverish infant
# ---------------------------------------------------------------------------------------------

_INFANT_WORDS = lex.wordset(
    "bebe bebes nourrisson nourrissons fils fille enfant petit petite garcon loulou fiston puce "
    "ne nee nes nees jumeau jumeaux jumelle jumelles premature prematuree age agee"
)
_NUMBER_WORDS = {
    "un": 1, "une": 1, "deux": 2, "trois": 3, "quatre": 4, "cinq": 5, "six": 6, "sept": 7,
    "huit": 8, "neuf": 9, "dix": 10, "onze": 11, "douze": 12, "treize": 13, "quinze": 15,
    "vingt": 20, "quelques": 2,
}  # fmt: skip
_AGE_UNITS_DAYS = {"jour": 1, "jours": 1, "j": 1, "semaine": 7, "semaines": 7, "sem": 7, "mois": 30}
_OLDER_UNITS = frozenset(("an", "ans", "annee", "annees"))
_TEMP_BEFORE = lex.wordset(
    "a de fait est monte monter temperature fievre thermometre atteint depasse vers"
)
_FEVER_WORDS = lex.wordset(
    "fievre fievres febrile fievreux fievreuse temperature brulant brulante hyperthermie"
)
_UNITS_AFTER = lex.wordset(
    "ans an jours jour semaines semaine mois kg g mg cm mm ml min minutes h heures euros e sa ng ui"
)
#: An infant of this age or less with fever needs a doctor now (the usual threshold is three
#: months; the day count keeps « 3 mois » and « 12 semaines » in).
INFANT_MAX_DAYS = 92


def _infant_ages(tokens: Sequence[Token]) -> tuple[list[tuple[int, int]], bool]:
    """(token index, age in days) of every age said of a child, and whether a newborn is named."""
    ages: list[tuple[int, int]] = []
    newborn = False
    for i, tok in enumerate(tokens):
        if tok.norm == "nouveau" and i + 1 < len(tokens) and tokens[i + 1].norm in ("ne", "nee"):
            newborn = True
        if tok.norm in ("nourrisson", "nourrissons", "premature", "prematuree", "naissance"):
            newborn = True
        unit = tok.norm
        if unit not in _AGE_UNITS_DAYS and unit not in _OLDER_UNITS:
            continue
        if i == 0:
            continue
        value_tok = tokens[i - 1]
        value = (
            value_tok.number if value_tok.number is not None else _NUMBER_WORDS.get(value_tok.norm)
        )
        if value is None:
            continue
        context = [t.norm for t in tokens[max(0, i - 6) : i - 1]]
        born = len(context) >= 4 and context[-4] in ("ne", "nee", "nes", "nees")
        if context[-2:] == ["y", "a"] and not born:  # « il y a 2 semaines », not « né il y a »
            continue
        if "depuis" in context[-2:] or "pendant" in context[-2:]:
            continue
        if not _INFANT_WORDS.intersection(context):
            continue
        days = 366 if unit in _OLDER_UNITS else int(value * _AGE_UNITS_DAYS[unit])
        ages.append((i, days))
    return ages, newborn


def _fever(tokens: Sequence[Token]) -> list[int]:
    """Indices of the words and temperatures that say fever."""
    found = []
    for i, tok in enumerate(tokens):
        if tok.norm in _FEVER_WORDS:
            found.append(i)
        elif tok.number is not None and 38.0 <= tok.number <= 42.5:
            nxt = tokens[i + 1].norm if i + 1 < len(tokens) else ""
            prev = tokens[i - 1].norm if i > 0 else ""
            decimal = "." in tok.norm
            if nxt in _UNITS_AFTER:
                continue
            if decimal or prev in _TEMP_BEFORE or nxt in ("degres", "degre", "deg", "c", "°"):
                found.append(i)
    return found


def _infant_fever(tokens: Sequence[Token], hypothetical: list[int]) -> Sign | None:
    ages, newborn = _infant_ages(tokens)
    young = [(i, d) for i, d in ages if d <= INFANT_MAX_DAYS]
    if not young and not (newborn and not ages):
        return None
    fevers = _fever(tokens)
    if not fevers:
        return None
    infant_words = (
        f"{tokens[young[0][0] - 1].surface} {tokens[young[0][0]].surface}"
        if young
        else "nouveau-né / nourrisson"
    )
    negated = [i for i in fevers if _negated(tokens, [i])]
    supposed = [i for i in fevers if _clause_before(tokens, i, hypothetical, 12)]
    live = [i for i in fevers if i not in negated and i not in supposed]
    if live:
        return Sign("nourrisson-febrile", f"{infant_words} ; {tokens[live[0]].surface}")
    reason: SetAside = "negated" if negated else "hypothetical"
    return Sign("nourrisson-febrile", f"{infant_words} ; {tokens[fevers[0]].surface}", reason)


# ---------------------------------------------------------------------------------------------
# Classification
# ---------------------------------------------------------------------------------------------


def _words(tokens: Sequence[Token], matched: list[int]) -> str:
    """The words as the patient wrote them, from the first matched to the last."""
    span = range(matched[0], matched[-1] + 1)
    indices = list(span) if len(span) <= 12 else matched
    out: list[str] = []
    for k in indices:
        if not out or tokens[k].surface != out[-1]:
            out.append(tokens[k].surface)
    return " ".join(out)


def find_signs(tokens: Sequence[Token]) -> tuple[list[Sign], list[Sign]]:
    """(signs that count, signs set aside) in a message's tokens."""
    matches = URGENCY.find(tokens)
    live: list[Sign] = []
    aside: list[Sign] = []
    if not matches and not any(t.norm in _INFANT_WORDS or t.norm == "nouveau" for t in tokens):
        return live, aside
    sentences = _sentence_ids(tokens)
    hypothetical = _marker_ends(HYPOTHETICAL, tokens)
    past_sentences = {sentences[e] for e in _marker_ends(PAST, tokens)}
    past_sentences.update(sentences[i] for i in _years(tokens))
    event_past = _marker_ends(EVENT_PAST, tokens)
    speaks_of_now = bool(PRESENT.find(tokens))
    seen: set[tuple[str, int]] = set()
    for pattern, matched in matches:
        key = (pattern.label, matched[0])
        if key in seen:
            continue
        seen.add(key)
        words = _words(tokens, matched)
        reason: SetAside | None = None
        if _negated(tokens, matched):
            reason = "negated"
        elif _clause_before(tokens, matched[0], hypothetical, 8) or any(
            matched[0] <= e < matched[-1] for e in hypothetical
        ):  # « en cas de douleur thoracique », « un anticoagulant peut provoquer des saignements »
            reason = "hypothetical"
        elif not speaks_of_now and (
            sentences[matched[0]] in past_sentences
            or _clause_before(tokens, matched[0], event_past, 4)
        ):
            reason = "past"
        (aside if reason else live).append(Sign(pattern.label, words, reason))
    infant = _infant_fever(tokens, hypothetical)
    if infant is not None:
        (aside if infant.set_aside else live).append(infant)
    # One sign per kind and words; a kind found live is not also listed as set aside.
    live_kinds = {s.kind for s in live}
    return _unique(live), _unique(s for s in aside if s.kind not in live_kinds)


def _unique(signs: Iterable[Sign]) -> list[Sign]:
    return list(dict.fromkeys(signs))


@lru_cache(maxsize=256)
def _keyword_set(rules: TriageRules) -> PatternSet:
    patterns: list[Pattern] = []
    for t in rules.types:
        for keyword in t.keywords:
            words = [tok for tok in tokenize(keyword) if not tok.punct]
            if not words:
                continue
            raw = [w for w in re.split(r"\s+", keyword.strip()) if w]
            star = bool(raw) and raw[-1].endswith("*")
            slots = []
            for n, tok in enumerate(words):
                alts = {tok.norm, tok.lemma}
                suffix = "*" if star and n == len(words) - 1 else ""
                slots.append("|".join(sorted(a + suffix for a in alts if a)))
            # Patients put a few words between a keyword's words (« vaccin contre la grippe »).
            patterns.append(compile_pattern(" ~2 ".join(slots), t.id, lex.KEYWORD_WEIGHT))
    return PatternSet(patterns)


def _type_scores(
    subject: Sequence[Token], body: Sequence[Token], rules: TriageRules
) -> dict[str, float]:
    scores: dict[str, float] = {t.id: 0.0 for t in rules.types}
    keywords = _keyword_set(rules)
    for tokens, factor in ((subject, lex.SUBJECT_FACTOR), (body, 1.0)):
        counted: set[str] = set()
        for cues in (TYPE_CUES, keywords):
            for pattern, _ in cues.find(tokens):
                if pattern.source + pattern.label in counted or pattern.label not in scores:
                    continue
                counted.add(pattern.source + pattern.label)
                scores[pattern.label] += pattern.weight * factor
    return scores


def choose_type(scores: dict[str, float], rules: TriageRules) -> str:
    """The best enabled type; the default (or the first enabled type) when nothing speaks."""
    enabled = [t.id for t in rules.types if t.enabled]
    if not enabled:
        return rules.default_type
    best = max(enabled, key=lambda tid: (scores.get(tid, 0.0), -enabled.index(tid)))
    if scores.get(best, 0.0) >= MIN_TYPE_SCORE:
        return best
    return rules.default_type if rules.default_type in enabled else enabled[0]


def classify(subject: str, body: str, rules: TriageRules = DEFAULT_RULES) -> Triage:
    """The type and urgency of one patient message. Never raises."""
    try:
        return _classify(str(subject or ""), str(body or ""), rules)
    except Exception:  # a bug here must not lose a message: urgent, for a person to read
        return Triage(rules.default_type, True, (Sign("erreur", "triage impossible"),))


def _classify(subject: str, body: str, rules: TriageRules) -> Triage:
    subject_tokens = tokenize(subject)
    body_tokens = tokenize(body)
    everything = [*subject_tokens, Token(".", "", "¶", "."), *body_tokens]
    live, aside = find_signs(everything)
    scores = _type_scores(subject_tokens, body_tokens, rules)
    if live and "hors-champ" in scores:
        scores["hors-champ"] += lex.URGENT_OUT_OF_SCOPE * len({s.kind for s in live})
    return Triage(choose_type(scores, rules), bool(live), tuple(live), tuple(aside), scores)
