"""Heap snapshots of a serving process (``[server] heap_profile_dir``, empty: off): a diagnostic
for « a worker's memory grows » (issue 20).

When a directory is set, every process of the node starts :mod:`tracemalloc` and writes a
snapshot there every ``heap_profile_minutes`` (``heap-<pid>-<n>.tracemalloc``), then a last
one when it stops. ``python -m bench.heap_diff DIR`` compares each process's first and last
snapshots and prints where the growth was allocated. A snapshot records code locations and
sizes only, never the values allocated, so no message content reaches the files.

Tracing costs memory (about one and a half times the traced heap) and speed, and a snapshot
pauses its process for a moment (taken in a thread, but holding the interpreter lock): the
profile is for diagnosing a node, not for running it always.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tracemalloc
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from caducee.app import App

log = logging.getLogger(__name__)

#: Frames kept per allocation: enough to tell which caller of a shared helper holds memory.
FRAMES = 12


def snapshot_path(directory: Path, pid: int, number: int) -> Path:
    return directory / f"heap-{pid}-{number:04d}.tracemalloc"


def write_snapshot(directory: Path, number: int) -> Path:
    """This process's traced heap now, written under ``directory`` (tracemalloc's own
    allocations left out)."""
    snapshot = tracemalloc.take_snapshot().filter_traces(
        (tracemalloc.Filter(False, tracemalloc.__file__),)
    )
    path = snapshot_path(directory, os.getpid(), number)
    partial = path.with_suffix(".partial")
    snapshot.dump(str(partial))
    partial.replace(path)  # a reader never sees half a snapshot
    return path


class HeapProfiler:
    """A background task of every worker process: idle unless ``heap_profile_dir`` is set."""

    name = "heap-profile"

    def __init__(self, app: App) -> None:
        setting = app.settings.heap_profile_dir
        self.directory = Path(setting) if setting else None
        self.interval = app.settings.heap_profile_minutes * 60

    async def run(self, stop: asyncio.Event) -> None:
        if self.directory is None:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        started_here = not tracemalloc.is_tracing()
        if started_here:
            tracemalloc.start(FRAMES)
        number = 0
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=self.interval if number else 1.0)
                path = await asyncio.to_thread(write_snapshot, self.directory, number)
                log.info("heap snapshot written: %s", path.name)
                number += 1
                if stop.is_set():
                    return
        finally:
            if started_here:
                tracemalloc.stop()
