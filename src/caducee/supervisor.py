"""Several worker processes per node sharing the listeners (``[server] workers``, issue 17).

The supervisor is the ``caducee serve`` process when ``workers`` is above one. It holds
``run/serve.lock``, binds every listening socket itself (so port 0 works and the ports are
known once), then starts each worker as a new interpreter — ``python -m caducee serve
--worker-index i --listen-fds name=fd,… --ready-fd fd`` with the sockets passed down
(``pass_fds``): a process that runs an event loop or threads is never forked. Each worker opens
the node and serves the inherited sockets (:func:`caducee.listeners.adopt_inherited`); the
kernel hands each connection to one of the workers accepting on a socket. A worker writes one
line on its ready pipe once its doors accept; the supervisor writes ``run/listeners.json``
when every worker is ready.

Signals to the supervisor:

- SIGTERM / SIGINT: SIGTERM to every worker, which stops gracefully
  (:data:`caducee.server.GRACE_SECONDS`); the supervisor exits once all have, removing
  ``listeners.json``.
- SIGHUP: rolling restart. For each worker in turn, its replacement is started and, once it
  is ready, the old one gets SIGTERM (its sessions finish within the grace). The sockets stay
  open in the supervisor throughout, so a connection is never refused: it waits in the
  kernel's queue for whichever worker accepts next.

A worker that dies unexpectedly is started again, after a back-off that doubles with each
quick failure (1 s to 30 s) and is logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass

from caducee.app import open_app
from caducee.config import Settings
from caducee.errors import CaduceeError
from caducee.i18n import tr
from caducee.listeners import bind_tcp, bound_address, format_fds, parse_address
from caducee.server import (
    GRACE_SECONDS,
    LISTENER_FACTORIES,
    _remove,
    _write_atomically,
    listeners_file,
    metrics_dir,
    single_instance,
)
from caducee.services import cluster, metrics

log = logging.getLogger(__name__)

#: How long a worker may take to open the node and start its doors.
START_TIMEOUT = 60.0
#: After SIGTERM, a worker gets the grace plus this to exit before SIGKILL.
STOP_MARGIN = 10.0
BACKOFF_FIRST = 1.0
BACKOFF_MAX = 30.0
#: A worker that ran this long before dying is restarted without waiting.
STABLE_SECONDS = 60.0


class WorkerFailed(CaduceeError):
    """A worker process could not start."""


@dataclass
class Slot:
    """Worker ``index``: its current process, and what the supervisor knows of it."""

    index: int
    process: asyncio.subprocess.Process | None = None
    started_at: float = 0.0
    backoff: float = BACKOFF_FIRST


def bind_all(settings: Settings) -> dict[str, socket.socket]:
    """Every configured listener that has a door, bound (ConfigurationError if one cannot)."""
    sockets: dict[str, socket.socket] = {}
    try:
        for name, text in settings.listeners.items():
            if name in LISTENER_FACTORIES:
                sockets[name] = bind_tcp(name, parse_address(name, text))
    except BaseException:
        for sock in sockets.values():
            sock.close()
        raise
    return sockets


class Supervisor:
    def __init__(self, settings: Settings, sockets: dict[str, socket.socket], count: int) -> None:
        self.settings = settings
        self.sockets = sockets
        self.count = count
        self.slots = [Slot(i) for i in range(count)]
        self.stopping = asyncio.Event()
        self.reload = asyncio.Event()
        self._watchers: set[asyncio.Task[None]] = set()

    def _command(self, index: int, ready_fd: int) -> list[str]:
        fds = {name: sock.fileno() for name, sock in self.sockets.items()}
        return [
            sys.executable,
            "-m",
            "caducee",
            "serve",
            "--data",
            str(self.settings.data_dir),
            "--worker-index",
            str(index),
            "--workers",
            str(self.count),
            "--listen-fds",
            format_fds(fds),
            "--ready-fd",
            str(ready_fd),
        ]

    async def start(self, slot: Slot) -> asyncio.subprocess.Process:
        """Start worker ``slot.index`` and wait until its doors accept; WorkerFailed if it
        exits (or takes too long) first."""
        read_fd, write_fd = os.pipe()
        try:
            process = await asyncio.create_subprocess_exec(
                *self._command(slot.index, write_fd),
                stdin=asyncio.subprocess.DEVNULL,
                pass_fds=[write_fd, *(s.fileno() for s in self.sockets.values())],
                # Ctrl+C in a terminal reaches the supervisor only, which stops the workers
                # in order (a worker whose supervisor is gone stops on its own).
                start_new_session=True,
            )
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        try:
            ready = await asyncio.wait_for(_read_line(read_fd), START_TIMEOUT)
        except TimeoutError:
            ready = b""
        finally:
            os.close(read_fd)
        if ready != b"ready\n":
            if process.returncode is None:
                process.kill()
            code = await process.wait()
            raise WorkerFailed(
                f"Le processus de service {slot.index} n'a pas démarré (code {code}).",
                f"Worker {slot.index} did not start (exit status {code}).",
            )
        log.info(
            "%s worker=%d pid=%d", tr("processus prêt", "worker ready"), slot.index, process.pid
        )
        slot.process, slot.started_at = process, time.monotonic()
        self._watch(slot, process)
        return process

    def _watch(self, slot: Slot, process: asyncio.subprocess.Process) -> None:
        task = asyncio.create_task(self._supervise(slot, process), name=f"watch-{slot.index}")
        self._watchers.add(task)
        task.add_done_callback(self._watchers.discard)

    async def _supervise(self, slot: Slot, process: asyncio.subprocess.Process) -> None:
        """Restart the worker if ``process`` ends while it is still the slot's own."""
        code = await process.wait()
        metrics.process_gone(process.pid)  # its open sessions are closed (its counts remain)
        if self.stopping.is_set() or slot.process is not process:
            return
        slot.process = None
        ran = time.monotonic() - slot.started_at
        if ran >= STABLE_SECONDS:
            slot.backoff = BACKOFF_FIRST
        delay = 0.0 if ran >= STABLE_SECONDS else slot.backoff
        log.error(
            "%s worker=%d pid=%d code=%s restart_in=%.0fs",
            tr("processus arrêté de façon inattendue", "worker died unexpectedly"),
            slot.index,
            process.pid,
            code,
            delay,
        )
        slot.backoff = min(BACKOFF_MAX, slot.backoff * 2)
        while not self.stopping.is_set() and slot.process is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), delay)
            if self.stopping.is_set():
                return
            try:
                await self.start(slot)
            except WorkerFailed as exc:
                log.error("%s", exc)
                delay = slot.backoff
                slot.backoff = min(BACKOFF_MAX, slot.backoff * 2)

    async def retire(self, process: asyncio.subprocess.Process) -> None:
        """SIGTERM, then wait for the graceful stop (SIGKILL past the grace and a margin)."""
        if process.returncode is None:
            log.info("%s pid=%d", tr("arrêt du processus", "stopping worker"), process.pid)
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), GRACE_SECONDS + STOP_MARGIN)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()

    async def rolling_restart(self) -> None:
        """Replace each worker in turn: the new one ready before the old one is stopped."""
        log.info(tr("redémarrage des processus un par un", "rolling restart of the workers"))
        for slot in self.slots:
            if self.stopping.is_set():
                return
            old = slot.process
            try:
                await self.start(slot)
            except WorkerFailed as exc:
                log.error("%s", exc)  # the old worker keeps serving
                continue
            if old is not None:
                await self.retire(old)
        log.info(tr("redémarrage terminé", "rolling restart done"))

    async def run(self) -> None:
        results = await asyncio.gather(
            *(self.start(slot) for slot in self.slots), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                await self.stop()
                raise result
        bound = {name: str(bound_address(sock)) for name, sock in self.sockets.items()}
        _write_atomically(
            listeners_file(self.settings), json.dumps(bound, indent=2, sort_keys=True) + "\n"
        )
        log.info("%s workers=%d listeners=%d", tr("prêt", "ready"), self.count, len(bound))
        while not self.stopping.is_set():
            stop_wait = asyncio.create_task(self.stopping.wait())
            reload_wait = asyncio.create_task(self.reload.wait())
            await asyncio.wait([stop_wait, reload_wait], return_when=asyncio.FIRST_COMPLETED)
            stop_wait.cancel()
            reload_wait.cancel()
            if self.reload.is_set() and not self.stopping.is_set():
                self.reload.clear()
                await self.rolling_restart()
        await self.stop()

    async def stop(self) -> None:
        self.stopping.set()
        _remove(listeners_file(self.settings))
        processes = [s.process for s in self.slots if s.process is not None]
        await asyncio.gather(*(self.retire(p) for p in processes))
        for task in list(self._watchers):
            task.cancel()


async def _read_line(fd: int) -> bytes:
    """What a worker writes on its ready pipe, up to its end (EOF when it exits)."""
    loop = asyncio.get_running_loop()
    os.set_blocking(fd, False)
    done: asyncio.Future[bytes] = loop.create_future()
    data = bytearray()

    def readable() -> None:
        try:
            chunk = os.read(fd, 64)
        except BlockingIOError:
            return
        data.extend(chunk)
        if not chunk or data.endswith(b"\n"):
            loop.remove_reader(fd)
            if not done.done():
                done.set_result(bytes(data))

    loop.add_reader(fd, readable)
    try:
        return await done
    finally:
        loop.remove_reader(fd)


async def supervise(settings: Settings, count: int) -> None:
    """Run ``count`` worker processes until SIGTERM or SIGINT; SIGHUP restarts them one by one."""
    loop = asyncio.get_running_loop()
    # The master key and the schema are checked once, with one clear message, before any
    # worker starts (each worker opens the node again).
    async with open_app(settings):
        pass
    with single_instance(settings):
        # This node joins the cluster (or is refused) once, before any worker starts; worker 0
        # then keeps its heartbeat (server.WORKER_FACTORIES).
        async with open_app(settings) as app:
            await cluster.join(app)
        try:
            await _supervise_joined(settings, count, loop)
        finally:
            async with open_app(settings) as app:
                await cluster.leave(app)
    log.info(tr("serveur arrêté", "server stopped"))


async def _supervise_joined(
    settings: Settings, count: int, loop: asyncio.AbstractEventLoop
) -> None:
    """Bind the listeners, run the workers until SIGTERM or SIGINT, restart them on SIGHUP."""
    _remove(listeners_file(settings))  # left over by a crashed run
    metrics.prepare_directory(metrics_dir(settings))  # the workers inherit its name
    sockets = bind_all(settings)
    supervisor = Supervisor(settings, sockets, count)

    def on_stop(sig: signal.Signals) -> None:
        log.info("%s signal=%s", tr("arrêt demandé", "shutdown requested"), sig.name)
        supervisor.stopping.set()

    def on_reload() -> None:
        log.info("%s signal=SIGHUP", tr("redémarrage demandé", "restart requested"))
        supervisor.reload.set()

    installed = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_stop, sig)
        installed.append(sig)
    loop.add_signal_handler(signal.SIGHUP, on_reload)
    installed.append(signal.SIGHUP)
    try:
        await supervisor.run()
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
        for sock in sockets.values():
            sock.close()
        _remove(listeners_file(settings))
