"""A full-text prefilter for IMAP SEARCH BODY / TEXT that keeps no word in clear.

Per message, a Bloom filter of the trigrams of its words (the words of its decoded headers and
text parts, casefolded exactly as :mod:`caducee.domain.message_text` gives them). Each trigram is
hashed with a key derived from the mailbox's data key (BLAKE2b keyed): without that key, the
filter tells nothing about the words; with it, it only answers « might this message contain
these trigrams? ».

Why trigrams of words, and why no false negative is possible: IMAP searches are substring
searches. Cut the needle at every non-word character; each piece is a run of word characters
found inside the text, so it lies inside one word of the text, and each of its trigrams is a
trigram of that word, hence in the filter. A message whose filter lacks one of the needle's
trigrams cannot match; the others (candidates) are checked exactly on their decrypted text.
A needle with no piece of three characters or more filters nothing.

Sizing: m = the power of two ≥ 4 bits per distinct trigram (256 bits to 64 kbit), two hash
positions per trigram: about 15 % false positives per trigram, so about 3·10⁻⁷ for a
ten-letter word (eight trigrams), whatever the message's length.

Filters are built when messages are delivered — by a background task of the node once its
delivery pipeline is idle, so that indexing never slows the SMTP door — or, for a message
not indexed yet, by the search that first needs it. Either way the parsing runs in a worker
process and the hashing in a worker thread, never on the event loop every door shares. They live in
``message_text_index`` and in a per-node memory cache.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from caducee.app import App
from caducee.domain.message_text import Text, extract_text
from caducee.domain.model import Mailbox
from caducee.errors import IntegrityError, NotFound
from caducee.services import audit, bounded_cache, cpu_pool
from caducee.services.bounded_cache import BoundedCache
from caducee.store import mailstore_repo as repo
from caducee.store.keyring import mailbox_scope

log = logging.getLogger(__name__)

_WORD = re.compile(r"\w+")
MIN_BITS = 256
MAX_BITS = 65536
#: Filters kept in memory per node (bytes).
CACHE_BYTES = 64 * 1024 * 1024
#: Raw messages held for the background indexer at most (bytes; beyond, a message is indexed
#: by the first search that needs it).
MAX_PENDING_BYTES = 4 * 1024 * 1024
#: The background indexer waits this long without deliveries before it works.
IDLE_SECONDS = 1.0
BATCH = 20  # messages per stored batch of filters (each parsed in its own thread call)
#: Messages per batch of a rebuild (one transaction, one checkpoint each).
REBUILD_BATCH = 100
_KEY_LABEL = b"caducee imap text index v1"


def index_key(data_key: bytes) -> bytes:
    """The mailbox's index key, derived from its data key (never stored)."""
    return hmac.new(data_key, _KEY_LABEL, hashlib.sha256).digest()


class _TrigramHashes:
    """trigram → 64-bit keyed hash, remembered per key (a mailbox reuses the same trigrams).

    At most :data:`MAX` trigrams in all, whatever the keys: past it, everything is forgotten
    at once and refilled by the next messages (a mailbox's usual trigrams come back within a
    few). The bound is on the total, about 130 bytes a trigram: bounded per key (500,000 for
    each of 64 keys), the cache could hold 4 GB in a worker, and random tokens (reference
    numbers, hex digests, encoded identifiers) add new trigrams with every message, for
    ever (found while reading the soak's memory, whose messages, of few trigrams, filled the
    cache to 4,000 a mailbox only).
    """

    MAX = 200_000
    MAX_KEYS = 64

    def __init__(self) -> None:
        self.by_key: dict[bytes, dict[str, int]] = {}
        self.size = 0  # trigrams held, all keys together

    def forget(self) -> None:
        # A new dict rather than clear(): a thread hashing with a key keeps its own reference.
        self.by_key, self.size = {}, 0

    def of(self, key: bytes, trigrams: Iterable[str]) -> list[int]:
        known = self.by_key.get(key)
        if known is None:
            if len(self.by_key) >= self.MAX_KEYS:
                self.forget()
            known = self.by_key[key] = {}
        out = []
        for trigram in trigrams:
            value = known.get(trigram)
            if value is None:
                if self.size >= self.MAX:
                    self.forget()
                    known = self.by_key[key] = {}
                digest = hashlib.blake2b(trigram.encode(), key=key, digest_size=8).digest()
                value = known[trigram] = int.from_bytes(digest, "little")
                self.size += 1
            out.append(value)
        return out


_hashes = _TrigramHashes()
#: About what a remembered trigram costs (its string, its int, the dict's slot).
TRIGRAM_BYTES = 130
bounded_cache.measured("trigram-hashes", lambda: _hashes.size * TRIGRAM_BYTES)


def _trigrams_of_words(words: Iterable[str]) -> set[str]:
    found: set[str] = set()
    for word in words:
        for i in range(len(word) - 2):
            found.add(word[i : i + 3])
    return found


def build(key: bytes, text: Text) -> bytes:
    """The filter of one message's text."""
    words = set(_WORD.findall(text.body))
    for header in text.headers.values():
        words.update(_WORD.findall(header))
    hashes = _hashes.of(key, _trigrams_of_words(words))
    bits = MIN_BITS
    while bits < 4 * len(hashes) and bits < MAX_BITS:
        bits *= 2
    table = bytearray(bits // 8)
    for value in hashes:
        for position in ((value & 0xFFFFFFFF) % bits, (value >> 32) % bits):
            table[position >> 3] |= 1 << (position & 7)
    return bytes(table)


def build_all(key: bytes, texts: dict[tuple[int, str], Text]) -> dict[tuple[int, str], bytes]:
    """:func:`build` for several messages (a worker thread's job)."""
    return {ids: build(key, text) for ids, text in texts.items()}


async def index_raw(key: bytes, raw: bytes) -> bytes:
    """The filter of a raw message: its text extracted in a worker process (the stdlib's MIME
    parser, see :mod:`caducee.services.cpu_pool`), then :func:`build` in a worker thread."""
    text = await cpu_pool.run(extract_text, raw)
    return await asyncio.to_thread(build, key, text)


def needle_hashes(key: bytes, needle: str) -> list[int]:
    """The keyed hashes a matching message's filter must hold ([] : filters nothing)."""
    return _hashes.of(key, sorted(_trigrams_of_words(_WORD.findall(needle.casefold()))))


def may_contain(table: bytes, hashes: Sequence[int]) -> bool:
    bits = len(table) * 8
    for value in hashes:
        for position in ((value & 0xFFFFFFFF) % bits, (value >> 32) % bits):
            if not table[position >> 3] >> (position & 7) & 1:
                return False
    return True


# --- keys, storage and the node's cache ------------------------------------------------------


async def mailbox_index_key(app: App, mailbox_id: int) -> bytes:
    async with app.db.read() as conn:
        return index_key(await app.keyring.data_key(conn, mailbox_scope(mailbox_id)))


class FilterCache(BoundedCache[str, bytes]):
    """Per node: filters by blob id (a blob's content never changes; a message id may be
    reused by SQLite once its message is gone)."""

    def __init__(self, _app: App) -> None:
        super().__init__("text-filters", len, CACHE_BYTES)


def filter_cache(app: App) -> FilterCache:
    return app.component(FilterCache, FilterCache)


async def load_filters(app: App, messages_: Sequence[tuple[int, str]]) -> dict[int, bytes]:
    """The stored filters of these (message id, blob id); missing ones: not indexed yet."""
    cache = filter_cache(app)
    out: dict[int, bytes] = {}
    wanted: dict[int, str] = {}
    for message_id, blob_id in messages_:
        found = cache.get(blob_id)
        if found is None:
            wanted[message_id] = blob_id
        else:
            out[message_id] = found
    ids = list(wanted)
    for start in range(0, len(ids), 900):
        async with app.db.read() as conn:
            rows = await repo.text_filters(conn, ids[start : start + 900])
        for message_id, blob_id, table in rows:
            if blob_id != wanted[message_id]:  # left by another message
                continue
            cache.put(blob_id, table)
            out[message_id] = table
    return out


async def store_filters(app: App, tables: dict[tuple[int, str], bytes]) -> None:
    """Record filters built for (message id, blob id). A message expunged meanwhile is
    skipped; a row left by a deleted message whose id was reused is replaced."""
    if not tables:
        return
    cache = filter_cache(app)
    for (_, blob_id), table in tables.items():
        cache.put(blob_id, table)
    ids = [message_id for message_id, _ in tables]
    async with app.db.read() as conn:
        current = await repo.blob_ids(conn, ids)
        present = await repo.filter_blob_ids(conn, ids)
    stale = [m for m, b in present.items() if current.get(m) != b]
    rows = [
        {"message_id": m, "blob_id": b, "bloom": t}
        for (m, b), t in tables.items()
        if current.get(m) == b and present.get(m) != b
    ]
    if not rows and not stale:
        return
    if stale:
        async with app.db.write() as conn:
            await repo.delete_text_filters(conn, stale)
    if rows:
        await repo.insert_text_filters(app.db, rows)


async def index_unindexed(app: App, limit: int = 2000, batch: int = 200) -> int:
    """Index up to ``limit`` stored messages that have no filter yet (messages the background
    indexer dropped under load, or stored before this index existed); how many were indexed."""
    async with app.db.read() as conn:
        rows = await repo.unindexed(conn, limit)
    keys: dict[int, bytes] = {}
    done = 0
    for start in range(0, len(rows), batch):
        tables: dict[tuple[int, str], bytes] = {}
        for message_id, mailbox_id, blob_id in rows[start : start + batch]:
            scope = mailbox_scope(mailbox_id)
            async with app.db.read() as conn:
                try:
                    sealed = await app.blobs.get(conn, blob_id)
                    raw = await app.keyring.open(conn, scope, blob_id, "raw", sealed)
                except NotFound:  # expunged meanwhile
                    continue
                except IntegrityError:  # its mailbox is being deleted: data key shredded
                    continue
                key = keys.get(mailbox_id)
                if key is None:
                    key = keys[mailbox_id] = index_key(await app.keyring.data_key(conn, scope))
            tables[(message_id, blob_id)] = await index_raw(key, raw)
        await store_filters(app, tables)
        done += len(tables)
    return done


# --- a rebuild (``caducee mailbox reindex``) ------------------------------------------------


@dataclass(frozen=True)
class Rebuilt:
    """What a rebuild did: messages read, filters that were missing, filters that differed
    from the rebuilt ones (a node may still hold those in memory: restart it), and the last
    message id done (where an interrupted rebuild resumes)."""

    messages: int
    missing: int
    changed: int
    last_id: int


#: Reports (done, total) of a rebuild; then where to resume (the last message id done).
RebuildProgress = Callable[[int, int | None], None]


async def rebuild(
    app: App,
    mailbox: Mailbox | None,
    *,
    after: int = 0,
    actor: str,
    source: str,
    progress: RebuildProgress | None = None,
    checkpoint: Callable[[int], None] | None = None,
    batch: int = REBUILD_BATCH,
) -> Rebuilt:
    """Rebuild the filters of ``mailbox``'s messages (``None``: every mailbox's) whose id is
    above ``after`` (0: all; an interrupted rebuild passes its last checkpoint), in id order.

    Safe while nodes serve: each batch's filters replace the recorded ones in one transaction
    (a search reads the old filter or the new one; a message without a filter is indexed by the
    search that needs it, see the module), messages expunged meanwhile are skipped, and the
    parsing runs in worker processes as the background indexer's does. ``checkpoint`` is told
    the last message id done after each batch. Audited when it starts and when it ends."""
    target = mailbox.address if mailbox is not None else "*"
    mailbox_id = mailbox.id if mailbox is not None else None
    async with app.db.write() as conn:
        await audit.append(
            conn,
            audit.AuditEvent(
                actor=actor,
                action="mailbox.reindex",
                target=target,
                source=source,
                details={"resume_after": after} if after else {},
            ),
        )
    async with app.db.read() as conn:
        total = await repo.count_messages_after(conn, mailbox_id, after)
    report = progress or (lambda _done, _total: None)
    report(0, total)
    keys: dict[int, bytes] = {}
    done = missing = changed = 0
    last = after
    while True:
        async with app.db.read() as conn:
            rows = await repo.messages_after(conn, mailbox_id, last, batch)
        if not rows:
            break
        built: list[dict[str, object]] = []
        for message_id, box_id, blob_id in rows:
            scope = mailbox_scope(box_id)
            async with app.db.read() as conn:
                try:
                    sealed = await app.blobs.get(conn, blob_id)
                    raw = await app.keyring.open(conn, scope, blob_id, "raw", sealed)
                    key = keys.get(box_id)
                    if key is None:
                        key = keys[box_id] = index_key(await app.keyring.data_key(conn, scope))
                except (NotFound, IntegrityError):  # expunged, or its mailbox being deleted
                    continue
            table = await index_raw(key, raw)
            built.append({"message_id": message_id, "blob_id": blob_id, "bloom": table})
        added, differed = await repo.replace_text_filters(app.db, built)
        missing, changed = missing + added, changed + differed
        done += len(rows)
        last = rows[-1][0]
        if checkpoint is not None:
            checkpoint(last)
        report(done, max(total, done))
    result = Rebuilt(done, missing, changed, last)
    async with app.db.write() as conn:
        await audit.append(
            conn,
            audit.AuditEvent(
                actor=actor,
                action="mailbox.reindex.done",
                target=target,
                source=source,
                details={"messages": done, "missing": missing, "changed": changed},
            ),
        )
    log.info(
        "text index rebuilt mailbox=%s messages=%d missing=%d changed=%d",
        mailbox_id if mailbox_id is not None else "all",
        done,
        missing,
        changed,
    )
    return result


# --- the background indexer ------------------------------------------------------------------


@dataclass(frozen=True)
class _Pending:
    message_id: int
    blob_id: str
    mailbox_id: int
    raw: bytes


class Indexer:
    """Indexes newly delivered messages while the node's deliveries pause."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.pending: list[_Pending] = []
        self.pending_bytes = 0
        self.last_offer = 0.0
        self._task: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()
        self._idle.set()

    def offer(self, items: Iterable[tuple[int, str, int, bytes]]) -> None:
        """(message id, blob id, mailbox id, raw) of messages just committed."""
        loop = asyncio.get_running_loop()
        for message_id, blob_id, mailbox_id, raw in items:
            if self.pending_bytes + len(raw) > MAX_PENDING_BYTES:
                break  # the first search that needs them indexes them
            self.pending_bytes += len(raw)
            self.pending.append(_Pending(message_id, blob_id, mailbox_id, raw))
        self.last_offer = loop.time()
        if self.pending and (self._task is None or self._task.done()):
            self._idle.clear()
            self._task = loop.create_task(self._run(), name="text-indexer")

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self.pending:
                quiet = loop.time() - self.last_offer
                if quiet < IDLE_SECONDS:
                    await asyncio.sleep(IDLE_SECONDS - quiet)
                    continue
                batch, self.pending = self.pending[:BATCH], self.pending[BATCH:]
                self.pending_bytes -= sum(len(item.raw) for item in batch)
                try:
                    await self._index(batch)
                except Exception:  # the search indexes what this missed
                    log.exception("text indexing failed (%d messages)", len(batch))
        finally:
            self._idle.set()

    async def _index(self, batch: list[_Pending]) -> None:
        keys: dict[int, bytes] = {}
        tables: dict[tuple[int, str], bytes] = {}
        cache = filter_cache(self.app)
        for item in batch:
            if cache.get(item.blob_id) is not None:  # a search got there first
                continue
            key = keys.get(item.mailbox_id)
            if key is None:
                try:
                    key = await mailbox_index_key(self.app, item.mailbox_id)
                except IntegrityError:  # its mailbox is being deleted: data key shredded
                    key = b""
                keys[item.mailbox_id] = key
            if not key:
                continue
            # One message at a time, off the loop: it serves the doors in between.
            tables[(item.message_id, item.blob_id)] = await index_raw(key, item.raw)
        await store_filters(self.app, tables)

    async def drain(self) -> None:
        """Wait until every offered message is indexed (benchmarks, tests)."""
        self.last_offer = 0.0
        await self._idle.wait()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def indexer(app: App) -> Indexer:
    return app.component(Indexer, Indexer)
