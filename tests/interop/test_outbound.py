"""Outbound delivery against real SMTP servers (aiosmtpd) and a real DNS server, both backends.

The remote peer runs on 127.0.0.1 on a free port; a static route
(``settings.transport["partner.test"]``) or MX records from a local DNS server
(``tests.dnsserver.LocalDNS``, with ``OutboundWorker(app, mx_port=peer.port)``) lead to it.
Time is injected (``run_once(now)``): nothing waits for a back-off on the clock.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import ssl
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from sqlalchemy import select

from caducee.app import App, open_app
from caducee.clients import smtp as smtp_client
from caducee.config import TransportRoute
from caducee.flows.outbound import OutboundWorker
from caducee.server import WORKER_FACTORIES, running_workers
from caducee.services import mailboxes, queue
from caducee.services.messages import read_message
from caducee.services.queue import QueueRecipient
from caducee.store.tables import audit_log
from caducee.store.tables import messages as messages_table
from caducee.tls import create_dev_ca
from tests.dnsserver import LocalDNS, local_dns  # noqa: F401 (fixture)
from tests.pgcluster import free_port
from tests.services.helpers import person, practice

SENDER = "dr.martin@cabinet.test"
BODY_MARKER = "HBA1C-SECRET"


def message(subject: str = "Compte rendu") -> bytes:
    return (
        f"From: Dr Martin <{SENDER}>\r\n"
        "To: confrere@partner.test\r\n"
        f"Subject: {subject}\r\n"
        "Message-ID: <cr-1@cabinet.test>\r\n"
        "\r\n"
        f"Patient {BODY_MARKER} : 7,2 %\r\n"
        ".leading dot survives dot-stuffing\r\n"
    ).encode()


# ----- the remote peer ---------------------------------------------------------------------------


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    tls: bool
    mail_options: list[str]
    rcpt_options: list[str]


@dataclass
class PeerHandler:
    """aiosmtpd hooks: records what arrives; replies can be scripted per recipient."""

    dsn: bool = False
    received: list[Received] = field(default_factory=list)
    #: address → replies to give (one per RCPT, in order) before accepting it
    rcpt_replies: dict[str, list[str]] = field(default_factory=dict)
    #: address → the reply given to every RCPT
    rcpt_always: dict[str, str] = field(default_factory=dict)
    #: replies to give at the end of DATA (in order) before accepting messages
    data_replies: list[str] = field(default_factory=list)

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        if self.dsn:
            responses.insert(-1, "250-DSN")
        return responses

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        scripted = self.rcpt_replies.get(address)
        if scripted:
            return scripted.pop(0)
        if address in self.rcpt_always:
            return self.rcpt_always[address]
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.data_replies:
            return self.data_replies.pop(0)
        self.received.append(
            Received(
                envelope.mail_from,
                list(envelope.rcpt_tos),
                envelope.original_content,
                session.ssl is not None,
                list(envelope.mail_options),
                list(envelope.rcpt_options),
            )
        )
        return "250 2.0.0 Ok: queued as 12345"


class _DsnSMTP(SMTPServer):
    """aiosmtpd refuses RFC 3461 parameters: let them through so the peer can record them."""

    def _getparams(self, params: Any) -> Any:
        result = super()._getparams(params)
        if result is not None:
            for name in ("RET", "ENVID", "NOTIFY", "ORCPT"):
                result.pop(name, None)
        return result


class _Controller(Controller):
    def factory(self) -> SMTPServer:
        return _DsnSMTP(self.handler, **self.SMTP_kwargs)


@dataclass
class Peer:
    handler: PeerHandler
    port: int

    @property
    def received(self) -> list[Received]:
        return self.handler.received


class Peers:
    def __init__(self) -> None:
        self.controllers: list[Controller] = []

    def start(self, *, dsn: bool = False, tls: ssl.SSLContext | None = None) -> Peer:
        handler = PeerHandler(dsn=dsn)
        port = free_port()
        kwargs: dict[str, Any] = {"tls_context": tls} if tls is not None else {}
        controller = _Controller(handler, hostname="127.0.0.1", port=port, **kwargs)
        controller.start()
        self.controllers.append(controller)
        return Peer(handler, port)


@pytest.fixture
def peers() -> Iterator[Peers]:
    started = Peers()
    try:
        yield started
    finally:
        for controller in started.controllers:
            controller.stop()


@pytest.fixture
def peer(peers: Peers, app: App) -> Peer:
    """A plain peer for partner.test (opportunistic TLS route, no STARTTLS offered)."""
    started = peers.start()
    app.settings.transport = {
        "partner.test": TransportRoute("127.0.0.1", started.port, "opportunistic")
    }
    return started


@pytest.fixture
def peer_tls(tmp_path: Path) -> tuple[ssl.SSLContext, Path]:
    """A server context with a certificate from a CA made for the test, and that CA's file."""
    tls_dir = tmp_path / "peer-tls"
    create_dev_ca(tls_dir, "partner.test")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls_dir / "server.crt", tls_dir / "server.key")
    return context, tls_dir / "ca.crt"


# ----- helpers -----------------------------------------------------------------------------------


async def local_sender(app: App) -> None:
    await practice(app, "cabinet.test")
    await person(app, SENDER)


async def inbox(app: App, address: str = SENDER) -> list[bytes]:
    box = await mailboxes.get_mailbox(app, address)
    async with app.db.read() as conn:
        ids = (
            await conn.execute(
                select(messages_table.c.id)
                .where(messages_table.c.mailbox_id == box.id)
                .order_by(messages_table.c.id)
            )
        ).scalars()
        found = list(ids)
    return [(await read_message(app, message_id))[1] for message_id in found]


def parse(raw: bytes) -> Message:
    return email.message_from_bytes(raw, policy=email.policy.default)


def status_blocks(report: Message) -> list[Message]:
    assert report.get_content_type() == "multipart/report"
    part = report.get_payload()[1]  # type: ignore[index]
    assert part.get_content_type() == "message/delivery-status"
    return list(part.get_payload())


async def entries(app: App) -> dict[str, queue.QueueEntry]:
    return {e.address: e for e in await queue.list_queue(app, include_finished=True)}


async def audit_actions(app: App) -> list[tuple[str, str, dict[str, Any]]]:
    async with app.db.read() as conn:
        rows = await conn.execute(
            select(audit_log.c.action, audit_log.c.target, audit_log.c.details)
            .where(audit_log.c.action.like("queue.%"))
            .order_by(audit_log.c.seq)
        )
        return [(r.action, r.target, json.loads(r.details)) for r in rows]


def t0() -> datetime:
    return datetime.now(UTC)


# ----- delivery ----------------------------------------------------------------------------------


async def test_delivered_exact_bytes_in_one_transaction(app: App, peer: Peer) -> None:
    raw = message()
    queue_id = await queue.enqueue(
        app,
        raw,
        SENDER,
        [QueueRecipient("a@partner.test"), QueueRecipient("b@partner.test")],
        envid="ENV-1",
    )
    stats = await OutboundWorker(app).run_once()
    assert (stats.claimed, stats.delivered, stats.domains) == (2, 2, ["partner.test"])
    [received] = peer.received
    assert received.mail_from == SENDER
    assert received.rcpt_tos == ["a@partner.test", "b@partner.test"]
    assert received.content == raw
    assert not received.tls
    assert not any(o.startswith(("RET=", "ENVID=")) for o in received.mail_options)  # no DSN
    found = await entries(app)
    for address in ("a@partner.test", "b@partner.test"):
        entry = found[address]
        assert (entry.state, entry.attempts, entry.last_code) == ("delivered", 1, 250)
        assert entry.last_status == "2.0.0" and entry.last_reply == "2.0.0 Ok: queued as 12345"
        assert entry.remote_mta == "127.0.0.1" and entry.report == ""
        assert entry.blob_id is None  # content forgotten once delivered
    assert await queue.list_queue(app) == []
    delivered = [a for a in await audit_actions(app) if a[0] == "queue.delivered"]
    # the audit names recipients by their keyed pseudonym, never by their address
    a, b = [await queue.audit_target(app, x) for x in ("a@partner.test", "B@Partner.test")]
    assert [(t, d["queue_id"], d["code"], d["status"]) for _, t, d in delivered] == [
        (a, queue_id, 250, "2.0.0"),
        (b, queue_id, 250, "2.0.0"),
    ]
    assert a.startswith("recipient:") and a != b


async def test_temporary_failure_then_success_after_backoff(app: App, peer: Peer) -> None:
    peer.handler.rcpt_replies["a@partner.test"] = ["451 4.3.0 Try again later"]
    start = t0()
    await queue.enqueue(app, message(), SENDER, [QueueRecipient("a@partner.test")], now=start)
    worker = OutboundWorker(app)
    stats = await worker.run_once(start)
    assert (stats.claimed, stats.deferred) == (1, 1)
    entry = (await entries(app))["a@partner.test"]
    assert (entry.state, entry.attempts, entry.last_code, entry.last_status) == (
        "deferred",
        1,
        451,
        "4.3.0",
    )
    assert entry.next_attempt_at == start + timedelta(minutes=5)
    assert entry.last_reply == "4.3.0 Try again later"
    assert peer.received == []
    assert (await worker.run_once(start + timedelta(minutes=4))).claimed == 0  # not due yet
    stats = await worker.run_once(start + timedelta(minutes=5))
    assert (stats.claimed, stats.delivered) == (1, 1)
    assert len(peer.received) == 1
    entry = (await entries(app))["a@partner.test"]
    assert (entry.state, entry.attempts) == ("delivered", 2)


async def test_replies_at_data_and_a_closing_server(app: App, peer: Peer) -> None:
    peer.handler.data_replies.append("554 5.6.0 Message content rejected")
    peer.handler.rcpt_always["busy@partner.test"] = "421 4.7.0 Too busy, closing"
    await queue.enqueue(app, message("one"), "", [QueueRecipient("a@partner.test")])
    await queue.enqueue(app, message("two"), "", [QueueRecipient("busy@partner.test")])
    await queue.enqueue(app, message("three"), "", [QueueRecipient("c@partner.test")])
    stats = await OutboundWorker(app).run_once()
    assert (stats.bounced, stats.deferred) == (1, 2)
    found = await entries(app)
    assert (found["a@partner.test"].state, found["a@partner.test"].last_code) == ("bounced", 554)
    assert found["a@partner.test"].last_status == "5.6.0"
    # 421 closes the session: that message and the next one wait for the next attempt
    for address in ("busy@partner.test", "c@partner.test"):
        assert (found[address].state, found[address].last_code) == ("deferred", 421)
    assert peer.received == []


async def test_a_big_message_is_sent_exactly_and_its_data_reply_is_kept(
    app: App, peer: Peer
) -> None:
    """From 1 MB on, the DATA bytes (CRLF line ends, leading dots doubled, RFC 5321 §4.5.2) are
    prepared off the event loop, a slice at a time: the peer receives the message exactly, and
    a refusal at the end of DATA is still each recipient's reply."""
    lines = [f".ligne {n} " + "x" * (n % 97) for n in range(40_000)]  # each starts with a dot
    raw = message("volumineux") + ("\r\n".join(lines) + "\r\n").encode()
    assert len(raw) > smtp_client.PREPARE_OFF_LOOP_BYTES
    peer.handler.data_replies.append("452 4.3.1 Insufficient system storage")
    start = t0()
    await queue.enqueue(app, raw, SENDER, [QueueRecipient("a@partner.test")], now=start)
    worker = OutboundWorker(app)
    assert (await worker.run_once(start)).deferred == 1
    entry = (await entries(app))["a@partner.test"]
    assert (entry.state, entry.last_code, entry.last_status) == ("deferred", 452, "4.3.1")
    assert peer.received == []
    assert (await worker.run_once(start + timedelta(minutes=5))).delivered == 1
    [received] = peer.received
    assert received.content == raw


async def test_permanent_failure_bounces_with_report_in_sender_inbox(app: App, peer: Peer) -> None:
    await local_sender(app)
    peer.handler.rcpt_always["nobody@partner.test"] = (
        "550 5.1.1 <nobody@partner.test>: Recipient address rejected"
    )
    start = t0()
    queue_id = await queue.enqueue(
        app,
        message("Résultats"),
        SENDER,
        [
            QueueRecipient("nobody@partner.test", orcpt="rfc822;nobody@partner.test"),
            QueueRecipient("ok@partner.test"),
        ],
        envid="ENV-42",
        now=start,
    )
    worker = OutboundWorker(app)
    stats = await worker.run_once(start)
    assert (stats.delivered, stats.bounced, stats.reports) == (1, 1, 1)
    assert peer.received[0].rcpt_tos == ["ok@partner.test"]
    found = await entries(app)
    assert found["nobody@partner.test"].state == "bounced"
    assert found["nobody@partner.test"].report == ""  # sent
    assert found["ok@partner.test"].state == "delivered"

    [raw] = await inbox(app)
    report = parse(raw)
    assert str(report["From"]) == "Système de messagerie Caducée <MAILER-DAEMON@cabinet.test>"
    assert str(report["To"]) == SENDER
    assert report["Auto-Submitted"] == "auto-replied"
    assert report.get_param("report-type") == "delivery-status"
    text = report.get_payload()[0].get_content()  # type: ignore[index]
    assert text.startswith("Ceci est le système de messagerie Caducée de mail.test.example.")
    assert "nobody@partner.test" in text and "Recipient address rejected" in text
    per_message, recipient = status_blocks(report)
    assert per_message["Reporting-MTA"] == "dns; mail.test.example"
    assert per_message["Original-Envelope-Id"] == "ENV-42"
    assert per_message["X-Caducee-Queue-ID"] == str(queue_id)
    assert email.utils.parsedate_to_datetime(per_message["Arrival-Date"]) == start.replace(
        microsecond=0
    )
    assert recipient["Original-Recipient"] == "rfc822; nobody@partner.test"
    assert recipient["Final-Recipient"] == "rfc822; nobody@partner.test"
    assert recipient["Action"] == "failed"
    assert recipient["Status"] == "5.1.1"
    assert recipient["Remote-MTA"] == "dns; 127.0.0.1"
    assert recipient["Diagnostic-Code"] == (
        "smtp; 550 5.1.1 <nobody@partner.test>: Recipient address rejected"
    )
    assert email.utils.parsedate_to_datetime(recipient["Last-Attempt-Date"]) == start.replace(
        microsecond=0
    )
    assert recipient["Will-Retry-Until"] is None
    headers = report.get_payload()[2]  # type: ignore[index]
    assert headers.get_content_type() == "text/rfc822-headers"
    assert BODY_MARKER.encode() not in raw and b"Subject: R" in raw

    # the report went out once; the content is forgotten afterwards
    await worker.run_once(start + timedelta(hours=1))
    assert len(await inbox(app)) == 1
    assert all(e.blob_id is None for e in (await entries(app)).values())
    bounced = [a for a in await audit_actions(app) if a[0] == "queue.bounced"]
    assert [(t, d["status"], d["code"]) for _, t, d in bounced] == [
        (await queue.audit_target(app, "nobody@partner.test"), "5.1.1", 550)
    ]


async def test_report_to_a_remote_sender_is_queued_with_null_sender(app: App, peer: Peer) -> None:
    peer.handler.rcpt_always["x@partner.test"] = "550 5.7.1 refused"
    await queue.enqueue(
        app, message(), "someone@elsewhere.test", [QueueRecipient("x@partner.test")]
    )
    await OutboundWorker(app).run_once()
    report = next(e for e in await queue.list_queue(app) if e.address == "someone@elsewhere.test")
    assert report.mail_from == "" and report.notify == ("NEVER",)
    parsed = parse(await queue.read_content(app, report))
    assert str(parsed["From"]).endswith("<MAILER-DAEMON@mail.test.example>")
    assert status_blocks(parsed)[1]["Status"] == "5.7.1"


async def test_expiry_after_max_age_sends_a_failure_report(app: App, peer: Peer) -> None:
    await local_sender(app)
    peer.handler.rcpt_always["slow@partner.test"] = "452 4.2.2 Mailbox full"
    start = t0()
    await queue.enqueue(app, message(), SENDER, [QueueRecipient("slow@partner.test")], now=start)
    worker = OutboundWorker(app)
    await worker.run_once(start)
    await worker.run_once(start + timedelta(hours=2))
    assert await inbox(app) == []  # no delay notice before 4 hours
    stats = await worker.run_once(start + timedelta(hours=120))
    assert (stats.expired, stats.reports) == (1, 1)
    entry = (await entries(app))["slow@partner.test"]
    assert (entry.state, entry.attempts) == ("expired", 3)
    [raw] = await inbox(app)
    [_, recipient] = status_blocks(parse(raw))
    assert recipient["Action"] == "failed"
    assert recipient["Status"] == "4.2.2"  # the actual problem (RFC 3463 X.4.7 note)
    assert recipient["Diagnostic-Code"] == "smtp; 452 4.2.2 Mailbox full"
    assert [t for a, t, _ in await audit_actions(app) if a == "queue.expired"] == [
        await queue.audit_target(app, "slow@partner.test")
    ]
    # a deferred recipient is never scheduled past its expiry
    assert (await worker.run_once(start + timedelta(hours=200))).claimed == 0


async def test_last_retry_is_at_the_expiry_time(app: App, peer: Peer) -> None:
    peer.handler.rcpt_always["slow@partner.test"] = "421 4.4.2 busy"
    start = t0()
    await queue.enqueue(app, message(), "", [QueueRecipient("slow@partner.test")], now=start)
    await OutboundWorker(app).run_once(start + timedelta(hours=119, minutes=58))
    entry = (await entries(app))["slow@partner.test"]
    assert entry.next_attempt_at == start + timedelta(hours=120)


async def test_one_delay_notice_after_four_hours(app: App, peer: Peer) -> None:
    await local_sender(app)
    for address in ("late@partner.test", "quiet@partner.test"):
        peer.handler.rcpt_always[address] = "451 4.4.1 No answer"
    start = t0()
    await queue.enqueue(
        app,
        message(),
        SENDER,
        [
            QueueRecipient("late@partner.test"),  # default NOTIFY: FAILURE,DELAY
            QueueRecipient("quiet@partner.test", notify=("FAILURE",)),
        ],
        now=start,
    )
    worker = OutboundWorker(app)
    await worker.run_once(start)
    await worker.run_once(start + timedelta(hours=3))
    assert await inbox(app) == []
    stats = await worker.run_once(start + timedelta(hours=4, minutes=1))
    assert stats.reports == 1
    [raw] = await inbox(app)
    report = parse(raw)
    assert str(report["Subject"]).startswith("Remise retardée")
    [_, recipient] = status_blocks(report)  # only the recipient that allows DELAY
    assert recipient["Final-Recipient"] == "rfc822; late@partner.test"
    assert recipient["Action"] == "delayed"
    assert recipient["Status"] == "4.4.1"
    assert email.utils.parsedate_to_datetime(recipient["Will-Retry-Until"]) == (
        start + timedelta(hours=120)
    ).replace(microsecond=0)
    entry = (await entries(app))["late@partner.test"]
    assert entry.state == "deferred" and entry.delay_notified
    await worker.run_once(start + timedelta(hours=9))
    assert len(await inbox(app)) == 1  # one delay notice only


async def test_null_sender_failure_sends_no_report(app: App, peer: Peer) -> None:
    await local_sender(app)
    peer.handler.rcpt_always["x@partner.test"] = "550 5.1.1 unknown"
    await queue.enqueue(app, message(), "", [QueueRecipient("x@partner.test")])
    stats = await OutboundWorker(app).run_once()
    assert (stats.bounced, stats.reports) == (1, 0)
    [entry] = await queue.list_queue(app, include_finished=True)  # no report queued either
    assert (entry.state, entry.report, entry.mail_from) == ("bounced", "", "")
    assert peer.received == []


# ----- DSN parameters on to the next hop ---------------------------------------------------------


async def test_dsn_parameters_go_to_a_dsn_capable_next_hop(app: App, peers: Peers) -> None:
    await local_sender(app)
    peer = peers.start(dsn=True)
    app.settings.transport = {"partner.test": TransportRoute("127.0.0.1", peer.port, "none")}
    await queue.enqueue(
        app,
        message(),
        SENDER,
        [QueueRecipient("a@partner.test", notify=("SUCCESS", "FAILURE"), orcpt="rfc822;a@x.test")],
        envid="ENV 1+x",
        ret="FULL",
    )
    await OutboundWorker(app).run_once()
    [received] = peer.received
    # (aiosmtpd upper-cases parameter values)
    assert "RET=FULL" in received.mail_options
    assert "ENVID=ENV+201+2BX" in received.mail_options  # xtext (RFC 3461 §4)
    assert received.rcpt_options == ["NOTIFY=SUCCESS,FAILURE", "ORCPT=RFC822;A@X.TEST"]
    assert await inbox(app) == []  # the next hop reports success, not us


async def test_success_through_a_next_hop_without_dsn_is_reported_relayed(
    app: App, peer: Peer
) -> None:
    await local_sender(app)
    await queue.enqueue(
        app, message(), SENDER, [QueueRecipient("a@partner.test", notify=("SUCCESS",))]
    )
    await OutboundWorker(app).run_once()
    [raw] = await inbox(app)
    [_, recipient] = status_blocks(parse(raw))
    assert (recipient["Action"], recipient["Status"]) == ("relayed", "2.0.0")
    assert recipient["Diagnostic-Code"] == "smtp; 250 2.0.0 Ok: queued as 12345"


# ----- TLS ---------------------------------------------------------------------------------------


async def test_tls_required_but_no_starttls_is_deferred(app: App, peer: Peer) -> None:
    app.settings.transport = {"partner.test": TransportRoute("127.0.0.1", peer.port, "required")}
    await queue.enqueue(app, message(), SENDER, [QueueRecipient("a@partner.test")])
    stats = await OutboundWorker(app).run_once()
    assert stats.deferred == 1 and peer.received == []
    entry = (await entries(app))["a@partner.test"]
    assert (entry.state, entry.last_status, entry.last_code) == ("deferred", "4.7.10", None)
    assert entry.last_reply is not None
    assert "TLS exigé" in entry.last_reply and "does not offer STARTTLS" in entry.last_reply


async def test_required_tls_domains_apply_to_routes_too(app: App, peer: Peer) -> None:
    app.settings.require_tls_domains = ["partner.test"]  # the route says opportunistic
    await queue.enqueue(app, message(), SENDER, [QueueRecipient("a@partner.test")])
    await OutboundWorker(app).run_once()
    assert (await entries(app))["a@partner.test"].last_status == "4.7.10"
    assert peer.received == []


async def test_tls_required_with_a_verified_certificate(
    app: App, peers: Peers, peer_tls: tuple[ssl.SSLContext, Path]
) -> None:
    context, ca_file = peer_tls
    peer = peers.start(tls=context)
    app.settings.transport = {"partner.test": TransportRoute("127.0.0.1", peer.port, "required")}
    app.settings.outbound_ca_file = str(ca_file)
    raw = message()
    await queue.enqueue(app, raw, SENDER, [QueueRecipient("a@partner.test")])
    assert (await OutboundWorker(app).run_once()).delivered == 1
    [received] = peer.received
    assert received.tls and received.content == raw


async def test_tls_required_with_an_unknown_ca_is_deferred(
    app: App, peers: Peers, peer_tls: tuple[ssl.SSLContext, Path]
) -> None:
    context, _ = peer_tls
    peer = peers.start(tls=context)
    app.settings.transport = {"partner.test": TransportRoute("127.0.0.1", peer.port, "required")}
    await queue.enqueue(app, message(), SENDER, [QueueRecipient("a@partner.test")])
    assert (await OutboundWorker(app).run_once()).deferred == 1
    entry = (await entries(app))["a@partner.test"]
    assert entry.last_status == "4.7.5" and peer.received == []
    assert entry.last_reply is not None and "certificate" in entry.last_reply


async def test_opportunistic_tls_encrypts_without_verifying(
    app: App, peers: Peers, peer_tls: tuple[ssl.SSLContext, Path]
) -> None:
    context, _ = peer_tls
    peer = peers.start(tls=context)
    app.settings.transport = {
        "partner.test": TransportRoute("127.0.0.1", peer.port, "opportunistic")
    }
    await queue.enqueue(app, message(), SENDER, [QueueRecipient("a@partner.test")])
    assert (await OutboundWorker(app).run_once()).delivered == 1
    assert peer.received[0].tls


# ----- MX routing through a real DNS server ------------------------------------------------------


async def test_mx_hosts_by_preference_then_implicit_mx(
    app: App,
    peers: Peers,
    local_dns: LocalDNS,  # noqa: F811
) -> None:
    peer = peers.start()
    app.settings.dns_resolver = local_dns.resolver_spec
    # preference 10 answers nothing (127.0.0.2: connection refused), 20 is our peer
    local_dns.add("mx.test", "MX", "20 backup.mx.test.")
    local_dns.add("mx.test", "MX", "10 primary.mx.test.")
    local_dns.add("primary.mx.test", "A", "127.0.0.2")
    local_dns.add("backup.mx.test", "A", "127.0.0.1")
    local_dns.add("implicit.test", "A", "127.0.0.1")  # no MX: the domain itself (RFC 5321 §5.1)
    await queue.enqueue(
        app, message(), SENDER, [QueueRecipient("a@mx.test"), QueueRecipient("b@implicit.test")]
    )
    stats = await OutboundWorker(app, mx_port=peer.port).run_once()
    assert stats.delivered == 2
    assert sorted(r.rcpt_tos[0] for r in peer.received) == ["a@mx.test", "b@implicit.test"]
    found = await entries(app)
    assert found["a@mx.test"].remote_mta == "backup.mx.test"
    assert found["b@implicit.test"].remote_mta == "implicit.test"
    asked = local_dns.queries
    assert asked.index(("mx.test", "MX")) < asked.index(("primary.mx.test", "A"))


async def test_mx_failures(app: App, peers: Peers, local_dns: LocalDNS) -> None:  # noqa: F811
    peer = peers.start()
    app.settings.dns_resolver = local_dns.resolver_spec
    local_dns.add("nullmx.test", "MX", "0 .")  # RFC 7505
    local_dns.add("exists.test", "TXT", "no mail here")
    local_dns.fail("flaky.test")  # SERVFAIL
    local_dns.add("nohost.test", "MX", "10 ghost.nohost.test.")
    local_dns.add("nohost.test", "TXT", "ghost has no address")
    addresses = ["a@nullmx.test", "b@missing.test", "c@exists.test", "d@flaky.test"]
    addresses.append("e@nohost.test")
    await queue.enqueue(app, message(), "", [QueueRecipient(a) for a in addresses])
    await OutboundWorker(app, mx_port=peer.port).run_once()
    found = await entries(app)
    assert {a: (found[a].state, found[a].last_status) for a in addresses} == {
        "a@nullmx.test": ("bounced", "5.1.10"),
        "b@missing.test": ("bounced", "5.1.2"),
        "c@exists.test": ("bounced", "5.4.4"),
        "d@flaky.test": ("deferred", "4.4.3"),
        "e@nohost.test": ("deferred", "4.4.4"),
    }
    assert peer.received == []


# ----- several nodes, and caducee serve ----------------------------------------------------------


async def test_two_workers_deliver_each_recipient_exactly_once(app: App, peer: Peer) -> None:
    for n in range(20):
        await queue.enqueue(
            app,
            message(f"message {n}"),
            SENDER,
            [QueueRecipient("a@partner.test"), QueueRecipient("b@partner.test")],
        )
    async with open_app(app.settings) as other:  # a second node on the same database
        first = OutboundWorker(app, batch_size=3, node_id="node-1")
        second = OutboundWorker(other, batch_size=3, node_id="node-2")
        claimed = Counter[str]()
        while True:
            one, two = await asyncio.gather(first.run_once(), second.run_once())
            claimed.update({"node-1": one.claimed, "node-2": two.claimed})
            if one.claimed == two.claimed == 0:
                break
    assert claimed["node-1"] > 0 and claimed["node-2"] > 0
    assert claimed.total() == 40
    deliveries = Counter(
        (parse(r.content)["Subject"], rcpt) for r in peer.received for rcpt in r.rcpt_tos
    )
    assert len(deliveries) == 40 and set(deliveries.values()) == {1}
    assert {e.state for e in await queue.list_queue(app, include_finished=True)} == {"delivered"}


async def test_serve_runs_the_worker_and_wakes_it_on_enqueue(app: App, peer: Peer) -> None:
    assert OutboundWorker in WORKER_FACTORIES
    async with running_workers(app, grace=5):
        await asyncio.sleep(0.1)  # the worker's first round finds nothing and waits
        await queue.enqueue(app, message(), SENDER, [QueueRecipient("a@partner.test")])
        for _ in range(100):
            if peer.received:
                break
            await asyncio.sleep(0.05)
    assert len(peer.received) == 1
    assert (await entries(app))["a@partner.test"].state == "delivered"


# ----- bad peers: silent, garbage -------------------------------------------------------------


class BadPeer:
    """A TCP server that is no SMTP server: it accepts and stays silent (a tarpit), or it
    answers garbage. Counts the connections it holds."""

    def __init__(self, greeting: bytes | None) -> None:
        self.greeting = greeting
        self.connections = 0
        self.open = 0
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> BadPeer:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open += 1
        try:
            if self.greeting is not None:
                writer.write(self.greeting)
                await writer.drain()
            while await reader.read(4096):  # whatever comes, never a valid SMTP reply
                if self.greeting is not None:
                    writer.write(b"\x00\xffgarbage\r\n")
                    await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self.open -= 1
            writer.close()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()


async def until_true(condition: Any, timeout: float = 60.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "never happened"
        await asyncio.sleep(0.05)


@pytest.mark.parametrize(
    "greeting", [None, b"HTTP/1.1 400 Bad Request\r\n\r\n"], ids=["tarpit", "garbage"]
)
async def test_a_bad_peer_never_holds_mail_for_other_domains(
    app: App, peer: Peer, greeting: bytes | None
) -> None:
    """A silent server (tarpit) or one answering garbage for ``slow.test``: while the worker is
    stuck with it, mail for ``partner.test`` queued after it is delivered; the bad domain's
    recipient is then deferred with back-off (a 4xx of ours, never a bounce), and the worker
    goes on."""
    bad = await BadPeer(greeting).start()
    app.settings.transport["slow.test"] = TransportRoute("127.0.0.1", bad.port, "opportunistic")
    worker = OutboundWorker(app, command_timeout=4.0, poll_seconds=0.5)
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    try:
        started = t0()
        await queue.enqueue(app, message("lent"), SENDER, [QueueRecipient("a@slow.test")])
        await until_true(lambda: bad.connections > 0)
        await queue.enqueue(app, message("rapide"), SENDER, [QueueRecipient("b@partner.test")])
        await until_true(lambda: len(peer.received) == 1)
        if greeting is None:
            # Delivered while the tarpit still holds its connection.
            assert bad.open == 1
        await until_true(lambda: bad.open == 0)

        async def deferred() -> queue.QueueEntry:
            return (await entries(app))["a@slow.test"]

        for _ in range(200):
            entry = await deferred()
            if entry.state == "deferred":
                break
            await asyncio.sleep(0.05)
        assert entry.state == "deferred" and entry.attempts == 1
        assert entry.last_status is not None and entry.last_status.startswith("4.")
        assert entry.next_attempt_at >= started + timedelta(minutes=5)
        # The peer's 250 arrives before the worker records the verdict: wait for the record.
        for _ in range(200):
            if (await entries(app))["b@partner.test"].state == "delivered":
                break
            await asyncio.sleep(0.05)
        assert (await entries(app))["b@partner.test"].state == "delivered"
        # The worker goes on: more mail for the good domain still flows.
        await queue.enqueue(app, message("encore"), SENDER, [QueueRecipient("c@partner.test")])
        await until_true(lambda: len(peer.received) == 2)
    finally:
        stop.set()
        await asyncio.wait_for(running, 30)
        await bad.stop()
