"""Worker processes for CPU-heavy pure functions: the standard library's MIME parser on big or
hostile messages (issue 17, « a node never stalls »).

A worker thread keeps such work off the event loop, but not out of its way: pure-Python
parsing holds the interpreter lock most of the time, and its garbage collections stop every
thread, so a thread parsing a deeply nested message still made the loop that serves every door
wait 200–300 ms at a time (``bench/loop_lag.py``). A process has its own lock and heap.

One pool per OS process — its functions are pure and it holds no data of any node —, started
with ``forkserver`` (a process running an event loop and threads is never forked), one per
core but the loop's (at least one, at most :data:`MAX_PROCESSES`), at a lower priority
(:data:`NICENESS`), created on first use (or :func:`warm_up`), shut down by :func:`shutdown`
when the node stops. Each worker is replaced after :data:`TASKS_PER_PROCESS` calls, which gives
back the memory a hostile message made it take; between, a worker gives the C allocator's freed
memory back to the system after each call that left more than :data:`WORKER_HOARD_BYTES` of it
(:func:`_in_worker`): glibc keeps what a 20 MB message's parsing and protection freed for the
next allocation, and a worker stayed ~60 MB above idle after four such messages.
Where processes cannot be started or a worker dies, the call runs in a thread instead (still
off the loop).

Only functions of ``caducee.domain`` are sent there: a worker imports nothing else but this
module and :mod:`~caducee.services.memory_trim` (DLP scanning and the protected PDF/ZIP moved
there for this, issue 17).

:func:`run_sized` chooses by the input's size: a process hand-off costs ~0.4 ms plus ~1.5 ms
per MB copied (measured on the development machine), and a node has few workers (one on two
cores), so a small input — the common case: a few kB — stays in a thread, where a scan takes a
few ms, and only inputs of :data:`PROCESS_THRESHOLD` bytes or more, whose pure-Python work
takes tens of ms to seconds (a 110 kB hostile message: 0.7 s of DLP; a 15 MB attachment put in
a protected PDF: 1.5 s), go to the processes.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import multiprocessing
import os
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

from caducee.services import memory_trim

log = logging.getLogger(__name__)

R = TypeVar("R")

MAX_PROCESSES = 8
#: Workers run at a lower priority than the node: on a busy machine the kernel gives the
#: event loop (every door's sessions) the CPU first, and the parsing what is left.
NICENESS = 10
TASKS_PER_PROCESS = 500
#: Imported once by the fork server, so that each worker starts ready.
PRELOAD = ["caducee.domain.message_text", "caducee.domain.dlp_scan", "caducee.services.cpu_pool"]
#: A worker whose allocator keeps more than this freed after a call gives it back (a trim: a
#: few ms after a big message, ~0.02 ms to find out that nothing is to be done).
WORKER_HOARD_BYTES = 4 * 1024 * 1024
#: Inputs of this many bytes or more go to the processes (:func:`run_sized`); smaller ones
#: to a thread, where the work costs less than the hand-off and never queues behind a big one.
PROCESS_THRESHOLD = 32 * 1024

_pool: ProcessPoolExecutor | None = None
_workers = 1  # serving processes of the node sharing the cores (share_cores)
_broken = False  # processes could not be started here: threads from now on
_lock = threading.Lock()


def share_cores(workers: int) -> None:
    """This process is one of ``workers`` serving processes of the node (``[server] workers``):
    its pool gets its share of the cores. Called before the pool starts."""
    global _workers
    _workers = max(1, workers)


def size() -> int:
    """Worker processes: this process's share of the cores it may run on (all of them, or
    ``cores // workers`` under :func:`share_cores`) but one (the event loop's), at least one, at
    most :data:`MAX_PROCESSES`. With as many serving processes as cores, each has one niced
    worker: N loops and N parsers, the kernel serving the loops first."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores // _workers - 1, MAX_PROCESSES))


def _executor() -> ProcessPoolExecutor | None:
    global _pool
    with _lock:
        if _pool is None and not _broken:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(PRELOAD)
            _pool = ProcessPoolExecutor(
                max_workers=size(),
                mp_context=context,
                initializer=_start_worker,
                max_tasks_per_child=TASKS_PER_PROCESS,
            )
        return _pool


def _start_worker() -> None:
    """In each new worker: a lower priority, and big blocks mapped on their own (given back
    as soon as freed, :func:`memory_trim.map_big_blocks`)."""
    os.nice(NICENESS)
    memory_trim.map_big_blocks()


def _in_worker(function: Callable[..., R], *args: object) -> R:
    """``function(*args)``, then the memory it freed given back to the system (in a worker
    process: what a big message's parsing freed would otherwise stay in its allocator)."""
    try:
        return function(*args)
    finally:
        memory_trim.trim_if_hoarding(WORKER_HOARD_BYTES)


def _forget(pool: ProcessPoolExecutor, error: BaseException) -> None:
    """A broken or shut down pool is replaced on next use; where processes cannot be started
    at all (``OSError``), they are given up for this process's life."""
    global _pool, _broken
    with _lock:
        if _pool is pool:
            _pool = None
            if isinstance(error, OSError):
                _broken = True
    log.warning("cpu pool unavailable, falling back to a thread error=%s", type(error).__name__)
    pool.shutdown(wait=False, cancel_futures=True)


async def run(function: Callable[..., R], *args: object, **kwargs: object) -> R:
    """``function(*args, **kwargs)`` in a worker process (a thread where processes are
    unavailable). ``function`` (of ``caducee.domain``), its arguments and result must be
    picklable."""
    if kwargs:
        function = functools.partial(function, **kwargs)
    pool = _executor()
    if pool is not None:
        try:  # submitting starts the workers: fails when processes cannot be started
            future = asyncio.get_running_loop().run_in_executor(pool, _in_worker, function, *args)
        except (OSError, RuntimeError) as error:
            _forget(pool, error)
        else:
            try:
                return await future
            except BrokenProcessPool as error:  # a worker died (killed, out of memory)
                _forget(pool, error)
    return await asyncio.to_thread(function, *args)


async def run_sized(size: int, function: Callable[..., R], *args: object, **kwargs: object) -> R:
    """``function(*args, **kwargs)`` off the event loop: in a worker process when its input is
    ``size`` bytes or more (:data:`PROCESS_THRESHOLD`), in a thread otherwise."""
    if size >= PROCESS_THRESHOLD:
        try:
            return await run(function, *args, **kwargs)
        finally:
            memory_trim.note(size)  # its copies, and the result's, given back after the burst
    return await asyncio.to_thread(function, *args, **kwargs)


#: Messages from this size on are copied by :func:`concat` and :func:`copying` in a worker
#: thread.
CONCAT_THRESHOLD = 1024 * 1024


async def concat(*parts: bytes) -> bytes:
    """``parts`` put together (a header line added to a message): from
    :data:`CONCAT_THRESHOLD` bytes on in a worker thread, where ``bytes.join`` copies mostly
    without the interpreter lock; on the event loop the copy of a 20 MB message held every
    door 10-60 ms on a busy machine (the lag probe caught ``+`` in the submission's DLP step)."""
    return await copying(sum(len(part) for part in parts), b"".join, parts)


async def copying(size: int, function: Callable[..., R], *args: object) -> R:
    """``function(*args)``, whose cost is copying ``size`` bytes (adding or removing header
    lines of a message): from :data:`CONCAT_THRESHOLD` on in a worker thread (the copies
    mostly release the interpreter lock), else here, where a thread would cost more."""
    if size >= CONCAT_THRESHOLD:
        return await asyncio.to_thread(function, *args)
    return function(*args)


def warm_up() -> None:
    """Start the fork server and a worker now (blocking: call it in a thread), so that the
    first message parsed does not wait for them on the event loop."""
    pool = _executor()
    if pool is not None:
        try:
            pool.submit(os.getpid).result()
        except (OSError, RuntimeError, BrokenProcessPool) as error:
            _forget(pool, error)


def shutdown() -> None:
    """Stop the workers (the node stops); a later :func:`run` starts new ones."""
    global _pool
    with _lock:
        pool, _pool = _pool, None
    if pool is not None:
        pool.shutdown(wait=True, cancel_futures=True)
