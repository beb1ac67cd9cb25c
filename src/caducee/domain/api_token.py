"""An API token of practice software as every layer sees it (never its secret nor its hash)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class ApiToken:
    id: int
    account_id: int
    label: str
    scopes: tuple[str, ...]
    mailbox_ids: tuple[int, ...]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None

    def active(self, now: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)
