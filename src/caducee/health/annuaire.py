"""The national MSSanté directory (annuaire): import of the public extraction (file or URL, and
a scheduled refresh like the whitelist's), and the one search every door calls — the REST API,
``caducee directory search`` and the webmail's recipient autocompletion.

Import: the file is read in a thread, its lines parsed and folded in worker processes
(:mod:`caducee.services.cpu_pool`, :func:`caducee.domain.annuaire.parse_chunk`), written in
batches into a new generation that no search reads, indexed in one sort, then made current by
switching one pointer row in one transaction; the generation it replaces is deleted afterwards
in batches. A search sees the old directory or the new one, never a mix, and a failed import
leaves the directory in force untouched. Every line that is not a row is reported with its
number.

Search: words of the query are folded like the index (accents, case), each must start a word
of the row (prefix); the rarest word drives (its first :data:`CANDIDATES` index rows), the others
filter, exact matches of it come first, then by name.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import multiprocessing
import tempfile
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO

from caducee.app import App
from caducee.domain import annuaire as rules
from caducee.domain.annuaire import Professional
from caducee.errors import InvalidInput, TemporaryFailure
from caducee.services import audit, cpu_pool, periodic
from caducee.services.audit import AuditEvent, append
from caducee.store import annuaire_repo

log = logging.getLogger(__name__)

#: Rows a search returns at most.
MAX_RESULTS = 20
#: Index rows of the driving word a search looks at (the rarest word of the query drives): all
#: of them when it has at most :data:`ALL_CANDIDATES` (so that « endocr lyon gaillard » finds
#: every Gaillard), else the first :data:`CANDIDATES` (« médecin paris »: right answers, not
#: all of them ranked). A query of one word looks at :data:`CANDIDATES` (exact words first).
CANDIDATES = 1000
ALL_CANDIDATES = 5000
#: When the first :data:`CANDIDATES` rows of a common word hold no match of the others.
WIDER_CANDIDATES = 50_000
#: Lines of the file at most (the national extraction has about 535,000).
MAX_ROWS = 2_000_000
#: Rejected lines kept in the report (all are counted).
MAX_REPORTED = 1000
#: Seconds a download may take.
DOWNLOAD_TIMEOUT = 600.0
#: Pause between two deletion batches of a retired generation in a serving node.
PURGE_PAUSE = 0.05

#: (bytes read, bytes in all)
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class ImportReport:
    generation: int
    rows: int
    rejected_count: int
    #: (line number, reason in French, reason in English), the first :data:`MAX_REPORTED`.
    rejected: list[tuple[int, str, str]]
    sha256: str
    seconds: float
    replaced: int | None  # the generation it replaced
    purged_rows: int = 0


@dataclass
class _Reader:
    """The file, read a chunk of numbered lines at a time (in a thread), each line bounded."""

    handle: BinaryIO
    total: int
    digest: hashlib._Hash = field(default_factory=hashlib.sha256)
    position: int = 0
    number: int = 1  # line number of the next line

    def header(self) -> bytes:
        raw = self.handle.readline(rules.MAX_LINE_BYTES * 4)
        self._account(raw)
        if not raw.endswith(b"\n"):
            raise InvalidInput(
                "Annuaire : en-tête absent ou trop long (première ligne).",
                "Directory: header missing or too long (first line).",
            )
        self.number += 1
        return raw

    def _account(self, raw: bytes) -> None:
        self.digest.update(raw)
        self.position += len(raw)

    def chunk(self) -> list[tuple[int, bytes]]:
        lines: list[tuple[int, bytes]] = []
        limit = rules.MAX_LINE_BYTES + 3  # room for CR LF: a longer line comes cut
        while len(lines) < rules.CHUNK_LINES:
            raw = self.handle.readline(limit)
            if not raw:
                break
            self._account(raw)
            if not raw.endswith(b"\n") and len(raw) == limit:
                while True:  # the rest of a line too long is read, hashed and dropped
                    rest = self.handle.readline(65536)
                    self._account(rest)
                    if not rest or rest.endswith(b"\n"):
                        break
            lines.append((self.number, raw))
            self.number += 1
        if self.number - 2 > MAX_ROWS:
            raise InvalidInput(
                f"Annuaire : plus de {MAX_ROWS} lignes ; l'annuaire en place est conservé.",
                f"Directory: more than {MAX_ROWS} lines; the current directory is kept.",
            )
        return lines


def _max_bytes(app: App) -> int:
    return max(1, app.settings.annuaire_max_mb) * 1024 * 1024


async def import_file(
    app: App,
    path: Path,
    *,
    source: str = "",
    actor: str = "system",
    progress: Progress | None = None,
    purge: bool = True,
    executor: Executor | None = None,
) -> ImportReport:
    """Load the extraction at ``path`` as a new generation and make it current. The directory
    in force changes only on success; with ``purge``, the replaced generation is then deleted
    in batches (else the scheduled refresh deletes it). Lines are parsed by ``executor``, else
    by the node's :mod:`~caducee.services.cpu_pool`."""
    started = time.monotonic()
    limit = _max_bytes(app)
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise InvalidInput(
            f"Lecture de {path} impossible : {exc.strerror}.",
            f"Cannot read {path}: {exc.strerror}.",
        ) from None
    with handle:
        total = path.stat().st_size
        if total > limit:
            raise InvalidInput(
                f"Annuaire : fichier de {total} octets, plus que la limite de {limit} octets "
                "([annuaire] max_mb) ; l'annuaire en place est conservé.",
                f"Directory: file of {total} bytes, larger than the {limit}-byte limit "
                "([annuaire] max_mb); the current directory is kept.",
            )
        reader = _Reader(handle, total)
        columns = rules.columns_of(await asyncio.to_thread(reader.header))
        generation = await annuaire_repo.begin(app.db, source or str(path))
        try:
            rows, rejected, count = await _load(
                app, reader, columns, generation, progress, executor
            )
        except BaseException:
            await annuaire_repo.abandon(app.db, generation)
            raise
        if rows == 0:
            await annuaire_repo.abandon(app.db, generation)
            raise InvalidInput(
                f"Annuaire : aucune ligne valide ({count} ligne(s) refusée(s)) ; l'annuaire en "
                "place est conservé.",
                f"Directory: no valid line ({count} line(s) refused); the current directory is "
                "kept.",
            )
    try:
        await annuaire_repo.build_indexes(app.db, generation)
    except BaseException:
        await annuaire_repo.abandon(app.db, generation)
        raise
    sha256 = reader.digest.hexdigest()
    replaced = await annuaire_repo.switch(
        app.db, generation, sha256=sha256, rows=rows, rejected=count
    )
    async with app.db.write() as conn:
        await append(
            conn,
            AuditEvent(
                actor=actor,
                action="annuaire.import",
                target=(source or str(path))[:200],
                source="cli" if actor == "cli" else "system",
                details={"rows": rows, "rejected": count, "sha256": sha256},
            ),
        )
    purged = await purge_retired(app) if purge else 0
    log.info("directory imported generation=%d rows=%d rejected=%d", generation, rows, count)
    return ImportReport(
        generation, rows, count, rejected, sha256, time.monotonic() - started, replaced, purged
    )


async def _load(
    app: App,
    reader: _Reader,
    columns: rules.Columns,
    generation: int,
    progress: Progress | None,
    executor: Executor | None,
) -> tuple[int, list[tuple[int, str, str]], int]:
    """Read, parse (worker processes) and write (batches, in order) every line: (rows, first
    rejected, rejected count). The next chunks are read and parsed while one is written."""
    rows = count = 0
    rejected: list[tuple[int, str, str]] = []
    loop = asyncio.get_running_loop()
    workers = cpu_pool.size() if executor is None else getattr(executor, "_max_workers", 1)
    pending: deque[asyncio.Future[rules.Chunk]] = deque()
    ended = False
    try:
        while True:
            while not ended and len(pending) <= workers:
                lines = await asyncio.to_thread(reader.chunk)
                if not lines:
                    ended = True
                elif executor is None:
                    pending.append(
                        asyncio.ensure_future(
                            cpu_pool.run(rules.parse_chunk, columns, lines, generation)
                        )
                    )
                else:
                    pending.append(
                        loop.run_in_executor(
                            executor, rules.parse_chunk, columns, lines, generation
                        )
                    )
            if not pending:
                break
            chunk = await pending.popleft()
            await annuaire_repo.write_chunk(app.db, generation, chunk)
            rows += chunk.rows
            count += len(chunk.rejected)
            rejected.extend(chunk.rejected[: max(0, MAX_REPORTED - len(rejected))])
            if progress is not None:
                progress(reader.position, reader.total)
    finally:
        for future in pending:
            future.cancel()
    return rows, rejected, count


def import_executor() -> ProcessPoolExecutor:
    """Worker processes for an import run by hand (the CLI, a benchmark): one per core but one,
    at the normal priority — :mod:`services.cpu_pool` runs its workers niced, for a serving
    node, and a busy machine then starved the import. Shut it down after."""
    return ProcessPoolExecutor(
        max_workers=cpu_pool.size(), mp_context=multiprocessing.get_context("forkserver")
    )


def _is_url(location: str) -> bool:
    return location.startswith(("http://", "https://"))


def _download(location: str, target: Path, limit: int) -> None:
    # Only http(s) reaches here (import_from refuses other schemes).
    request = urllib.request.Request(location, headers={"User-Agent": "Caducee"})  # noqa: S310
    written = 0
    try:
        with (
            urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT) as response,  # noqa: S310
            target.open("wb") as out,
        ):
            while block := response.read(1 << 20):
                written += len(block)
                if written > limit:
                    raise InvalidInput(
                        f"{location} dépasse la taille maximale ({limit} octets, [annuaire] "
                        "max_mb) ; l'annuaire en place est conservé.",
                        f"{location} is larger than the limit ({limit} bytes, [annuaire] "
                        "max_mb); the current directory is kept.",
                    )
                out.write(block)
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise TemporaryFailure(
            f"Téléchargement de {location} impossible : {exc}.",
            f"Cannot download {location}: {exc}.",
        ) from None


async def import_from(
    app: App,
    location: str,
    *,
    actor: str = "system",
    progress: Progress | None = None,
    purge: bool = True,
    executor: Executor | None = None,
) -> ImportReport:
    """Import a file path or an http(s) URL (downloaded to a temporary file first, bounded in
    size and time)."""
    if location.startswith("file:") or ("://" in location and not _is_url(location)):
        raise InvalidInput(
            "Seuls un chemin de fichier ou une adresse http(s) sont acceptés.",
            "Only a file path or an http(s) address is accepted.",
        )
    if not _is_url(location):
        return await import_file(
            app, Path(location), source=location, actor=actor, progress=progress, purge=purge,
            executor=executor,
        )  # fmt: skip
    app.settings.data_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=app.settings.data_dir, prefix="annuaire-") as tmp:
        target = Path(tmp) / "extraction-correspondance-mssante.txt"
        await asyncio.to_thread(_download, location, target, _max_bytes(app))
        return await import_file(
            app, target, source=location, actor=actor, progress=progress, purge=purge,
            executor=executor,
        )  # fmt: skip


async def purge_retired(app: App, *, pause: float = 0.0) -> int:
    """Delete the generations no search reads (the replaced one, failed imports), in batches.
    Returns the rows deleted."""

    async def between() -> None:
        await asyncio.sleep(pause)

    total = 0
    for generation in await annuaire_repo.purgeable(app.db):
        total += await annuaire_repo.purge(app.db, generation, between if pause else None)
    return total


# --- search ------------------------------------------------------------------------------------


async def search(app: App, text: str, limit: int = MAX_RESULTS) -> list[Professional]:
    """The directory's rows matching what someone typed (see the module's docstring): at most
    ``limit`` (≤ :data:`MAX_RESULTS`); empty without a directory or a usable word."""
    query = rules.query_of(text)
    limit = max(1, min(limit, MAX_RESULTS))
    if query.email is not None:
        async with app.db.read() as conn:
            return await annuaire_repo.by_email(conn, query.email, limit)
    if not query.words:
        return []
    for _attempt in range(3):
        async with app.db.read() as conn:
            generation = await annuaire_repo.current_generation(conn)
            if generation is None:
                return []
            counts = [
                (
                    await annuaire_repo.count_prefix(conn, generation, word, ALL_CANDIDATES + 1)
                    if len(query.words) > 1 or query.initials
                    else 1,  # alone, a word needs no count: its first index rows serve
                    word,
                )
                for word in query.words
            ]
            fewest, driver = min(counts)
            if fewest > 0:
                others = [w for w in query.words if w != driver] + list(query.initials)
                cap = fewest if others and fewest <= ALL_CANDIDATES else CANDIDATES
                # Words counted whole (not capped) are few enough to intersect in the index.
                narrow = [w for n, w in counts if w != driver and n <= ALL_CANDIDATES]
                found = await annuaire_repo.search(
                    conn, generation, driver, others, limit=limit, cap=cap, narrow=narrow
                )
                if not found and others and fewest > ALL_CANDIDATES:
                    # Every word is common (« secrétariat médical paris ») and the first rows
                    # of the rarest held none of the others: look further, once.
                    found = await annuaire_repo.search(
                        conn, generation, driver, others, limit=limit, cap=WIDER_CANDIDATES
                    )
                if found:
                    return found
            # Nothing: a true answer, unless a re-import switched the directory meanwhile.
            if await annuaire_repo.current_generation(conn) == generation:
                return []
    return []


async def lookup(app: App, address: str) -> Professional | None:
    """The directory's row of an address (the first, when it is listed several times)."""
    address = address.strip().lower()
    if "@" not in address or len(address) > 320:
        return None
    async with app.db.read() as conn:
        found = await annuaire_repo.by_email(conn, address, 1)
    return found[0] if found else None


async def status(app: App) -> annuaire_repo.ImportInfo | None:
    """The import in force (``None``: no directory)."""
    async with app.db.read() as conn:
        return await annuaire_repo.current_info(conn)


# --- scheduled refresh ---------------------------------------------------------------------------


class DirectoryRefresher:
    """Downloads ``[annuaire] url`` every ``refresh_hours`` (skipped while the directory in
    force, imported by any node, is younger than that); a failed download or a bad file is
    logged and audited, and the directory in force stays. Also deletes retired generations."""

    name = "annuaire"

    def __init__(self, app: App, *, first_delay: float = 60.0) -> None:
        self.app = app
        self.first_delay = first_delay

    async def refresh_once(self) -> ImportReport | None:
        settings = self.app.settings
        await purge_retired(self.app, pause=PURGE_PAUSE)
        if not settings.annuaire_url:
            return None
        current = await status(self.app)
        period = timedelta(hours=max(1, settings.annuaire_refresh_hours))
        finished = current.finished_at if current is not None else None
        if finished is not None and finished > datetime.now(UTC) - period:
            return None
        try:
            report = await import_from(self.app, settings.annuaire_url, purge=False)
        except (InvalidInput, TemporaryFailure) as exc:
            log.warning(
                "directory refresh failed, keeping the current one error=%s", type(exc).__name__
            )
            await audit.record_failure(self.app.db, "annuaire.refresh", settings.annuaire_url, exc)
            return None
        await purge_retired(self.app, pause=PURGE_PAUSE)
        return report

    async def run(self, stop: asyncio.Event) -> None:
        await periodic.repeat(
            stop,
            self.refresh_once,
            first_delay=self.first_delay,
            next_delay=lambda: max(
                60.0, min(self.app.settings.annuaire_refresh_hours, 24) * 3600.0 / 4
            ),
            what="directory refresh",
        )
