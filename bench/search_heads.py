"""SEARCH SUBJECT / FROM on cached heads, in process (issue 17): the cost per message of the
one pass ``imap.search`` makes in a worker thread, as the folder grows.

Builds synthetic folders (``--sizes``, default 10,000 and 100,000 messages) as the node keeps
them — the clear columns (``mailstore.FolderRows``, or a dict of rows as for a folder under
``mailstore.COMPACT_ROWS``) and every message's heads in a ``mailstore.HeadsCache`` — and
times ``imap.search._scan`` for each criterion, with and without the folder's column of heads
(``HeadsCache.column``), in CPU time of the thread (so that a loaded machine changes the
figures less than wall time). No database, no server: what it measures is the Python work per
message and how it grows (a dict look-up that misses the processor's caches, strings read out
of order); ``python -m bench.imap_curve`` measures whole commands.

    python -m bench.search_heads [--sizes 10000,100000] [--runs 5]
                                 [--criteria 'SUBJECT "xyz"' 'FROM "xavier"']

Figures only: the bench never fails on a threshold.
"""

from __future__ import annotations

import argparse
import functools
import gc
import statistics
import time
from array import array
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from caducee.domain.model import MessageSummary
from caducee.protocols.imap import search
from caducee.protocols.imap.parser import parse_command
from caducee.protocols.imap.protocol import SearchArgs
from caducee.services import mailstore


def folder(size: int) -> tuple[list[MessageSummary], mailstore.HeadsCache]:
    """``size`` rows and their heads, cached (a Subject, an author among 97, one recipient)."""
    rows = [
        MessageSummary(
            1000 + n,
            n + 1,
            0,
            "",
            n + 1,
            datetime(2026, 1, 1, tzinfo=UTC),
            20_000,
            f"blob-{n:012d}-{n * 7919 % 1000003:07d}",
            7,
        )
        for n in range(size)
    ]
    cache = mailstore.HeadsCache(None)  # type: ignore[arg-type]
    cache._max_bytes = 1 << 40
    for row in rows:
        author = row.uid % 97
        headers = {
            "subject": f"Compte rendu de consultation numero {row.uid} du patient",
            "from": f"Docteur Numero{author} <dr{author}@cabinet{author % 13}.example.org>",
            "to": "Secretariat <secretariat@clinique.example.org>",
        }
        cache.put(row.blob_id, mailstore.heads_of(headers))
    return rows, cache


def cpu_ms(work: Callable[[], object], runs: int) -> tuple[float, float]:
    """Least and median CPU time of ``work`` in this thread, in ms."""
    spent = []
    for _ in range(runs):
        gc.collect()
        start = time.thread_time()
        work()
        spent.append((time.thread_time() - start) * 1000)
    return min(spent), statistics.median(spent)


def scan(
    rows: Mapping[int, MessageSummary],
    cache: mailstore.HeadsCache,
    ids: array[int],
    criteria: str,
    column: bool,
) -> int:
    args = parse_command(f"a SEARCH {criteria}\r\n".encode()).args
    assert isinstance(args, SearchArgs) and search._heads_only(args.key)
    view = search._View(rows)
    pred = search._compile(args.key, view, len(ids), len(ids), set())
    heads: list[str | None] = [None] * len(rows)
    if isinstance(rows, mailstore.FolderRows):
        heads = cache.column(rows) if column else [None] * len(rows)
    budget = search._Budget(3600)
    done = search._scan(view, ids, ids, frozenset(), pred, cache.peek(), heads, budget)
    assert done is not None and not done[1]
    return len(done[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--criteria", nargs="+", default=['SUBJECT "xyz"', 'FROM "xavier"'])
    options = parser.parse_args()
    for size in (int(s) for s in options.sizes.split(",")):
        rows, cache = folder(size)
        ids = array("q", [row.id for row in rows])
        shapes: dict[str, Mapping[int, MessageSummary]] = {
            "dict of rows": {row.id: row for row in rows},
            "FolderRows": mailstore.FolderRows(rows),
        }
        for criteria in options.criteria:
            for shape, kept in shapes.items():
                for column in (False, True) if shape == "FolderRows" else (False,):
                    if isinstance(kept, mailstore.FolderRows):
                        kept.heads = None
                    scan(kept, cache, ids, criteria, column)  # fills the column, if any
                    work = functools.partial(scan, kept, cache, ids, criteria, column)
                    least, median = cpu_ms(work, options.runs)
                    label = shape + (", column" if column else "")
                    print(
                        f"{size:>7} {criteria:<16} {label:<20} CPU min {least:7.1f} ms "
                        f"median {median:7.1f} ms  {least / size * 1e6:5.0f} ns a message",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
