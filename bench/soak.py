"""Soak: two real ``caducee serve`` nodes on one PostgreSQL under a steady, moderate mixed load
for an hour (issue 20), proving that they stay level (memory, descriptors, connections,
latency) and lose nothing.

Starts a throwaway PostgreSQL (``tests.pgcluster``), two nodes sharing it (``tests.cluster``:
own data dirs, one database, one master key, ``blob_store = "database"``), a local DNS server
for the senders' SPF/DMARC (``bench.smtp_ingest.sender_dns``) and a local remote MTA for the
outbound queue (``tests.interop.test_outbound.Peers``, aiosmtpd), then keeps for ``--minutes``:

- SMTP in: about ``--rate`` messages per second (2–40 kB, one in fifty 150 kB) over
  ``--smtp-connections`` connections spread over both nodes, 50 messages per session;
- submission: one message every ``--outbound-every`` seconds to the peer, on either node;
- IMAP: on each node a session idling (IDLE, woken by deliveries on both nodes) and a client
  that logs in every few seconds as the next user, fetches what is new and marks it seen;
- POP3: every few seconds a session (STAT, LIST, RETR of the newest, QUIT), either node;
- webmail and API: a logged-in browser session and an API token, each request on a new
  connection through :class:`tests.cluster.Balancer` (round robin over the nodes).

Every ``--interval`` seconds (60) it prints the messages acknowledged / stored / read back,
the errors by kind, p50/p99 latency per door over the interval, the outbound queue's depth,
each node's RSS and open descriptors (supervisor, each worker and its MIME pool), the node
logs' new ERROR lines and PostgreSQL's connections. At the end: every acknowledged message is
read back over IMAP (once, whole), every submitted one reached the peer once, ``caducee audit
verify`` passes, and the growth of RSS (mean of the first ten minutes against the last ten)
and of descriptors per node. The figures decide nothing: they are read.

    python -m bench.soak [--minutes 60] [--rate 20] [--users 10] [--workers 2]
                         [--heap-profile DIR [--heap-minutes 5]]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import imaplib
import os
import poplib
import random
import re
import shutil
import signal
import smtplib
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from pathlib import Path
from typing import Any, TextIO

import httpx
import psycopg
from prometheus_client.parser import text_string_to_metric_families
from tests.cluster import Balancer, Cluster, ClusterNode, prepare_cluster, start
from tests.faults.load import audit_verify
from tests.interop.test_outbound import Peer, Peers
from tests.pgcluster import PgCluster, find_pg_bin
from tests.test_workers import worker_pids

from bench.smtp_ingest import sender_dns
from caducee.app import App, open_app
from caducee.config import Settings, TransportRoute
from caducee.domain.model import Role
from caducee.services import accounts, api_tokens, mfa, practices
from caducee.services.app_passwords import create_app_password

DOMAIN = "cabinet.test"
PASSWORD = "Correct-Horse-42-Battery"
EXTERNAL = "correspondant@ailleurs.test"
PEER_DOMAIN = "partner.test"
TIMEOUT = 60.0
SESSION_MESSAGES = 50
DOORS = ("smtp", "submission", "imap", "pop3", "web", "api")
SUBJECT = re.compile(rb"^Subject: (\S+)\r?$", re.M)


# ----- setup -------------------------------------------------------------------------------------


@dataclass
class User:
    login: str
    app_password: str  # IMAP, POP3, submission


@dataclass
class People:
    users: list[User]
    api_token: str


async def make_people(app: App, count: int) -> People:
    """A practice with ``count`` practitioners (an app password each, the webmail by password
    alone) and an API token of the first, reading its mailbox."""
    practice = await practices.create_practice(
        app, "Cabinet Endurance", [DOMAIN], mailbox_limit=count + 1
    )
    await mfa.set_second_factor_required(app, practice.id, False, actor="soak", source="soak")
    users = []
    for index in range(count):
        login = f"dr{index}@{DOMAIN}"
        await accounts.add_account(
            app,
            accounts.NewAccount(
                login=login,
                first_name="Jeanne",
                last_name=f"Endurance{index}",
                role=Role.PRATICIEN,
                password=PASSWORD,
            ),
        )
        users.append(User(login, await create_app_password(app, login, "soak")))
    token, _ = await api_tokens.create_token(
        app, users[0].login, "soak", [users[0].login], ["lecture"], actor="soak", source="soak"
    )
    return People(users, token)


# ----- what is measured --------------------------------------------------------------------------


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


@dataclass
class Stats:
    """What the load's threads record; read and reset per interval by the reporter."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    #: subject → (length, sha256) of every message whose DATA was sent / that got its 250
    sent: dict[str, tuple[int, str]] = field(default_factory=dict)
    acknowledged: set[str] = field(default_factory=set)
    read: set[str] = field(default_factory=set)  # subjects seen by the IMAP clients
    submitted: set[str] = field(default_factory=set)  # Message-IDs submitted (250)
    errors: Counter[str] = field(default_factory=Counter)
    latencies: dict[str, list[float]] = field(default_factory=dict)  # this interval
    all_latencies: dict[str, list[float]] = field(default_factory=dict)
    idle_wakes: int = 0
    counts: Counter[str] = field(default_factory=Counter)  # operations per door

    def took(self, door: str, seconds: float) -> None:
        with self.lock:
            self.latencies.setdefault(door, []).append(seconds)
            self.all_latencies.setdefault(door, []).append(seconds)
            self.counts[door] += 1

    def error(self, kind: str) -> None:
        with self.lock:
            self.errors[kind] += 1

    def take_latencies(self) -> dict[str, list[float]]:
        with self.lock:
            taken, self.latencies = self.latencies, {}
            return taken


def error_kind(door: str, error: BaseException) -> str:
    if isinstance(error, smtplib.SMTPResponseException):
        return f"{door}:{error.smtp_code}"
    if isinstance(error, httpx.HTTPStatusError):
        return f"{door}:{error.response.status_code}"
    return f"{door}:{type(error).__name__}"


def message(subject: str, number: int, to: str) -> bytes:
    """2–40 kB of text; one in fifty 150 kB (above the inline limit: a separate blob)."""
    rng = random.Random(subject)
    size = 150_000 if number % 50 == 0 else rng.randrange(2_000, 40_000)
    line = (hashlib.sha256(subject.encode()).hexdigest() + "\r\n").encode()
    head = (
        f"From: {EXTERNAL}\r\nTo: {to}\r\nSubject: {subject}\r\n"
        f"Message-ID: <{subject}@ailleurs.test>\r\n\r\n"
    ).encode()
    return head + line * (size // len(line))


def digest(raw: bytes) -> tuple[int, str]:
    return len(raw), hashlib.sha256(raw).hexdigest()


# ----- the load ----------------------------------------------------------------------------------


class IdleClient:
    """An IMAP session that idles (RFC 2177) on its own TLS socket: imaplib's reader cannot
    wait with a timeout (a timed-out read leaves its file unusable), which IDLE needs to stop
    on time when no mail comes."""

    def __init__(self, node: ClusterNode, user: User) -> None:
        raw = socket.create_connection(("127.0.0.1", node.ports["imaps"]), TIMEOUT)
        self.sock = node.context().wrap_socket(raw, server_hostname="localhost")
        self.buffer = b""
        self.tags = 0
        self.line(TIMEOUT)  # greeting
        self.command(f'LOGIN "{user.login}" "{user.app_password}"')  # quoted (RFC 9051 §4.3)
        self.command("SELECT INBOX")

    def __enter__(self) -> IdleClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        with contextlib.suppress(OSError, imaplib.IMAP4.error):
            self.command("LOGOUT")
        self.sock.close()

    def line(self, timeout: float) -> bytes | None:
        """The next line, or None if none came within ``timeout``."""
        deadline = time.monotonic() + timeout
        while b"\r\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(min(left, 1.0))
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                raise OSError("connection closed by the server")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line

    def command(self, text: str, continuation: bool = False) -> list[bytes]:
        self.tags += 1
        tag = f"s{self.tags}".encode()
        self.sock.sendall(tag + b" " + text.encode() + b"\r\n")
        return self.until_tagged(tag, continuation)

    def until_tagged(self, tag: bytes, continuation: bool = False) -> list[bytes]:
        lines: list[bytes] = []
        while True:
            line = self.line(TIMEOUT)
            if line is None:
                raise TimeoutError("no answer from the server")
            if continuation and line.startswith(b"+"):
                return [line]
            if line.startswith(tag + b" "):
                if not line[len(tag) + 1 :].startswith(b"OK"):
                    raise imaplib.IMAP4.error(line.decode("ascii", "replace"))
                return lines
            lines.append(line)

    def idle(self, seconds: float, stop: threading.Event) -> int:
        """IDLE for ``seconds`` (or until ``stop``), then DONE; the EXISTS announced."""
        self.tags += 1
        tag = f"s{self.tags}".encode()
        self.sock.sendall(tag + b" IDLE\r\n")
        self.until_tagged(tag, continuation=True)
        wakes = 0
        until = time.monotonic() + seconds
        while not stop.is_set() and (left := until - time.monotonic()) > 0:
            line = self.line(min(left, 1.0))
            if line is not None and line.endswith(b" EXISTS"):
                wakes += 1
        self.sock.sendall(b"DONE\r\n")
        lines = self.until_tagged(tag)
        return wakes + sum(1 for line in lines if line.endswith(b" EXISTS"))


@dataclass
class Load:
    cluster: Cluster
    people: People
    peer: Peer
    stats: Stats
    rate: float = 20.0
    smtp_connections: int = 4
    outbound_every: float = 2.0
    sync_every: float = 3.0
    pop_every: float = 5.0
    web_every: float = 2.0
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)

    @property
    def nodes(self) -> list[ClusterNode]:
        return self.cluster.nodes

    def start(self, balancer: Balancer) -> None:
        def spawn(name: str, target: Callable[..., None], *args: object) -> None:
            thread = threading.Thread(target=self._guard, args=(name, target, *args), name=name)
            thread.daemon = True
            thread.start()
            self.threads.append(thread)

        for index in range(self.smtp_connections):
            spawn(f"smtp-{index}", self._smtp, index)
        spawn("submission", self._submission)
        for index, node in enumerate(self.nodes):
            spawn(f"idle-{node.name}", self._idle, node, self.people.users[index])
            spawn(f"imap-{node.name}", self._imap_sync, node, index)
        spawn("pop3", self._pop3)
        spawn("web", self._web, balancer)
        spawn("api", self._api, balancer)

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(TIMEOUT + 10)

    def _guard(self, name: str, target: Callable[..., None], *args: object) -> None:
        """A load thread that dies is an error of its own kind, not a silent hole in the load."""
        try:
            target(*args)
        except Exception as error:
            self.stats.error(f"thread {name}:{type(error).__name__}")
            print(f"load thread {name} died: {error!r}", file=sys.stderr, flush=True)

    def _pace(self, due: float, per_second: float) -> float:
        """Wait for the operation due at ``due``; the next one's time. A steady rate: after a
        stall, at most one second's worth is caught up, not a burst."""
        delay = due - time.monotonic()
        if delay > 0:
            self.stop.wait(delay)
        return max(due, time.monotonic() - 1.0) + 1 / per_second

    # SMTP in (RFC 5321 through smtplib, STARTTLS RFC 3207), as a correspondent's MTA sends.
    def _smtp(self, index: int) -> None:
        node = self.nodes[index % len(self.nodes)]
        per_second = self.rate / self.smtp_connections
        users = self.people.users
        number = 0
        due = time.monotonic()
        while not self.stop.is_set():
            try:
                with smtplib.SMTP(
                    "127.0.0.1",
                    node.ports["smtp"],
                    local_hostname="mx.ailleurs.test",
                    timeout=TIMEOUT,
                ) as mx:
                    mx.starttls(context=node.context())
                    for _ in range(SESSION_MESSAGES):
                        if self.stop.is_set():
                            break
                        due = self._pace(due, per_second)
                        number += 1
                        subject = f"soak-{index}-{number}"
                        to = users[(index + number) % len(users)].login
                        raw = message(subject, number, to)
                        with self.stats.lock:
                            self.stats.sent[subject] = digest(raw)
                        t0 = time.perf_counter()
                        try:
                            mx.sendmail(EXTERNAL, [to], raw)
                        except smtplib.SMTPRecipientsRefused as refused:
                            for code, _reply in refused.recipients.values():
                                self.stats.error(f"smtp:{code}")
                            mx.rset()
                            continue
                        except smtplib.SMTPResponseException as refused:
                            self.stats.error(error_kind("smtp", refused))
                            if refused.smtp_code == 421:
                                break
                            mx.rset()
                            continue
                        self.stats.took("smtp", time.perf_counter() - t0)
                        with self.stats.lock:
                            self.stats.acknowledged.add(subject)
            except (OSError, smtplib.SMTPException) as error:
                self.stats.error(error_kind("smtp", error))
                self.stop.wait(1)

    # Submission (RFC 6409) to the outbound queue, delivered to the peer.
    def _submission(self) -> None:
        user = self.people.users[-1]
        number = 0
        due = time.monotonic()
        while not self.stop.is_set():
            node = self.nodes[number // 20 % len(self.nodes)]
            try:
                with smtplib.SMTP("127.0.0.1", node.ports["submission"], timeout=TIMEOUT) as sub:
                    sub.starttls(context=node.context())
                    sub.login(user.login, user.app_password)
                    for _ in range(20):
                        if self.stop.is_set():
                            break
                        due = self._pace(due, 1 / self.outbound_every)
                        number += 1
                        message_id = f"<sortant-{number}@{DOMAIN}>"
                        to = f"confrere{number % 7}@{PEER_DOMAIN}"
                        body = (
                            f"From: {user.login}\r\nTo: {to}\r\nSubject: Envoi {number}\r\n"
                            f"Message-ID: {message_id}\r\n\r\nBonjour, cher confrere.\r\n"
                        )
                        t0 = time.perf_counter()
                        try:
                            sub.sendmail(user.login, [to], body)
                        except smtplib.SMTPResponseException as refused:
                            self.stats.error(error_kind("submission", refused))
                            sub.rset()
                            continue
                        self.stats.took("submission", time.perf_counter() - t0)
                        with self.stats.lock:
                            self.stats.submitted.add(message_id)
            except (OSError, smtplib.SMTPException) as error:
                self.stats.error(error_kind("submission", error))
                self.stop.wait(1)

    def _imap(self, node: ClusterNode, user: User) -> imaplib.IMAP4_SSL:
        client = imaplib.IMAP4_SSL(
            "localhost", node.ports["imaps"], ssl_context=node.context(), timeout=TIMEOUT
        )
        client.login(user.login, user.app_password)
        return client

    # IMAP IDLE (RFC 2177), re-issued every 25 s; woken by deliveries on either node.
    def _idle(self, node: ClusterNode, user: User) -> None:
        while not self.stop.is_set():
            try:
                with IdleClient(node, user) as client:
                    while not self.stop.is_set():
                        wakes = client.idle(25.0, self.stop)
                        with self.stats.lock:
                            self.stats.idle_wakes += wakes
            except (OSError, imaplib.IMAP4.error) as error:
                self.stats.error(error_kind("idle", error))
                self.stop.wait(1)

    # IMAP sync (RFC 9051 §6.3.2 SELECT, §6.4.5 FETCH, §6.4.6 STORE): a client's check for
    # new mail, a new connection each time, the next user each time.
    def _imap_sync(self, node: ClusterNode, offset: int) -> None:
        users = self.people.users
        last_uid: dict[str, int] = {}
        turn = offset
        while not self.stop.wait(self.sync_every):
            user = users[turn % len(users)]
            turn += 1
            t0 = time.perf_counter()
            try:
                client = self._imap(node, user)
                try:
                    client.select("INBOX")
                    since = last_uid.get(user.login, 0) + 1
                    _, data = client.uid("SEARCH", f"UID {since}:*")
                    uids = [int(u) for u in (data[0] or b"").split() if int(u) >= since]
                    for start in range(0, len(uids), 200):
                        batch = ",".join(str(u) for u in uids[start : start + 200])
                        _, fetched = client.uid(
                            "FETCH", batch, "(UID BODY.PEEK[HEADER.FIELDS (SUBJECT)])"
                        )
                        subjects = {
                            found.group(1).decode()
                            for item in fetched
                            if isinstance(item, tuple)
                            and (found := SUBJECT.search(item[1] + b"\r\n"))
                        }
                        with self.stats.lock:
                            self.stats.read |= subjects
                        client.uid("STORE", batch, "+FLAGS.SILENT", "(\\Seen)")
                    if uids:
                        last_uid[user.login] = max(uids)
                finally:
                    client.logout()
            except (OSError, imaplib.IMAP4.error) as error:
                self.stats.error(error_kind("imap", error))
                continue
            self.stats.took("imap", time.perf_counter() - t0)

    # POP3 (RFC 1939): what a practice's old client does, without deleting.
    def _pop3(self) -> None:
        users = self.people.users
        turn = 0
        while not self.stop.wait(self.pop_every):
            node = self.nodes[turn % len(self.nodes)]
            user = users[(turn // 2) % len(users)]
            turn += 1
            t0 = time.perf_counter()
            try:
                client = poplib.POP3_SSL(
                    "localhost", node.ports["pop3s"], context=node.context(), timeout=TIMEOUT
                )
                try:
                    client.user(user.login)
                    client.pass_(user.app_password)
                    count, _ = client.stat()
                    client.list()
                    if count:
                        client.retr(count)
                finally:
                    client.quit()
            except (OSError, poplib.error_proto) as error:
                self.stats.error(error_kind("pop3", error))
                continue
            self.stats.took("pop3", time.perf_counter() - t0)

    def _browser(self, balancer: Balancer) -> httpx.Client:
        return httpx.Client(
            base_url=f"https://localhost:{balancer.port}",
            verify=self.cluster.context(),
            limits=httpx.Limits(max_keepalive_connections=0),  # each request through the balancer
            timeout=TIMEOUT,
        )

    # The webmail, one session through the balancer: the inbox, and a message of it.
    def _web(self, balancer: Balancer) -> None:
        user = self.people.users[1 % len(self.people.users)]
        with self._browser(balancer) as browser:
            logged_in = False
            while not self.stop.wait(self.web_every):
                t0 = time.perf_counter()
                try:
                    if not logged_in:
                        web_login(browser, user)
                        logged_in = True
                        self.stats.took("web", time.perf_counter() - t0)
                        continue
                    inbox = browser.get("/courrier", follow_redirects=True)
                    inbox.raise_for_status()
                    if 'name="mot_de_passe"' in inbox.text:  # the session is gone
                        self.stats.error("web:logged-out")
                        logged_in = False
                        continue
                    self.stats.took("web", time.perf_counter() - t0)
                    link = re.search(r'href="(/courrier/b/\d+/d/\d+/m/\d+)"', inbox.text)
                    if link:
                        t0 = time.perf_counter()
                        browser.get(link.group(1)).raise_for_status()
                        self.stats.took("web", time.perf_counter() - t0)
                except (httpx.HTTPError, IndexError) as error:
                    # A failed request is counted; the session is kept (it is in the database).
                    self.stats.error(error_kind("web", error))

    # The API (bearer token, RFC 6750): mailboxes, folders, the inbox's first page.
    def _api(self, balancer: Balancer) -> None:
        headers = {"Authorization": f"Bearer {self.people.api_token}"}
        with self._browser(balancer) as client:
            while not self.stop.wait(self.web_every):
                try:
                    t0 = time.perf_counter()
                    boxes = client.get("/api/v1/boites", headers=headers)
                    boxes.raise_for_status()
                    self.stats.took("api", time.perf_counter() - t0)
                    box = boxes.json()[0]["id"]
                    t0 = time.perf_counter()
                    folders = client.get(f"/api/v1/boites/{box}/dossiers", headers=headers)
                    folders.raise_for_status()
                    self.stats.took("api", time.perf_counter() - t0)
                    inbox = next(
                        f["id"] for f in folders.json() if str(f.get("nom", "")).upper() == "INBOX"
                    )
                    t0 = time.perf_counter()
                    listed = client.get(
                        f"/api/v1/boites/{box}/dossiers/{inbox}/messages", headers=headers
                    )
                    listed.raise_for_status()
                    self.stats.took("api", time.perf_counter() - t0)
                except (httpx.HTTPError, KeyError, IndexError, StopIteration, ValueError) as error:
                    self.stats.error(error_kind("api", error))


def web_login(browser: httpx.Client, user: User) -> None:
    """The login form (its CSRF token), then the login; a session still valid is redirected
    from the form straight to the mail."""
    page = browser.get("/connexion")
    if page.status_code == 303:
        return
    page.raise_for_status()
    token = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    login = browser.post(
        "/connexion",
        data={"identifiant": user.login, "mot_de_passe": PASSWORD, "csrf": token},
    )
    if login.status_code != 303:
        raise httpx.HTTPStatusError("login refused", request=login.request, response=login)


# ----- the nodes' resources ----------------------------------------------------------------------


def _status(pid: int) -> dict[str, str]:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)


def rss_mb(pid: int) -> float:
    value = _status(pid).get("VmRSS", "0 kB").split()[0]
    return int(value) / 1024


def fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and _status(int(entry)).get("PPid", "").strip() == str(pid):
            found.append(int(entry))
    return found


@dataclass
class ProcessSample:
    role: str  # "main", "w0", "w1"…
    pid: int
    rss: float  # MB
    fds: int
    pool_rss: float  # MB, the MIME pool processes under it
    caches: float = 0.0  # MB held by its bounded caches (caducee_cache_bytes)
    in_use: float = 0.0  # MB its C allocator holds in use (caducee_allocator_bytes)
    free: float = 0.0  # MB freed but kept in the allocator's arenas


@dataclass
class NodeSample:
    node: str
    processes: list[ProcessSample]

    @property
    def rss(self) -> float:
        return sum(p.rss + p.pool_rss for p in self.processes)

    @property
    def fds(self) -> int:
        return sum(p.fds for p in self.processes)

    def line(self) -> str:
        parts = []
        for p in self.processes:
            pool = f" (pool {p.pool_rss:.0f})" if p.pool_rss else ""
            caches = (
                f" [caches {p.caches:.1f} malloc {p.in_use:.0f}+{p.free:.0f}]" if p.in_use else ""
            )
            parts.append(f"{p.role} {p.rss:.0f} MB{caches}{pool} {p.fds} fd")
        return (
            f"node {self.node}: " + " | ".join(parts) + f" | total {self.rss:.0f} MB {self.fds} fd"
        )


def sample_node(node: ClusterNode) -> NodeSample:
    assert node.proc is not None
    main = node.proc.pid
    workers = worker_pids(main)
    processes = [ProcessSample("main", main, rss_mb(main), fds(main), 0.0)]
    if not workers:  # workers = 1: the main process serves, its pool under it
        processes[0].pool_rss = sum(rss_mb(c) for c in children(main))
    for index, pid in enumerate(workers):
        pool = sum(rss_mb(c) for c in children(pid))
        processes.append(ProcessSample(f"w{index}", pid, rss_mb(pid), fds(pid), pool))
    held = memory_mb(node)
    for process in processes:
        process.caches = held.get((process.pid, "caches"), 0.0)
        process.in_use = held.get((process.pid, "in_use"), 0.0)
        process.free = held.get((process.pid, "free"), 0.0)
    return NodeSample(node.name, processes)


def memory_mb(node: ClusterNode) -> dict[tuple[int, str], float]:
    """Each worker process's memory in MB by (pid, what), from the node's ``/metrics`` (one
    series per process): ``caches``, what its bounded caches hold (``caducee_cache_bytes``), the
    part of its RSS that grows towards known bounds; ``in_use`` and ``free``, what its C
    allocator holds allocated and kept free (``caducee_allocator_bytes``). Empty when the
    scrape fails (the soak goes on)."""
    try:
        response = httpx.get(
            f"https://localhost:{node.ports['https']}/metrics", verify=node.context(), timeout=10
        )
        response.raise_for_status()
    except httpx.HTTPError:
        return {}
    held: dict[tuple[int, str], float] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if "pid" not in sample.labels:
                continue
            if sample.name == "caducee_cache_bytes":
                what = "caches"
            elif sample.name == "caducee_allocator_bytes":
                what = sample.labels["kind"]
            else:
                continue
            key = (int(sample.labels["pid"]), what)
            held[key] = held.get(key, 0.0) + sample.value / 1e6
    return held


def _pg(database_url: str) -> psycopg.Connection[Any]:
    return psycopg.connect(database_url.replace("postgresql+psycopg://", "postgresql://"))


@dataclass
class DatabaseSample:
    stored: int  # rows in messages (Inbox deliveries, and the Sent copies of submissions)
    queue: int  # outbound recipients still waiting (queued or deferred)
    connections: dict[str, int]  # by state


def sample_database(database_url: str) -> DatabaseSample:
    with _pg(database_url) as db:
        stored = db.execute("SELECT count(*) FROM messages").fetchone()
        queue = db.execute(
            "SELECT count(*) FROM outbound_recipients WHERE state IN ('queued', 'deferred')"
        ).fetchone()
        rows = db.execute(
            "SELECT coalesce(state, '?'), count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() GROUP BY 1"
        ).fetchall()
    return DatabaseSample(
        int(stored[0]) if stored else 0,
        int(queue[0]) if queue else 0,
        {str(state): int(count) for state, count in rows},
    )


def log_errors(node: ClusterNode, offset: int) -> tuple[list[str], int]:
    """The node log's ERROR lines written since ``offset`` (their tracebacks stay in the log),
    and the new end."""
    if not node.err_path.exists():
        return [], offset
    with node.err_path.open("rb") as log:
        log.seek(offset)
        text = log.read()
        end = log.tell()
    lines = text.decode("utf-8", "replace").splitlines()
    return [line for line in lines if " ERROR " in line], end


# ----- the run -----------------------------------------------------------------------------------


@dataclass
class Report:
    minutes: float
    acknowledged: int
    read_back: int
    lost: list[str]  # acknowledged, not found over IMAP
    twice: list[str]  # stored more than once
    damaged: list[str]  # found, but not the bytes sent
    unknown: list[str]  # found, never sent
    submitted: int
    delivered_out: int
    out_missing: list[str]
    out_twice: list[str]
    audit_ok: bool
    audit_output: str
    errors: Counter[str]
    log_errors: list[str]
    served: Counter[str]  # operations answered, per door
    idle_wakes: int
    rss_growth: dict[str, tuple[float, float]]  # node → (first window MB, last window MB)
    fd_growth: dict[str, tuple[int, int]]  # node → (first sample, last sample)
    samples: dict[str, list[NodeSample]]

    @property
    def nothing_lost(self) -> bool:
        return not (
            self.lost
            or self.twice
            or self.damaged
            or self.unknown
            or self.out_missing
            or self.out_twice
        )


def read_back_all(
    cluster: Cluster, people: People, stats: Stats
) -> tuple[dict[str, int], list[str], list[str]]:
    """Every user's Inbox over IMAP (users alternating between the nodes): how many times each
    subject is there, the damaged ones (not the bytes sent, after the MX's trace headers) and
    the ones nobody sent."""
    found: Counter[str] = Counter()
    damaged: list[str] = []
    unknown: list[str] = []
    for index, user in enumerate(people.users):
        node = cluster.nodes[index % len(cluster.nodes)]
        client = imaplib.IMAP4_SSL(
            "localhost", node.ports["imaps"], ssl_context=node.context(), timeout=TIMEOUT
        )
        client.login(user.login, user.app_password)
        try:
            client.select("INBOX", readonly=True)
            _, data = client.uid("SEARCH", "ALL")
            uids = (data[0] or b"").split()
            for start in range(0, len(uids), 100):
                batch = b",".join(uids[start : start + 100]).decode()
                _, fetched = client.uid("FETCH", batch, "(BODY.PEEK[])")
                for item in fetched:
                    if not isinstance(item, tuple):
                        continue
                    raw = item[1]
                    subject_match = SUBJECT.search(raw)
                    if subject_match is None:
                        unknown.append(f"{user.login}: no subject")
                        continue
                    subject = subject_match.group(1).decode()
                    found[subject] += 1
                    sent = stats.sent.get(subject)
                    if sent is None:
                        unknown.append(subject)
                    elif len(raw) < sent[0] or digest(raw[-sent[0] :]) != sent:
                        damaged.append(subject)
        finally:
            client.logout()
    return dict(found), damaged, unknown


def window_mean(samples: list[NodeSample], first: bool, size: int) -> float:
    chosen = samples[:size] if first else samples[-size:]
    return statistics.fmean(s.rss for s in chosen) if chosen else 0.0


def _ms(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{statistics.median(values) * 1000:.0f}/{percentile(values, 0.99) * 1000:.0f}"


@contextlib.contextmanager
def soak_cluster(
    base: Path,
    database_url: str,
    *,
    users: int,
    workers: int,
    heap_profile: Path | None = None,
    heap_minutes: float = 5.0,
) -> Iterator[tuple[Cluster, People, Peer]]:
    """Two nodes (each ``workers`` processes) on ``database_url``, the people, the peer and the
    senders' DNS; everything stopped on exit. With ``heap_profile``, every process writes heap
    snapshots there every ``heap_minutes`` (``caducee.heap_profile``)."""
    dns = sender_dns()
    peers = Peers()
    peer = peers.start()

    def configure(settings: Settings) -> None:
        settings.transport = {PEER_DOMAIN: TransportRoute("127.0.0.1", peer.port, "none")}
        if heap_profile is not None:
            settings.heap_profile_dir = str(heap_profile)
            settings.heap_profile_minutes = heap_minutes

    try:
        cluster = prepare_cluster(
            base,
            database_url,
            2,
            workers=workers,
            dns_resolver=dns.resolver_spec,
            configure=configure,
            # the whole load comes from 127.0.0.1: lift the per-address limits
            extra_config="\n[limits]\nconnections_per_address = 1000\n"
            "connections_per_minute = 100000\n",
        )

        async def setup() -> People:
            async with open_app(cluster.nodes[0].settings) as app:
                return await make_people(app, users)

        people = asyncio.run(setup())
        start(cluster)
        try:
            yield cluster, people, peer
        finally:
            cluster.stop()
    finally:
        for controller in peers.controllers:
            controller.stop()
        dns.stop()


def soak(
    cluster: Cluster,
    people: People,
    peer: Peer,
    *,
    minutes: float,
    rate: float = 20.0,
    interval: float = 60.0,
    out: TextIO = sys.stdout,
) -> Report:
    """The load for ``minutes`` with a report every ``interval`` seconds, then the end checks."""

    def say(text: str) -> None:
        print(text, file=out, flush=True)

    stats = Stats()
    load = Load(cluster, people, peer, stats, rate=rate)
    samples: dict[str, list[NodeSample]] = {node.name: [] for node in cluster.nodes}
    offsets = {node.name: 0 for node in cluster.nodes}
    logged: list[str] = []
    say(
        f"soak: {len(cluster.nodes)} nodes, PostgreSQL, blob_store = database, "
        f"{len(people.users)} users, {rate:g} msg/s SMTP for {minutes:g} min"
    )
    for node in cluster.nodes:  # what the start logged is not the load's
        offsets[node.name] = log_errors(node, 0)[1]
    with Balancer([node.ports["https"] for node in cluster.nodes]) as balancer:
        began = time.monotonic()
        load.start(balancer)
        last_ack = 0
        try:
            tick = 0
            while True:
                tick += 1
                remaining = began + minutes * 60 - time.monotonic()
                step = min(interval, remaining)
                if step > 0:
                    time.sleep(step)
                elapsed = time.monotonic() - began
                taken = stats.take_latencies()
                db = sample_database(cluster.database_url)
                with stats.lock:
                    ack, read = len(stats.acknowledged), len(stats.read)
                    errors = dict(stats.errors)
                    wakes = stats.idle_wakes
                    submitted = len(stats.submitted)
                delivered = len(peer.received)
                load_avg = os.getloadavg()
                say(
                    f"[{time.strftime('%H:%M:%S')} +{elapsed / 60:5.1f} min] "
                    f"acknowledged {ack} (+{ack - last_ack}) stored {db.stored} read back {read}"
                    f" | outbound submitted {submitted} delivered {delivered} queue {db.queue}"
                    f" | IDLE wakes {wakes} | load {load_avg[0]:.1f}"
                )
                last_ack = ack
                say(
                    "  errors: "
                    + (", ".join(f"{k} {v}" for k, v in sorted(errors.items())) or "none")
                )
                say(
                    "  p50/p99 ms: "
                    + "  ".join(f"{door} {_ms(taken.get(door, []))}" for door in DOORS)
                )
                for node in cluster.nodes:
                    sample = sample_node(node)
                    samples[node.name].append(sample)
                    say("  " + sample.line())
                    new, offsets[node.name] = log_errors(node, offsets[node.name])
                    for line in new:
                        logged.append(f"{node.name}: {line}")
                        say(f"  log {node.name}: {line[:300]}")
                say(
                    f"  postgres: {sum(db.connections.values())} connections ("
                    + ", ".join(f"{k} {v}" for k, v in sorted(db.connections.items()))
                    + ")"
                )
                if remaining <= interval:
                    break
        finally:
            load.finish()
    say("load stopped; waiting for the outbound queue, then reading every Inbox back")
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if sample_database(cluster.database_url).queue == 0 and set(stats.submitted) <= {
            str(message_from_bytes(r.content)["Message-ID"]) for r in list(peer.received)
        }:
            break
        time.sleep(1)
    found, damaged, unknown = read_back_all(cluster, people, stats)
    out_counts = Counter(
        str(message_from_bytes(r.content)["Message-ID"]) for r in list(peer.received)
    )
    verified = audit_verify(cluster.nodes[0].settings, timeout=600)  # an hour's records
    for node in cluster.nodes:
        new, offsets[node.name] = log_errors(node, offsets[node.name])
        logged += [f"{node.name}: {line}" for line in new]
    window = max(1, min(10, len(next(iter(samples.values()))) // 3))
    report = Report(
        minutes=minutes,
        acknowledged=len(stats.acknowledged),
        read_back=sum(1 for subject in stats.acknowledged if subject in found),
        lost=sorted(stats.acknowledged - set(found)),
        twice=sorted(subject for subject, count in found.items() if count > 1),
        damaged=sorted(damaged),
        unknown=sorted(unknown),
        submitted=len(stats.submitted),
        delivered_out=sum(1 for message_id in stats.submitted if out_counts[message_id]),
        out_missing=sorted(m for m in stats.submitted if not out_counts[m]),
        out_twice=sorted(m for m, count in out_counts.items() if count > 1),
        audit_ok=verified.returncode == 0,
        audit_output=(verified.stdout + verified.stderr).strip(),
        errors=stats.errors,
        log_errors=logged,
        served=stats.counts,
        idle_wakes=stats.idle_wakes,
        rss_growth={
            name: (window_mean(node, True, window), window_mean(node, False, window))
            for name, node in samples.items()
        },
        fd_growth={name: (node[0].fds, node[-1].fds) for name, node in samples.items() if node},
        samples=samples,
    )
    say_summary(report, stats, window, len(found), say)
    return report


def say_summary(
    report: Report, stats: Stats, window: int, stored: int, say: Callable[[str], None]
) -> None:
    say(
        f"end: {report.acknowledged} acknowledged, {report.read_back} read back over IMAP "
        f"({stored} subjects in the Inboxes: {stored - report.read_back} sent whose 250 was "
        f"lost with the connection), lost {len(report.lost)}, stored twice {len(report.twice)},"
        f" damaged {len(report.damaged)}, unknown {len(report.unknown)}"
    )
    say(
        f"outbound: {report.submitted} submitted, {report.delivered_out} delivered to the peer, "
        f"missing {len(report.out_missing)}, twice {len(report.out_twice)}"
    )
    say(f"audit verify: {'ok' if report.audit_ok else 'FAILED'}: {report.audit_output[:500]}")
    say(
        "errors: "
        + (", ".join(f"{k} {v}" for k, v in sorted(report.errors.items())) or "none")
        + f"; node log ERROR lines: {len(report.log_errors)}"
    )
    say(
        "p50/p99 ms over the run: "
        + "  ".join(f"{door} {_ms(stats.all_latencies.get(door, []))}" for door in DOORS)
        + "  (operations: "
        + ", ".join(f"{door} {stats.counts[door]}" for door in DOORS)
        + ")"
    )
    for name, (first, last) in report.rss_growth.items():
        fd_first, fd_last = report.fd_growth.get(name, (0, 0))
        share = (last - first) / first * 100 if first else 0.0
        say(
            f"node {name}: RSS {first:.0f} MB (first {window} samples) -> {last:.0f} MB "
            f"(last {window}), {last - first:+.0f} MB ({share:+.1f} %);"
            f" fds {fd_first} -> {fd_last} ({fd_last - fd_first:+d})"
        )
        samples = report.samples.get(name, [])
        in_use = [sum(p.in_use for p in s.processes) for s in samples]
        if any(in_use):
            begin = statistics.fmean(in_use[:window])
            end = statistics.fmean(in_use[-window:])
            say(
                f"node {name}: allocated by the workers (malloc in use) {begin:.0f} MB -> "
                f"{end:.0f} MB ({end - begin:+.0f} MB)"
            )
    for line in report.log_errors[:10]:
        say(f"log: {line[:300]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--rate", type=float, default=20.0, help="SMTP messages per second")
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2, help="worker processes per node")
    parser.add_argument("--interval", type=float, default=60.0, help="seconds between reports")
    parser.add_argument(
        "--heap-profile",
        type=Path,
        help="every process writes heap snapshots here (then: python -m bench.heap_diff DIR)",
    )
    parser.add_argument(
        "--heap-minutes", type=float, default=5.0, help="minutes between two heap snapshots"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the nodes' data dirs and logs (else removed)"
    )
    args = parser.parse_args()
    # SIGTERM as Ctrl+C: the load stops and everything started is torn down (no end checks).
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # ignored when started with &
    bin_dir = find_pg_bin()
    if bin_dir is None:
        raise SystemExit("PostgreSQL binaries not found (Debian package postgresql, or PG_BIN)")
    pg = PgCluster(bin_dir)
    pg.start()
    base = Path(tempfile.mkdtemp(prefix="caducee-soak-"))
    try:
        with soak_cluster(
            base,
            pg.url(pg.create_database()),
            users=args.users,
            workers=args.workers,
            heap_profile=args.heap_profile,
            heap_minutes=args.heap_minutes,
        ) as (cluster, people, peer):
            report = soak(
                cluster, people, peer, minutes=args.minutes, rate=args.rate, interval=args.interval
            )
        for node in cluster.nodes:
            if node.proc is not None and node.proc.returncode not in (0, None):
                print(f"node {node.name} stopped with {node.proc.returncode}")
        print("nothing lost" if report.nothing_lost else "SOMETHING LOST (see above)")
    except KeyboardInterrupt:
        print("stopped before the end: no end checks", flush=True)
    finally:
        if args.keep:
            shutil.copy2(pg.root / "server.log", base / "postgresql.log")
        pg.stop()
        if args.keep:
            print(f"nodes' data dirs and logs (a.err, b.err, postgresql.log) kept in {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
