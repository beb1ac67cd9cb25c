"""``/metrics`` of a real ``caducee serve`` with two worker processes (issue 21): real SMTP and
IMAP traffic, then scrapes with httpx parsed by prometheus-client's own parser, on both
backends; then, in one process, deliveries to a local SMTP peer and web pages' route labels.

Which worker answers a scrape is the kernel's choice: every scrape must show the same counts,
since each worker's values are summed (prometheus-client's multiprocess mode).
"""

from __future__ import annotations

import asyncio
import imaplib
import signal
import smtplib
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from caducee.app import App, open_app
from caducee.config import Settings
from caducee.errors import CaduceeError
from caducee.flows import submission
from caducee.flows.outbound import OutboundWorker
from caducee.health import pickup_auth
from caducee.health.pickup_store import by_token
from caducee.services import lockout, metrics, queue
from caducee.services.app_passwords import create_app_password
from caducee.services.envelope import ClientInfo
from caducee.services.queue import QueueRecipient
from caducee.web import create_web_app
from tests.health.pickups import cabinet, deposit, token_of
from tests.health.sms_provider_server import ProviderServer
from tests.interop.test_outbound import SENDER, Peer, message, peer, peers  # noqa: F401
from tests.services.helpers import person, practice
from tests.serving import prepare, serve_process, wait_listeners
from tests.test_workers import worker_pids

LOGIN = "dr@cabinet.test"
EXTERNAL = "a@ailleurs.test"
TIMEOUT = 30.0
STARTUP_TIMEOUT = 180.0
LISTENERS = {
    "https": "127.0.0.1:0",
    "smtp": "127.0.0.1:0",
    "submission": "127.0.0.1:0",
    "imaps": "127.0.0.1:0",
}

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@dataclass
class Node:
    settings: Settings
    ports: dict[str, int]
    password: str
    pid: int  # the supervisor's

    def context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.settings.tls_dir / "ca.crt"))

    def scrape(self) -> tuple[str, Samples]:
        # A new connection each time: any worker may answer.
        with httpx.Client(verify=self.context(), timeout=TIMEOUT) as client:
            response = client.get(f"https://localhost:{self.ports['https']}/metrics")
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
        samples: Samples = {}
        for family in text_string_to_metric_families(response.text):
            for sample in family.samples:
                samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return response.text, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def node(settings: Settings, tmp_path: Path) -> Iterator[Node]:
    prepare(settings, LISTENERS, workers=2)

    async def setup() -> str:
        async with open_app(settings) as app:
            await practice(app)
            await person(app, LOGIN)
            return await create_app_password(app, LOGIN, "metrics")

    password = asyncio.run(setup())
    with serve_process(settings, tmp_path) as proc:
        bound = wait_listeners(settings, proc, tmp_path, timeout=STARTUP_TIMEOUT)
        ports = {name: int(address.rsplit(":", 1)[1]) for name, address in bound.items()}
        yield Node(settings, ports, password, proc.pid)
        proc.send_signal(signal.SIGTERM)
        proc.wait(TIMEOUT)


def test_metrics_count_real_traffic_across_workers(node: Node) -> None:
    _, before = node.scrape()
    assert value(before, "caducee_messages_received_total", door="mx") == 0
    # The MX: one message received, one unknown recipient refused.
    body = (
        f"From: {EXTERNAL}\r\nTo: {LOGIN}\r\nSubject: compte\r\n"
        f"Message-ID: <compte@ailleurs.test>\r\n\r\nBonjour.\r\n"
    )
    with smtplib.SMTP(
        "127.0.0.1", node.ports["smtp"], local_hostname="mx.ailleurs.test", timeout=TIMEOUT
    ) as mx:
        mx.starttls(context=node.context())
        mx.ehlo("mx.ailleurs.test")
        mx.mail(EXTERNAL)
        code, _ = mx.rcpt("personne@cabinet.test")
        assert code == 550
        mx.rset()
        assert mx.sendmail(EXTERNAL, [LOGIN], body) == {}
    # Submission: one message sent by the practitioner to herself.
    with smtplib.SMTP("127.0.0.1", node.ports["submission"], timeout=TIMEOUT) as sub:
        sub.starttls(context=node.context())
        sub.login(LOGIN, node.password)
        own = body.replace(f"From: {EXTERNAL}", f"From: {LOGIN}").replace("compte@", "envoi@")
        assert sub.sendmail(LOGIN, [LOGIN], own) == {}
    # IMAP: one wrong password, then a session held open.
    wrong = imaplib.IMAP4_SSL(
        "localhost", node.ports["imaps"], ssl_context=node.context(), timeout=TIMEOUT
    )
    with pytest.raises(imaplib.IMAP4.error):
        wrong.login(LOGIN, "pas-le-bon-mot-de-passe")
    wrong.logout()
    held = imaplib.IMAP4_SSL(
        "localhost", node.ports["imaps"], ssl_context=node.context(), timeout=TIMEOUT
    )
    held.login(LOGIN, node.password)
    held.select("INBOX")
    status, _ = held.fetch("1:*", "(ENVELOPE)")  # fills that worker's structure cache
    assert status == "OK"

    # The refused session's end is counted once its server task has finished: wait for it.
    until_open(node, 1)
    scrapes = [node.scrape() for _ in range(6)]
    expected = {
        ("caducee_messages_received_total", (("door", "mx"),)): 1.0,
        ("caducee_messages_refused_total", (("door", "mx"), ("reason", "NotFound"))): 1.0,
        ("caducee_messages_sent_total", (("door", "submission"),)): 1.0,
        ("caducee_login_failures_total", (("service", "imap"),)): 1.0,
        ("caducee_sessions_total", (("listener", "imaps"),)): 2.0,
        ("caducee_sessions_total", (("listener", "smtp"),)): 1.0,
        ("caducee_sessions_total", (("listener", "submission"),)): 1.0,
        ("caducee_sessions_open", (("listener", "imaps"),)): 1.0,
        ("caducee_queue_depth", ()): 0.0,
    }
    for text, samples in scrapes:
        for key, wanted in expected.items():
            assert samples.get(key) == wanted, (key, samples.get(key))
        # No label ever carries an address (nor, therefore, a login).
        for _, labels in samples:
            assert all("@" not in v for _, v in labels), labels
        assert "cabinet.test" not in text and "ailleurs.test" not in text
    # Web pages are timed by route template: /metrics itself answered before the last scrape.
    _, last = scrapes[-1]
    assert value(last, "caducee_http_request_seconds_count", route="/metrics", method="GET",
                 status="2xx") >= 1  # fmt: skip
    assert any(name == "caducee_lots_awaiting_arl" for name, _ in last)

    # Each worker publishes its caches' sizes (every few seconds): the FETCH filled one.
    assert until_cache(node, "structures") > 0
    # And what its C allocator holds, one series per worker process.
    workers = {str(pid) for pid in worker_pids(node.pid)}
    assert len(workers) == 2
    deadline = time.monotonic() + TIMEOUT
    while True:
        _, samples = node.scrape()
        in_use = {
            dict(labels)["pid"]: size
            for (name, labels), size in samples.items()
            if name == "caducee_allocator_bytes" and ("kind", "in_use") in labels
        }
        if workers <= set(in_use):
            break
        assert time.monotonic() < deadline, f"allocator of {workers} not reported: {in_use}"
        time.sleep(0.5)
    assert all(in_use[pid] > 10 * 2**20 for pid in workers), in_use

    # The held session ends: the open sessions go back to none, the count stays.
    held.logout()
    samples = until_open(node, 0)
    assert value(samples, "caducee_sessions_total", listener="imaps") == 2


def until_cache(node: Node, cache: str) -> float:
    """Scrape until a worker process reports bytes in ``cache`` (``caducee_cache_bytes``, one
    series per process); the most it reports."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        _, samples = node.scrape()
        held = [
            size
            for (name, labels), size in samples.items()
            if name == "caducee_cache_bytes" and ("cache", cache) in labels
        ]
        if held and max(held) > 0:
            return max(held)
        assert time.monotonic() < deadline, f"no worker reported its {cache} cache"
        time.sleep(0.5)


def until_open(node: Node, sessions: int) -> Samples:
    """Scrape until the open IMAP sessions are ``sessions`` (a session's end is counted when
    the server has finished with it, just after the client saw its last reply)."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        _, samples = node.scrape()
        if value(samples, "caducee_sessions_open", listener="imaps") == sessions:
            return samples
        assert time.monotonic() < deadline, f"never {sessions} open IMAP session(s)"
        time.sleep(0.1)


def test_metrics_refused_outside_the_allowed_networks(settings: Settings, tmp_path: Path) -> None:
    token = tmp_path / "metrics.token"
    token.write_text("jeton-de-supervision-assez-long\n")
    token.chmod(0o600)
    settings.metrics_allow, settings.metrics_token_file = [], str(token)
    prepare(settings, {"https": "127.0.0.1:0"})
    with serve_process(settings, tmp_path) as proc:
        bound = wait_listeners(settings, proc, tmp_path, timeout=STARTUP_TIMEOUT)
        url = f"https://localhost:{bound['https'].rsplit(':', 1)[1]}"
        context = ssl.create_default_context(cafile=str(settings.tls_dir / "ca.crt"))
        with httpx.Client(verify=context, timeout=TIMEOUT, base_url=url) as client:
            assert client.get("/metrics").status_code == 403
            assert client.get("/readyz").status_code == 403
            wrong = {"Authorization": "Bearer jeton-de-supervision-assez-lonG"}
            assert client.get("/metrics", headers=wrong).status_code == 403
            right = {"Authorization": "Bearer jeton-de-supervision-assez-long"}
            scraped = client.get("/metrics", headers=right)
            assert scraped.status_code == 200 and "caducee_queue_depth" in scraped.text
            assert client.get("/healthz").status_code == 200  # alive: open to all
        proc.send_signal(signal.SIGTERM)
        proc.wait(TIMEOUT)


# ----- in one process: the values this process counted ------------------------------------------


def counted() -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(metrics.exposition().decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


async def test_deliveries_are_counted_by_result(app: App, peer: Peer) -> None:  # noqa: F811
    peer.handler.rcpt_always["plus-tard@partner.test"] = "451 4.3.0 Try again later"
    peer.handler.rcpt_always["personne@partner.test"] = "550 5.1.1 Unknown"
    await queue.enqueue(
        app,
        message(),
        SENDER,
        [QueueRecipient(f"{who}@partner.test") for who in ("ok", "plus-tard", "personne")],
    )
    before = counted()
    stats = await OutboundWorker(app).run_once()
    assert (stats.delivered, stats.deferred, stats.bounced) == (1, 1, 1)
    after = counted()

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    for result in ("delivered", "deferred", "bounced"):
        assert moved("caducee_deliveries_total", result=result) == 1, result
    # The time to a final result: delivered and bounced, not the deferred one.
    assert moved("caducee_delivery_seconds_count", result="delivered") == 1
    assert moved("caducee_delivery_seconds_count", result="bounced") == 1
    assert moved("caducee_delivery_seconds_count", result="deferred") == 0


async def test_web_pages_are_timed_by_route_template_never_by_path(app: App) -> None:
    transport = httpx.ASGITransport(app=create_web_app(app))
    async with httpx.AsyncClient(transport=transport, base_url="https://test") as client:
        await client.get("/courrier/b/4242")
        await client.get("/nulle-part/dr.martin@cabinet.test")
        page = (await client.get("/metrics")).text
    assert 'route="/courrier/b/{mailbox_id}"' in page
    assert 'route="unmatched"' in page
    assert "4242" not in page and "nulle-part" not in page and "@" not in page


async def test_pickup_codes_sent_not_sent_and_wrong(app: App, sms_server: ProviderServer) -> None:
    cab = await cabinet(app)
    made = await deposit(app, cab)
    found = await by_token(app, token_of(made.link))
    sms_server.answers = [(200, {}), (500, {"error": "panne"})]
    before = counted()
    await pickup_auth.request_code(app, found, source="ip")
    with pytest.raises(CaduceeError):  # the provider fails: the patient gets no code
        await pickup_auth.request_code(app, found, source="ip")
    assert not await pickup_auth.check_code(app, found, "000000x", source="ip")
    after = counted()
    for result in ("sent", "send_failed", "wrong"):
        name = "caducee_pickup_codes_total"
        assert value(after, name, result=result) - value(before, name, result=result) == 1


def test_the_door_of_a_submission() -> None:
    assert submission.door_of(ClientInfo(ip="x", helo="webmail", protocol="HTTPS")) == "webmail"
    assert submission.door_of(ClientInfo(ip="x", helo="api", protocol="HTTPS")) == "api"
    assert submission.door_of(ClientInfo(ip="x", helo="poste.cabinet", protocol="ESMTPSA")) == (
        "submission"
    )


async def test_login_failures_and_lockouts(app: App) -> None:
    async def wrong(_conn: object) -> lockout.Verdict:
        return lockout.Verdict.failed("bad_password")

    before = counted()
    now = datetime.now(UTC)
    threshold = app.settings.lockout_threshold
    for _ in range(threshold):
        await lockout.attempt(
            app.db, app.settings, login="dr@cabinet.test", source="192.0.2.7",
            action="auth.password", check=wrong, now=now, service="imap",
        )  # fmt: skip
    # Locked now: a further try is refused unseen, neither a failure nor a new lock-out.
    with pytest.raises(lockout.AccountLocked):
        await lockout.attempt(
            app.db, app.settings, login="dr@cabinet.test", source="192.0.2.7",
            action="auth.password", check=wrong, now=now, service="imap",
        )  # fmt: skip
    after = counted()

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("caducee_login_failures_total", service="imap") == threshold
    assert moved("caducee_lockouts_total", scope="account") == 1
    assert moved("caducee_lockouts_total", scope="ip") == 1
