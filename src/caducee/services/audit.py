"""The audit trail: append-only, content-free, hash-chained.

Each record stores the SHA-256 of the previous record (``prev_hash``) and its own ``hash`` over a
canonical serialisation of its fields, so editing, removing or reordering records breaks the chain
at a place :func:`verify` names. Records are written in the caller's transaction, so an action
and its record commit together. Appends are serialised by locking the ``audit_anchor`` row
(PostgreSQL) or by SQLite's single writer.

Purging (retention) deletes the oldest records and moves the anchor to the last purged record's
sequence number and hash, then appends an ``audit.purge`` record: the remaining chain still
verifies from the anchor.

Records never contain message content, passwords, codes or tokens: only who, what, which mailbox
or account, when, from where, and the result.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from caducee.errors import InvalidInput
from caducee.store.database import Database
from caducee.store.tables import audit_anchor, audit_log

GENESIS_HASH = "0" * 64
Detail = str | int | bool | None


@dataclass(frozen=True)
class AuditEvent:
    actor: str  # account login, or "cli" / "system"
    action: str  # e.g. "account.create", "auth.login", "delegation.use"
    target: str = ""  # mailbox address or account login acted upon
    source: str = ""  # client IP address, "cli", "web", ...
    result: str = "ok"  # "ok", "denied", "failed"
    details: Mapping[str, Detail] = field(default_factory=dict)


@dataclass(frozen=True)
class AuditRecord:
    seq: int
    ts: datetime
    actor: str
    action: str
    target: str
    source: str
    result: str
    details: str
    prev_hash: str
    hash: str


def _iso(ts: datetime) -> str:
    if ts.tzinfo is None:  # SQLite returns naive datetimes: they are stored in UTC
        ts = ts.replace(tzinfo=UTC)
    return ts.astimezone(UTC).isoformat(timespec="microseconds")


def record_hash(
    prev_hash: str,
    seq: int,
    ts: datetime,
    actor: str,
    action: str,
    target: str,
    source: str,
    result: str,
    details: str,
) -> str:
    canonical = json.dumps(
        [prev_hash, seq, _iso(ts), actor, action, target, source, result, details],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


async def append(conn: AsyncConnection, event: AuditEvent, *, now: datetime | None = None) -> int:
    """Append one record in the caller's transaction; return its sequence number."""
    anchor = (
        await conn.execute(select(audit_anchor).where(audit_anchor.c.id == 1).with_for_update())
    ).one()
    last = (
        await conn.execute(
            select(audit_log.c.seq, audit_log.c.hash).order_by(audit_log.c.seq.desc()).limit(1)
        )
    ).first()
    prev_seq, prev_hash = (last.seq, last.hash) if last else (anchor.seq, anchor.hash)
    seq = int(prev_seq) + 1
    ts = (now or datetime.now(UTC)).astimezone(UTC)
    details = json.dumps(dict(event.details), ensure_ascii=False, sort_keys=True)
    digest = record_hash(
        prev_hash,
        seq,
        ts,
        event.actor,
        event.action,
        event.target,
        event.source,
        event.result,
        details,
    )
    await conn.execute(
        insert(audit_log).values(
            seq=seq,
            ts=ts,
            actor=event.actor,
            action=event.action,
            target=event.target,
            source=event.source,
            result=event.result,
            details=details,
            prev_hash=prev_hash,
            hash=digest,
        )
    )
    return seq


async def record(db: Database, event: AuditEvent) -> int:
    """Append one record in its own transaction (for events with no other write)."""
    async with db.write() as conn:
        return await append(conn, event)


def _row_to_record(row: object) -> AuditRecord:
    return AuditRecord(**{name: getattr(row, name) for name in AuditRecord.__dataclass_fields__})


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    checked: int
    first_bad_seq: int | None = None
    reason_fr: str = ""
    reason_en: str = ""


async def verify(db: Database, batch: int = 1000) -> VerifyResult:
    """Walk the whole chain from the anchor; report the first record that does not fit."""
    async with db.read() as conn:
        anchor = (await conn.execute(select(audit_anchor).where(audit_anchor.c.id == 1))).one()
        expected_seq, expected_prev = anchor.seq + 1, anchor.hash
        checked = 0
        last_seq = anchor.seq
        while True:
            rows = (
                await conn.execute(
                    select(audit_log)
                    .where(audit_log.c.seq > last_seq)
                    .order_by(audit_log.c.seq)
                    .limit(batch)
                )
            ).all()
            for row in rows:
                rec = _row_to_record(row)
                if rec.seq != expected_seq:
                    return VerifyResult(
                        False,
                        checked,
                        expected_seq,
                        f"l'enregistrement n° {expected_seq} manque (le suivant présent est le "
                        f"n° {rec.seq}) : supprimé",
                        f"record #{expected_seq} is missing (next present is #{rec.seq}): removed",
                    )
                if rec.prev_hash != expected_prev:
                    return VerifyResult(
                        False,
                        checked,
                        rec.seq,
                        f"l'enregistrement n° {rec.seq} ne suit pas le précédent "
                        "(chaînage rompu : supprimé, déplacé ou modifié)",
                        f"record #{rec.seq} does not follow the previous one "
                        "(broken chain: removed, moved or edited)",
                    )
                computed = record_hash(
                    rec.prev_hash,
                    rec.seq,
                    rec.ts,
                    rec.actor,
                    rec.action,
                    rec.target,
                    rec.source,
                    rec.result,
                    rec.details,
                )
                if computed != rec.hash:
                    return VerifyResult(
                        False,
                        checked,
                        rec.seq,
                        f"l'enregistrement n° {rec.seq} a été modifié (empreinte invalide)",
                        f"record #{rec.seq} was edited (hash mismatch)",
                    )
                checked += 1
                expected_seq, expected_prev = rec.seq + 1, rec.hash
                last_seq = rec.seq
            if len(rows) < batch:
                return VerifyResult(True, checked)


async def iter_records(
    db: Database, since: datetime | None = None, until: datetime | None = None, batch: int = 1000
) -> AsyncIterator[AuditRecord]:
    """Records in order, optionally restricted to ``since <= ts < until``."""
    last_seq = -1
    while True:
        query = select(audit_log).where(audit_log.c.seq > last_seq)
        if since is not None:
            query = query.where(audit_log.c.ts >= since)
        if until is not None:
            query = query.where(audit_log.c.ts < until)
        async with db.read() as conn:
            rows = (await conn.execute(query.order_by(audit_log.c.seq).limit(batch))).all()
        for row in rows:
            rec = _row_to_record(row)
            last_seq = rec.seq
            yield rec
        if len(rows) < batch:
            return


EXPORT_FIELDS = (
    "seq",
    "ts",
    "actor",
    "action",
    "target",
    "source",
    "result",
    "details",
    "prev_hash",
    "hash",
)


def _export_row(rec: AuditRecord) -> dict[str, str | int]:
    return {
        "seq": rec.seq,
        "ts": _iso(rec.ts),
        "actor": rec.actor,
        "action": rec.action,
        "target": rec.target,
        "source": rec.source,
        "result": rec.result,
        "details": rec.details,
        "prev_hash": rec.prev_hash,
        "hash": rec.hash,
    }


async def export(
    db: Database, fmt: str, since: datetime | None = None, until: datetime | None = None
) -> str:
    """The records of a period as CSV (with a header line) or JSON (an array)."""
    if fmt not in ("csv", "json"):
        raise InvalidInput(
            f"Format d'export inconnu « {fmt} » : csv ou json.",
            f"Unknown export format '{fmt}': csv or json.",
        )
    rows = [_export_row(rec) async for rec in iter_records(db, since, until)]
    if fmt == "json":
        return json.dumps(rows, ensure_ascii=False, indent=1) + "\n"
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=EXPORT_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


async def purge(db: Database, retention_days: int, *, now: datetime | None = None) -> int:
    """Delete records older than the retention period; keep the chain verifiable.

    Returns how many records were deleted. The newest record is never purged, so the chain's
    head always stays in the table.
    """
    if retention_days < 1:
        raise InvalidInput(
            "La durée de conservation du journal doit être d'au moins 1 jour.",
            "Audit retention must be at least 1 day.",
        )
    cutoff = (now or datetime.now(UTC)) - timedelta(days=retention_days)
    async with db.write() as conn:
        await conn.execute(select(audit_anchor).where(audit_anchor.c.id == 1).with_for_update())
        newest = await conn.scalar(select(audit_log.c.seq).order_by(audit_log.c.seq.desc()))
        last_old = (
            await conn.execute(
                select(audit_log.c.seq, audit_log.c.hash)
                .where(audit_log.c.ts < cutoff)
                .where(audit_log.c.seq != newest)
                .order_by(audit_log.c.seq.desc())
                .limit(1)
            )
        ).first()
        if last_old is None:
            return 0
        result = await conn.execute(delete(audit_log).where(audit_log.c.seq <= last_old.seq))
        await conn.execute(
            update(audit_anchor)
            .where(audit_anchor.c.id == 1)
            .values(seq=last_old.seq, hash=last_old.hash)
        )
        deleted = int(result.rowcount or 0)
        await append(
            conn,
            AuditEvent(
                actor="system",
                action="audit.purge",
                source="retention",
                details={
                    "deleted": deleted,
                    "up_to_seq": last_old.seq,
                    "retention_days": retention_days,
                },
            ),
        )
        return deleted
