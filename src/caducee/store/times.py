"""Datetimes as the store hands them back: timezone-aware, in UTC.

Every timestamp is written in UTC; SQLite gives it back naive, and PostgreSQL in the
connection's time zone. Every repository converts through :func:`aware`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import overload


@overload
def aware(value: datetime) -> datetime: ...
@overload
def aware(value: None) -> None: ...
@overload
def aware(value: datetime | None) -> datetime | None: ...
def aware(value: datetime | None) -> datetime | None:
    """``value`` in UTC, timezone-aware (a naive one is taken as UTC); None stays None."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
