"""``caducee serve``: open the node, start every door, stop them gracefully on SIGTERM/SIGINT.

Doors are built from ``settings.listeners`` (name → ``host:port``) through
:data:`LISTENER_FACTORIES`; a later issue plugs SMTP, IMAP or POP3 in by adding its factory
there. Once every door listens, ``<data dir>/run/listeners.json`` maps each name to the address
actually bound (so port 0 works); it is removed when the server stops.

With ``[server] workers`` above one, :mod:`caducee.supervisor` binds the sockets and runs
:func:`serve` once per worker process, with a :class:`WorkerRole`.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import signal
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from caducee.app import App, open_app
from caducee.config import PRODUCTION_LISTENERS, Settings
from caducee.errors import CaduceeError, ConfigurationError
from caducee.flows.maintenance import MaintenanceWorker
from caducee.flows.outbound import OutboundWorker
from caducee.health import patient_triage
from caducee.health.annuaire import DirectoryRefresher
from caducee.health.trust_list import TrustListRefresher
from caducee.heap_profile import HeapProfiler
from caducee.i18n import tr
from caducee.listeners import ListenAddress, Listener, parse_address
from caducee.loop_probe import LoopLagProbe
from caducee.protocols.imap.listener import imap_listener
from caducee.protocols.pop3.listener import pop3_listener
from caducee.protocols.smtp.listener import smtp_listener
from caducee.services import cluster, cpu_pool, metrics
from caducee.services.events import mailbox_events
from caducee.web import HttpsListener

log = logging.getLogger(__name__)

LOCK_FILE = "serve.lock"
METRICS_DIR = "metrics"
#: How long in-flight requests may take to finish once a stop is requested.
GRACE_SECONDS = 10.0

ListenerFactory = Callable[[App, ListenAddress], Listener]

#: The doors that exist so far, by the name used in ``[listeners]``.
LISTENER_FACTORIES: dict[str, ListenerFactory] = {
    "https": lambda app, address: HttpsListener(app, address),
    "pop3": lambda app, address: pop3_listener(app, address, implicit_tls=False),
    "pop3s": lambda app, address: pop3_listener(app, address, implicit_tls=True),
    "imap": lambda app, address: imap_listener(app, address, implicit_tls=False),
    "imaps": lambda app, address: imap_listener(app, address, implicit_tls=True),
    "smtp": lambda app, address: smtp_listener(app, "smtp", address),
    "submission": lambda app, address: smtp_listener(app, "submission", address),
    "submissions": lambda app, address: smtp_listener(app, "submissions", address),
}


class Worker(Protocol):
    """A background task of the node (no socket): runs until ``stop`` is set."""

    name: str

    async def run(self, stop: asyncio.Event) -> None: ...


#: Background workers every serving node runs (outbound delivery queue, housekeeping).
WORKER_FACTORIES: list[Callable[[App], Worker]] = [
    OutboundWorker,
    MaintenanceWorker,
    TrustListRefresher,
    DirectoryRefresher,
    cluster.Heartbeat,
    metrics.MemoryGauges,
    HeapProfiler,
]
#: Those every worker process of a node runs: the outbound queue's claims are transactional
#: on both backends (``FOR UPDATE SKIP LOCKED``; SQLite's ``BEGIN IMMEDIATE``), and the worker
#: that queued a message wakes its own delivery worker. The periodic ones (housekeeping, the
#: trust list's download) run in worker 0 only: they are idempotent, but N copies would only
#: repeat the same work. Each process publishes its own memory (``metrics.MemoryGauges``).
EVERY_PROCESS: tuple[Callable[[App], Worker], ...] = (
    OutboundWorker,
    metrics.MemoryGauges,
    HeapProfiler,
)


@dataclass(frozen=True)
class WorkerRole:
    """This process is worker ``index`` of ``count`` under :mod:`caducee.supervisor`: its
    listeners are inherited, and it says it is ready by writing to ``ready_fd``."""

    index: int
    count: int
    ready_fd: int | None = None

    def factories(self) -> list[Callable[[App], Worker]]:
        if self.index == 0:
            return list(WORKER_FACTORIES)
        return [f for f in WORKER_FACTORIES if f in EVERY_PROCESS]


@asynccontextmanager
async def running_workers(
    app: App,
    grace: float = GRACE_SECONDS,
    factories: list[Callable[[App], Worker]] | None = None,
) -> AsyncIterator[None]:
    """Run :data:`WORKER_FACTORIES` (or ``factories``) in the background; on exit, stop them,
    giving work in progress ``grace`` seconds to finish."""
    stop = asyncio.Event()
    workers = [factory(app) for factory in (WORKER_FACTORIES if factories is None else factories)]
    tasks = [asyncio.create_task(w.run(stop), name=f"worker-{w.name}") for w in workers]
    try:
        yield
    finally:
        stop.set()
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                task.cancel()
            results = await asyncio.gather(*tasks, return_exceptions=True)
            for worker, result in zip(workers, results, strict=True):
                if isinstance(result, Exception):
                    log.error("worker=%s failed", worker.name, exc_info=result)


def metrics_dir(settings: Settings) -> Path:
    """Where the node's worker processes write their metrics (services.metrics)."""
    return settings.run_dir / METRICS_DIR


def listeners_file(settings: Settings) -> Path:
    return settings.listeners_path


def build_listeners(app: App) -> list[Listener]:
    """The listeners configured in ``app.settings.listeners`` that are implemented."""
    listeners: list[Listener] = []
    for name, text in app.settings.listeners.items():
        address = parse_address(name, text)
        factory = LISTENER_FACTORIES.get(name)
        if factory is not None:
            listeners.append(factory(app, address))
        elif name in PRODUCTION_LISTENERS:
            log.info(
                "%s listener=%s address=%s",
                tr("pas encore disponible, ignoré", "not available yet, skipped"),
                name,
                address,
            )
        else:
            log.warning(
                "%s listener=%s address=%s",
                tr("service inconnu, ignoré", "unknown listener, skipped"),
                name,
                address,
            )
    return listeners


@contextmanager
def single_instance(settings: Settings) -> Iterator[None]:
    """Hold ``run/serve.lock`` so that a second ``serve`` on the same data dir is refused."""
    path = settings.run_dir / LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
            raise ConfigurationError(
                f"Un autre « caducee serve » (pid {holder}) utilise déjà le répertoire de "
                f"données {settings.data_dir}. Arrêtez-le d'abord.",
                f"Another 'caducee serve' (pid {holder}) already uses the data directory "
                f"{settings.data_dir}. Stop it first.",
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        yield
    finally:
        os.close(fd)  # releases the lock; the file stays (removing it would race)


def _write_atomically(path: Path, content: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(content)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)


async def _stop_all(listeners: list[Listener], grace: float) -> None:
    if not listeners:
        return
    log.info("%s grace=%ss", tr("arrêt des services", "stopping listeners"), grace)
    results = await asyncio.gather(
        *(listener.stop(grace) for listener in reversed(listeners)), return_exceptions=True
    )
    for listener, result in zip(reversed(listeners), results, strict=True):
        if isinstance(result, BaseException):
            log.error(
                "%s listener=%s",
                tr("arrêt en erreur", "failed to stop cleanly"),
                listener.name,
                exc_info=result,
            )


async def run_listeners(
    settings: Settings,
    listeners: list[Listener],
    stop: asyncio.Event,
    *,
    ready_file: bool = True,
    grace: float = GRACE_SECONDS,
    on_ready: Callable[[dict[str, str]], None] | None = None,
) -> None:
    """Start ``listeners``, publish where they listen (``listeners.json``, ``on_ready``), wait
    for ``stop`` (or a failure), stop."""
    ready_path = listeners_file(settings)
    if ready_file:
        _remove(ready_path)  # left over by a crashed run: it would lie about this one
    started: list[Listener] = []
    try:
        bound: dict[str, str] = {}
        for listener in listeners:
            if stop.is_set():
                return
            address = await listener.start()
            started.append(listener)
            bound[listener.name] = str(address)
            log.info(
                "%s listener=%s address=%s", tr("en écoute", "listening"), listener.name, address
            )
        if not listeners:
            log.warning(
                tr(
                    "aucun service à démarrer : ajoutez-en dans la section [listeners] "
                    "de caducee.toml",
                    "no listener to start: add some to [listeners] in caducee.toml",
                )
            )
        if ready_file:
            _write_atomically(ready_path, json.dumps(bound, indent=2, sort_keys=True) + "\n")
        if on_ready is not None:
            on_ready(bound)
        log.info("%s listeners=%d", tr("prêt", "ready"), len(bound))

        stop_task: asyncio.Task[object] = asyncio.create_task(stop.wait())
        closed: dict[asyncio.Task[object], Listener] = {
            asyncio.create_task(lst.wait_closed()): lst for lst in started
        }
        try:
            done, _ = await asyncio.wait([stop_task, *closed], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in [stop_task, *closed]:
                task.cancel()
        if stop_task not in done:
            failed = ", ".join(closed[task].name for task in done)
            raise CaduceeError(
                f"Le service {failed} s'est arrêté de façon inattendue ; arrêt du serveur.",
                f"Listener {failed} stopped unexpectedly; shutting the server down.",
            )
    finally:
        if ready_file:
            _remove(ready_path)
        await _stop_all(started, grace)


async def _finished(task: asyncio.Task[None]) -> None:
    try:
        await task
    except Exception:  # a failed warm-up only makes the first use slower
        log.exception("warm-up failed")


async def _orphaned(stop: asyncio.Event) -> None:
    """Stop this worker if its supervisor has gone (the worker is then re-parented)."""
    parent = os.getppid()
    while not stop.is_set():
        if os.getppid() != parent:
            log.warning(tr("superviseur disparu : arrêt", "supervisor gone: stopping"))
            stop.set()
            return
        await asyncio.sleep(1.0)


def _tell_ready(role: WorkerRole) -> Callable[[dict[str, str]], None]:
    def ready(_bound: dict[str, str]) -> None:
        if role.ready_fd is not None:
            try:
                os.write(role.ready_fd, b"ready\n")
            finally:
                os.close(role.ready_fd)

    return ready


async def serve(
    settings: Settings, *, ready_file: bool = True, role: WorkerRole | None = None
) -> None:
    """Run the node until SIGTERM or SIGINT, then stop gracefully.

    Refuses to start (:class:`~caducee.errors.ConfigurationError`) on a bad master key, an
    out-of-date schema, a malformed listen address, a port in use, missing TLS files, or
    another ``serve`` already running on the same data directory.

    With a ``role``, this process is one worker of :mod:`caducee.supervisor`: the supervisor
    holds the data directory's lock and ``listeners.json``, the listening sockets are
    inherited, and SIGHUP (the supervisor's) is not for this process.
    """
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def on_signal(sig: signal.Signals) -> None:
        log.info("%s signal=%s", tr("arrêt demandé", "shutdown requested"), sig.name)
        stop.set()

    installed: list[signal.Signals] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, on_signal, sig)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread
            continue
        installed.append(sig)
    if role is not None:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGHUP, lambda: None)
            installed.append(signal.SIGHUP)
        cpu_pool.share_cores(role.count)
    probe = LoopLagProbe(settings.loop_lag_warn_ms) if settings.loop_lag_warn_ms > 0 else None
    if probe is not None:
        probe.start()
    watchdog = asyncio.create_task(_orphaned(stop)) if role is not None else None
    try:
        async with open_app(settings) as app:
            with single_instance(settings) if role is None else contextlib.nullcontext():
                # Metrics: every process of the node writes its values in run/metrics, emptied
                # at start by the one process that holds the lock (services.metrics).
                if role is None:
                    metrics.prepare_directory(metrics_dir(settings))
                metrics.use_directory(metrics_dir(settings))
                # The triage's lemmatizer loads its dictionary (a second or so) in a thread,
                # before the first patient message rather than during it.
                warming = asyncio.create_task(asyncio.to_thread(patient_triage.warm_up))
                # The MIME parsing processes (services.cpu_pool) start now, not on the loop
                # during the first search or indexing.
                pool_warming = asyncio.create_task(asyncio.to_thread(cpu_pool.warm_up))
                async with contextlib.AsyncExitStack() as stack:
                    if role is None:  # under a supervisor, the supervisor joins for its workers
                        await cluster.join(app)
                        stack.push_async_callback(cluster.leave, app)
                    if role is not None and app.db.is_sqlite:
                        # One SQLite file, several writing processes: they queue on a lock
                        # handed over at once rather than on SQLite's polling busy handler.
                        app.db.share_writes(settings.run_dir / "sqlite-writer.lock")
                    if app.db.is_sqlite:
                        # SQLite has no NOTIFY: the node's workers wake each other's IDLE
                        # sessions through datagrams (services.events), and the command
                        # line reaches them there (a cut: an account disabled).
                        await stack.enter_async_context(
                            mailbox_events(app).local_fanout(settings.run_dir / "events")
                        )
                    else:
                        # PostgreSQL: LISTEN before the node says it is ready.
                        await mailbox_events(app).start()
                    await stack.enter_async_context(
                        running_workers(app, factories=role.factories() if role else None)
                    )
                    await run_listeners(
                        settings,
                        build_listeners(app),
                        stop,
                        ready_file=ready_file and role is None,
                        on_ready=_tell_ready(role) if role is not None else None,
                    )
                await _finished(warming)
                await _finished(pool_warming)
        log.info(tr("serveur arrêté", "server stopped"))
    finally:
        if watchdog is not None:
            watchdog.cancel()
        await asyncio.to_thread(cpu_pool.shutdown)
        if probe is not None:
            await probe.stop()
        for sig in installed:
            loop.remove_signal_handler(sig)
