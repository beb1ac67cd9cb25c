"""The national MSSanté directory (annuaire) as published: the public extraction
``extraction-correspondance-mssante.txt`` (UTF-8, ``|``-separated, one header line, one row per
mailbox), and the search words derived from it.

Pure functions (no I/O), small enough to run in a worker process (:mod:`services.cpu_pool`):
:func:`columns_of` reads the header — columns are found by their name, never by position —,
:func:`parse_chunk` turns numbered raw lines into rows and search tokens and reports every line it
cannot take with its number and the reason (French and English), and :func:`fold` /
:func:`words` are the one normalisation shared by the index and the queries (accents and case
folded, ligatures spelled out, punctuation as spaces).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from caducee.errors import InvalidInput

#: Longest line accepted (bytes, without its end of line); a longer row is reported and skipped.
MAX_LINE_BYTES = 4096
#: Longest value of one column (characters); a longer one makes its row reported and skipped.
MAX_FIELD_CHARS = 250
#: Longest search token kept (characters); longer words are cut (prefix search still finds them).
MAX_TOKEN_CHARS = 40
#: Search tokens kept per row at most.
MAX_TOKENS_PER_ROW = 40
#: Rows of a chunk handed to one worker call.
CHUNK_LINES = 5000

#: What a row keeps, in this order (see ``annuaire_entries`` in the store).
ENTRY_FIELDS = (
    "email",
    "mailbox_type",
    "national_id",
    "pp_id",
    "civility",
    "last_name",
    "first_name",
    "category",
    "profession_code",
    "profession",
    "specialty_code",
    "specialty",
    "structure_id",
    "organisation",
    "service",
    "address",
    "postcode",
    "city",
    "department",
    "country",
    "dematerialisation",
)
#: Fields that feed the search index.
SEARCHED_FIELDS = (
    "last_name",
    "first_name",
    "profession",
    "specialty",
    "organisation",
    "service",
    "address",
    "postcode",
    "city",
    "national_id",
    "pp_id",
)
#: Fields made of several columns (joined), e.g. the address lines.
_MULTI = {"organisation": " — ", "address": ", "}

_LIGATURES = str.maketrans({"œ": "oe", "Œ": "OE", "æ": "ae", "Æ": "AE", "ß": "ss"})
_LIGATURE = re.compile("[œŒæÆß]")
_NOT_WORD = re.compile(r"[^a-z0-9]+")
_STOPWORDS = frozenset({
    "a", "au", "aux", "d", "de", "des", "du", "en", "et", "l", "la", "le", "les", "sur", "sous",
    "par", "pour", "un", "une",
})  # fmt: skip
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_EMAIL = re.compile(r"^[^@\s]{1,64}@[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?$")
_BAD_UTF8 = "UTF-8 invalide"


def fold(text: str) -> str:
    """Lower-case ASCII words separated by single spaces: accents and case folded, ligatures
    spelled out (« Œdème » → « oedeme »), anything else a separator."""
    if not text.isascii():
        if _LIGATURE.search(text):
            text = text.translate(_LIGATURES)
        text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return _NOT_WORD.sub(" ", text.lower()).strip()


def words(text: str) -> list[str]:
    """The search words of ``text`` (folded, without French stop words, cut at
    :data:`MAX_TOKEN_CHARS`), in order, without repeats."""
    seen: dict[str, None] = {}
    for word in fold(text).split():
        if word not in _STOPWORDS:
            seen.setdefault(word[:MAX_TOKEN_CHARS], None)
    return list(seen)


def _header_key(name: str) -> str:
    return fold(name)


def _field_for(key: str) -> str | None:
    """Which field a header column feeds (``None``: not kept), from its folded name."""
    has = key.__contains__
    if key in ("adresse bal", "adresse de bal", "adresse mail", "adresse messagerie"):
        return "email"
    if has("bal") and has("type"):
        return "mailbox_type"
    if has("bal") and has("adresse"):
        return "email"
    if has("nationale"):
        return "national_id"
    if has("structure"):
        return "structure_id" if has("identifi") and not has("type") else None
    if has("pp") and has("identifiant"):
        return None if has("type") else "pp_id"
    if has("civilite"):
        return "civility"
    if has("prenom"):
        return "first_name"
    if key.startswith("nom"):
        return "last_name"
    if has("categorie"):
        return None if has("code") else "category"
    if has("savoir faire"):
        return "specialty_code" if has("code") else "specialty"
    if has("profession"):
        return "profession_code" if has("code") else "profession"
    if has("dematerialisation"):
        return "dematerialisation"
    if has("raison sociale") or has("enseigne"):
        return "organisation"
    if has("service"):
        return "service"
    if has("code postal"):
        return "postcode"
    if has("departement"):
        return "department"
    if has("pays"):
        return "country"
    if has("commune") or has("ville") or has("localite") or has("acheminement"):
        return "city"
    if has("adresse") or has("voie") or has("lieu dit") or has("complement") or has("distribution"):
        return "address"
    return None


@dataclass(frozen=True)
class Columns:
    """Where each field is in the file's rows (found from the header)."""

    count: int
    names: tuple[str, ...]  # as written in the header
    single: tuple[tuple[str, int], ...]  # field, column
    multi: tuple[tuple[str, tuple[int, ...]], ...]  # field, columns in header order
    #: Per ENTRY_FIELDS: its column (-1: absent or made of several columns)...
    positions: tuple[int, ...] = ()
    #: ... and those made of several: (index in ENTRY_FIELDS, separator, columns).
    joined: tuple[tuple[int, str, tuple[int, ...]], ...] = ()


def columns_of(header: bytes) -> Columns:
    """Read the header line. Raises :class:`InvalidInput` when it is not the directory's
    extraction (no « Adresse BAL » column, or not UTF-8)."""
    try:
        text = header.decode("utf-8-sig").rstrip("\r\n")
    except UnicodeDecodeError:
        raise InvalidInput(
            "En-tête de l'annuaire illisible : UTF-8 invalide.",
            "Unreadable directory header: invalid UTF-8.",
        ) from None
    names = tuple(name.strip() for name in text.split("|"))
    single: dict[str, int] = {}
    multi: dict[str, list[int]] = {}
    for position, name in enumerate(names):
        found = _field_for(_header_key(name))
        if found is None:
            continue
        if found in _MULTI:
            multi.setdefault(found, []).append(position)
        else:
            single.setdefault(found, position)
    if "email" not in single:
        raise InvalidInput(
            "Ce fichier n'est pas l'extraction de l'annuaire MSSanté : la colonne « Adresse BAL » "
            "manque dans la première ligne (en-tête, colonnes séparées par « | »).",
            "This file is not the MSSanté directory extraction: the header (first line, columns "
            "separated by '|') has no 'Adresse BAL' column.",
        )
    return Columns(
        count=len(names),
        names=names,
        single=tuple(single.items()),
        multi=tuple((name, tuple(positions)) for name, positions in multi.items()),
        positions=tuple(single.get(name, -1) for name in ENTRY_FIELDS),
        joined=tuple(
            (ENTRY_FIELDS.index(name), _MULTI[name], tuple(positions))
            for name, positions in multi.items()
        ),
    )


@dataclass
class Chunk:
    """What :func:`parse_chunk` made of some lines."""

    #: One line per row in PostgreSQL's COPY text format (columns: generation, seq,
    #: *ENTRY_FIELDS, search); ``seq`` is the row's line number in the file. One bytes object
    #: crosses from the worker process at no cost, where a list of tuples took as long to
    #: pickle as to parse.
    data: bytes = b""
    rows: int = 0
    first: int = 0  # line numbers of the chunk's first and last lines
    last: int = 0
    #: (line number, reason in French, reason in English)
    rejected: list[tuple[int, str, str]] = field(default_factory=list)

    def entries(self) -> list[tuple[str, ...]]:
        """The rows as tuples of text (generation, seq, *ENTRY_FIELDS, search)."""
        found = []
        for line in self.data.decode("utf-8").split("\n")[:-1]:
            cells = line.split("\t")
            if "\\" in line:
                cells = [cell.replace("\\\\", "\\") for cell in cells]
            found.append(tuple(cells))
        return found


def _reject(chunk: Chunk, number: int, fr: str, en: str) -> None:
    chunk.rejected.append((number, fr, en))


def _row(columns: Columns, number: int, raw: bytes, chunk: Chunk) -> str | None:
    line = raw.rstrip(b"\n")
    if line.endswith(b"\r"):
        line = line[:-1]
    if len(line) > MAX_LINE_BYTES:
        _reject(
            chunk, number,
            f"ligne trop longue (plus de {MAX_LINE_BYTES} octets)",
            f"line too long (more than {MAX_LINE_BYTES} bytes)",
        )  # fmt: skip
        return None
    if not line.strip():
        _reject(chunk, number, "ligne vide", "empty line")
        return None
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        _reject(
            chunk, number,
            f"{_BAD_UTF8} (octet {exc.start + 1})", f"invalid UTF-8 (byte {exc.start + 1})",
        )  # fmt: skip
        return None
    if _CONTROL.search(text):
        _reject(
            chunk, number,
            "caractère de contrôle dans la ligne (retour chariot, tabulation…)",
            "control character in the line (carriage return, tab…)",
        )  # fmt: skip
        return None
    cells = text.split("|")
    if len(cells) != columns.count:
        _reject(
            chunk, number,
            f"{len(cells)} colonnes au lieu de {columns.count}",
            f"{len(cells)} columns instead of {columns.count}",
        )  # fmt: skip
        return None
    if max(map(len, cells)) > MAX_FIELD_CHARS:
        position = next(i for i, cell in enumerate(cells) if len(cell) > MAX_FIELD_CHARS)
        name, size = columns.names[position], len(cells[position])
        _reject(
            chunk, number,
            f"champ « {name} » trop long ({size} caractères ; limite {MAX_FIELD_CHARS})",
            f"field '{name}' too long ({size} characters; limit {MAX_FIELD_CHARS})",
        )  # fmt: skip
        return None
    cells = [cell.strip() for cell in cells]
    cells.append("")  # what an absent field reads (position -1)
    values = list(map(cells.__getitem__, columns.positions))
    for at, separator, positions in columns.joined:
        values[at] = separator.join(dict.fromkeys(cells[p] for p in positions if cells[p]))
    email = values[_EMAIL_AT].lower()
    if not _EMAIL.match(email):
        _reject(
            chunk, number,
            f"Adresse BAL invalide « {email[:80]} »", f"invalid Adresse BAL '{email[:80]}'",
        )  # fmt: skip
        return None
    values[_EMAIL_AT] = email
    city = values[_CITY_AT]
    if city[:5].isdigit():  # « Ligne d'acheminement »: « 69003 LYON »
        values[_CITY_AT] = city[5:].strip()
        values[_POSTCODE_AT] = values[_POSTCODE_AT] or city[:5]
    if values[_NATIONAL_AT] == "8" + values[_PP_AT]:
        searched = [values[i] for i in _SEARCHED_BUT_NATIONAL]  # the RPPS once is enough
    else:
        searched = [values[i] for i in _SEARCHED_AT]
    tokens = [
        t
        for t in dict.fromkeys(fold(" ".join(searched)).split())
        if len(t) > 1 and t not in _STOPWORDS and (len(t) >= 5 or not t.isdigit())
    ][:MAX_TOKENS_PER_ROW]
    tokens = (
        [t[:MAX_TOKEN_CHARS] for t in tokens]
        if max(map(len, tokens), default=0) > (MAX_TOKEN_CHARS)
        else tokens
    )
    values.append(" ".join(tokens))
    if "\\" in text:
        values = [v.replace("\\", "\\\\") for v in values]
    return f"{number}\t" + "\t".join(values) + "\n"


def parse_chunk(columns: Columns, lines: list[tuple[int, bytes]], generation: int = 0) -> Chunk:
    """Rows of numbered raw lines (each at most ``MAX_LINE_BYTES + 3`` bytes: a longer line
    comes cut and is reported), ready for the store. Every line either becomes a row or is
    reported with its number."""
    chunk = Chunk(first=lines[0][0] if lines else 0, last=lines[-1][0] if lines else 0)
    out = []
    prefix = f"{int(generation)}\t"
    for number, raw in lines:
        row = _row(columns, number, raw, chunk)
        if row is not None:
            out.append(prefix + row)
    chunk.data = "".join(out).encode("utf-8")
    chunk.rows = len(out)
    return chunk


_EMAIL_AT = ENTRY_FIELDS.index("email")
_CITY_AT = ENTRY_FIELDS.index("city")
_POSTCODE_AT = ENTRY_FIELDS.index("postcode")
_NATIONAL_AT = ENTRY_FIELDS.index("national_id")
_PP_AT = ENTRY_FIELDS.index("pp_id")
_SEARCHED_AT = tuple(ENTRY_FIELDS.index(name) for name in SEARCHED_FIELDS)
_SEARCHED_BUT_NATIONAL = tuple(i for i in _SEARCHED_AT if i != _NATIONAL_AT)


@dataclass(frozen=True)
class Query:
    """A search as the index understands it."""

    words: tuple[str, ...]  # of two characters or more: each must prefix a token of the row
    initials: tuple[str, ...]  # one-character words: must start a word of the row
    email: str | None  # a whole address: exact lookup


#: Longest query accepted (characters), and words of it used.
MAX_QUERY_CHARS = 200
MAX_QUERY_WORDS = 8


def query_of(text: str) -> Query:
    """Parse what someone typed: an address is looked up whole, anything else is words."""
    text = text.strip()[:MAX_QUERY_CHARS]
    if "@" in text and " " not in text:
        return Query((), (), text.lower())
    found = words(text)[:MAX_QUERY_WORDS]
    return Query(
        tuple(w for w in found if len(w) > 1), tuple(w for w in found if len(w) == 1), None
    )


@dataclass(frozen=True)
class Professional:
    """One row of the directory: a mailbox and who or what is behind it."""

    email: str
    mailbox_type: str
    national_id: str
    pp_id: str
    civility: str
    last_name: str
    first_name: str
    category: str
    profession_code: str
    profession: str
    specialty_code: str
    specialty: str
    structure_id: str
    organisation: str
    service: str
    address: str
    postcode: str
    city: str
    department: str
    country: str
    dematerialisation: str

    @property
    def display_name(self) -> str:
        """« Dr Anne MOREAU », or the structure / service for an organisation's mailbox."""
        person = " ".join(p for p in (self.civility, self.first_name, self.last_name) if p)
        if self.first_name or self.last_name:
            return person
        return self.service or self.organisation or self.email

    @property
    def structure(self) -> str:
        """The structure and service it belongs to, as shown beside the name."""
        return " — ".join(p for p in (self.organisation, self.service) if p)

    @property
    def rpps(self) -> str:
        """The RPPS number (11 digits) when the national identifier is an RPPS one."""
        national = self.national_id
        if len(national) == 12 and national.startswith("8") and national.isdigit():
            return national[1:]
        return self.pp_id if len(self.pp_id) == 11 and self.pp_id.isdigit() else ""

    def to_json(self) -> dict[str, str]:
        """The JSON shape of the API and the webmail (French keys, like the rest of the API)."""
        return {
            "adresse": self.email,
            "nom_affiche": self.display_name,
            "civilite": self.civility,
            "nom": self.last_name,
            "prenom": self.first_name,
            "type_bal": self.mailbox_type,
            "rpps": self.rpps,
            "identifiant_national": self.national_id,
            "categorie": self.category,
            "profession_code": self.profession_code,
            "profession": self.profession,
            "savoir_faire_code": self.specialty_code,
            "savoir_faire": self.specialty,
            "structure_id": self.structure_id,
            "structure": self.organisation,
            "service": self.service,
            "adresse_postale": self.address,
            "code_postal": self.postcode,
            "ville": self.city,
            "departement": self.department,
            "pays": self.country,
            "dematerialisation": self.dematerialisation,
        }
