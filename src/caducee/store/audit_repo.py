"""The audit trail: append-only, content-free, HMAC-chained, with a sealed head.

Each record stores the MAC of the previous record (``prev_hash``) and its own MAC (``hash``):
HMAC-SHA256 over a canonical serialisation of its fields, keyed with a key derived by HKDF from
the ``system`` data key, which only the master key unwraps. Database access alone therefore
cannot recompute the chain after editing, removing or reordering records, and :func:`verify`
names the first record that does not fit. Records written before migration 0018 keep their
SHA-256 chain (``chain`` = 1) up to ``audit_anchor.keyed_from``; a record at or after it must be
HMAC-chained, so it cannot be downgraded to the keyless hash.

The anchor row holds where the chain starts (``seq``, ``hash``: moved by purges), its head (the
last record's sequence number and MAC), and an HMAC over both. Every append updates the head in
the same transaction, so deleting the last records shows: the head points past the last record
left (« fin du journal manquante »), and rewinding the head needs the key. Appends are serialised
by locking the anchor row (PostgreSQL) or by SQLite's single writer; an anchor whose MAC does not
verify refuses further appends (fail closed) rather than re-sealing a forged head.

Purging (retention) deletes the oldest records and moves the anchor's start to the last purged
record, then appends an ``audit.purge`` record: the remaining chain still verifies.

Records never contain message content, passwords, codes or tokens: only who, what, which mailbox
or account, when, from where, and the result.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from caducee.domain.audit import (
    CHAIN_HMAC,
    CHAIN_SHA256,
    AuditEvent,
    AuditRecord,
    VerifyResult,
)
from caducee.errors import ConfigurationError, IntegrityError
from caducee.store import batch_sql
from caducee.store.database import DATABASE_OPTION, Database
from caducee.store.keyring import SYSTEM_SCOPE
from caducee.store.tables import audit_anchor, audit_log
from caducee.store.times import aware

GENESIS_HASH = "0" * 64
#: The HKDF label of the chain key (a key for this use only, independent of the data key's).
KEY_INFO = b"caducee:audit-chain:hmac-sha256:v2"


def iso_utc(ts: datetime) -> str:
    """A stored timestamp as ISO 8601 in UTC, to the microsecond (what the MACs cover)."""
    return aware(ts).isoformat(timespec="microseconds")


def _canonical(items: Sequence[object]) -> bytes:
    return json.dumps(list(items), ensure_ascii=False, separators=(",", ":")).encode("utf-8")


#: The fields a record's hash or MAC covers, in order: prev_hash, seq, ts, actor, action,
#: target, source, result, details.
RecordFields = tuple[str, int, datetime, str, str, str, str, str, str]


def _record_items(fields: RecordFields) -> list[object]:
    prev_hash, seq, ts, *rest = fields
    return [prev_hash, seq, iso_utc(ts), *rest]


def record_hash(*fields: *RecordFields) -> str:
    """The keyless SHA-256 of a record of the first chain (written before migration 0018)."""
    return hashlib.sha256(_canonical(_record_items(fields))).hexdigest()


def record_mac(key: bytes, *fields: *RecordFields) -> str:
    """The HMAC-SHA256 of a record of the keyed chain."""
    canonical = _canonical(["record", *_record_items(fields)])
    return hmac.new(key, canonical, hashlib.sha256).hexdigest()


def derive_key(system_key: bytes) -> bytes:
    """The chain key: HKDF-SHA256 of the system data key (computed, never stored)."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=KEY_INFO).derive(system_key)


def _keyring_of(db: Database) -> Any:
    if db.keyring is None:
        raise ConfigurationError(
            "Journal d'audit : la clé maîtresse n'est pas chargée (ouvrez la base par open_app).",
            "Audit trail: the master key is not loaded (open the database with open_app).",
        )
    return db.keyring


async def chain_key(db: Database, conn: AsyncConnection | None = None) -> bytes:
    """The chain key of this installation. ``conn`` (a write transaction) is used if the system
    data key must be read; without it, a short write transaction of its own."""
    keyring = _keyring_of(db)
    system = keyring.cached_key(SYSTEM_SCOPE)
    if system is None:
        if conn is not None:
            system = await keyring.data_key(conn, SYSTEM_SCOPE)
        else:
            async with db.write() as own:
                system = await keyring.data_key(own, SYSTEM_SCOPE)
    return derive_key(system)


@dataclass(frozen=True)
class Anchor:
    """Where the chain starts (after purges), its head, and the anchor's MAC over both."""

    seq: int
    hash: str
    head_seq: int | None
    head_hash: str | None
    keyed_from: int | None
    mac: str | None

    def expected_mac(self, key: bytes) -> str:
        canonical = _canonical(
            ["anchor", self.seq, self.hash, self.head_seq, self.head_hash, self.keyed_from]
        )
        return hmac.new(key, canonical, hashlib.sha256).hexdigest()

    def sealed_by(self, key: bytes) -> bool:
        return self.mac is not None and hmac.compare_digest(self.mac, self.expected_mac(key))

    def resealed(self, key: bytes, **changes: Any) -> Anchor:
        values = {**self.__dict__, **changes, "mac": None}
        unsealed = Anchor(**values)
        return Anchor(**{**values, "mac": unsealed.expected_mac(key)})

    def values(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _anchor(row: Any) -> Anchor:
    return Anchor(
        seq=int(row.seq),
        hash=row.hash,
        head_seq=None if row.head_seq is None else int(row.head_seq),
        head_hash=row.head_hash,
        keyed_from=None if row.keyed_from is None else int(row.keyed_from),
        mac=row.mac,
    )


_LOCK_ANCHOR = select(audit_anchor).where(audit_anchor.c.id == 1).with_for_update()
_SAVE_ANCHOR = update(audit_anchor).where(audit_anchor.c.id == 1)
_ANCHOR_FIELDS = ("seq", "hash", "head_seq", "head_hash", "keyed_from", "mac")
#: The same update with its values bound (built once): the delivery group commit saves the
#: anchor through ``batch_sql.execute``, without SQLAlchemy's per-call work.
_SAVE_ANCHOR_BOUND = _SAVE_ANCHOR.values(
    {name: bindparam(f"new_{name}", type_=audit_anchor.c[name].type) for name in _ANCHOR_FIELDS}
)


def tampered_anchor() -> IntegrityError:
    return IntegrityError(
        "Journal d'audit altéré : son ancre (tête scellée) ne vérifie pas. Aucun enregistrement "
        "n'est ajouté ; lancez « caducee audit verify » et restaurez la base.",
        "Audit trail tampered with: its anchor (sealed head) does not verify. No record is "
        "added; run 'caducee audit verify' and restore the database.",
    )


def _chain(
    key: bytes, anchor: Anchor, events: Sequence[AuditEvent], now: datetime | None
) -> tuple[list[dict[str, Any]], Anchor]:
    """The rows continuing the chain from the anchor's head, and the anchor sealing the new
    head. Refuses an anchor whose MAC does not verify (it would re-seal a forged head)."""
    if not anchor.sealed_by(key) or anchor.head_seq is None or anchor.head_hash is None:
        raise tampered_anchor()
    seq, prev = anchor.head_seq, anchor.head_hash
    ts = (now or datetime.now(UTC)).astimezone(UTC)
    rows: list[dict[str, Any]] = []
    for event in events:
        seq += 1
        details = json.dumps(dict(event.details), ensure_ascii=False, sort_keys=True)
        digest = record_mac(
            key,
            prev,
            seq,
            ts,
            event.actor,
            event.action,
            event.target,
            event.source,
            event.result,
            details,
        )
        rows.append(
            {
                "seq": seq,
                "ts": ts,
                "actor": event.actor,
                "action": event.action,
                "target": event.target,
                "source": event.source,
                "result": event.result,
                "details": details,
                "prev_hash": prev,
                "hash": digest,
                "chain": CHAIN_HMAC,
            }
        )
        prev = digest
    return rows, anchor.resealed(key, head_seq=seq, head_hash=prev)


async def append_many(
    conn: AsyncConnection, events: Sequence[AuditEvent], *, now: datetime | None = None
) -> list[int]:
    """Append records in the caller's write transaction; return their sequence numbers."""
    if not events:
        return []
    sync = conn.sync_connection
    db = sync.get_execution_options().get(DATABASE_OPTION) if sync is not None else None
    if not isinstance(db, Database):
        raise ConfigurationError(
            "Journal d'audit : écriture hors d'une transaction d'écriture de la base.",
            "Audit trail: append outside a database write transaction.",
        )
    key = await chain_key(db, conn)
    anchor = _anchor((await conn.execute(_LOCK_ANCHOR)).one())
    rows, head = _chain(key, anchor, events, now)
    await conn.execute(insert(audit_log), rows)
    await conn.execute(_SAVE_ANCHOR.values(head.values()))
    return [row["seq"] for row in rows]


async def append(conn: AsyncConnection, event: AuditEvent, *, now: datetime | None = None) -> int:
    """Append one record in the caller's transaction; return its sequence number."""
    [seq] = await append_many(conn, [event], now=now)
    return seq


def append_sync(
    conn: Connection, key: bytes, events: Sequence[AuditEvent], *, now: datetime | None = None
) -> list[int]:
    """:func:`append_many` for a synchronous transaction (the delivery group commit): one
    multi-row INSERT for all the records. ``key`` comes from :func:`chain_key`, read before
    the transaction."""
    if not events:
        return []
    anchor = _anchor(batch_sql.execute(conn, _LOCK_ANCHOR, {}).one())
    rows, head = _chain(key, anchor, events, now)
    batch_sql.insert_rows(conn, audit_log, rows)
    batch_sql.execute(
        conn, _SAVE_ANCHOR_BOUND, {f"new_{name}": value for name, value in head.values().items()}
    )
    return [row["seq"] for row in rows]


async def record(db: Database, event: AuditEvent) -> int:
    """Append one record in its own transaction (for events with no other write)."""
    async with db.write() as conn:
        return await append(conn, event)


async def seal_anchor(db: Database) -> bool:
    """Seal an anchor that has no MAC yet: its head becomes the last record, and records from
    the next one on are HMAC-chained. Run by ``open_app(upgrade=True)`` right after migration
    0018 (migrations do not hold the master key). Returns whether it sealed."""
    key = await chain_key(db)
    async with db.write() as conn:
        anchor = _anchor((await conn.execute(_LOCK_ANCHOR)).one())
        if anchor.mac is not None:
            return False
        last = (
            await conn.execute(
                select(audit_log.c.seq, audit_log.c.hash).order_by(audit_log.c.seq.desc()).limit(1)
            )
        ).first()
        head_seq, head_hash = (int(last.seq), last.hash) if last else (anchor.seq, anchor.hash)
        sealed = anchor.resealed(
            key, head_seq=head_seq, head_hash=head_hash, keyed_from=head_seq + 1
        )
        await conn.execute(_SAVE_ANCHOR.values(sealed.values()))
        return True


def _row_to_record(row: object) -> AuditRecord:
    return AuditRecord(**{name: getattr(row, name) for name in AuditRecord.__dataclass_fields__})


def _broken(checked: int, seq: int | None, fr: str, en: str) -> VerifyResult:
    return VerifyResult(False, checked, seq, fr, en)


def _check_record(key: bytes, anchor: Anchor, rec: AuditRecord) -> tuple[str, str] | None:
    """Why a record that follows its predecessor does not verify, or None."""
    keyed = anchor.keyed_from is not None and rec.seq >= anchor.keyed_from
    if rec.chain != (CHAIN_HMAC if keyed else CHAIN_SHA256):
        return (
            f"l'enregistrement n° {rec.seq} a été modifié (type de chaînage changé)",
            f"record #{rec.seq} was edited (chain type changed)",
        )
    fields = (rec.prev_hash, rec.seq, rec.ts, rec.actor, rec.action, rec.target, rec.source)
    computed = (
        record_mac(key, *fields, rec.result, rec.details)
        if keyed
        else record_hash(*fields, rec.result, rec.details)
    )
    if not hmac.compare_digest(computed, rec.hash):
        return (
            f"l'enregistrement n° {rec.seq} a été modifié (empreinte invalide)",
            f"record #{rec.seq} was edited (hash mismatch)",
        )
    return None


async def verify(db: Database, batch: int = 1000) -> VerifyResult:
    """Walk the whole chain from the anchor; report the first record that does not fit, then
    whether the last record is the sealed head (else: the end of the journal is missing)."""
    key = await chain_key(db)
    async with db.read() as conn:
        anchor = _anchor((await conn.execute(select(audit_anchor))).one())
        if anchor.mac is None:
            return _broken(
                0,
                None,
                "l'ancre du journal n'est pas scellée (sa tête ne peut être vérifiée)",
                "the journal's anchor is not sealed (its head cannot be verified)",
            )
        if not anchor.sealed_by(key) or anchor.head_seq is None or anchor.head_hash is None:
            return _broken(
                0,
                None,
                "l'ancre du journal a été modifiée (MAC invalide : début ou fin du journal "
                "réécrits)",
                "the journal's anchor was edited (invalid MAC: start or end of the journal "
                "rewritten)",
            )
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
                    return _broken(
                        checked,
                        expected_seq,
                        f"l'enregistrement n° {expected_seq} manque (le suivant présent est le "
                        f"n° {rec.seq}) : supprimé",
                        f"record #{expected_seq} is missing (next present is #{rec.seq}): removed",
                    )
                if rec.prev_hash != expected_prev:
                    return _broken(
                        checked,
                        rec.seq,
                        f"l'enregistrement n° {rec.seq} ne suit pas le précédent "
                        "(chaînage rompu : supprimé, déplacé ou modifié)",
                        f"record #{rec.seq} does not follow the previous one "
                        "(broken chain: removed, moved or edited)",
                    )
                why = _check_record(key, anchor, rec)
                if why is not None:
                    return _broken(checked, rec.seq, *why)
                checked += 1
                expected_seq, expected_prev = rec.seq + 1, rec.hash
                last_seq = rec.seq
            if len(rows) < batch:
                break
    return _check_head(anchor, checked, last_seq, expected_prev)


def _check_head(anchor: Anchor, checked: int, last_seq: int, last_hash: str) -> VerifyResult:
    head_seq, head_hash = anchor.head_seq, anchor.head_hash
    assert head_seq is not None and head_hash is not None
    if last_seq < head_seq:
        first = last_seq + 1
        span_fr = f"n° {first}" if first == head_seq else f"n° {first} à {head_seq}"
        span_en = f"#{first}" if first == head_seq else f"#{first} to #{head_seq}"
        return VerifyResult(
            False,
            checked,
            first,
            f"fin du journal manquante : enregistrement(s) {span_fr} supprimé(s) "
            f"(la tête scellée est le n° {head_seq})",
            f"end of the journal missing: record(s) {span_en} removed "
            f"(the sealed head is #{head_seq})",
            head_seq,
            head_hash,
            (first, head_seq),
        )
    if last_seq > head_seq or not hmac.compare_digest(last_hash, head_hash):
        return VerifyResult(
            False,
            checked,
            head_seq + 1 if last_seq > head_seq else head_seq,
            f"le dernier enregistrement (n° {last_seq}) n'est pas la tête scellée "
            f"(n° {head_seq}) : ajouté ou remplacé hors chaîne",
            f"the last record (#{last_seq}) is not the sealed head (#{head_seq}): "
            "added or replaced outside the chain",
            head_seq,
            head_hash,
        )
    return VerifyResult(True, checked, head_seq=head_seq, head_hash=head_hash)


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


async def purge(db: Database, cutoff: datetime, *, retention_days: int) -> int:
    """Delete records older than ``cutoff``; keep the chain verifiable: the anchor's start
    moves to the last purged record, then an ``audit.purge`` record is appended. The newest
    record is never purged, so the chain's head always stays in the table. Returns how many
    records were deleted."""
    key = await chain_key(db)
    async with db.write() as conn:
        anchor = _anchor((await conn.execute(_LOCK_ANCHOR)).one())
        if not anchor.sealed_by(key) or anchor.head_seq is None:
            raise tampered_anchor()  # never re-seal a forged anchor
        last_old = (
            await conn.execute(
                select(audit_log.c.seq, audit_log.c.hash)
                .where(audit_log.c.ts < cutoff)
                .where(audit_log.c.seq < anchor.head_seq)
                .order_by(audit_log.c.seq.desc())
                .limit(1)
            )
        ).first()
        if last_old is None:
            return 0
        result = await conn.execute(delete(audit_log).where(audit_log.c.seq <= last_old.seq))
        moved = anchor.resealed(key, seq=int(last_old.seq), hash=last_old.hash)
        await conn.execute(_SAVE_ANCHOR.values(moved.values()))
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
