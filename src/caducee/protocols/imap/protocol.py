"""Types of the IMAP grammar: commands' arguments once parsed (RFC 3501 §9, RFC 9051 §9)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Union


class ParseError(Exception):
    """The command does not follow the grammar: answered ``BAD`` with this (ASCII) text."""


#: A sequence set: ranges (low, high) where None stands for "*" (the largest number in use).
SeqRange = tuple[int | None, int | None]
SeqSet = list[SeqRange]


def resolve_set(ranges: SeqSet, largest: int) -> list[tuple[int, int]]:
    """Concrete, ordered (low, high) ranges; "*" is ``largest`` (RFC 3501 §9 seq-range)."""
    out = []
    for low, high in ranges:
        a = largest if low is None else low
        b = largest if high is None else high
        out.append((min(a, b), max(a, b)))
    return out


def contains(ranges: list[tuple[int, int]], number: int) -> bool:
    return any(low <= number <= high for low, high in ranges)


def format_set(numbers: list[int]) -> str:
    """1,2,3,5 -> "1:3,5" (input in any order)."""
    parts: list[str] = []
    ordered = sorted(set(numbers))
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        parts.append(str(ordered[i]) if i == j else f"{ordered[i]}:{ordered[j]}")
        i = j + 1
    return ",".join(parts)


@dataclass
class Section:
    """BODY[...] section (RFC 3501 §6.4.5): part path, then "", HEADER, HEADER.FIELDS,
    HEADER.FIELDS.NOT, TEXT or MIME."""

    path: tuple[int, ...] = ()
    text: str = ""
    fields: list[str] = field(default_factory=list)
    raw: str = ""  # how the client wrote it, echoed in the response


@dataclass
class FetchAtt:
    name: str  # FLAGS, UID, BODY, BODY.PEEK, BINARY, BINARY.PEEK, BINARY.SIZE, ...
    section: Section | None = None
    partial: tuple[int, int] | None = None


@dataclass
class FetchArgs:
    atts: list[FetchAtt]
    changedsince: int | None = None
    vanished: bool = False


@dataclass
class StoreArgs:
    mode: str  # "+", "-" or ""
    silent: bool
    flags: list[str]
    unchangedsince: int | None = None


# Search keys form a tree of tuples: ("and", [keys]), ("or", a, b), ("not", a), ("all",),
# ("flag", bit, wanted), ("keyword", name, wanted), ("seq", SeqSet), ("uid", SeqSet),
# ("date", "before"|"on"|"since", date, sent), ("size", "larger"|"smaller", n),
# ("header", name, text), ("body", text), ("text", text), ("modseq", n), ("none",).
SearchKey = tuple[object, ...]


@dataclass
class SearchArgs:
    key: SearchKey
    charset: str | None = None
    returns: list[str] | None = None  # ESEARCH (RFC 4731) RETURN options; None: plain SEARCH


@dataclass
class AppendItem:
    flags: list[str]
    date: datetime | None
    data: bytes
    #: Sent as a bare ``~{n}`` literal8: binary content (RFC 3516 §4.3), which we do not take.
    literal8: bool = False


@dataclass
class ListArgs:
    reference: str
    patterns: list[str]
    select_opts: list[str] = field(default_factory=list)
    return_opts: list[str] = field(default_factory=list)
    status_items: list[str] | None = None
    extended: bool = False


@dataclass
class SelectArgs:
    name: str
    condstore: bool = False
    qresync: tuple[int, int, SeqSet | None] | None = None  # uidvalidity, modseq, known uids


Args = Union[  # noqa: UP007
    None,
    str,
    list[str],
    tuple[str, str],
    tuple[str, list[str]],
    FetchArgs,
    StoreArgs,
    SearchArgs,
    ListArgs,
    SelectArgs,
    list[AppendItem],
    tuple[SeqSet, str],
    tuple[SeqSet, FetchArgs],
    tuple[SeqSet, StoreArgs],
    SeqSet,
    date,
]


@dataclass
class Command:
    tag: str
    name: str  # upper case; "UID FETCH" etc. for UID commands
    args: object = None
    raw_names: list[bytes] = field(default_factory=list)
