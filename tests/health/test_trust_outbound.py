"""Delivering to another operator of the trust space: mutual TLS verified against the trust
store, our operator certificate presented, never a plaintext fallback (real aiosmtpd peers)."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from caducee.app import App
from caducee.config import TransportRoute
from caducee.flows.outbound import OutboundWorker
from caducee.health import trust_list
from caducee.services import queue
from caducee.services.queue import QueueRecipient
from tests.health.pki import Issued, TestPKI
from tests.health.whitelists import whitelist_xml
from tests.interop.test_outbound import SENDER, Peers, entries, local_sender, message, peers

__all__ = ["peers"]  # fixture

PARTNER = "partner.test"


@pytest.fixture
def pki(tmp_path: Path) -> TestPKI:
    return TestPKI(tmp_path / "pki")


def _remote_context(pki: TestPKI, issued: Issued, *, require_client: bool) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(issued.cert_path, issued.key_path)
    if require_client:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cafile=str(pki.ca_path))
    return context


async def _trust_setup(app: App, pki: TestPKI, remote: Issued) -> None:
    await local_sender(app)
    ours = pki.issue("ours", "mx.cabinet.test", "Opérateur A")
    app.settings.trust_ca_file = str(pki.ca_path)
    app.settings.trust_client_cert = str(ours.cert_path)
    app.settings.trust_client_key = str(ours.key_path)
    await trust_list.import_whitelist(app, whitelist_xml([(PARTNER, remote.dn)]))


async def test_trust_space_delivery_uses_mutual_tls(app: App, peers: Peers, pki: TestPKI) -> None:
    remote = pki.issue("remote", "localhost", "Opérateur B")
    await _trust_setup(app, pki, remote)
    peer = peers.start(tls=_remote_context(pki, remote, require_client=True))
    # The route says opportunistic: the trust space overrides it.
    app.settings.transport = {PARTNER: TransportRoute("localhost", peer.port, "opportunistic")}
    raw = message()
    await queue.enqueue(app, raw, SENDER, [QueueRecipient(f"confrere@{PARTNER}")])
    assert (await OutboundWorker(app).run_once()).delivered == 1
    [received] = peer.received
    assert received.tls and received.content == raw


async def test_trust_space_never_falls_back_to_plaintext(
    app: App, peers: Peers, pki: TestPKI
) -> None:
    remote = pki.issue("remote", "localhost", "Opérateur B")
    await _trust_setup(app, pki, remote)
    peer = peers.start()  # no STARTTLS at all
    app.settings.transport = {PARTNER: TransportRoute("localhost", peer.port, "opportunistic")}
    await queue.enqueue(app, message(), SENDER, [QueueRecipient(f"confrere@{PARTNER}")])
    assert (await OutboundWorker(app).run_once()).deferred == 1
    entry = (await entries(app))[f"confrere@{PARTNER}"]
    assert entry.state == "deferred" and entry.last_status == "4.7.10"
    assert peer.received == []


async def test_trust_space_refuses_a_server_outside_the_trust_store(
    app: App, peers: Peers, pki: TestPKI
) -> None:
    remote = pki.issue("remote", "localhost", "Opérateur B")
    await _trust_setup(app, pki, remote)
    stranger_pki = TestPKI(pki.directory / "stranger", name="AC Inconnue")
    stranger = stranger_pki.issue("stranger", "localhost", "Opérateur B")
    peer = peers.start(tls=_remote_context(stranger_pki, stranger, require_client=False))
    app.settings.transport = {PARTNER: TransportRoute("localhost", peer.port, "opportunistic")}
    await queue.enqueue(app, message(), SENDER, [QueueRecipient(f"confrere@{PARTNER}")])
    assert (await OutboundWorker(app).run_once()).deferred == 1
    entry = (await entries(app))[f"confrere@{PARTNER}"]
    assert entry.last_status == "4.7.5" and peer.received == []
