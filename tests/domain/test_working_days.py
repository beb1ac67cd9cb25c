"""French working days: weekends, national holidays (Easter Monday, Ascension, Whit Monday,
14 July), the regional ones (Alsace-Moselle, the overseas departments' abolition of slavery),
closures, and when a message received at a given instant may expect its answer."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from caducee.domain.working_days import (
    REGIONS,
    Closure,
    add_working_days,
    expected_answer,
    holiday_name,
    is_working_day,
    next_working_day,
)

PARIS = ZoneInfo("Europe/Paris")
DAY = ((time(9), time(12)), (time(14), time(18)))
MON_FRI = (DAY, DAY, DAY, DAY, DAY, (), ())


def paris(*args: int) -> datetime:
    return datetime(*args, tzinfo=PARIS)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("start", "count", "region", "expected"),
    [
        # weekends: Friday + 1 is Monday, + 2 Tuesday; from a Saturday, Monday counts first
        (date(2025, 3, 7), 1, "", date(2025, 3, 10)),
        (date(2025, 3, 7), 2, "", date(2025, 3, 11)),
        (date(2025, 3, 8), 1, "", date(2025, 3, 10)),
        (date(2025, 3, 7), 0, "", date(2025, 3, 7)),
        # Easter Monday (21 April 2025); Good Friday is worked outside Alsace-Moselle
        (date(2025, 4, 17), 1, "", date(2025, 4, 18)),
        (date(2025, 4, 18), 1, "", date(2025, 4, 22)),
        (date(2025, 4, 17), 1, "57", date(2025, 4, 22)),
        # Ascension (Thursday 29 May 2025), Whit Monday (9 June 2025), 14 July (a Monday)
        (date(2025, 5, 28), 1, "", date(2025, 5, 30)),
        (date(2025, 6, 6), 1, "", date(2025, 6, 10)),
        (date(2025, 7, 11), 1, "", date(2025, 7, 15)),
        (date(2025, 7, 11), 3, "", date(2025, 7, 17)),
        # 26 December in Alsace-Moselle (after Christmas): Wednesday 24 + 1
        (date(2025, 12, 24), 1, "", date(2025, 12, 26)),
        (date(2025, 12, 24), 1, "57", date(2025, 12, 29)),
        # abolition of slavery: Guadeloupe 27 May, Martinique 22 May, Guyane 10 June,
        # La Réunion 20 December, Mayotte 27 April
        (date(2025, 5, 26), 1, "", date(2025, 5, 27)),
        (date(2025, 5, 26), 1, "971", date(2025, 5, 28)),
        (date(2025, 5, 21), 1, "972", date(2025, 5, 23)),
        (date(2025, 6, 6), 1, "973", date(2025, 6, 11)),
        (date(2024, 12, 19), 1, "974", date(2024, 12, 23)),
        (date(2026, 4, 24), 1, "976", date(2026, 4, 28)),
        (date(2026, 4, 24), 1, "", date(2026, 4, 27)),
    ],
)
def test_add_working_days(start: date, count: int, region: str, expected: date) -> None:
    assert add_working_days(start, count, region) == expected


def test_holiday_names_in_french() -> None:
    assert holiday_name(date(2025, 7, 14)) == "Fête nationale"
    assert holiday_name(date(2025, 4, 21)) == "Lundi de Pâques"
    assert holiday_name(date(2025, 5, 29)) == "Ascension"
    assert holiday_name(date(2025, 12, 26)) is None
    assert holiday_name(date(2025, 12, 26), "57") == "Saint-Étienne"
    assert holiday_name(date(2025, 4, 18), "57") == "Vendredi saint"
    assert holiday_name(date(2025, 5, 27), "971") == "Abolition de l'esclavage"
    assert holiday_name(date(2025, 7, 21), "972") == "Fête de Victor Schoelcher"
    with pytest.raises(ValueError):
        holiday_name(date(2025, 1, 1), "75")


def test_every_region_has_its_calendar() -> None:
    for region in REGIONS:
        assert holiday_name(date(2025, 1, 1), region) is not None
        assert holiday_name(date(2025, 11, 11), region) is not None


def test_closures_and_opening_days() -> None:
    summer = Closure(date(2025, 8, 4), date(2025, 8, 22), "Congés")
    assert not is_working_day(date(2025, 8, 11), closures=[summer])
    assert next_working_day(date(2025, 8, 4), closures=[summer]) == date(2025, 8, 25)
    assert add_working_days(date(2025, 8, 1), 1, closures=[summer]) == date(2025, 8, 25)
    # A practice open on Monday, Tuesday and Thursday counts those days only.
    part_time = {0, 1, 3}
    assert add_working_days(date(2025, 3, 11), 1, open_days=part_time) == date(2025, 3, 13)
    assert add_working_days(date(2025, 3, 11), 2, open_days=part_time) == date(2025, 3, 17)
    assert not is_working_day(date(2025, 3, 8))  # a Saturday
    with pytest.raises(ValueError):
        next_working_day(date(2025, 1, 1), open_days=set())
    with pytest.raises(ValueError):
        add_working_days(date(2025, 1, 1), -1)


@pytest.mark.parametrize(
    ("received", "region", "expected"),
    [
        (paris(2025, 3, 10, 10, 0), "", date(2025, 3, 12)),  # Monday, open
        (paris(2025, 3, 10, 7, 0), "", date(2025, 3, 12)),  # before the day's opening
        (paris(2025, 3, 10, 12, 30), "", date(2025, 3, 12)),  # lunch break: still that day
        (paris(2025, 3, 10, 19, 0), "", date(2025, 3, 13)),  # after closing: from Tuesday
        (paris(2025, 3, 15, 11, 0), "", date(2025, 3, 19)),  # Saturday: from Monday
        (paris(2025, 4, 17, 19, 0), "", date(2025, 4, 23)),  # Fri 18, (Easter Mon), Tue, Wed
        (paris(2025, 4, 17, 19, 0), "57", date(2025, 4, 24)),  # Good Friday too
        (paris(2025, 7, 14, 10, 0), "", date(2025, 7, 17)),  # on 14 July: from the 15th
        (datetime(2025, 3, 10, 17, 30, tzinfo=UTC), "", date(2025, 3, 13)),  # 18:30 in Paris
    ],
)
def test_expected_answer(received: datetime, region: str, expected: date) -> None:
    assert expected_answer(received, 2, MON_FRI, region) == expected


def test_expected_answer_during_a_closure_and_same_day() -> None:
    summer = [Closure(date(2025, 8, 4), date(2025, 8, 22))]
    assert expected_answer(paris(2025, 8, 6, 10), 2, MON_FRI, "", summer) == date(2025, 8, 27)
    assert expected_answer(paris(2025, 3, 10, 10), 0, MON_FRI) == date(2025, 3, 10)
    assert expected_answer(paris(2025, 3, 10, 20), 0, MON_FRI) == date(2025, 3, 11)
    with pytest.raises(ValueError):
        expected_answer(datetime(2025, 3, 10, 10), 2, MON_FRI)  # naive
    with pytest.raises(ValueError):
        expected_answer(paris(2025, 3, 10, 10), 2, MON_FRI[:5])
