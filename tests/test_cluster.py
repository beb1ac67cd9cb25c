"""Two real ``caducee serve`` nodes on one PostgreSQL database (issue 20), driven by real clients
(imaplib, poplib, smtplib, httpx, the ``caducee`` command): what one node does, the other sees.

The nodes (``tests.cluster``) start once for the module: their own data dirs and certificates,
one database, one master key, ``blob_store = "database"``. A cluster needs a shared database:
these tests run on PostgreSQL alone (SQLite is one file on one machine); the single-node checks
of the schema guard run on both backends in ``tests/test_schema_guard.py``.

Tests that count failures or connections per client address use addresses of their own
(127.0.0.3, 127.0.0.5: the loopback network answers for all of 127/8), so that what they
exhaust never touches the other tests' 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import imaplib
import poplib
import smtplib
import socket
import ssl
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email import message_from_bytes
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import func, select

from caducee.app import App, open_app
from caducee.config import Settings, TransportRoute
from caducee.server import listeners_file
from caducee.services import mfa
from caducee.services.app_passwords import create_app_password
from caducee.services.cluster import version
from caducee.store.migrate import head_revision
from caducee.store.tables import cluster_nodes, outbound_recipients
from tests.cluster import Balancer, Cluster, ClusterNode, node_settings, prepare_cluster, start
from tests.dnsserver import LocalDNS
from tests.health.whitelists import whitelist_xml
from tests.interop.test_outbound import Peer, PeerHandler, Peers
from tests.pgcluster import PgCluster, free_port
from tests.services.helpers import PASSWORD, person, practice
from tests.serving import clean_env, prepare

DOCTOR = "dr@cabinet.test"
LOCKED = "verrou@cabinet.test"
LISTED = "dr@liste.test"
EXTERNAL = "a@ailleurs.test"
TIMEOUT = 30.0
#: How long a node trusts its copy of the whitelist ([trust] snapshot_seconds): short here.
SNAPSHOT_SECONDS = 2.0
#: The connection budget per client address and listener ([limits] connections_per_minute).
CONNECTIONS_PER_MINUTE = 40
LIMITS = f"\n[limits]\nconnections_per_minute = {CONNECTIONS_PER_MINUTE}\n"


@dataclass
class Accounts:
    doctor: str  # app password of DOCTOR
    locked: str  # app password of LOCKED


async def setup(app: App) -> Accounts:
    cabinet = await practice(app)
    # The webmail test logs in with the password alone (the second factor is tested elsewhere).
    await mfa.set_second_factor_required(app, cabinet.id, False, actor="test", source="test")
    await person(app, DOCTOR)
    await person(app, LOCKED)
    await practice(app, "liste.test")
    await person(app, LISTED)
    return Accounts(
        doctor=await create_app_password(app, DOCTOR, "cluster"),
        locked=await create_app_password(app, LOCKED, "cluster"),
    )


@pytest.fixture(scope="module")
def peer() -> Iterator[Peer]:
    """The remote MTA of partner.test (aiosmtpd), counting what each node delivers to it."""
    peers = Peers()
    try:
        yield peers.start()
    finally:
        for controller in peers.controllers:
            controller.stop()


@dataclass
class Running:
    cluster: Cluster
    accounts: Accounts

    @property
    def a(self) -> ClusterNode:
        return self.cluster.nodes[0]

    @property
    def b(self) -> ClusterNode:
        return self.cluster.nodes[1]


@pytest.fixture(scope="module")
def nodes(
    pg_cluster: PgCluster,
    dns_server: LocalDNS,
    peer: Peer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Running]:
    def configure(settings: Settings) -> None:
        settings.trust_snapshot_seconds = SNAPSHOT_SECONDS
        settings.cluster_heartbeat_seconds = 1.0
        settings.transport = {"partner.test": TransportRoute("127.0.0.1", peer.port, "none")}

    cluster = prepare_cluster(
        tmp_path_factory.mktemp("cluster"),
        pg_cluster.url(pg_cluster.create_database()),
        2,
        dns_resolver=dns_server.resolver_spec,
        configure=configure,
        extra_config=LIMITS,
    )

    async def make_accounts() -> Accounts:
        async with open_app(cluster.nodes[0].settings) as app:
            return await setup(app)

    accounts = asyncio.run(make_accounts())
    start(cluster)
    try:
        yield Running(cluster, accounts)
    finally:
        cluster.stop()


# ----- clients -----------------------------------------------------------------------------------


class SourcedIMAP(imaplib.IMAP4_SSL):
    """imaplib over implicit TLS from a chosen local address (``source``)."""

    def __init__(self, port: int, context: ssl.SSLContext, source: str) -> None:
        self.source = source
        super().__init__("localhost", port, ssl_context=context, timeout=TIMEOUT)

    def _create_socket(self, timeout: float | None) -> socket.socket:
        sock = socket.create_connection(
            (self.host, self.port), timeout, source_address=(self.source, 0)
        )
        return self.ssl_context.wrap_socket(sock, server_hostname=self.host)


def imap(node: ClusterNode, login: str, password: str) -> imaplib.IMAP4_SSL:
    client = imaplib.IMAP4_SSL(
        "localhost", node.ports["imaps"], ssl_context=node.context(), timeout=TIMEOUT
    )
    client.login(login, password)
    return client


def pop3(node: ClusterNode) -> poplib.POP3_SSL:
    return poplib.POP3_SSL(
        "localhost", node.ports["pop3s"], context=node.context(), timeout=TIMEOUT
    )


def mx(node: ClusterNode, source: str = "127.0.0.1") -> smtplib.SMTP:
    client = smtplib.SMTP(
        "127.0.0.1",
        node.ports["smtp"],
        local_hostname="mx.ailleurs.test",
        timeout=TIMEOUT,
        source_address=(source, 0),
    )
    client.starttls(context=node.context())
    client.ehlo("mx.ailleurs.test")
    return client


def deliver(node: ClusterNode, subject: str, to: str = DOCTOR) -> None:
    body = (
        f"From: {EXTERNAL}\r\nTo: {to}\r\nSubject: {subject}\r\n"
        f"Message-ID: <{subject}@ailleurs.test>\r\n\r\nBonjour.\r\n"
    )
    with mx(node) as client:
        assert client.sendmail(EXTERNAL, [to], body) == {}


def until(condition: Callable[[], bool], what: str, timeout: float = 120.0) -> None:
    """Wait for ``condition``; the deadline only turns a hang into a clear failure."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.1)


def caducee(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "caducee", *args],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=180,
    )


# ----- the tests ---------------------------------------------------------------------------------


def test_idle_on_a_is_woken_by_a_delivery_on_b(nodes: Running) -> None:
    client = imap(nodes.a, DOCTOR, nodes.accounts.doctor)
    _, data = client.select("INBOX")
    before = int(data[0] or b"0")
    tag = client._new_tag()  # type: ignore[attr-defined]
    client.send(tag + b" IDLE\r\n")
    assert client.readline().startswith(b"+")
    deliver(nodes.b, "reveil-a-distance")
    line = client.readline()
    while b"EXISTS" not in line:
        assert line, "connection closed while idling"
        line = client.readline()
    assert line.strip() == f"* {before + 1} EXISTS".encode()
    client.send(b"DONE\r\n")
    client.logout()


def test_outbound_queue_delivered_exactly_once_by_both_nodes(nodes: Running, peer: Peer) -> None:
    """Messages submitted on both nodes, whose delivery workers both claim from the one queue:
    the peer receives each message once, and nothing is left queued."""
    per_node = 10
    sent: list[str] = []
    for node in (nodes.a, nodes.b):
        with smtplib.SMTP("127.0.0.1", node.ports["submission"], timeout=TIMEOUT) as client:
            client.starttls(context=node.context())
            client.login(DOCTOR, nodes.accounts.doctor)
            for index in range(per_node):
                message_id = f"<sortant-{node.name}-{index}@cabinet.test>"
                body = (
                    f"From: {DOCTOR}\r\nTo: confrere@partner.test\r\n"
                    f"Subject: Envoi {node.name}{index}\r\nMessage-ID: {message_id}\r\n\r\n"
                    "Bonjour, cher confrere.\r\n"
                )
                assert client.sendmail(DOCTOR, ["confrere@partner.test"], body) == {}
                sent.append(message_id)

    def received_ids() -> Counter[str]:
        return Counter(
            str(message_from_bytes(r.content)["Message-ID"]) for r in list(peer.received)
        )

    until(lambda: set(received_ids()) >= set(sent), "every message reached the peer")

    async def waiting() -> int:
        async with open_app(nodes.a.settings) as app, app.db.read() as conn:
            count = await conn.scalar(
                select(func.count())
                .select_from(outbound_recipients)
                .where(outbound_recipients.c.state != "delivered")
            )
            return int(count or 0)

    until(lambda: asyncio.run(waiting()) == 0, "the queue is empty")
    counts = received_ids()
    assert {message_id: counts[message_id] for message_id in sent} == dict.fromkeys(sent, 1)
    assert len(peer.received) == len(sent)


def test_pop3_in_use_across_nodes(nodes: Running) -> None:
    deliver(nodes.a, "pour-pop")
    holder = pop3(nodes.a)
    holder.user(DOCTOR)
    holder.pass_(nodes.accounts.doctor)
    other = pop3(nodes.b)
    other.user(DOCTOR)
    with pytest.raises(poplib.error_proto) as refused:
        other.pass_(nodes.accounts.doctor)
    assert b"[IN-USE]" in refused.value.args[0]
    other.quit()
    holder.quit()  # releases the maildrop (RFC 2449 §8.1.8 IN-USE; RFC 1939 §6 UPDATE)
    after = pop3(nodes.b)
    after.user(DOCTOR)
    assert after.pass_(nodes.accounts.doctor).startswith(b"+OK")
    count, _ = after.stat()
    assert count >= 1
    after.quit()


def test_login_lockout_counted_across_nodes(nodes: Running) -> None:
    """Wrong passwords sent alternately to A and B lock the account on both: the fifth failure
    ([security] lockout_threshold) locks it, and then even the right password is refused."""
    source = "127.0.0.3"
    threshold = nodes.a.settings.lockout_threshold
    for attempt in range(threshold):
        node = (nodes.a, nodes.b)[attempt % 2]
        client = SourcedIMAP(node.ports["imaps"], node.context(), source)
        with pytest.raises(imaplib.IMAP4.error):
            client.login(LOCKED, f"faux-{attempt}")
        client.logout()
    for node in (nodes.a, nodes.b):
        client = SourcedIMAP(node.ports["imaps"], node.context(), source)
        with pytest.raises(imaplib.IMAP4.error) as locked:
            client.login(LOCKED, nodes.accounts.locked)
        client.logout()
        assert "UNAVAILABLE" in str(locked.value) or "verrouill" in str(locked.value).lower()
    # The same account from another address, with the right password: locked too (the
    # account's counter is shared), while another account from 127.0.0.1 logs in.
    imap(nodes.b, DOCTOR, nodes.accounts.doctor).logout()


def test_connection_rate_counted_across_nodes(nodes: Running) -> None:
    """One client address's SMTP connection budget is spent on both nodes together: connecting
    alternately to A and B, no more are admitted than the budget (plus what refilled while the
    test ran), and both nodes refuse once it is spent."""
    source = "127.0.0.5"
    admitted: Counter[str] = Counter()
    refused: Counter[str] = Counter()
    began = time.monotonic()
    for attempt in range(2 * CONNECTIONS_PER_MINUTE):
        node = (nodes.a, nodes.b)[attempt % 2]
        try:
            client = smtplib.SMTP(
                "127.0.0.1", node.ports["smtp"], timeout=TIMEOUT, source_address=(source, 0)
            )
        except smtplib.SMTPConnectError as error:
            assert error.smtp_code == 421
            refused[node.name] += 1
            continue
        admitted[node.name] += 1
        client.quit()
    elapsed = time.monotonic() - began
    refilled = elapsed * CONNECTIONS_PER_MINUTE / 60.0
    # Counted per node, each would have admitted its whole budget (all of them).
    assert sum(admitted.values()) <= CONNECTIONS_PER_MINUTE + refilled + 1
    assert refused["a"] > 0 and refused["b"] > 0


def test_whitelist_import_on_a_in_force_on_b_within_the_snapshot_delay(
    nodes: Running, tmp_path: Path
) -> None:
    """liste.test joins the MSSanté trust space by an import on node A: node B, which had the
    list in memory, refuses mail from outside the trust space to it within [trust]
    snapshot_seconds."""
    with mx(nodes.b) as client:
        client.mail(EXTERNAL)
        code, _ = client.rcpt(LISTED)
        assert code == 250  # not listed yet: an ordinary domain
        client.rset()
        whitelist = tmp_path / "liste-blanche.xml"
        whitelist.write_bytes(
            whitelist_xml([("liste.test", "CN=mx.liste.test, O=Operateur Liste, C=FR")])
        )
        imported = caducee(
            "trust", "import", str(whitelist), "--data", str(nodes.a.settings.data_dir)
        )
        assert imported.returncode == 0, imported.stdout + imported.stderr
        began = time.monotonic()
        while True:
            client.mail(EXTERNAL)
            code, reply = client.rcpt(LISTED)
            client.rset()
            if code != 250:
                break
            assert time.monotonic() - began < SNAPSHOT_SECONDS + 10, "still accepted on B"
            time.sleep(0.2)
    assert code == 550 and b"5.7.1" in reply and b"espace de confiance" in reply


def test_webmail_session_valid_on_either_node_behind_a_balancer(nodes: Running) -> None:
    """Behind one address (a round-robin TCP balancer), every request lands on the next node:
    the login page, the login, and the pages after it are answered as one session."""
    with Balancer([nodes.a.ports["https"], nodes.b.ports["https"]]) as balancer:
        with httpx.Client(
            base_url=f"https://localhost:{balancer.port}",
            verify=nodes.cluster.context(),
            limits=httpx.Limits(max_keepalive_connections=0),  # a connection per request
            timeout=TIMEOUT,
        ) as browser:
            page = browser.get("/connexion")
            assert page.status_code == 200
            token = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
            login = browser.post(
                "/connexion",
                data={"identifiant": DOCTOR, "mot_de_passe": PASSWORD, "csrf": token},
            )
            assert login.status_code == 303, login.text[:500]
            for _ in range(4):
                inbox = browser.get("/courrier", follow_redirects=True)  # to /courrier/b/<id>
                assert inbox.status_code == 200
                assert inbox.url.path.startswith("/courrier/b/"), inbox.url
                assert DOCTOR in inbox.text and 'name="mot_de_passe"' not in inbox.text
        assert balancer.sent[nodes.a.ports["https"]] >= 3
        assert balancer.sent[nodes.b.ports["https"]] >= 3


def test_nodes_registered_and_shown_by_doctor(nodes: Running) -> None:
    async def registered() -> dict[str, tuple[str, str, str]]:
        async with open_app(nodes.a.settings) as app, app.db.read() as conn:
            rows = await conn.execute(select(cluster_nodes))
            return {r.data_dir: (r.version, r.schema_revision, r.blob_store) for r in rows}

    seen = asyncio.run(registered())
    assert seen == {
        str(node.settings.data_dir): (version(), head_revision(), "database")
        for node in (nodes.a, nodes.b)
    }
    report = caducee("doctor", "--data", str(nodes.b.settings.data_dir))
    out = " ".join(report.stdout.split())
    assert "2 nœud(s) en service" in out, report.stdout
    for node in (nodes.a, nodes.b):
        assert str(node.settings.data_dir) in out
    assert f"schéma {head_revision()}" in out and f"version {version()}" in out


def test_a_node_on_file_blobs_is_refused_beside_the_cluster(nodes: Running, tmp_path: Path) -> None:
    """PostgreSQL with blob_store = "files": refused outright, and with [cluster]
    single_node = true refused while other nodes are alive."""

    def on_files(name: str, single_node: bool, workers: int) -> ClusterNode:
        settings = node_settings(tmp_path, name, nodes.cluster.database_url, first=nodes.a.settings)
        settings.blob_store = "files"
        settings.cluster_single_node = single_node
        prepare(settings, {"imaps": "127.0.0.1:0"}, migrate=False, workers=workers)
        node = ClusterNode(name, settings)
        node.start()
        assert node.proc is not None
        assert node.proc.wait(120) != 0
        assert not listeners_file(settings).exists()
        return node

    refused = " ".join(on_files("fichiers", False, 1).log().split())
    assert 'blob_store = "files"' in refused and "single_node = true" in refused
    # Declared single, under a supervisor (two worker processes): another node is alive.
    beside = " ".join(on_files("seul", True, 2).log().split())
    assert "Un autre nœud sert cette base" in beside


def test_a_declared_single_node_on_file_blobs_serves_alone(
    pg_cluster: PgCluster, dns_server: LocalDNS, tmp_path: Path
) -> None:
    """[cluster] single_node = true: PostgreSQL with file blobs serves when no other node is
    alive, registered with its blob store; its clean stop removes its row."""
    settings = node_settings(
        tmp_path,
        "seul",
        pg_cluster.url(pg_cluster.create_database()),
        dns_resolver=dns_server.resolver_spec,
        first=None,
    )
    settings.blob_store = "files"
    settings.cluster_single_node = True
    prepare(settings, {"imaps": "127.0.0.1:0"}, workers=1)
    node = ClusterNode("seul", settings)
    node.start()
    try:
        node.wait_ready()
        report = " ".join(caducee("doctor", "--data", str(settings.data_dir)).stdout.split())
        assert "1 nœud(s) en service" in report and "blobs files" in report
    finally:
        node.stop()
    assert node.proc is not None and node.proc.returncode == 0, node.log()
    report = " ".join(caducee("doctor", "--data", str(settings.data_dir)).stdout.split())
    assert "0 nœud(s) en service, 0 vu(s)" in report


class StallingPeer(PeerHandler):
    """The remote MTA, holding every RCPT while ``stall`` is set (nothing is transmitted yet,
    so a session cut there delivered nothing); ``held`` counts the RCPTs it held."""

    def __init__(self) -> None:
        super().__init__()
        self.stall = True
        self.held = 0

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if self.stall:
            self.held += 1
            while self.stall:
                await asyncio.sleep(0.05)
        return await super().handle_RCPT(server, session, envelope, address, options)


def test_a_node_killed_while_delivering_leaves_its_mail_to_the_other_once_its_lease_expires(
    pg_cluster: PgCluster, dns_server: LocalDNS, tmp_path: Path
) -> None:
    """Node A claims five recipients and is killed (SIGKILL) in the middle of the session; node
    B, started after, delivers them once A's claims expire ([outbound] lease_seconds), each
    exactly once; ``caducee doctor`` shows A silent."""
    handler = StallingPeer()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()

    def configure(settings: Settings) -> None:
        settings.queue_lease_seconds = 4
        settings.cluster_heartbeat_seconds = 1.0
        settings.transport = {"partner.test": TransportRoute("127.0.0.1", port, "none")}

    cluster = prepare_cluster(
        tmp_path / "nodes",
        pg_cluster.url(pg_cluster.create_database()),
        2,
        listeners={"submission": "127.0.0.1:0"},
        dns_resolver=dns_server.resolver_spec,
        configure=configure,
    )
    accounts = asyncio.run(_accounts(cluster.nodes[0].settings))
    a, b = cluster.nodes
    try:
        a.start()
        a.wait_ready()
        sent = []
        with smtplib.SMTP("127.0.0.1", a.ports["submission"], timeout=TIMEOUT) as client:
            client.starttls(context=a.context())
            client.login(DOCTOR, accounts.doctor)
            for index in range(5):
                message_id = f"<orphelin-{index}@cabinet.test>"
                body = (
                    f"From: {DOCTOR}\r\nTo: confrere{index}@partner.test\r\n"
                    f"Subject: Envoi {index}\r\nMessage-ID: {message_id}\r\n\r\nBonjour.\r\n"
                )
                assert client.sendmail(DOCTOR, [f"confrere{index}@partner.test"], body) == {}
                sent.append(message_id)
        until(lambda: handler.held > 0, "node A in a session with the peer")
        assert a.proc is not None
        a.proc.kill()
        a.proc.wait(TIMEOUT)
        handler.stall = False
        assert handler.received == []
        b.start()
        b.wait_ready()

        def delivered() -> Counter[str]:
            return Counter(
                str(message_from_bytes(r.content)["Message-ID"]) for r in list(handler.received)
            )

        until(lambda: set(delivered()) >= set(sent), "node B delivered A's claimed mail")

        async def waiting() -> int:
            async with open_app(b.settings) as app, app.db.read() as conn:
                count = await conn.scalar(
                    select(func.count())
                    .select_from(outbound_recipients)
                    .where(outbound_recipients.c.state != "delivered")
                )
                return int(count or 0)

        until(lambda: asyncio.run(waiting()) == 0, "the queue is empty")
        assert delivered() == Counter(dict.fromkeys(sent, 1))
        report = " ".join(caducee("doctor", "--data", str(b.settings.data_dir)).stdout.split())
        assert f"nœud {socket.gethostname()}:{a.settings.data_dir} muet depuis" in report
        assert "1 nœud(s) en service, 2 vu(s)" in report
    finally:
        cluster.stop()
        controller.stop()


async def _accounts(settings: Settings) -> Accounts:
    async with open_app(settings) as app:
        return await setup(app)
