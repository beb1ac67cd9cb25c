# The SQL below is built with f-strings only to write generations (int()) and index names made
# of them into it, never text from outside: S608 is checked by hand here.
# ruff: noqa: S608
"""SQL of the national MSSanté directory: load a generation in batches, index it, switch the
pointer in one transaction, search it, and delete retired generations in batches.

A generation's rows are written without any index but their primary key (appends), then each
generation gets its partial indexes ``WHERE generation = <n>`` in one sort (a B-tree filled
row by row in random order was the slow part of loading half a million rows). Generations are
integers from ``annuaire_imports.id``: they are written into the SQL text (never a string from
outside), so that both SQLite and PostgreSQL match the partial index.

Readers never see a generation being loaded or deleted: a search's final statement reads the
pointer itself (one statement, one snapshot on both backends) and returns nothing when the
pointer moved since the generation was chosen — the service then asks again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, text, update
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from caducee.domain.annuaire import ENTRY_FIELDS, Chunk, Professional
from caducee.store.database import Database, inserted_id, storage_errors
from caducee.store.tables import annuaire_current, annuaire_imports
from caducee.store.times import aware

#: Rows deleted per transaction when a retired generation goes.
DELETE_BATCH = 20_000
#: A generation still « loading » after this long was left by a crashed import.
STALE_LOADING = timedelta(hours=12)
#: Page cache (KiB) of the SQLite connection while it builds a generation's index (reset after).
_SQLITE_SORT_CACHE_KIB = 65_536

_ENTRY_COLUMNS = ("generation", "seq", *ENTRY_FIELDS, "search")


@dataclass(frozen=True)
class ImportInfo:
    generation: int
    started_at: datetime
    finished_at: datetime | None
    state: str
    source: str
    sha256: str
    row_count: int
    rejected_count: int


def _entry(row: Any) -> Professional:
    return Professional(*(getattr(row, name) for name in ENTRY_FIELDS))


def _info(row: Any) -> ImportInfo:
    started = aware(row.started_at)
    assert started is not None
    return ImportInfo(
        generation=row.id,
        started_at=started,
        finished_at=aware(row.finished_at),
        state=row.state,
        source=row.source,
        sha256=row.sha256,
        row_count=row.row_count,
        rejected_count=row.rejected_count,
    )


# --- loading -----------------------------------------------------------------------------------


async def begin(db: Database, source: str) -> int:
    """A new generation, « loading » (invisible to searches)."""
    async with db.write() as conn:
        return inserted_id(
            await conn.execute(
                insert(annuaire_imports).values(
                    started_at=datetime.now(UTC), state="loading", source=source[:500]
                )
            )
        )


#: A chunk's search tokens, from its rows' ``search`` column (words joined by spaces, each
#: [a-z0-9]+: a JSON array once spaces become '","'), computed by the database itself.
_SQLITE_TOKENS = (
    "INSERT INTO annuaire_tokens (generation, token, seq) "
    "SELECT e.generation, j.value, e.seq FROM annuaire_entries e, "
    "json_each('[\"' || replace(e.search, ' ', '\",\"') || '\"]') j "
    "WHERE e.generation = ? AND e.seq BETWEEN ? AND ? AND e.search != ''"
)
_PG_TOKENS = (
    "INSERT INTO annuaire_tokens (generation, token, seq) "
    "SELECT generation, unnest(string_to_array(search, ' ')), seq FROM annuaire_entries "
    "WHERE generation = %s AND seq BETWEEN %s AND %s"
)


async def write_chunk(db: Database, generation: int, chunk: Chunk) -> None:
    """Append a parsed chunk and its search tokens in one transaction (SQLite: in a thread;
    PostgreSQL: COPY, so that the event loop only sends bytes)."""
    if not chunk.rows:
        return
    g, first, last = int(generation), int(chunk.first), int(chunk.last)
    if db.is_sqlite:
        marks = ", ".join("?" for _ in _ENTRY_COLUMNS)
        entries_sql = f"INSERT INTO annuaire_entries ({', '.join(_ENTRY_COLUMNS)}) VALUES ({marks})"

        def work(conn: Connection) -> None:
            conn.exec_driver_sql(entries_sql, chunk.entries())
            conn.exec_driver_sql(_SQLITE_TOKENS, (g, first, last))

        await db.write_sync(work)
        return
    async with db.write() as conn:
        raw = await conn.get_raw_connection()
        driver: Any = raw.driver_connection
        async with driver.cursor() as cursor:
            columns = ", ".join(_ENTRY_COLUMNS)
            async with cursor.copy(f"COPY annuaire_entries ({columns}) FROM STDIN") as copy:
                await copy.write(chunk.data)
            await cursor.execute(_PG_TOKENS, (g, first, last))


def _index_names(generation: int) -> tuple[str, str]:
    return f"ix_annuaire_tokens_g{int(generation)}", f"ix_annuaire_entries_email_g{int(generation)}"


async def build_indexes(db: Database, generation: int) -> None:
    """The generation's partial indexes, each in one sort (readers are not blocked)."""
    g = int(generation)
    tokens_ix, email_ix = _index_names(g)
    statements = [
        f"CREATE INDEX IF NOT EXISTS {tokens_ix} ON annuaire_tokens (token, seq) "
        f"WHERE generation = {g}",
        f"CREATE INDEX IF NOT EXISTS {email_ix} ON annuaire_entries (email, generation) "
        f"WHERE generation = {g}",
    ]
    if db.is_sqlite:

        def work(conn: Connection) -> None:
            conn.exec_driver_sql(f"PRAGMA cache_size=-{_SQLITE_SORT_CACHE_KIB}")
            try:
                for statement in statements:
                    conn.exec_driver_sql(statement)
            finally:
                conn.exec_driver_sql("PRAGMA cache_size=-256")

        await db.write_sync(work)
        return
    async with db.write() as conn:
        await conn.execute(text("SET LOCAL maintenance_work_mem = '256MB'"))
        for statement in statements:
            await conn.execute(text(statement))
    # VACUUM (outside a transaction) also sets the visibility map of the freshly written pages:
    # without it every "index-only" scan of the tokens still visits the heap, row by row.
    with storage_errors():
        async with db.engine.connect() as raw:
            conn = await raw.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("VACUUM (ANALYZE) annuaire_tokens"))
            await conn.execute(text("VACUUM (ANALYZE) annuaire_entries"))


async def switch(
    db: Database, generation: int, *, sha256: str, rows: int, rejected: int
) -> int | None:
    """Make ``generation`` the one searches read, in one transaction; the generation it
    replaces (if any) is marked retired. Returns that replaced generation."""
    async with db.write() as conn:
        previous = await conn.scalar(
            select(annuaire_current.c.generation).where(annuaire_current.c.id == 1)
        )
        await conn.execute(
            update(annuaire_current).where(annuaire_current.c.id == 1).values(generation=generation)
        )
        await conn.execute(
            update(annuaire_imports)
            .where(annuaire_imports.c.id == generation)
            .values(
                state="active",
                finished_at=datetime.now(UTC),
                sha256=sha256,
                row_count=rows,
                rejected_count=rejected,
            )
        )
        await conn.execute(
            update(annuaire_imports)
            .where(annuaire_imports.c.id != generation, annuaire_imports.c.state == "active")
            .values(state="retired")
        )
    return int(previous) if previous is not None else None


async def abandon(db: Database, generation: int) -> None:
    """A failed import: its generation is retired (deleted by :func:`purge`)."""
    async with db.write() as conn:
        await conn.execute(
            update(annuaire_imports)
            .where(annuaire_imports.c.id == generation)
            .values(state="retired", finished_at=datetime.now(UTC))
        )


# --- deleting ----------------------------------------------------------------------------------


async def purgeable(db: Database) -> list[int]:
    """Generations to delete: retired ones, and ones left « loading » by a crashed import."""
    stale = datetime.now(UTC) - STALE_LOADING
    async with db.read() as conn:
        current = await conn.scalar(
            select(annuaire_current.c.generation).where(annuaire_current.c.id == 1)
        )
        rows = (
            await conn.execute(
                select(
                    annuaire_imports.c.id, annuaire_imports.c.state, annuaire_imports.c.started_at
                )
            )
        ).all()
    found = []
    for row in rows:
        if row.id == current:
            continue
        started = aware(row.started_at)
        if row.state == "retired" or (row.state == "loading" and started and started < stale):
            found.append(int(row.id))
    return sorted(found)


async def purge(
    db: Database, generation: int, between: Callable[[], Awaitable[None]] | None = None
) -> int:
    """Delete a generation no search reads, :data:`DELETE_BATCH` rows per transaction (tokens
    along the generation's own index, then rows by line number), then its indexes and import
    row. ``between`` is awaited between batches (a pause that lets other writers in). Returns
    the rows deleted."""
    g = int(generation)
    tokens_ix, email_ix = _index_names(g)
    total = 0
    after: tuple[str, int] = ("", -1)
    while True:
        async with db.write() as conn:
            current = await current_generation(conn)
            if current == g:  # never the generation searches read
                return total
            bound = (
                await conn.execute(
                    text(
                        f"SELECT token, seq FROM annuaire_tokens WHERE generation = {g} "
                        "AND (token, seq) >= (:t, :s) "
                        f"ORDER BY token, seq LIMIT 1 OFFSET {DELETE_BATCH}"
                    ),
                    {"t": after[0], "s": after[1]},
                )
            ).first()
            if bound is None:
                break
            result = await conn.execute(
                text(
                    f"DELETE FROM annuaire_tokens WHERE generation = {g} "
                    "AND (token, seq) >= (:t, :s) AND (token, seq) < (:bt, :bs)"
                ),
                {"t": after[0], "s": after[1], "bt": bound.token, "bs": bound.seq},
            )
            total += int(result.rowcount or 0)
            after = (str(bound.token), int(bound.seq))
        if between is not None:
            await between()
    while True:
        async with db.write() as conn:
            total += (
                await conn.execute(text(f"DELETE FROM annuaire_tokens WHERE generation = {g}"))
            ).rowcount or 0
            last = await conn.scalar(
                text(
                    f"SELECT seq FROM annuaire_entries WHERE generation = {g} "
                    f"ORDER BY seq LIMIT 1 OFFSET {DELETE_BATCH}"
                )
            )
            if last is None:
                total += (
                    await conn.execute(text(f"DELETE FROM annuaire_entries WHERE generation = {g}"))
                ).rowcount or 0
                await conn.execute(text(f"DROP INDEX IF EXISTS {tokens_ix}"))
                await conn.execute(text(f"DROP INDEX IF EXISTS {email_ix}"))
                await conn.execute(annuaire_imports.delete().where(annuaire_imports.c.id == g))
                return total
            result = await conn.execute(
                text(f"DELETE FROM annuaire_entries WHERE generation = {g} AND seq < :s"),
                {"s": last},
            )
            total += int(result.rowcount or 0)
        if between is not None:
            await between()


# --- reading -----------------------------------------------------------------------------------


async def current_generation(conn: AsyncConnection) -> int | None:
    found = await conn.scalar(
        select(annuaire_current.c.generation).where(annuaire_current.c.id == 1)
    )
    return int(found) if found is not None else None


async def current_info(conn: AsyncConnection) -> ImportInfo | None:
    row = (
        await conn.execute(
            select(annuaire_imports).join(
                annuaire_current, annuaire_current.c.generation == annuaire_imports.c.id
            )
        )
    ).first()
    return _info(row) if row is not None else None


async def imports(conn: AsyncConnection) -> list[ImportInfo]:
    rows = await conn.execute(select(annuaire_imports).order_by(annuaire_imports.c.id))
    return [_info(row) for row in rows]


def _range(prefix: str) -> dict[str, str]:
    # Tokens are [a-z0-9]: every token starting with ``prefix`` is in [prefix, prefix + "{").
    return {"lo": prefix, "hi": prefix + "{"}


async def count_prefix(conn: AsyncConnection, generation: int, prefix: str, cap: int) -> int:
    """How many index rows start with ``prefix`` (at most ``cap``)."""
    g = int(generation)
    found = await conn.scalar(
        text(
            "SELECT count(*) FROM (SELECT 1 FROM annuaire_tokens "
            f"WHERE generation = {g} AND token >= :lo AND token < :hi LIMIT {int(cap)}) AS t"
        ),
        _range(prefix),
    )
    return int(found or 0)


async def search(
    conn: AsyncConnection,
    generation: int,
    driver: str,
    others: Sequence[str],
    *,
    limit: int,
    cap: int,
    narrow: Sequence[str] = (),
) -> list[Professional]:
    """Rows whose tokens start with ``driver`` (the first ``cap`` index rows of it) and whose
    search text has a word starting with each of ``others``; exact matches of ``driver``
    first, then by name. Empty when ``generation`` is no longer the current one.

    ``narrow`` names those of ``others`` known to start few index rows: their rows are
    intersected with the candidates in the token index (``INTERSECT``: a hash or a sort, never
    a loop whose cost the planner may misjudge on fresh statistics) before any row is read,
    so that only the survivors fetch their row."""
    g = int(generation)
    params: dict[str, Any] = {**_range(driver), "w": driver, "limit": int(limit)}
    first_rows = (
        f"SELECT token, seq FROM annuaire_tokens WHERE generation = {g} "
        f"AND token >= :lo AND token < :hi ORDER BY token, seq LIMIT {int(cap)}"
    )
    if narrow:
        kept = [f"SELECT seq FROM ({first_rows}) AS d"]
        for position, word in enumerate(narrow):
            params[f"nlo{position}"], params[f"nhi{position}"] = _range(word).values()
            kept.append(
                f"SELECT seq FROM annuaire_tokens WHERE generation = {g} "
                f"AND token >= :nlo{position} AND token < :nhi{position}"
            )
        # The driver's exact match, looked up for the survivors only (one index probe each).
        candidates = (
            "SELECT k.seq, CASE WHEN EXISTS (SELECT 1 FROM annuaire_tokens w "
            f"WHERE w.generation = {g} AND w.token = :w AND w.seq = k.seq) THEN 1 ELSE 0 END "
            f"AS exact FROM ({' INTERSECT '.join(kept)}) AS k"
        )
    else:
        candidates = (
            "SELECT seq, MAX(CASE WHEN token = :w THEN 1 ELSE 0 END) AS exact "
            f"FROM ({first_rows}) AS t GROUP BY seq"
        )
    filters = []
    scores = ["c.exact"]
    for position, word in enumerate(others):
        params[f"o{position}"] = f"% {word}%"
        filters.append(f"AND (' ' || e.search) LIKE :o{position}")
    for position, word in enumerate([driver, *others]):
        params[f"x{position}"], params[f"f{position}"] = f"% {word} %", f"{word}%"
        if position:  # the driver's exact match is c.exact
            scores.append(f"CASE WHEN (' ' || e.search || ' ') LIKE :x{position} THEN 1 ELSE 0 END")
        # a word starting the row's first word (its name, most often) counts too
        scores.append(f"CASE WHEN e.search LIKE :f{position} THEN 1 ELSE 0 END")
    columns = ", ".join(f"e.{name}" for name in ENTRY_FIELDS)
    if conn.dialect.name == "postgresql":
        # The candidates drive, always: each fetches its row by primary key. Without this
        # fence (LATERAL + OFFSET 0), a planner without fresh statistics on a just-imported
        # generation may scan the whole generation and join the candidates to every row
        # (26 s seen for « pharmacie du marché »).
        rows = (
            "CROSS JOIN LATERAL (SELECT * FROM annuaire_entries x "
            f"WHERE x.generation = {g} AND x.seq = c.seq OFFSET 0) AS e "
        )
    else:
        rows = f"JOIN annuaire_entries e ON e.generation = {g} AND e.seq = c.seq "
    statement = text(
        f"SELECT {columns} FROM ({candidates}) AS c {rows}"
        f"WHERE EXISTS (SELECT 1 FROM annuaire_current WHERE id = 1 AND generation = {g}) "
        + " ".join(filters)
        + f" ORDER BY {' + '.join(scores)} DESC, CASE WHEN e.last_name = '' THEN 1 ELSE 0 END, "
        "e.last_name, e.first_name, e.seq LIMIT :limit"
    )
    return [_entry(row) for row in await conn.execute(statement, params)]


async def by_email(conn: AsyncConnection, email: str, limit: int = 20) -> list[Professional]:
    """The current generation's rows of one address (exact, lower case)."""
    columns = ", ".join(f"e.{name}" for name in ENTRY_FIELDS)
    for _attempt in range(3):
        generation = await current_generation(conn)
        if generation is None:
            return []
        g = int(generation)
        # SQLite's planner, without statistics, prefers the primary key (generation, seq) and
        # scans the whole generation: name the generation's address index.
        hint = f" INDEXED BY {_index_names(g)[1]}" if conn.dialect.name == "sqlite" else ""
        rows = await conn.execute(
            text(
                f"SELECT {columns} FROM annuaire_entries e{hint} WHERE e.generation = {g} "
                "AND e.email = :email "
                f"AND EXISTS (SELECT 1 FROM annuaire_current WHERE id = 1 AND generation = {g}) "
                "ORDER BY e.seq LIMIT :limit"
            ),
            {"email": email, "limit": int(limit)},
        )
        found = [_entry(row) for row in rows]
        # Nothing: a true answer, unless a re-import switched the directory meanwhile.
        if found or await current_generation(conn) == g:
            return found
    return []


async def generation_rows(conn: AsyncConnection, generation: int) -> tuple[int, int]:
    """(rows, tokens) stored for a generation (tests and ``directory show``)."""
    g = int(generation)
    entries = await conn.scalar(
        text(f"SELECT count(*) FROM annuaire_entries WHERE generation = {g}")
    )
    tokens = await conn.scalar(text(f"SELECT count(*) FROM annuaire_tokens WHERE generation = {g}"))
    return int(entries or 0), int(tokens or 0)
