"""``caducee serve`` with several worker processes (``[server] workers = 2``, issue 17): a real
supervisor and its workers, real clients, on both backends.

Which worker accepts a connection is the kernel's choice: a test that needs sessions on both
workers opens connections until the process tree shows each worker holding one (the worker's
file descriptors name the connection's socket), never relying on how the kernel spreads them.
"""

from __future__ import annotations

import asyncio
import imaplib
import os
import poplib
import signal
import smtplib
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from bench import heap_diff

from caducee.app import open_app
from caducee.config import Settings
from caducee.server import listeners_file
from caducee.services.app_passwords import create_app_password
from tests.services.helpers import person, practice
from tests.serving import prepare, serve_process, stderr_of, wait_listeners

LOGIN = "dr@cabinet.test"
EXTERNAL = "a@ailleurs.test"
TIMEOUT = 30.0
STARTUP_TIMEOUT = 180.0
LISTENERS = {"smtp": "127.0.0.1:0", "imaps": "127.0.0.1:0", "pop3s": "127.0.0.1:0"}


@dataclass
class Node:
    settings: Settings
    proc: subprocess.Popen[bytes]
    ports: dict[str, int]
    password: str
    tmp: Path

    def context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.settings.tls_dir / "ca.crt"))

    def imap(self) -> imaplib.IMAP4_SSL:
        client = imaplib.IMAP4_SSL(
            "localhost", self.ports["imaps"], ssl_context=self.context(), timeout=TIMEOUT
        )
        client.login(LOGIN, self.password)
        return client

    def pop3(self) -> poplib.POP3_SSL:
        return poplib.POP3_SSL(
            "localhost", self.ports["pop3s"], context=self.context(), timeout=TIMEOUT
        )

    def deliver(self, subject: str) -> None:
        body = (
            f"From: {EXTERNAL}\r\nTo: {LOGIN}\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject}@ailleurs.test>\r\n\r\nBonjour.\r\n"
        )
        with smtplib.SMTP(
            "127.0.0.1", self.ports["smtp"], local_hostname="mx.ailleurs.test", timeout=TIMEOUT
        ) as mx:
            mx.starttls(context=self.context())
            assert mx.sendmail(EXTERNAL, [LOGIN], body) == {}

    def workers(self) -> list[int]:
        return worker_pids(self.proc.pid)

    def log(self) -> str:
        return stderr_of(self.tmp)


def worker_pids(parent: int) -> list[int]:
    """The ``caducee serve`` worker processes whose parent is ``parent`` (the process tree)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent and b"--worker-index" in cmdline:
            found.append(int(entry))
    return sorted(found)


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with_target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if with_target.startswith("socket:["):
                inodes.add(with_target[8:-1])
    except OSError:
        pass
    return inodes


def _server_inode(client: socket.socket) -> str:
    """The inode of the server's end of ``client``'s TCP connection (``/proc/net/tcp``)."""
    local = client.getsockname()[1]
    server = client.getpeername()[1]
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        own_port = int(fields[1].rsplit(":", 1)[1], 16)
        peer_port = int(fields[2].rsplit(":", 1)[1], 16)
        if own_port == server and peer_port == local:
            return fields[9]
    raise AssertionError("connection not found in /proc/net/tcp")


def worker_of(node: Node, client: socket.socket) -> int:
    """Which worker holds the server's end of ``client``'s connection."""
    inode = _server_inode(client)
    for pid in node.workers():
        if inode in _socket_inodes(pid):
            return pid
    raise AssertionError("no worker holds this connection")


def until(condition: Callable[[], bool], what: str, timeout: float = STARTUP_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.05)


def setup_account(settings: Settings) -> str:
    async def go() -> str:
        async with open_app(settings) as app:
            await practice(app)
            await person(app, LOGIN)
            return await create_app_password(app, LOGIN, "workers")

    return asyncio.run(go())


@contextmanager
def running_node(settings: Settings, tmp_path: Path, extra_config: str = "") -> Iterator[Node]:
    prepare(settings, LISTENERS, workers=2)
    with settings.config_path.open("a", encoding="utf-8") as config:
        config.write(extra_config)
    password = setup_account(settings)
    with serve_process(settings, tmp_path) as proc:
        # Three interpreters open the node on a machine shared with other tests: give them time.
        bound = wait_listeners(settings, proc, tmp_path, timeout=STARTUP_TIMEOUT)
        ports = {name: int(address.rsplit(":", 1)[1]) for name, address in bound.items()}
        yield Node(settings, proc, ports, password, tmp_path)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(TIMEOUT)


@pytest.fixture
def node(settings: Settings, tmp_path: Path) -> Iterator[Node]:
    with running_node(settings, tmp_path) as started:
        yield started


def sessions_on_every_worker(node: Node, at_least: int) -> list[imaplib.IMAP4_SSL]:
    """IMAP sessions (``at_least`` of them, more if needed) until each worker holds one."""
    sessions: list[imaplib.IMAP4_SSL] = []
    holders: set[int] = set()
    while len(sessions) < at_least or holders != set(node.workers()):
        assert len(sessions) < 200, "the kernel gave every connection to one worker"
        client = node.imap()
        sessions.append(client)
        holders.add(worker_of(node, client.sock))
    return sessions


def test_two_workers_share_the_listeners(node: Node) -> None:
    # listeners.json, written once by the supervisor, names the real ports.
    assert set(node.ports) == set(LISTENERS) and all(node.ports.values())
    workers = node.workers()
    assert len(workers) == 2 and node.proc.pid not in workers
    # Both workers accept connections on the one shared socket.
    sessions = sessions_on_every_worker(node, 2)
    for client in sessions:
        client.logout()
    # A message delivered through SMTP is read over IMAP and over POP3.
    node.deliver("partage")
    imap = node.imap()
    imap.select("INBOX")
    _, data = imap.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert b"Subject: partage" in data[0][1]  # type: ignore[index]
    imap.logout()
    pop = node.pop3()
    pop.user(LOGIN)
    pop.pass_(node.password)
    _, lines, _ = pop.retr(1)
    assert b"Subject: partage" in lines
    pop.quit()


def test_idle_is_woken_on_every_worker(node: Node) -> None:
    sessions = sessions_on_every_worker(node, 6)
    for client in sessions:
        client.select("INBOX")
        tag = client._new_tag()  # type: ignore[attr-defined]
        client.send(tag + b" IDLE\r\n")
        assert client.readline().startswith(b"+")
    # Whichever worker accepts the SMTP connection, sessions on the other one must wake too.
    node.deliver("reveil")
    for client in sessions:
        line = client.readline()
        while b"EXISTS" not in line:
            assert line, "connection closed while idling"
            line = client.readline()
        assert line.strip() == b"* 1 EXISTS"
        client.send(b"DONE\r\n")
    for client in sessions:
        client.logout()


def test_sighup_restarts_workers_one_by_one_without_refusing(node: Node) -> None:
    before = node.workers()
    # A session opened before the restart is answered while its worker stops gracefully.
    held = node.imap()
    held.select("INBOX")
    holder = worker_of(node, held.sock)
    refused: list[BaseException] = []
    attempts = 0
    done = threading.Event()

    def connect_all_along() -> None:
        nonlocal attempts
        while not done.is_set():
            try:
                with socket.create_connection(("127.0.0.1", node.ports["imaps"]), TIMEOUT):
                    attempts += 1
            except OSError as exc:
                refused.append(exc)

    knocking = threading.Thread(target=connect_all_along)
    knocking.start()
    try:
        node.proc.send_signal(signal.SIGHUP)
        until(lambda: f"arrêt du processus pid={holder}" in node.log(), "the holder asked to stop")
        assert held.noop()[0] == "OK"
        assert held.select("INBOX")[0] == "OK"
        held.logout()
        until(lambda: "redémarrage terminé" in node.log(), "rolling restart done")
    finally:
        done.set()
        knocking.join()
    assert not refused and attempts > 0
    after = node.workers()
    assert len(after) == 2 and not set(after) & set(before)
    # The new workers serve.
    client = node.imap()
    assert client.noop()[0] == "OK"
    client.logout()


def test_a_killed_worker_is_replaced(node: Node) -> None:
    victim, survivor = node.workers()
    os.kill(victim, signal.SIGKILL)
    until(lambda: len(set(node.workers()) - {victim, survivor}) == 1, "a replacement worker")
    assert "processus arrêté de façon inattendue" in node.log()
    assert survivor in node.workers()
    client = node.imap()
    assert client.noop()[0] == "OK"
    client.logout()


def test_sigterm_stops_every_worker(node: Node) -> None:
    workers = node.workers()
    node.proc.send_signal(signal.SIGTERM)
    assert node.proc.wait(TIMEOUT) == 0
    assert not listeners_file(node.settings).exists()
    for pid in workers:
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text()


def test_pop3_in_use_holds_across_workers(node: Node) -> None:
    node.deliver("pop")
    # Connections on both workers first, then every one of them tries to log in at once.
    clients: list[poplib.POP3_SSL] = []
    holders: set[int] = set()
    while len(clients) < 6 or holders != set(node.workers()):
        assert len(clients) < 200, "the kernel gave every connection to one worker"
        client = node.pop3()
        clients.append(client)
        holders.add(worker_of(node, client.sock))
    for client in clients:
        client.user(LOGIN)
    answers: list[str] = [""] * len(clients)

    def log_in(n: int) -> None:
        try:
            answers[n] = clients[n].pass_(node.password).decode()
        except poplib.error_proto as refused:
            answers[n] = str(refused)

    threads = [threading.Thread(target=log_in, args=(n,)) for n in range(len(clients))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [n for n, answer in enumerate(answers) if answer.startswith("+OK")]
    assert len(winners) == 1, answers
    assert all("[IN-USE]" in a for n, a in enumerate(answers) if n not in winners), answers
    for n, client in enumerate(clients):
        if n not in winners:
            client.close()
    # After QUIT, the next session gets in, whichever worker serves it.
    clients[winners[0]].quit()
    for _ in range(4):
        again = node.pop3()
        again.user(LOGIN)
        assert again.pass_(node.password).startswith(b"+OK")
        again.quit()


def test_the_connection_rate_is_counted_across_workers(settings: Settings, tmp_path: Path) -> None:
    per_minute = 3
    limits = f"\n[limits]\nconnections_per_minute = {per_minute}\n"
    with running_node(settings, tmp_path, limits) as node:
        # Each client address (127.0.0.x are all this machine) gets exactly ``per_minute``
        # connections, whichever workers accept them; until one address's were spread over
        # both workers, try another.
        spread = False
        for host in range(2, 60):
            source = (f"127.0.0.{host}", 0)
            held: list[socket.socket] = []
            workers: set[int] = set()
            for _ in range(per_minute):
                client = socket.create_connection(
                    ("127.0.0.1", node.ports["smtp"]), TIMEOUT, source_address=source
                )
                held.append(client)
                assert client.makefile("rb").readline().startswith(b"220 ")
                workers.add(worker_of(node, client))
            with socket.create_connection(
                ("127.0.0.1", node.ports["smtp"]), TIMEOUT, source_address=source
            ) as refused:
                assert refused.makefile("rb").readline().startswith(b"421 ")
            for client in held:
                client.close()
            if len(workers) == 2:
                spread = True
                break
        assert spread, "the kernel gave every connection to one worker"


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # the profiler reads no database
def test_every_worker_writes_heap_snapshots_without_content(
    settings: Settings, tmp_path: Path
) -> None:
    """``[server] heap_profile_dir``: each worker process traces its heap and writes snapshots
    (one a second after start, then every ``heap_profile_minutes``, a last one when it stops);
    ``bench.heap_diff`` compares them; a snapshot holds code locations, never mail content."""
    heap = tmp_path / "heap"
    settings.heap_profile_dir = str(heap)
    settings.heap_profile_minutes = 0.05  # 3 s
    secret = "Sujet-confidentiel-4242"
    with running_node(settings, tmp_path) as node:
        workers = node.workers()
        node.deliver(secret)
        imap = node.imap()
        imap.select("INBOX")
        _, data = imap.fetch("1", "(BODY.PEEK[])")
        assert secret.encode() in data[0][1]  # type: ignore[index]
        imap.logout()

        def periodic_snapshots() -> bool:
            found = heap_diff.snapshots(heap) if heap.exists() else {}
            return all(len(found.get(pid, [])) >= 2 for pid in workers)

        until(periodic_snapshots, "two snapshots from each worker")
    found = heap_diff.snapshots(heap)
    assert set(workers) <= set(found)
    assert not list(heap.glob("*.partial"))
    for pid in workers:
        lines = heap_diff.report(found[pid], first=0, top=10, frames=3)
        assert lines[0].startswith("traced ") and " MB → " in lines[0]
    for path in heap.iterdir():
        assert secret.encode() not in path.read_bytes()
    assert "Traceback" not in node.log()
