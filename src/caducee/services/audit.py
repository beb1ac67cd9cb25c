"""The audit trail as the rest of the code calls it: append an event in the caller's
transaction (or in its own), verify the chain, export a period, purge after the retention.

The chain (HMAC-SHA256 over each record, the sealed anchor and its head, the SQL) lives in
``store/audit_repo.py``; the vocabulary (:class:`AuditEvent`, :class:`AuditRecord`,
:class:`VerifyResult`) in ``domain/audit.py``. Records never contain message content,
passwords, codes or tokens: only who, what, which mailbox or account, when, from where, and the
result.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

from caducee.domain.audit import (
    CHAIN_HMAC,
    CHAIN_SHA256,
    AuditEvent,
    AuditRecord,
    Detail,
    VerifyResult,
)
from caducee.errors import InvalidInput
from caducee.store.audit_repo import (
    GENESIS_HASH,
    KEY_INFO,
    Anchor,
    append,
    append_many,
    append_sync,
    chain_key,
    derive_key,
    iso_utc,
    iter_records,
    record,
    record_hash,
    record_mac,
    seal_anchor,
    tampered_anchor,
    verify,
)
from caducee.store.audit_repo import purge as _purge_before
from caducee.store.database import Database

__all__ = [
    "CHAIN_HMAC",
    "CHAIN_SHA256",
    "EXPORT_FIELDS",
    "GENESIS_HASH",
    "KEY_INFO",
    "Anchor",
    "AuditEvent",
    "AuditRecord",
    "Detail",
    "VerifyResult",
    "append",
    "append_many",
    "append_sync",
    "chain_key",
    "derive_key",
    "export",
    "iter_records",
    "purge",
    "record",
    "record_hash",
    "record_mac",
    "seal_anchor",
    "tampered_anchor",
    "verify",
]

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
    "chain",
)


def _export_row(rec: AuditRecord) -> dict[str, str | int]:
    return {
        "seq": rec.seq,
        "ts": iso_utc(rec.ts),
        "actor": rec.actor,
        "action": rec.action,
        "target": rec.target,
        "source": rec.source,
        "result": rec.result,
        "details": rec.details,
        "prev_hash": rec.prev_hash,
        "hash": rec.hash,
        "chain": rec.chain,
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
    return await _purge_before(db, cutoff, retention_days=retention_days)


async def record_failure(db: Database, action: str, target: str, error: BaseException) -> None:
    """A background task's failure (a scheduled refresh…): the system's, content-free — the
    error's kind only, never its text (it may quote what was read)."""
    event = AuditEvent(actor="system", action=action, target=target[:200], source="system",
                       result="failed", details={"error": type(error).__name__})  # fmt: skip
    await record(db, event)
