"""French working days, and when a message sent to a practice may expect its answer.

A working day is an opening day of the practice (a weekday with opening hours, Monday to
Friday unless the charter says otherwise) that is neither a French public holiday of its region
nor one of its closures. Public holidays come from the ``holidays`` package
(``country_holidays("FR", subdiv=...)``), whose subdivisions cover the regional days:

- Alsace-Moselle (``"57"``; Bas-Rhin and Haut-Rhin have the same days, ``holidays`` names them
  ``"6AE"``): Good Friday and 26 December;
- the overseas departments, each with its own abolition-of-slavery day: Guadeloupe ``"971"``
  (27 May), Martinique ``"972"`` (22 May), Guyane ``"973"`` (10 June), La Réunion ``"974"``
  (20 December), Mayotte ``"976"`` (27 April); Guadeloupe and Martinique also keep Victor
  Schœlcher's day (21 July).

A message received at an instant counts from the practice's next opening: received during
opening hours, from that day; before the day's opening, from that day too; after closing, on a
closed day, a holiday or during a closure, from the next working day. It may then expect its
answer by the end of the ``delay``-th working day after that first one (a delay of 0: the same
day). Pure functions, no I/O; times in Europe/Paris (overseas practices keep their wall-clock
hours in the charter, and the date is computed in Paris time: at most a day's difference near
midnight, never in the patient's disfavour by more than that).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

PARIS = ZoneInfo("Europe/Paris")

#: Regions whose public holidays differ, by ``holidays`` subdivision code ("" is metropolitan
#: France without Alsace-Moselle), with their French and English names.
REGIONS: dict[str, tuple[str, str]] = {
    "": ("France métropolitaine", "Metropolitan France"),
    "57": (
        "Alsace-Moselle (Bas-Rhin, Haut-Rhin, Moselle)",
        "Alsace-Moselle (Bas-Rhin, Haut-Rhin, Moselle)",
    ),
    "971": ("Guadeloupe", "Guadeloupe"),
    "972": ("Martinique", "Martinique"),
    "973": ("Guyane", "French Guiana"),
    "974": ("La Réunion", "Réunion"),
    "976": ("Mayotte", "Mayotte"),
}

#: Monday to Friday (``date.weekday()`` numbers).
WEEKDAYS: frozenset[int] = frozenset(range(5))

#: How far ahead a working day is looked for before giving up (a charter with no opening day
#: is refused by its validation; this only bounds the loop).
_HORIZON_DAYS = 800


@dataclass(frozen=True)
class Closure:
    """The practice is closed from ``start`` to ``end`` (both included)."""

    start: date
    end: date
    label: str = ""

    def covers(self, day: date) -> bool:
        return self.start <= day <= self.end


@lru_cache(maxsize=64)
def _calendar(region: str, year: int) -> dict[date, str]:
    if region not in REGIONS:
        raise ValueError(f"unknown holiday region {region!r}")
    import holidays  # 11 MB of calendars: loaded by the first question, not by every process

    found = holidays.country_holidays(
        "FR", subdiv=region or None, years=year, language="fr", observed=False
    )
    return dict(found.items())


def holiday_name(day: date, region: str = "") -> str | None:
    """The French name of the public holiday ``day`` is in ``region``, if it is one."""
    return _calendar(region, day.year).get(day)


def holidays_of(year: int, region: str = "") -> list[tuple[date, str]]:
    """The public holidays of ``year`` in ``region``, in date order (French names)."""
    return sorted(_calendar(region, year).items())


def is_working_day(
    day: date,
    region: str = "",
    *,
    open_days: Iterable[int] = WEEKDAYS,
    closures: Sequence[Closure] = (),
) -> bool:
    """An opening weekday that is no public holiday of ``region`` and no closure."""
    return (
        day.weekday() in set(open_days)
        and holiday_name(day, region) is None
        and not any(c.covers(day) for c in closures)
    )


def next_working_day(
    day: date,
    region: str = "",
    *,
    open_days: Iterable[int] = WEEKDAYS,
    closures: Sequence[Closure] = (),
) -> date:
    """``day`` itself if it is a working day, else the first one after it."""
    days = frozenset(open_days)
    for offset in range(_HORIZON_DAYS):
        candidate = day + timedelta(days=offset)
        if is_working_day(candidate, region, open_days=days, closures=closures):
            return candidate
    raise ValueError("no working day within the horizon: no opening day?")


def add_working_days(
    day: date,
    count: int,
    region: str = "",
    *,
    open_days: Iterable[int] = WEEKDAYS,
    closures: Sequence[Closure] = (),
) -> date:
    """The ``count``-th working day after ``day`` (``day`` itself not counted; 0 gives
    ``day``). Friday + 1 is Monday; the Thursday before Easter + 1 is the Tuesday."""
    if count < 0:
        raise ValueError("count must be >= 0")
    days = frozenset(open_days)
    current = day
    for _ in range(count):
        current = next_working_day(
            current + timedelta(days=1), region, open_days=days, closures=closures
        )
    return current


Interval = tuple[time, time]


def expected_answer(
    received: datetime,
    delay: int,
    hours: Sequence[Sequence[Interval]],
    region: str = "",
    closures: Sequence[Closure] = (),
) -> date:
    """The date by which a message received at ``received`` (aware) may expect its answer.

    ``hours`` holds the opening intervals of each weekday, Monday first (seven entries; an
    empty one is a closed day). The count starts at the practice's next opening (see the
    module's docstring) and ends ``delay`` working days later."""
    if len(hours) != 7:
        raise ValueError("hours needs seven weekdays, Monday first")
    if received.tzinfo is None:
        raise ValueError("received must be timezone-aware")
    open_days = frozenset(d for d, intervals in enumerate(hours) if intervals)
    local = received.astimezone(PARIS)
    day, now = local.date(), local.time()
    closes = max((end for _start, end in hours[day.weekday()]), default=None)
    still_open_today = closes is not None and now < closes
    if not (
        still_open_today and is_working_day(day, region, open_days=open_days, closures=closures)
    ):
        day += timedelta(days=1)
    first = next_working_day(day, region, open_days=open_days, closures=closures)
    return add_working_days(first, delay, region, open_days=open_days, closures=closures)


def is_open(
    at: datetime,
    hours: Sequence[Sequence[Interval]],
    region: str = "",
    closures: Sequence[Closure] = (),
) -> bool:
    """Whether ``at`` (aware) falls within the practice's opening hours on a working day (an
    interval includes its start, not its end), read in Europe/Paris."""
    if len(hours) != 7:
        raise ValueError("hours needs seven weekdays, Monday first")
    if at.tzinfo is None:
        raise ValueError("at must be timezone-aware")
    local = at.astimezone(PARIS)
    day, now = local.date(), local.time()
    open_days = frozenset(d for d, intervals in enumerate(hours) if intervals)
    if not is_working_day(day, region, open_days=open_days, closures=closures):
        return False
    return any(start <= now < end for start, end in hours[day.weekday()])
