"""The CNIL inactivity rule's dates (issue 19), pure: when a mailbox unused since ``last_use``
is due for deletion, when its notice is due, and whether a use after the notice cancelled it.

A mailbox is due for deletion ``months`` calendar months after its last use (its creation if
never used), and never less than ``notice_days`` after its owner and the practice's admins were
told; the notice is due ``notice_days`` before that date. A use after the notice cancels it:
the countdown starts again from that use.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum


def add_months(moment: datetime, months: int) -> datetime:
    """``moment`` plus ``months`` calendar months (the 31st becomes the month's last day)."""
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


class Step(Enum):
    NONE = "none"  # in use: nothing to do
    NOTICE = "notice"  # tell the owner and the admins now
    WAITING = "waiting"  # told; the deletion date is not reached
    DELETE = "delete"  # told, date reached: delete
    EXEMPT = "exempt"  # the practice exempted it


@dataclass(frozen=True)
class Standing:
    step: Step
    #: When it will be (or would have been) deleted.
    deletion_at: datetime
    #: The notice still standing (None: none, or cancelled by a use).
    notice_at: datetime | None


def standing(
    last_use: datetime,
    notice_at: datetime | None,
    exempt: bool,
    now: datetime,
    *,
    months: int,
    notice_days: int,
) -> Standing:
    """Where a mailbox stands under the rule at ``now``."""
    if notice_at is not None and last_use > notice_at:
        notice_at = None  # used since it was told: the countdown starts again
    due = add_months(last_use, months)
    if notice_at is not None:
        due = max(due, notice_at + timedelta(days=notice_days))
    if exempt:
        return Standing(Step.EXEMPT, due, notice_at)
    if notice_at is not None:
        return Standing(Step.DELETE if now >= due else Step.WAITING, due, notice_at)
    if now >= due - timedelta(days=notice_days):
        return Standing(Step.NOTICE, max(due, now + timedelta(days=notice_days)), None)
    return Standing(Step.NONE, due, None)
