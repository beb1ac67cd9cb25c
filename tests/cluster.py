"""Several real ``caducee serve`` nodes on one PostgreSQL database (issue 20), for the cluster
tests (N = 2) and the cluster benchmark (``bench/cluster.py``, N = 3).

Each node has its own data directory (its own dev TLS certificate, ``listeners.json``, node id)
and the same database, master key and ``blob_store = "database"``: what an operator deploys on
several machines. :class:`Balancer` stands in for a TCP load balancer in front of them: one
address, each new connection sent to the next node in turn.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from caducee.app import open_app
from caducee.config import Settings
from caducee.server import listeners_file
from caducee.store.keyring import create_master_key_file
from tests.serving import clean_env, prepare

START_TIMEOUT = 180.0  # several interpreters start at once on a machine shared with other tests
STOP_TIMEOUT = 30.0
CLIENT_TIMEOUT = 30.0
LISTENERS = {
    "smtp": "127.0.0.1:0",
    "submission": "127.0.0.1:0",
    "imaps": "127.0.0.1:0",
    "pop3s": "127.0.0.1:0",
    "https": "127.0.0.1:0",
}


@dataclass
class ClusterNode:
    """One running node: its settings, its process, the ports it listens on."""

    name: str
    settings: Settings
    proc: subprocess.Popen[bytes] | None = None
    ports: dict[str, int] = field(default_factory=dict)
    terminated: bool = False  # SIGTERM sent to this process

    @property
    def err_path(self) -> Path:
        return self.settings.data_dir.parent / f"{self.name}.err"

    def log(self) -> str:
        return self.err_path.read_text("utf-8", errors="replace") if self.err_path.exists() else ""

    def context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.settings.tls_dir / "ca.crt"))

    def start(self) -> None:
        self.terminated = False
        with open(self.err_path, "ab") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "caducee", "serve", "--data", str(self.settings.data_dir)],
                stdout=subprocess.DEVNULL,
                stderr=err,
                env=clean_env(),
            )

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        assert self.proc is not None
        path = listeners_file(self.settings)
        deadline = time.monotonic() + timeout
        while not path.exists():
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"node {self.name} exited with {self.proc.returncode}:\n{self.log()}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"node {self.name} not listening in {timeout}s:\n{self.log()}")
            time.sleep(0.05)
        bound = json.loads(path.read_text("utf-8"))
        self.ports = {name: int(address.rsplit(":", 1)[1]) for name, address in bound.items()}

    def terminate(self) -> None:
        """SIGTERM, once: a second one, while the supervisor stops its workers, ends it by
        the signal instead of its clean exit."""
        if self.proc is not None and self.proc.poll() is None and not self.terminated:
            self.proc.send_signal(signal.SIGTERM)
            self.terminated = True

    def stop(self) -> None:
        """SIGTERM (graceful), then SIGKILL if it lingers."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.terminate()
        try:
            self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(STOP_TIMEOUT)


@dataclass
class Cluster:
    nodes: list[ClusterNode]
    database_url: str

    def context(self) -> ssl.SSLContext:
        """A client context trusting every node's certificate (behind one balancer address)."""
        context = ssl.create_default_context()
        for node in self.nodes:
            context.load_verify_locations(cafile=str(node.settings.tls_dir / "ca.crt"))
        return context

    def stop(self) -> None:
        for node in self.nodes:
            node.terminate()
        for node in self.nodes:
            node.stop()


def node_settings(
    base: Path, name: str, database_url: str, *, dns_resolver: str = "", first: Settings | None
) -> Settings:
    """The settings of node ``name``: its own data dir under ``base``, the shared database and
    blob store, and the first node's master key (every node must hold the same one)."""
    data_dir = base / name
    data_dir.mkdir(parents=True, exist_ok=True)
    settings = Settings(data_dir=data_dir, hostname="mail.test.example", dns_resolver=dns_resolver)
    settings.database_url = database_url
    settings.blob_store = "database"
    if first is None:
        create_master_key_file(settings)
    else:
        settings.keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        shutil.copy2(first.master_key_path, settings.master_key_path)
        settings.master_key_path.chmod(0o600)
    return settings


def prepare_cluster(
    base: Path,
    database_url: str,
    count: int,
    *,
    listeners: dict[str, str] | None = None,
    workers: int = 1,
    dns_resolver: str = "",
    configure: Callable[[Settings], None] | None = None,
    extra_config: str = "",
) -> Cluster:
    """``count`` data dirs ready to serve one database (migrated once, by the first)."""
    nodes: list[ClusterNode] = []
    first: Settings | None = None
    for index in range(count):
        name = chr(ord("a") + index)
        settings = node_settings(base, name, database_url, dns_resolver=dns_resolver, first=first)
        if configure is not None:
            configure(settings)
        prepare(settings, listeners or LISTENERS, migrate=first is None, workers=workers)
        if extra_config:
            with settings.config_path.open("a", encoding="utf-8") as config:
                config.write(extra_config)
        first = first or settings
        nodes.append(ClusterNode(name, settings))
    return Cluster(nodes, database_url)


def start(cluster: Cluster) -> Cluster:
    """Start every node at once, and wait until each listens."""
    for node in cluster.nodes:
        node.start()
    try:
        for node in cluster.nodes:
            node.wait_ready()
    except BaseException:
        cluster.stop()
        raise
    return cluster


@contextmanager
def running_cluster(
    base: Path, database_url: str, count: int, **options: object
) -> Iterator[Cluster]:
    """:func:`prepare_cluster` then :func:`start`; every node stopped on exit."""
    cluster = prepare_cluster(base, database_url, count, **options)  # type: ignore[arg-type]
    start(cluster)
    try:
        yield cluster
    finally:
        cluster.stop()


def run_async(setup: Callable[[Settings], object], settings: Settings) -> object:
    """Run an ``async def setup(app)`` against ``settings``' store (accounts, practices)."""

    async def go() -> object:
        async with open_app(settings) as app:
            return await setup(app)  # type: ignore[misc]

    return asyncio.run(go())


class Balancer:
    """A TCP load balancer on 127.0.0.1: each new connection goes to the next backend in turn
    (round robin), bytes relayed both ways untouched (TLS passes through, as with HAProxy in
    TCP mode). ``sent`` counts connections per backend port."""

    def __init__(self, backends: list[int]) -> None:
        self.backends = backends
        self.sent: Counter[int] = Counter()
        self._turn = itertools.cycle(backends)
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._server.getsockname()[1])
        self._stopping = False
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> Balancer:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stopping = True
        self._server.close()
        self._thread.join(5)

    def _accept(self) -> None:
        while not self._stopping:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            backend_port = next(self._turn)
            self.sent[backend_port] += 1
            try:
                backend = socket.create_connection(("127.0.0.1", backend_port), CLIENT_TIMEOUT)
            except OSError:
                client.close()
                continue
            threading.Thread(target=_relay, args=(client, backend), daemon=True).start()


def _relay(client: socket.socket, backend: socket.socket) -> None:
    """Both directions until each has ended (a half-close is passed on), then close both."""
    pipes = [
        threading.Thread(target=_pipe, args=(source, target), daemon=True)
        for source, target in ((client, backend), (backend, client))
    ]
    for pipe in pipes:
        pipe.start()
    for pipe in pipes:
        pipe.join()
    client.close()
    backend.close()


def _pipe(source: socket.socket, target: socket.socket) -> None:
    try:
        while chunk := source.recv(65536):
            target.sendall(chunk)
    except OSError:
        pass
    with suppress(OSError):
        target.shutdown(socket.SHUT_WR)
