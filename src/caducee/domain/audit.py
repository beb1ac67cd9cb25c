"""The audit trail's vocabulary: an event to record, a stored record, a verification's result.

The chain itself (HMAC, anchor, SQL) lives in ``store/audit_repo.py``; ``services/audit.py`` is
what the rest of the code calls.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

#: ``audit_log.chain``: records before migration 0018 (SHA-256), and since (HMAC-SHA256).
CHAIN_SHA256 = 1
CHAIN_HMAC = 2
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
    chain: int = CHAIN_HMAC


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    checked: int
    first_bad_seq: int | None = None
    reason_fr: str = ""
    reason_en: str = ""
    #: The sealed head (last sequence number and its MAC): keep it elsewhere to detect a
    #: later replay of an older copy of the database.
    head_seq: int | None = None
    head_hash: str | None = None
    #: Sequence numbers (first, last) of records missing at the end of the journal.
    missing_tail: tuple[int, int] | None = None
