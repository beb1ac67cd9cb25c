"""The outbound queue service: enqueue (sealed, durable, audited), list, retry, delete."""

from __future__ import annotations

import asyncio
import json
import secrets
from datetime import UTC, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import select, text
from sqlalchemy.engine import Connection

from caducee.app import App
from caducee.errors import InvalidInput, MessageTooLarge, NotFound
from caducee.services import audit, queue, trace
from caducee.services.queue import QueueOrigin, QueueRecipient, backoff
from caducee.store import delivery_repo, queue_repo
from caducee.store.tables import (
    audit_log,
    blobs,
    metadata,
    outbound_messages,
    outbound_recipients,
)
from tests.pgcluster import PgCluster
from tests.services.helpers import person, practice
from tests.store.test_at_rest import files_containing


def message(marker: str = "hello") -> bytes:
    return (
        "From: Dr Martin <dr.martin@cabinet.test>\r\n"
        "To: confrere@partner.test\r\n"
        f"Subject: Résultats {marker}\r\n\r\n"
        f"Patient {marker} : HbA1c 7,2 %\r\n"
    ).encode()


async def audit_rows(app: App, action: str) -> list[tuple[str, str, dict[str, object]]]:
    async with app.db.read() as conn:
        rows = await conn.execute(
            select(audit_log.c.actor, audit_log.c.target, audit_log.c.details)
            .where(audit_log.c.action == action)
            .order_by(audit_log.c.seq)
        )
        return [(r.actor, r.target, json.loads(r.details)) for r in rows]


async def test_enqueue_stores_envelope_and_sealed_content(app: App) -> None:
    now = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    queue_id = await queue.enqueue(
        app,
        message(),
        "dr.martin@cabinet.test",
        [
            QueueRecipient("Confrere@Partner.TEST", notify=("success", "FAILURE")),
            QueueRecipient("confrere@partner.test"),  # same address: one row
            QueueRecipient("b@autre.test", orcpt="rfc822;b+2Bx@autre.test"),
        ],
        envid="ENV-1",
        ret="hdrs",
        origin=QueueOrigin(actor="dr.martin@cabinet.test", source="192.0.2.1", account_id=1),
        now=now,
    )
    entries = await queue.list_queue(app)
    assert [(e.address, e.domain, e.state, e.attempts) for e in entries] == [
        ("Confrere@partner.test", "partner.test", "queued", 0),
        ("b@autre.test", "autre.test", "queued", 0),
    ]
    first, second = entries
    assert first.message_id == second.message_id == queue_id
    assert first.notify == ("SUCCESS", "FAILURE") and second.notify == ()
    assert second.orcpt == "rfc822;b+2Bx@autre.test"
    assert (first.mail_from, first.envid, first.ret) == ("dr.martin@cabinet.test", "ENV-1", "HDRS")
    assert first.next_attempt_at == now and first.created_at == now
    assert await queue.read_content(app, first) == message()
    assert await audit_rows(app, "queue.enqueue") == [
        (
            "dr.martin@cabinet.test",
            "dr.martin@cabinet.test",
            {"queue_id": queue_id, "recipients": 2, "size": len(message())},
        )
    ]


async def test_queued_content_is_never_in_clear(
    app: App, backend: str, request: pytest.FixtureRequest
) -> None:
    marker = "ZQX" + secrets.token_hex(8).upper()
    await queue.enqueue(app, message(marker), "", [QueueRecipient("a@partner.test")])
    assert files_containing(app.settings.data_dir, [marker.encode()]) == []
    async with app.db.read() as conn:
        for table in (outbound_messages, outbound_recipients, blobs):
            for row in await conn.execute(select(table)):
                assert marker not in repr(tuple(row))
    if backend == "postgres":
        pg: PgCluster = request.getfixturevalue("pg_cluster")
        dump = pg.dump(app.settings.database_url.rsplit("/", 1)[1])
        assert b"COPY public.outbound_messages" in dump and marker.encode() not in dump


async def test_enqueue_refuses_bad_input(app: App) -> None:
    ok = [QueueRecipient("a@partner.test")]
    with pytest.raises(InvalidInput):
        await queue.enqueue(app, b"", "", ok)
    with pytest.raises(InvalidInput):
        await queue.enqueue(app, message(), "", [])
    for bad in ("nobody", "a b@partner.test", "<a@partner.test>", "a@", "x\r\n@partner.test"):
        with pytest.raises(InvalidInput):
            await queue.enqueue(app, message(), "", [QueueRecipient(bad)])
    with pytest.raises(InvalidInput):
        await queue.enqueue(
            app, message(), "", [QueueRecipient("a@p.test", notify=("NEVER", "DELAY"))]
        )
    with pytest.raises(InvalidInput):
        await queue.enqueue(app, message(), "", [QueueRecipient("a@p.test", notify=("SOMETIMES",))])
    with pytest.raises(InvalidInput):
        await queue.enqueue(app, message(), "", [QueueRecipient("a@p.test", orcpt="rfc822;a b")])
    with pytest.raises(InvalidInput):
        await queue.enqueue(app, message(), "", ok, ret="BODY")
    with pytest.raises(InvalidInput):
        await queue.enqueue(app, message(), "", ok, envid="x" * 101)
    app.settings.max_message_bytes = 100
    with pytest.raises(MessageTooLarge):
        await queue.enqueue(app, message() + b"x" * 100, "", ok)
    assert await queue.list_queue(app, include_finished=True) == []


async def test_retry_makes_waiting_recipients_due(app: App) -> None:
    later = datetime.now(UTC) + timedelta(hours=2)
    first = await queue.enqueue(app, message(), "a@cabinet.test", [QueueRecipient("x@p.test")])
    second = await queue.enqueue(app, message(), "", [QueueRecipient("y@p.test")])
    async with app.db.write() as conn:
        await conn.execute(outbound_recipients.update().values(next_attempt_at=later))
    now = datetime.now(UTC)
    assert await queue.retry(app, first, now=now) == 1
    due = {e.message_id: e.next_attempt_at for e in await queue.list_queue(app)}
    assert due == {first: now, second: later}
    assert await queue.retry(app, None, now=now) == 2
    assert [d["queue_id"] for _, _, d in await audit_rows(app, "queue.retry")] == [
        first,
        first,
        second,
    ]
    with pytest.raises(NotFound):
        await queue.retry(app, 999)


async def test_delete_removes_message_and_content(app: App) -> None:
    queue_id = await queue.enqueue(app, message(), "a@cabinet.test", [QueueRecipient("x@p.test")])
    [entry] = await queue.list_queue(app)
    blob_id = entry.blob_id
    assert blob_id is not None
    assert await queue.delete(app, queue_id) == 1
    assert await queue.list_queue(app, include_finished=True) == []
    async with app.db.read() as conn:
        with pytest.raises(NotFound):
            await app.blobs.get(conn, blob_id)
    [(actor, target, details)] = await audit_rows(app, "queue.delete")
    assert (actor, target, details["queue_id"], details["bounce"]) == (
        "cli",
        "a@cabinet.test",
        queue_id,
        False,
    )
    with pytest.raises(NotFound):
        await queue.delete(app, queue_id)


async def test_delete_with_bounce_marks_a_failure_report(app: App) -> None:
    queue_id = await queue.enqueue(
        app,
        message(),
        "a@cabinet.test",
        [QueueRecipient("x@p.test"), QueueRecipient("y@p.test", notify=("NEVER",))],
    )
    assert await queue.delete(app, queue_id, bounce=True) == 2
    entries = await queue.list_queue(app, include_finished=True)
    assert [(e.state, e.report, e.last_status) for e in entries] == [
        ("bounced", "failed", "5.0.0"),
        ("bounced", "", "5.0.0"),  # NOTIFY=NEVER: no report
    ]


async def test_null_sender_never_gets_a_report_flag(app: App) -> None:
    queue_id = await queue.enqueue(app, message(), "<>", [QueueRecipient("x@p.test")])
    await queue.delete(app, queue_id, bounce=True)
    [entry] = await queue.list_queue(app, include_finished=True)
    assert entry.mail_from == "" and entry.report == ""


def test_backoff_schedule() -> None:
    # RFC 5321 §4.5.4.1: short first, then every 4 hours
    assert [backoff(n) for n in range(1, 9)] == [
        timedelta(minutes=5),
        timedelta(minutes=15),
        timedelta(minutes=30),
        timedelta(hours=1),
        timedelta(hours=2),
        timedelta(hours=4),
        timedelta(hours=4),
        timedelta(hours=4),
    ]


async def test_claims_are_exclusive_until_the_lease_ends(app: App) -> None:
    await queue.enqueue(app, message(), "", [QueueRecipient(f"r{i}@p.test") for i in range(5)])
    now = datetime.now(UTC) + timedelta(seconds=1)
    until = now + timedelta(minutes=10)
    async with app.db.write() as conn:
        first = await queue_repo.claim_due(conn, now, "node-a", until, 3)
    async with app.db.write() as conn:
        second = await queue_repo.claim_due(conn, now, "node-b", until, 10)
    assert len(first) == 3 and len(second) == 2
    assert not {r.id for r in first} & {r.id for r in second}
    async with app.db.write() as conn:
        assert await queue_repo.claim_due(conn, now, "node-c", until, 10) == []
        # a lost lease cannot record a result
        assert not await queue_repo.save_attempt(conn, first[0].id, "node-b", {"attempts": 1})
    async with app.db.write() as conn:  # after the lease expires, another node may take them
        again = await queue_repo.claim_due(conn, until + timedelta(seconds=1), "node-c", until, 10)
    assert len(again) == 5


async def test_migration_matches_the_tables(app: App) -> None:
    def diff(conn: Connection) -> list[object]:
        context = MigrationContext.configure(conn)
        return [
            d
            for d in compare_metadata(context, metadata)
            if "outbound" in repr(d)  # other areas are checked by their own tests
        ]

    async with app.db.read() as conn:
        assert await conn.run_sync(diff) == []


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)  # SQLite: one writer at a time
async def test_enqueue_beside_a_delivery_to_the_senders_mailbox_does_not_deadlock(app: App) -> None:
    """Found by the two-node soak (bench/soak.py): a practitioner's message queued for a remote
    recipient (its trace rows name the sender's mailbox) while a delivery to that mailbox
    commits (the mailbox locked, then the audit record). The queueing took the audit anchor
    before the trace rows waited for the mailbox: PostgreSQL killed one of the two as a
    deadlock, and the delivery's client got a 451. Here the delivery holds the mailbox and
    appends its audit record only once the queueing waits for the mailbox: both commit."""
    await practice(app)
    _, box = await person(app, "dr@cabinet.test")
    origin = QueueOrigin(actor="dr@cabinet.test", source="192.0.2.1", mailbox_id=box.id)
    delivery_holds_the_mailbox = asyncio.Event()
    async with app.db.write() as delivery:
        await delivery.run_sync(
            lambda conn: delivery_repo.lock_group_state(conn, [box.id], ["INBOX"])
        )
        delivery_holds_the_mailbox.set()
        queued = asyncio.create_task(
            queue.enqueue(
                app,
                message(),
                "dr@cabinet.test",
                [QueueRecipient("confrere@partner.test")],
                origin=origin,
                trace_key=trace.trace_key("<envoi-1@cabinet.test>"),
            )
        )
        # The queueing's transaction waits for the mailbox the delivery holds.
        while True:
            async with app.db.read() as conn:
                waiting = await conn.scalar(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                        "AND query LIKE 'INSERT INTO message_trace%'"
                    )
                )
            if waiting:
                break
            assert not queued.done(), queued.exception()
            await asyncio.sleep(0.05)
        await audit.append(
            delivery,
            audit.AuditEvent(
                actor="mx.ailleurs.test", action="message.deliver", target="dr@cabinet.test"
            ),
        )
    queue_id = await queued
    assert [r[2]["queue_id"] for r in await audit_rows(app, "queue.enqueue")] == [queue_id]
    assert len(await audit_rows(app, "message.deliver")) == 1
    assert (await audit.verify(app.db)).ok
