"""Recipients' addresses at rest (issue 13, defect 6): the sender's trace, finished queue rows and
the audit trail keep a keyed pseudonym and a sealed copy, never the address; the practice still
sees and finds it; the trace has a retention; rows written before migration 0019 are converted.

Delivery runs against a real local SMTP server (aiosmtpd, ``tests/interop/test_outbound.py``).
"""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, select, update

from caducee.app import App
from caducee.flows import maintenance
from caducee.flows.outbound import OutboundWorker
from caducee.health import pickup
from caducee.services import queue, trace
from caducee.services.queue import QueueOrigin, QueueRecipient
from caducee.store.tables import (
    audit_log,
    message_trace,
    metadata,
    outbound_messages,
    outbound_recipients,
    pickups,
)
from tests.health.pickups import PATIENT, cabinet, deposit
from tests.interop.test_outbound import Peer, peer, peers  # noqa: F401 (fixtures)
from tests.pgcluster import PgCluster
from tests.services.helpers import person, practice

SENDER = "dr.martin@cabinet.test"
MESSAGE_ID = "<cr-1@cabinet.test>"


def letter() -> bytes:
    return (
        f"From: Dr Martin <{SENDER}>\r\n"
        "To: undisclosed-recipients:;\r\n"
        "Subject: Vos résultats\r\n"
        f"Message-ID: {MESSAGE_ID}\r\n"
        "\r\n"
        "Bonjour.\r\n"
    ).encode()


async def rows_containing(app: App, needle: str, *, waiting: bool = False) -> list[str]:
    """Every row of every table (what a dump of the database shows) that contains ``needle``;
    with ``waiting``, queue rows still waiting for delivery (in clear on purpose) are skipped."""
    found = []
    async with app.db.read() as conn:
        for table in metadata.sorted_tables:
            query = select(table)
            if waiting and table is outbound_recipients:
                query = query.where(table.c.state.not_in(["queued", "deferred"]))
            for row in await conn.execute(query):
                if needle.lower() in repr(tuple(row)).lower():
                    found.append(f"{table.name}: {tuple(row)!r}")
    return found


async def test_trace_queue_and_audit_keep_no_recipient_address(
    app: App,
    peer: Peer,  # noqa: F811
    backend: str,
    request: pytest.FixtureRequest,
) -> None:
    marker = "zqx" + secrets.token_hex(6)
    patient = f"Patient.{marker}@partner.test"
    gone = f"gone.{marker}@partner.test"
    peer.handler.rcpt_always[gone] = f"550 5.1.1 <{gone}>: Recipient address rejected"
    await practice(app)
    _, box = await person(app, SENDER)
    key = trace.trace_key(MESSAGE_ID)
    assert key is not None
    queue_id = await queue.enqueue(
        app,
        letter(),
        SENDER,
        [QueueRecipient(patient, orcpt=f"rfc822;{patient}"), QueueRecipient(gone)],
        origin=QueueOrigin(actor=SENDER, mailbox_id=box.id),
        trace_key=key,
    )
    worker = OutboundWorker(app)
    stats = await worker.run_once()
    assert (stats.delivered, stats.bounced, stats.reports) == (1, 1, 1)

    # The sender's « suivi de l'envoi » still shows each recipient with its steps…
    events = await trace.events(app, box.id, MESSAGE_ID)
    assert [(e.recipient, e.event) for e in events] == [
        (patient, "queued"),
        (gone, "queued"),
        (patient, "delivered"),
        (gone, "bounced"),
    ]
    assert "Recipient address rejected" in events[-1].detail
    assert gone not in events[-1].detail  # the remote reply quoted the address
    # …the practice finds a recipient's rows from the address it types (any case)…
    assert await trace.sent_to(app, [key], patient.upper()) == [(key, "queued"), (key, "delivered")]
    # …the queue's history (caducee queue list --all, admin page) shows them as before…
    entries = {e.address: e for e in await queue.list_queue(app, include_finished=True)}
    assert entries[patient].state == "delivered" and entries[patient].orcpt == f"rfc822;{patient}"
    assert entries[gone].state == "bounced"
    assert entries[gone].last_reply == f"5.1.1 <{gone}>: Recipient address rejected"
    # …and the audit names each recipient by the pseudonym the practice can compute.
    async with app.db.read() as conn:
        audited = [
            (row.action, row.target, json.loads(row.details)["mailbox"])
            for row in await conn.execute(
                select(audit_log).where(
                    audit_log.c.action.in_(["queue.delivered", "queue.bounced"])
                )
            )
        ]
    assert sorted(audited) == sorted(
        [
            ("queue.delivered", await queue.audit_target(app, patient, box.id), box.id),
            ("queue.bounced", await queue.audit_target(app, gone, box.id), box.id),
        ]
    )

    # Yet no table holds either address once both are final: a dump shows nothing.
    await worker.cleanup()
    assert await rows_containing(app, marker) == []
    if backend == "postgres":
        pg: PgCluster = request.getfixturevalue("pg_cluster")
        dump = pg.dump(app.settings.database_url.rsplit("/", 1)[1])
        assert b"COPY public.message_trace" in dump
        assert marker.encode() not in dump.lower()
    assert queue_id > 0


async def test_a_waiting_recipient_stays_in_clear_until_final(
    app: App,
    peer: Peer,  # noqa: F811
) -> None:
    """The queue needs the address to deliver: sealed only when the recipient is final."""
    peer.handler.rcpt_always["later@partner.test"] = "451 4.3.0 Try again later"
    await queue.enqueue(app, letter(), SENDER, [QueueRecipient("later@partner.test")])
    await OutboundWorker(app).run_once()
    async with app.db.read() as conn:
        row = (await conn.execute(select(outbound_recipients))).one()
    assert (row.state, row.address, row.address_sealed) == (
        "deferred",
        "later@partner.test",
        None,
    )
    await queue.delete(app, row.message_id, bounce=True)  # administrator: final
    async with app.db.read() as conn:
        row = (await conn.execute(select(outbound_recipients))).one()
    assert (row.state, row.address, row.orcpt) == ("bounced", "", None)
    assert row.address_sealed is not None
    [entry] = await queue.list_queue(app, include_finished=True)
    assert entry.address == "later@partner.test"


async def test_trace_retention_purges_old_rows(app: App) -> None:
    await practice(app)
    _, box = await person(app, SENDER)
    key = trace.trace_key(MESSAGE_ID)
    assert key is not None
    now = datetime.now(UTC)
    async with app.db.write() as conn:
        for event, age in (("queued", 400), ("delivered", 300)):
            await trace.record(
                app, conn, box.id, key, "a@partner.test", event, now=now - timedelta(days=age)
            )
    assert app.settings.trace_retention_days == 365  # the default: a year
    retention = tuple(t for t in maintenance.TASKS if t.name == "trace-retention")
    assert await maintenance.run_once(app, retention) == {"trace-retention": 1}
    assert [e.event for e in await trace.events(app, box.id, MESSAGE_ID)] == ["delivered"]
    app.settings.trace_retention_days = 0  # kept forever
    assert await maintenance.run_once(app, retention) == {"trace-retention": 0}
    assert [e.event for e in await trace.events(app, box.id, MESSAGE_ID)] == ["delivered"]


async def test_addresses_stored_before_0019_are_converted(app: App) -> None:
    cab = await cabinet(app)
    key = trace.trace_key(MESSAGE_ID)
    assert key is not None
    deposited = await deposit(app, cab)  # a pickup for PATIENT, traced under MESSAGE_ID
    now = datetime.now(UTC)
    async with app.db.write() as conn:  # what revision 0017 wrote: addresses in clear
        await conn.execute(
            update(pickups).values(trace_recipient_key=None, trace_recipient_sealed=None)
        )
        await conn.execute(
            update(message_trace).values(
                recipient=PATIENT, recipient_key=None, recipient_sealed=None
            )
        )
        await conn.execute(
            insert(message_trace).values(
                mailbox_id=cab.mailbox.id,
                trace_key=key,
                recipient="old@partner.test",
                event="bounced",
                detail="5.1.1 550 <old@partner.test>: unknown",
                ts=now,
            )
        )
        queue_id = (
            await conn.execute(
                insert(outbound_messages)
                .values(size=1, mail_from=SENDER, created_at=now)
                .returning(outbound_messages.c.id)
            )
        ).scalar_one()
        await conn.execute(
            insert(outbound_recipients).values(
                message_id=queue_id,
                address="old@partner.test",
                domain="partner.test",
                state="delivered",
                next_attempt_at=now,
                finished_at=now,
                orcpt="rfc822;old@partner.test",
                last_reply="2.0.0 <old@partner.test> ok",
            )
        )
    assert await rows_containing(app, "old@partner.test") != []

    converted = await maintenance.conceal_clear_addresses(app)
    assert converted >= 3
    assert await maintenance.conceal_clear_addresses(app) == 0  # once is enough
    assert await rows_containing(app, "old@partner.test") == []
    # the pickup's notice to the patient waits in the queue: in clear until it is delivered
    assert await rows_containing(app, PATIENT, waiting=True) == []
    events = await trace.events(app, cab.mailbox.id, MESSAGE_ID)
    assert ("old@partner.test", "bounced") in [(e.recipient, e.event) for e in events]
    assert (PATIENT, "deposited") in [(e.recipient, e.event) for e in events]
    [entry] = [
        e for e in await queue.list_queue(app, include_finished=True) if e.state == "delivered"
    ]
    assert (entry.address, entry.orcpt, entry.last_reply) == (
        "old@partner.test",
        "rfc822;old@partner.test",
        "2.0.0 <old@partner.test> ok",
    )
    # the converted pickup goes on tracing its events under the patient
    await pickup.revoke(app, deposited.id, cab.mailbox.id, actor=SENDER, source="192.0.2.1")
    events = await trace.events(app, cab.mailbox.id, MESSAGE_ID)
    assert (PATIENT, "revoked") in [(e.recipient, e.event) for e in events]
    assert await rows_containing(app, PATIENT, waiting=True) == []
