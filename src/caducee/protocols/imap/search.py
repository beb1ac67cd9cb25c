"""SEARCH and UID SEARCH (RFC 3501 §6.4.4, RFC 9051 §6.4.4), ESEARCH results (RFC 4731),
MODSEQ criterion (RFC 7162 §3.1.5).

Matching is case-insensitive substring matching on decoded text (RFC 2047 headers, transfer
and charset decoded bodies). Flags, dates and sizes come from clear columns; SUBJECT / FROM /
TO / CC, and HEADER on any other field, from the sealed metadata extracted at delivery (no
message is read again: ``domain.message_meta.header_texts``); BODY and TEXT decrypt the
message once and keep its decoded text in a per-node in-memory cache.

One event loop serves every door of the node: the CPU work of a search runs off it — text
extraction (the stdlib's MIME parser) in the node's worker processes, decoding metadata and
matching in worker threads — a chunk of messages at a time, and a search that would take more
than ``[imap] search_budget_seconds`` is answered ``NO [LIMIT]`` (RFC 5530 §3) instead of
holding the node.
"""

from __future__ import annotations

import asyncio
import bisect
import email.utils
import heapq
import time
from array import array
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date
from operator import attrgetter, itemgetter
from typing import Any

from caducee.app import App
from caducee.domain.message_text import Text, extract_text
from caducee.domain.model import Flag, MessageSummary
from caducee.errors import BudgetExceeded
from caducee.protocols.imap.protocol import (
    Command,
    SearchArgs,
    SearchKey,
    SeqSet,
    contains,
    format_set,
    resolve_set,
)
from caducee.protocols.imap.session import Session, no
from caducee.services import cpu_pool, mailstore, memory_trim, text_index
from caducee.services.bounded_cache import BoundedCache

BATCH = 500
#: Messages read and sent to the worker processes at once for BODY / TEXT (bounds the memory
#: of raw messages held at once).
TEXT_BATCH = 50
TEXT_CACHE_CHARS = 64 * 1024 * 1024
_META_HEADERS = {"subject", "from", "to", "cc"}
CHARSETS = {"UTF-8", "US-ASCII"}


class TextCache(BoundedCache[str, Text]):
    """Per node, in memory only: decoded, casefolded text of messages, by blob id (weighed in
    characters)."""

    def __init__(self, _app: App) -> None:
        super().__init__("search-text", _text_chars, TEXT_CACHE_CHARS)


def _text_chars(text: Text) -> int:
    return len(text.body) + sum(len(v) for v in text.headers.values())


def text_cache(app: App) -> TextCache:
    return app.component(TextCache, TextCache)


def _walk(key: SearchKey) -> list[SearchKey]:
    out = [key]
    kind = key[0]
    if kind == "and":
        for sub in key[1]:  # type: ignore[attr-defined]
            out += _walk(sub)
    elif kind == "or":
        out += _walk(key[1]) + _walk(key[2])  # type: ignore[arg-type]
    elif kind == "not":
        out += _walk(key[1])  # type: ignore[arg-type]
    return out


@dataclass(frozen=True)
class Needs:
    meta: bool  # opened metadata (SUBJECT / FROM / TO / CC, SENTDATE...)
    fields: bool  # every header field of the metadata (HEADER on other fields)
    text: bool  # decoded text (BODY / TEXT)
    heads: bool = False  # only SUBJECT / FROM / TO / CC: ``mailstore.Heads`` do


def _needs(key: SearchKey) -> Needs:
    meta = fields = text = other_meta = False
    for sub in _walk(key):
        if sub[0] == "header":
            if sub[1] in _META_HEADERS and sub[2] != "":
                meta = True
                other_meta = other_meta or "\x00" in str(sub[2])
            else:
                fields = True
        elif sub[0] in ("body", "text"):
            text = True
        elif sub[0] == "date" and sub[3]:
            meta = other_meta = True
    heads = meta and not fields and not other_meta
    return Needs((meta or fields) and not heads, fields, text, heads)


@dataclass
class Candidate:
    seq: int
    row: MessageSummary
    meta: mailstore.Meta | None = None
    text: Text | None = None
    heads: mailstore.Heads | None = None


def _sent_date(meta: mailstore.Meta | None) -> date | None:
    if meta is None:
        return None
    value = meta.headers.get("date")
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return parsed.date()


class Matcher:
    def __init__(self, count: int, largest_uid: int, recent: set[int]) -> None:
        self.count = count
        self.largest_uid = largest_uid
        self.recent = recent

    def match(self, key: SearchKey, c: Candidate) -> bool:
        kind = key[0]
        row = c.row
        if kind == "and":
            return all(self.match(sub, c) for sub in key[1])  # type: ignore[attr-defined]
        if kind == "or":
            return self.match(key[1], c) or self.match(key[2], c)  # type: ignore[arg-type]
        if kind == "not":
            return not self.match(key[1], c)  # type: ignore[arg-type]
        if kind == "all":
            return True
        if kind == "none":
            return False
        if kind == "recent":
            return (row.uid in self.recent) == key[1]
        if kind == "flag":
            bit = Flag.NAMES[str(key[1])]
            return bool(row.flags & bit) == key[2]
        if kind == "keyword":
            present = str(key[1]).lower() in {k.lower() for k in row.keywords.split()}
            return present == key[2]
        if kind == "seq":
            return contains(resolve_set(_set(key[1]), self.count), c.seq)
        if kind == "uid":
            return contains(resolve_set(_set(key[1]), self.largest_uid), row.uid)
        if kind == "size":
            return row.size > key[2] if key[1] == "larger" else row.size < key[2]  # type: ignore[operator]
        if kind == "modseq":
            return row.modseq >= key[1]  # type: ignore[operator]
        if kind == "date":
            when: date | None
            when = _sent_date(c.meta) if key[3] else row.internal_date.astimezone(UTC).date()
            if when is None:
                return False
            wanted = key[2]
            assert isinstance(wanted, date)
            if key[1] == "before":
                return when < wanted
            if key[1] == "on":
                return when == wanted
            return when >= wanted
        if kind == "header":
            name, needle = str(key[1]), str(key[2]).casefold()
            if c.heads is not None and name in _META_HEADERS and needle:
                return mailstore.head_contains(c.heads, mailstore.HEAD_NAMES.index(name), needle)
            if name in _META_HEADERS and needle and c.meta is not None:
                value = c.meta.headers.get(name)
                if not isinstance(value, str):
                    return False
                if needle in value.casefold():
                    return True
                return name != "subject" and needle in _address_forms(c.meta, name)
            fields = c.meta.fields if c.meta is not None else None
            if fields is None or name not in fields:
                return False
            return needle in fields[name]  # "" : the field is present
        if kind == "body":
            return c.text is not None and str(key[1]).casefold() in c.text.body
        if kind == "text":
            needle = str(key[1]).casefold()
            if c.text is None:
                return False
            return needle in c.text.body or any(needle in v for v in c.text.headers.values())
        return False


def _address_forms(meta: mailstore.Meta, name: str) -> str:
    """Addresses of a header as "name local@host", comments and routes dropped (so that
    FROM user@domain matches ``<user (comment)@ (comment) domain>``); cached with the meta."""
    cache = meta.forms  # not in meta.headers: matching runs in a thread, readers on the loop
    found = cache.get(name)
    if found is None:
        value = meta.headers.get(name)
        found = cache[name] = mailstore.address_forms(value if isinstance(value, str) else "")
    return str(found)


def _set(value: object) -> SeqSet:
    assert isinstance(value, list)
    return value


def _required_needles(key: SearchKey) -> list[str]:
    """BODY / TEXT strings every matching message must contain (through AND only)."""
    if key[0] in ("body", "text"):
        return [str(key[1])]
    if key[0] == "and":
        return [n for sub in key[1] for n in _required_needles(sub)]  # type: ignore[attr-defined]
    return []


class _Prefilter:
    """Skips messages whose text index proves they lack a required BODY / TEXT string (see
    :mod:`caducee.services.text_index`); indexes on the way those not indexed yet."""

    def __init__(self, app: App, key: bytes, hashes: list[list[int]]) -> None:
        self.app, self.key, self.hashes = app, key, hashes
        self.unindexed: set[int] = set()

    @classmethod
    async def make(cls, app: App, mailbox_id: int, key: SearchKey) -> _Prefilter | None:
        needles = _required_needles(key)
        if not needles:
            return None
        index_key = await text_index.mailbox_index_key(app, mailbox_id)
        hashes = [h for h in (text_index.needle_hashes(index_key, n) for n in needles) if h]
        return cls(app, index_key, hashes) if hashes else None

    async def candidates(
        self, order: list[tuple[int, int]], rows: Mapping[int, MessageSummary]
    ) -> list[tuple[int, int]]:
        """Of (sequence number, message id), those whose filter may hold the needles."""
        filters = await text_index.load_filters(
            self.app, [(mid, rows[mid].blob_id) for _, mid in order if mid in rows]
        )
        kept = []
        for seq, mid in order:
            table = filters.get(mid)
            if table is None:
                self.unindexed.add(mid)
                kept.append((seq, mid))
            elif all(text_index.may_contain(table, h) for h in self.hashes):
                kept.append((seq, mid))
        return kept

    async def index(self, texts: dict[int, Text], rows: dict[int, MessageSummary]) -> None:
        wanted = {
            (message_id, rows[message_id].blob_id): text
            for message_id, text in texts.items()
            if message_id in self.unindexed
        }
        if not wanted:
            return
        built = await asyncio.to_thread(text_index.build_all, self.key, wanted)
        self.unindexed.difference_update(message_id for message_id, _ in built)
        await text_index.store_filters(self.app, built)


def too_costly(budget: float) -> BudgetExceeded:
    return BudgetExceeded(
        f"Recherche trop coûteuse : elle dépasse le temps de calcul permis ({budget:g} s). "
        "Précisez-la (dates, expéditeur, sujet) ou cherchez dans un dossier plus petit.",
        f"Search too costly: it exceeds the computing time allowed ({budget:g} s). Narrow it "
        "(dates, sender, subject) or search a smaller folder.",
    )


class _Budget:
    """The work time one command may take (monotonic clock, shared with worker threads)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds

    @property
    def spent(self) -> bool:
        return time.monotonic() > self.deadline

    def check(self) -> None:
        if self.spent:
            raise too_costly(self.seconds)


async def _extract_texts(raws: dict[int, bytes], budget: _Budget) -> tuple[dict[int, Text], bool]:
    """Decoded text of each message, in the node's worker processes (``services.cpu_pool``:
    the stdlib's parser holds the interpreter lock), and whether the budget ran out first
    (then only those done are returned; those not started are cancelled)."""
    tasks = {
        mid: asyncio.ensure_future(cpu_pool.run(extract_text, raw)) for mid, raw in raws.items()
    }
    try:
        pending: set[asyncio.Future[Text]] = set()
        if tasks:
            _, pending = await asyncio.wait(
                tasks.values(), timeout=max(0.0, budget.deadline - time.monotonic())
            )
        done = {mid: task.result() for mid, task in tasks.items() if task not in pending}
        return done, bool(pending)
    finally:
        for task in tasks.values():
            task.cancel()


def _match_chunk(
    matcher: Matcher, key: SearchKey, candidates: Sequence[Candidate], budget: _Budget
) -> list[Candidate] | None:
    """The candidates that match (worker thread); None once over budget."""
    found = []
    for number, candidate in enumerate(candidates):
        if number % 64 == 0 and budget.spent:
            return None
        if matcher.match(key, candidate):
            found.append(candidate)
    return found


async def _texts(
    app: App,
    rows: dict[int, MessageSummary],
    prefilter: _Prefilter | None,
    budget: _Budget,
) -> dict[int, Text]:
    """Decoded text of ``rows``: the node's cache, else decrypted and extracted in worker
    processes, :data:`TEXT_BATCH` messages at a time (newly extracted ones are indexed too)."""
    cache = text_cache(app)
    texts: dict[int, Text] = {}
    missing = []
    for row in rows.values():
        cached = cache.get(row.blob_id)
        if cached is None:
            missing.append(row)
        else:
            texts[row.id] = cached
    if prefilter is not None and texts:  # decoded earlier, not indexed yet
        await prefilter.index(texts, rows)
    for start in range(0, len(missing), TEXT_BATCH):
        budget.check()
        part = missing[start : start + TEXT_BATCH]
        raws = await mailstore.load_raw(app, part)
        extracted, over = await _extract_texts(raws, budget)
        for row in part:  # kept even past the budget: asking again goes further
            if row.id in extracted:
                cache.put(row.blob_id, extracted[row.id])
        texts.update(extracted)
        if prefilter is not None:
            await prefilter.index(extracted, rows)
        if over:
            raise too_costly(budget.seconds)
    return texts


# --- SUBJECT / FROM / TO / CC on the cached heads, no row per message (issue 17) -------------

#: A compiled search key: (sequence number, handle, heads) -> whether the message matches. The
#: handle is what :class:`_View` reads the clear columns with.
Pred = Callable[[int, Any, str], bool]
#: Messages between two looks at the budget in :func:`_scan` (a power of two, minus one).
SCAN_CHECK = 4095


class _View:
    """A folder's clear columns as a worker thread reads them, by *handle*: for
    :class:`~caducee.services.mailstore.FolderRows` a position in its arrays (no
    ``MessageSummary`` built), for a small folder's dict of rows the row itself. What it reads
    never changes (a folder's change makes new rows)."""

    def __init__(self, rows: Mapping[int, MessageSummary]) -> None:
        self.rows = rows
        self.uid: Callable[[Any], int]
        self.flags: Callable[[Any], int]
        self.keywords: Callable[[Any], str]
        self.modseq: Callable[[Any], int]
        self.size: Callable[[Any], int]
        self.date: Callable[[Any], Any]
        self.row: Callable[[Any], MessageSummary]
        if isinstance(rows, mailstore.FolderRows):
            columns = rows.columns
            ids, keywords = columns.ids, columns.keywords
            self.uid = columns.uids.__getitem__
            self.flags = columns.flags.__getitem__
            self.keywords = lambda i: keywords.get(ids[i], "")
            self.modseq = columns.modseqs.__getitem__
            self.size = columns.sizes.__getitem__
            self.date = columns.dates.__getitem__
            self.row = rows.at
        else:
            self.uid = attrgetter("uid")
            self.flags = attrgetter("flags")
            self.keywords = attrgetter("keywords")
            self.modseq = attrgetter("modseq")
            self.size = attrgetter("size")
            self.date = attrgetter("internal_date")
            self.row = _same


def _same(row: MessageSummary) -> MessageSummary:
    return row


def _heads_only(key: SearchKey) -> bool:
    """Whether the cached heads and the clear columns answer ``key`` (SUBJECT / FROM / TO / CC
    with a string, with flags, UIDs, sequence numbers, sizes, MODSEQ, INTERNALDATE)."""
    needs = _needs(key)
    return needs.heads and not needs.text and not needs.meta


def _compile(key: SearchKey, view: _View, count: int, largest_uid: int, recent: set[int]) -> Pred:
    """``key`` as a small function (what :class:`Matcher` answers, for :func:`_heads_only`
    keys): sets resolved once, columns read by handle."""
    kind = key[0]
    if kind == "and":
        parts = [_compile(sub, view, count, largest_uid, recent) for sub in key[1]]  # type: ignore[attr-defined]
        parts.sort(key=lambda part: getattr(part, "costly", False))  # columns first
        if len(parts) == 1:
            return parts[0]
        if len(parts) == 2:
            first, second = parts
            return _costly(lambda s, h, x: first(s, h, x) and second(s, h, x), parts)
        return _costly(lambda s, h, x: all(part(s, h, x) for part in parts), parts)
    if kind == "or":
        left = _compile(key[1], view, count, largest_uid, recent)  # type: ignore[arg-type]
        right = _compile(key[2], view, count, largest_uid, recent)  # type: ignore[arg-type]
        return _costly(lambda s, h, x: left(s, h, x) or right(s, h, x), [left, right])
    if kind == "not":
        inner = _compile(key[1], view, count, largest_uid, recent)  # type: ignore[arg-type]
        return _costly(lambda s, h, x: not inner(s, h, x), [inner])
    if kind == "all":
        return lambda s, h, x: True
    if kind == "recent":
        uid, wanted = view.uid, key[1]
        return lambda s, h, x: (uid(h) in recent) == wanted
    if kind == "flag":
        flags, bit, present = view.flags, Flag.NAMES[str(key[1])], key[2]
        return lambda s, h, x: bool(flags(h) & bit) == present
    if kind == "keyword":
        keywords, word, present = view.keywords, str(key[1]).lower(), key[2]
        return lambda s, h, x: (word in {k.lower() for k in keywords(h).split()}) == present
    if kind == "seq":
        numbers = resolve_set(_set(key[1]), count)
        return lambda s, h, x: contains(numbers, s)
    if kind == "uid":
        uid, uids = view.uid, resolve_set(_set(key[1]), largest_uid)
        return lambda s, h, x: contains(uids, uid(h))
    if kind == "size":
        size, limit = view.size, int(key[2])  # type: ignore[call-overload]
        if key[1] == "larger":
            return lambda s, h, x: size(h) > limit
        return lambda s, h, x: size(h) < limit
    if kind == "modseq":
        modseq, lowest = view.modseq, int(key[1])  # type: ignore[call-overload]
        return lambda s, h, x: modseq(h) >= lowest
    if kind == "date" and not key[3]:  # INTERNALDATE (SENTDATE needs the metadata)
        when, wanted, relation = view.date, key[2], key[1]
        assert isinstance(wanted, date)

        def on_date(s: int, h: Any, x: str) -> bool:
            day = when(h).astimezone(UTC).date()
            if relation == "before":
                return bool(day < wanted)
            if relation == "on":
                return bool(day == wanted)
            return bool(day >= wanted)

        return on_date
    if kind == "header" and str(key[1]) in _META_HEADERS and key[2] != "":
        index, needle = mailstore.HEAD_NAMES.index(str(key[1])), str(key[2]).casefold()
        end = mailstore.HEADS_END
        if index == 0:  # the Subject: the first field

            def in_subject(s: int, h: Any, x: str) -> bool:
                return x.find(needle, 0, x.find(end)) >= 0

            pred: Pred = in_subject
        elif index == 1:  # From: the second (SEARCH FROM, the most asked after Subject)
            skip = len(end)

            def in_from(s: int, h: Any, x: str) -> bool:
                start = x.find(end) + skip
                return x.find(needle, start, x.find(end, start)) >= 0

            pred = in_from
        else:

            def in_field(s: int, h: Any, x: str) -> bool:
                return mailstore.head_contains(x, index, needle)

            pred = in_field
        return _costly(pred, [])
    return lambda s, h, x: False  # "none", and what Matcher does not match either


def _costly(pred: Pred, parts: list[Pred]) -> Pred:
    """Mark ``pred`` as reading the heads (a string search) when it or a part does: AND then
    tries the column tests first."""
    if not parts or any(getattr(part, "costly", False) for part in parts):
        pred.costly = True  # type: ignore[attr-defined]
    return pred


def _scan(
    view: _View,
    ids: Sequence[int],
    uids: Sequence[int],
    pending: frozenset[int],
    pred: Pred,
    heads_of: Callable[[str], str | None],
    column: list[str | None],
    budget: _Budget,
) -> tuple[list[tuple[int, MessageSummary]], list[tuple[int, Any, MessageSummary]]] | None:
    """One pass over the folder in sequence-number order (worker thread): the matches among the
    messages whose heads are cached, with their rows, and the (sequence number, handle, row)
    of those whose heads are not; None once over budget. ``ids`` / ``uids``: the session's
    message ids and UIDs (copies); a message in ``pending`` (expunged, not yet reported) or no
    longer in the rows (expunged meanwhile) is skipped. For :class:`FolderRows`, ``column``
    is read first and completed from the cache (``HeadsCache.column``): each position is only
    ever set to the one string of its blob id, so two scans filling it at once agree."""
    hits: list[tuple[int, Any]] = []
    missing: list[tuple[int, Any]] = []
    rows = view.rows
    if isinstance(rows, mailstore.FolderRows):
        columns = rows.columns
        found, blobs, total = columns.ids, columns.blobs, len(columns.ids)
        nxt = 0  # ids mostly grow with UIDs: the next position is usually the one
        for index, message_id in enumerate(ids):
            if not index & SCAN_CHECK and budget.spent:
                return None
            if pending and uids[index] in pending:
                continue
            if nxt < total and found[nxt] == message_id:
                at = nxt
            else:
                at = bisect.bisect_left(found, message_id)
                if at == total or found[at] != message_id:
                    continue
            nxt = at + 1
            heads = column[at]
            if heads is None:
                heads = column[at] = heads_of(blobs[at])
            if heads is None:
                missing.append((index + 1, at))
            elif pred(index + 1, at, heads):
                hits.append((index + 1, at))
    else:
        get = rows.get
        for index, message_id in enumerate(ids):
            if not index & SCAN_CHECK and budget.spent:
                return None
            if pending and uids[index] in pending:
                continue
            row = get(message_id)
            if row is None:
                continue
            heads = heads_of(row.blob_id)
            if heads is None:
                missing.append((index + 1, row))
            elif pred(index + 1, row, heads):
                hits.append((index + 1, row))
    make = view.row
    return (
        [(seq, make(handle)) for seq, handle in hits],
        [(seq, handle, make(handle)) for seq, handle in missing],
    )


def _match_loaded(
    pred: Pred,
    part: Sequence[tuple[int, Any, MessageSummary]],
    heads: Mapping[int, str],
    budget: _Budget,
) -> list[tuple[int, MessageSummary]] | None:
    """The matches among messages whose heads were just loaded (worker thread); a message
    without metadata has none (:data:`~caducee.services.mailstore.NO_HEADS`)."""
    if budget.spent:
        return None
    return [
        (seq, row)
        for seq, handle, row in part
        if pred(seq, handle, heads.get(row.id, mailstore.NO_HEADS))
    ]


def _merge(
    first: list[tuple[int, MessageSummary]], second: list[tuple[int, MessageSummary]]
) -> list[tuple[int, MessageSummary]]:
    return list(heapq.merge(first, second, key=itemgetter(0)))


async def _search_heads(
    session: Session, key: SearchKey, budget: _Budget
) -> list[tuple[int, MessageSummary]]:
    """A :func:`_heads_only` search: one pass in a worker thread over the folder's columns and
    the heads (a large folder's column of them, else the heads cache read with
    :meth:`~caducee.services.bounded_cache.BoundedCache.peek`: a hit there is not a use, and a
    message being moved by the loop reads as not cached), rows built only for the matches;
    messages whose heads are not cached are loaded (``mailstore.load_heads``) and matched
    :data:`BATCH` at a time. Nothing per message runs on the event loop but for those."""
    selected = session.selected
    assert selected is not None
    app = session.app
    all_rows = await mailstore.fetch_rows(app, selected.of.folder.id, None)  # one query
    view = _View(all_rows)
    # Copies (a few memcpy): the worker thread reads them while the loop goes on.
    uids = array("Q", selected.uids)
    ids = array("Q", selected.rows.message_ids)
    pending = frozenset(selected.pending_expunge)
    recent = set(selected.recent) if any(sub[0] == "recent" for sub in _walk(key)) else set()
    pred = _compile(key, view, len(uids), uids[-1] if uids else 0, recent)
    cache = mailstore.heads_cache(app)
    heads_of = cache.peek()
    column = cache.column(all_rows) if isinstance(all_rows, mailstore.FolderRows) else []
    scanned = await asyncio.to_thread(
        _scan, view, ids, uids, pending, pred, heads_of, column, budget
    )
    if scanned is None:
        raise too_costly(budget.seconds)
    found, missing = scanned
    if not missing:
        return found
    more: list[tuple[int, MessageSummary]] = []
    for start in range(0, len(missing), BATCH):
        budget.check()
        part = missing[start : start + BATCH]
        heads = await mailstore.load_heads(app, [row for _, _, row in part])
        matched = await asyncio.to_thread(_match_loaded, pred, part, heads, budget)
        if matched is None:
            raise too_costly(budget.seconds)
        more += matched
    memory_trim.note(len(missing) * 1024)  # ~1 kB of metadata decoded a message
    if not found:
        return more
    return await asyncio.to_thread(_merge, found, more)


async def search(session: Session, args: SearchArgs) -> list[tuple[int, MessageSummary]]:
    """The messages matching ``args``; :class:`~caducee.errors.BudgetExceeded` when the work
    exceeds ``[imap] search_budget_seconds`` (the CPU part runs off the event loop)."""
    selected = session.selected
    assert selected is not None
    app = session.app
    budget = _Budget(app.settings.imap_search_budget_seconds)
    if _heads_only(args.key):
        return await _search_heads(session, args.key, budget)
    needs = _needs(args.key)
    matcher = Matcher(
        len(selected.uids), selected.uids[-1] if selected.uids else 0, selected.recent
    )
    pending = selected.pending_expunge
    uids, ids = selected.uids, selected.rows.message_ids
    # (sequence number, message id): plain integers, no row built (issue 17: at 100,000
    # messages building an entry per message held the event loop ~0.5 s per search)
    order = [
        (index + 1, ids[index])
        for index in range(len(uids))
        if not pending or uids[index] not in pending
    ]
    found: list[tuple[int, MessageSummary]] = []
    all_rows = await mailstore.fetch_rows(app, selected.of.folder.id, None)  # one query
    prefilter = await _Prefilter.make(app, selected.of.mailbox.id, args.key) if needs.text else None
    if prefilter is not None:
        order = await prefilter.candidates(order, all_rows)
    for start in range(0, len(order), BATCH):
        budget.check()
        chunk = order[start : start + BATCH]
        rows: dict[int, MessageSummary] = {}
        for _, mid in chunk:
            row = all_rows.get(mid)  # one lookup (FolderRows builds the row)
            if row is not None:
                rows[mid] = row
        metas = (
            await mailstore.load_meta(app, list(rows.values()), header_fields=needs.fields)
            if needs.meta
            else {}
        )
        heads = await mailstore.load_heads(app, list(rows.values())) if needs.heads else {}
        texts = await _texts(app, rows, prefilter, budget) if needs.text else {}
        candidates = [
            Candidate(seq, rows[mid], metas.get(mid), texts.get(mid), heads.get(mid))
            for seq, mid in chunk
            if mid in rows
        ]
        matched = await asyncio.to_thread(_match_chunk, matcher, args.key, candidates, budget)
        if matched is None:
            raise too_costly(budget.seconds)
        found += [(c.seq, c.row) for c in matched]
    if needs.meta or needs.heads:  # ~1 kB of metadata decoded a message, in worker threads
        memory_trim.note(len(order) * 1024)
    return found


async def cmd_search(session: Session, command: Command) -> None:
    args = command.args
    assert isinstance(args, SearchArgs)
    by_uid = command.name == "UID SEARCH"
    if args.charset is not None and args.charset not in CHARSETS:
        raise no("jeu de caracteres non pris en charge", "BADCHARSET (UTF-8 US-ASCII)")
    with_modseq = any(sub[0] == "modseq" for sub in _walk(args.key))
    if with_modseq:
        session.condstore = True
    found = await search(session, args)
    numbers = [row.uid if by_uid else seq for seq, row in found]
    highest = max((row.modseq for _, row in found), default=0)
    returns = args.returns
    if returns is None and session.rev2:
        returns = []
    if returns is None:
        line = "SEARCH" + "".join(f" {n}" for n in numbers)
        if with_modseq and numbers:
            line += f" (MODSEQ {highest})"
        session.untagged(line)
    else:
        options = set(returns) or {"ALL"}
        parts = [f'ESEARCH (TAG "{command.tag}")']
        if by_uid:
            parts.append("UID")
        if numbers:
            if "MIN" in options:
                parts.append(f"MIN {min(numbers)}")
            if "MAX" in options:
                parts.append(f"MAX {max(numbers)}")
            if "ALL" in options:
                parts.append(f"ALL {format_set(numbers)}")
        if "COUNT" in options:
            parts.append(f"COUNT {len(numbers)}")
        if with_modseq and numbers:
            if not options & {"ALL", "COUNT"}:  # the MODSEQ of the message(s) returned
                chosen = {min(numbers) if "MIN" in options else 0}
                chosen.add(max(numbers) if "MAX" in options else 0)
                highest = max(
                    row.modseq for seq, row in found if (row.uid if by_uid else seq) in chosen
                )
            parts.append(f"MODSEQ {highest}")
        session.untagged(" ".join(parts))
    await session.ok(command, "SEARCH fait")
