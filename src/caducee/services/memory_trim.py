"""Giving memory back to the system after big messages (issue 17: « memory after the hostile
load ≤ idle + 50 MB »).

A 20 MB message passes through several copies (the DATA buffer, the unstuffed message, its
sealed copies, the protected PDF coming back from a worker process). CPython frees them, but
glibc's allocator keeps most of the freed memory in its arenas (one per thread that allocated
it, the worker threads included) for the next allocation: the node's RSS stayed 100+ MB above
idle after ten such messages (``bench/loop_lag.py``). ``malloc_trim(0)`` hands the free pages of
every arena back to the kernel.

:func:`note` is told the size of each big input handled; from :data:`BIG_BYTES` on, a trim is
scheduled :data:`QUIET_SECONDS` later, pushed back by each new big input, so a burst costs one
trim, done in a worker thread (``ctypes`` releases the interpreter lock during the call; it
takes a few ms). Nothing happens where the C library has no ``malloc_trim`` (musl, macOS).
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
import os
from collections.abc import Callable

log = logging.getLogger(__name__)

#: An input this big schedules a trim.
BIG_BYTES = 1024 * 1024
#: Seconds without a big input before the trim.
QUIET_SECONDS = 2.0


def _find_trim() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim: Callable[[int], int] = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    return trim


_malloc_trim = _find_trim()
_scheduled: asyncio.TimerHandle | None = None

#: glibc's ``mallopt`` parameter for the number of arenas (``M_ARENA_MAX`` in malloc.h).
M_ARENA_MAX = -8
#: Arenas of a serving process. glibc gives each thread that allocates its own arena, up to
#: eight per core: a node's threads (the SQLite connections', the worker threads that parse,
#: seal and index messages) each keep their freed blocks in their own arena: a few MB more RSS
#: under the ingest load (peaks of 133–138 MB with 16 arenas, 131–134 MB with two; issue 17:
#: < 150 MB per worker), tens of MB where many threads allocate (tests/services/
#: test_memory_trim.py). Two arenas for the loop and its threads cost no measurable throughput
#: (``bench.smtp_ingest``, docs/operations.md).
SERVING_ARENAS = 2


def limit_arenas(count: int = SERVING_ARENAS) -> bool:
    """Cap glibc's malloc arenas at ``count`` for this process (call it before threads start);
    whether it did. An operator's ``MALLOC_ARENA_MAX`` in the environment wins; nothing
    happens where the C library is not glibc."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return False
    return _mallopt(M_ARENA_MAX, count)


def _mallopt(parameter: int, value: int) -> bool:
    """glibc's ``mallopt(parameter, value)``; whether it took it (False without glibc)."""
    if _malloc_trim is None:
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt: Callable[[int, int], int] = libc.mallopt
    except (OSError, AttributeError):
        return False
    return mallopt(parameter, value) == 1


#: glibc's ``mallopt`` parameter for the size from which a block is mapped on its own.
M_MMAP_THRESHOLD = -3
#: Blocks of this size or more are mapped on their own in a worker process
#: (:func:`map_big_blocks`).
MAPPED_BYTES = 1024 * 1024


def map_big_blocks(threshold: int = MAPPED_BYTES) -> bool:
    """Have glibc map every block of ``threshold`` bytes or more on its own, so that freeing it
    gives its memory back at once; whether it did. By default glibc raises this threshold to
    the size of each big block freed (up to 32 MB): a 20 MB message's copies then come from
    the arenas, where they stay once freed until a trim. For a process that handles big
    messages (the worker processes of ``services.cpu_pool``); call it before allocating."""
    return _mallopt(M_MMAP_THRESHOLD, threshold)


class _MallInfo2(ctypes.Structure):
    """glibc's ``struct mallinfo2`` (malloc.h, glibc 2.33 and later): sizes in bytes."""

    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",  # bytes the arenas took from the system (sbrk and mmapped heaps)
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",  # bytes in chunks mapped on their own (the big ones)
            "usmblks",
            "fsmblks",
            "uordblks",  # bytes in use in the arenas
            "fordblks",  # bytes free in the arenas (kept for the next allocation)
            "keepcost",
        )
    ]


def _find_mallinfo2() -> Callable[[], _MallInfo2] | None:
    if _malloc_trim is None:
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        function = libc.mallinfo2
    except (OSError, AttributeError):
        return None
    function.restype = _MallInfo2
    found: Callable[[], _MallInfo2] = function
    return found


_mallinfo2 = _find_mallinfo2()


def allocator_bytes() -> dict[str, int]:
    """What the C allocator holds in this process, in bytes, summed over its arenas: ``in_use``
    (allocated and not freed: Python's objects, SQLite's and OpenSSL's buffers…) and ``free``
    (freed but kept in the arenas for the next allocation; a trim gives their pages back to the
    system, yet they still count here). Empty without glibc."""
    if _mallinfo2 is None:
        return {}
    info = _mallinfo2()
    return {"in_use": int(info.uordblks + info.hblkhd), "free": int(info.fordblks)}


#: A process whose arenas keep more than this free is trimmed by :func:`trim_if_hoarding`.
HOARD_BYTES = 16 * 1024 * 1024


def trim_if_hoarding(threshold: int = HOARD_BYTES) -> bool:
    """Trim (blocking: ~10 ms after 100 MB were freed, ~0.02 ms when nothing new was; call it
    in a worker thread) when the arenas keep more than ``threshold`` bytes free: memory freed
    in the middle of an arena, which glibc gives back only on a trim, so that a process's RSS
    follows what it uses rather than its past peaks (issue 20: memory level over hours).
    Whether it trimmed."""
    held = allocator_bytes()
    if not held or held["free"] <= threshold:
        return False
    return trim()


def trim() -> bool:
    """Give the allocator's free memory back to the kernel now (blocking: a few ms); whether
    it could."""
    if _malloc_trim is None:
        return False
    _malloc_trim(0)
    return True


def _start() -> None:
    global _scheduled
    _scheduled = None
    asyncio.get_running_loop().run_in_executor(None, trim)


def note(size: int) -> None:
    """A ``size``-byte input was handled (call it on the event loop): a big one schedules a
    trim once the burst is over."""
    global _scheduled
    if size < BIG_BYTES or _malloc_trim is None:
        return
    if _scheduled is not None:
        _scheduled.cancel()
    _scheduled = asyncio.get_running_loop().call_later(QUIET_SECONDS, _start)
