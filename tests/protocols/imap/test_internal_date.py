"""INTERNALDATE (RFC 3501 §9 date-time) as FETCH writes it: always in UTC, whatever the
stored date's zone, day by day across the epoch and month ends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from caducee.domain.model import MessageSummary
from caducee.protocols.imap.fetch import internal_date


def row_at(when: datetime) -> MessageSummary:
    return MessageSummary(1, 1, 0, "", 1, when, 10, "blob", 1)


def test_internal_date_in_utc() -> None:
    paris = timezone(timedelta(hours=1))
    assert internal_date(row_at(datetime(2026, 3, 1, 0, 30, 5, tzinfo=paris))) == (
        b'"28-Feb-2026 23:30:05 +0000"'
    )
    assert internal_date(row_at(datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC))) == (
        b'"31-Dec-1969 23:59:59 +0000"'
    )
    assert internal_date(row_at(datetime(2024, 2, 29, 9, 5, 0, 999_999, tzinfo=UTC))) == (
        b'"29-Feb-2024 09:05:00 +0000"'
    )
    # Every hour over two years, against the standard library's own formatting.
    start = datetime(2025, 1, 1, tzinfo=UTC)
    for hours in range(0, 2 * 366 * 24, 7):
        when = start + timedelta(hours=hours, seconds=hours % 61)
        expected = when.strftime('"%d-%b-%Y %H:%M:%S +0000"').encode()
        assert internal_date(row_at(when)) == expected
