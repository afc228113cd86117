"""arXiv's announcement calendar: listing day D is announced at 20:00 ET on the evening
before D, Sunday to Thursday, except on holiday evenings; DST-correct throughout."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.schedule import (
    ET,
    announcement_at,
    is_listing_day,
    latest_listing_day,
    listing_days,
    next_announcement,
    parse_holidays,
    poll_due,
    submission_deadline,
    upcoming_holidays,
)

HOLIDAYS = frozenset({date(2026, 11, 26), date(2026, 12, 25)})


def et(*args: int) -> datetime:
    return datetime(*args, tzinfo=ET)  # type: ignore[misc]


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


# --- announcement_at and DST ------------------------------------------------------------


def test_announcement_is_20_et_on_the_evening_before() -> None:
    # Tuesday 2026-07-07's list: Monday 20:00 EDT = Tuesday 00:00 UTC.
    assert announcement_at(date(2026, 7, 7)) == et(2026, 7, 6, 20)
    assert announcement_at(date(2026, 7, 7)) == utc(2026, 7, 7, 0)
    # Winter: EST, so 01:00 UTC.
    assert announcement_at(date(2026, 1, 13)) == utc(2026, 1, 13, 1)
    assert submission_deadline(date(2026, 7, 7)) == et(2026, 7, 6, 14)


def test_dst_spring_forward_2026_03_08() -> None:
    # Clocks jump 02:00 -> 03:00 on Sunday 2026-03-08; that evening is already EDT.
    before = announcement_at(date(2026, 3, 6))  # Thursday 03-05 evening, EST
    sunday = announcement_at(date(2026, 3, 9))  # Sunday 03-08 evening, EDT
    assert before == utc(2026, 3, 6, 1)
    assert sunday == utc(2026, 3, 9, 0)
    # Only 23 real hours in that Sunday, yet the announcement is still at 20:00 local.
    assert sunday.astimezone(ET).hour == 20
    assert sunday - before == timedelta(days=3, hours=-1)


def test_dst_fall_back_2026_11_01() -> None:
    # Clocks go 02:00 -> 01:00 on Sunday 2026-11-01; that evening is EST.
    thursday = announcement_at(date(2026, 10, 30))  # Thursday 10-29, EDT
    sunday = announcement_at(date(2026, 11, 2))  # Sunday 11-01, EST
    assert thursday == utc(2026, 10, 30, 0)
    assert sunday == utc(2026, 11, 2, 1)
    assert sunday - thursday == timedelta(days=3, hours=1)


def test_latest_and_next_across_dst_in_utc() -> None:
    # 2026-11-02 00:30 UTC is Sunday 19:30 EST: Monday's list is not out yet.
    now = utc(2026, 11, 2, 0, 30)
    assert latest_listing_day(now) == date(2026, 10, 30)
    assert next_announcement(now) == (et(2026, 11, 1, 20), date(2026, 11, 2))
    # The same UTC clock time in summer is already past 20:00 EDT.
    summer = utc(2026, 7, 13, 0, 30)  # Sunday 07-12 20:30 EDT
    assert latest_listing_day(summer) == date(2026, 7, 13)


# --- the weekly rhythm --------------------------------------------------------------------


def test_sunday_evening_brings_monday() -> None:
    # Sunday 2026-07-12.
    assert latest_listing_day(et(2026, 7, 12, 19, 59, 59)) == date(2026, 7, 10)  # Friday's
    assert latest_listing_day(et(2026, 7, 12, 20, 0)) == date(2026, 7, 13)  # Monday's
    assert next_announcement(et(2026, 7, 12, 19, 59, 59)) == (
        et(2026, 7, 12, 20),
        date(2026, 7, 13),
    )


def test_thursday_evening_brings_friday_then_nothing_until_sunday() -> None:
    # Thursday 2026-07-09, 20:00 ET: Friday's list.
    thursday_night = et(2026, 7, 9, 20, 0)
    assert latest_listing_day(thursday_night) == date(2026, 7, 10)
    # From then until Sunday 20:00 nothing new is announced.
    nxt = (et(2026, 7, 12, 20), date(2026, 7, 13))
    assert next_announcement(thursday_night) == nxt
    for now in (et(2026, 7, 10, 21), et(2026, 7, 11, 12), et(2026, 7, 11, 23, 59)):
        assert latest_listing_day(now) == date(2026, 7, 10)
        assert next_announcement(now) == nxt


def test_friday_and_saturday_are_not_listing_days() -> None:
    assert [d.weekday() for d in listing_days(date(2026, 7, 6), date(2026, 7, 19))] == [
        0,
        1,
        2,
        3,
        4,
        0,
        1,
        2,
        3,
        4,
    ]
    assert not is_listing_day(date(2026, 7, 11))  # Saturday
    assert not is_listing_day(date(2026, 7, 12))  # Sunday
    assert is_listing_day(date(2026, 7, 10))  # Friday: announced Thursday evening


# --- holidays -----------------------------------------------------------------------------


def test_thanksgiving_2026_removes_fridays_list() -> None:
    # Holiday Thursday 2026-11-26: no announcement that evening, so no list for Friday 11-27.
    assert not is_listing_day(date(2026, 11, 27), HOLIDAYS)
    assert is_listing_day(date(2026, 11, 26), HOLIDAYS)  # announced Wednesday evening
    assert listing_days(date(2026, 11, 23), date(2026, 11, 30), HOLIDAYS) == [
        date(2026, 11, 23),
        date(2026, 11, 24),
        date(2026, 11, 25),
        date(2026, 11, 26),
        date(2026, 11, 30),
    ]
    wednesday_night = et(2026, 11, 25, 21)
    assert latest_listing_day(wednesday_night, HOLIDAYS) == date(2026, 11, 26)
    # The next one skips the holiday evening and the weekend.
    assert next_announcement(wednesday_night, HOLIDAYS) == (
        et(2026, 11, 29, 20),
        date(2026, 11, 30),
    )
    assert latest_listing_day(et(2026, 11, 28, 12), HOLIDAYS) == date(2026, 11, 26)
    # Without the holiday, Thursday evening would have brought Friday's list.
    assert latest_listing_day(et(2026, 11, 28, 12)) == date(2026, 11, 27)


def test_christmas_2026_on_a_friday_cancels_nothing() -> None:
    # Friday evenings have no announcement anyway, so the list of Friday 12-25 (announced
    # Thursday 12-24) stays, and Monday 12-28 is announced on Sunday 12-27 as usual.
    assert is_listing_day(date(2026, 12, 25), HOLIDAYS)
    assert listing_days(date(2026, 12, 21), date(2026, 12, 28), HOLIDAYS) == listing_days(
        date(2026, 12, 21), date(2026, 12, 28)
    )
    # A holiday on Thursday 12-24 would remove Friday 12-25's list.
    christmas_eve = frozenset({date(2026, 12, 24)})
    assert not is_listing_day(date(2026, 12, 25), christmas_eve)
    assert next_announcement(et(2026, 12, 23, 20, 30), christmas_eve) == (
        et(2026, 12, 27, 20),
        date(2026, 12, 28),
    )


def test_consecutive_holidays() -> None:
    holidays = frozenset({date(2026, 12, 27), date(2026, 12, 28), date(2026, 12, 29)})
    now = et(2026, 12, 26, 12)
    assert latest_listing_day(now, holidays) == date(2026, 12, 25)
    assert next_announcement(now, holidays) == (et(2026, 12, 30, 20), date(2026, 12, 31))


def test_upcoming_holidays() -> None:
    holidays = parse_holidays(["2026-11-26", "2026-12-25", "2027-01-01"])
    assert upcoming_holidays(et(2026, 11, 10, 9), holidays) == [date(2026, 11, 26)]
    assert upcoming_holidays(et(2026, 11, 26, 22), holidays) == [date(2026, 11, 26)]
    assert upcoming_holidays(et(2026, 12, 20, 9), holidays, within_days=14) == [
        date(2026, 12, 25),
        date(2027, 1, 1),
    ]
    assert upcoming_holidays(et(2026, 11, 27, 9), holidays, within_days=5) == []
    # "Today" is the ET date: 03:00 UTC on 11-27 is still 11-26 in New York.
    assert upcoming_holidays(utc(2026, 11, 27, 3), holidays, within_days=0) == [date(2026, 11, 26)]


# --- midnight and boundary edges ---------------------------------------------------------


def test_midnight_edges() -> None:
    # Tuesday 2026-07-07 00:00 ET: Tuesday's list came out at Monday 20:00.
    assert latest_listing_day(et(2026, 7, 7, 0, 0)) == date(2026, 7, 7)
    assert latest_listing_day(et(2026, 7, 6, 23, 59, 59, 999999)) == date(2026, 7, 7)
    # Monday 00:00 ET: Monday's list was announced Sunday 20:00.
    assert latest_listing_day(et(2026, 7, 13, 0, 0)) == date(2026, 7, 13)
    # Saturday 00:00 ET: still Friday's list.
    assert latest_listing_day(et(2026, 7, 11, 0, 0)) == date(2026, 7, 10)
    # Midnight UTC is 20:00 EDT exactly: the announcement instant itself counts as out.
    assert latest_listing_day(utc(2026, 7, 8, 0, 0)) == date(2026, 7, 8)
    assert latest_listing_day(utc(2026, 7, 7, 23, 59, 59)) == date(2026, 7, 7)
    # New year: Thursday 2026-12-31 20:00 ET brings Friday 2027-01-01's list.
    assert next_announcement(et(2026, 12, 31, 12)) == (et(2026, 12, 31, 20), date(2027, 1, 1))


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        latest_listing_day(datetime(2026, 7, 7, 12))
    with pytest.raises(ValueError, match="naive"):
        poll_due(datetime(2026, 7, 7, 12), date(2026, 7, 7), arrived=False)


# --- polling -------------------------------------------------------------------------------


def test_poll_due_window() -> None:
    day = date(2026, 7, 7)  # announced Monday 07-06 20:00 ET
    assert not poll_due(et(2026, 7, 6, 19, 59), day, arrived=False)
    assert not poll_due(et(2026, 7, 6, 20, 4), day, arrived=False)  # inside the grace
    assert poll_due(et(2026, 7, 6, 20, 5), day, arrived=False)
    assert poll_due(et(2026, 7, 7, 1, 59), day, arrived=False)
    assert not poll_due(et(2026, 7, 7, 2, 0), day, arrived=False)  # gave up after 6 h
    assert not poll_due(et(2026, 7, 6, 20, 30), day, arrived=True)  # got it: stop
    assert poll_due(
        et(2026, 7, 6, 20, 1), day, arrived=False, grace=timedelta(0), stop_after=timedelta(1)
    )


def test_poll_never_due_for_missing_lists() -> None:
    assert not poll_due(et(2026, 7, 10, 20, 30), date(2026, 7, 11), arrived=False)  # Sat
    assert not poll_due(et(2026, 11, 26, 20, 30), date(2026, 11, 27), HOLIDAYS, arrived=False)


# --- parsing ---------------------------------------------------------------------------------


def test_parse_holidays() -> None:
    assert parse_holidays(["2026-11-26", " 2026-12-25 ", "", "2026-11-26"]) == frozenset(
        {date(2026, 11, 26), date(2026, 12, 25)}
    )
    assert parse_holidays([]) == frozenset()


@pytest.mark.parametrize("bad", ["2026-13-01", "2026-02-30", "20261126", "next thursday"])
def test_parse_holidays_rejects_bad_values(bad: str) -> None:
    with pytest.raises(ValueError, match=bad):
        parse_holidays(["2026-11-26", bad])


def test_settings_defaults_parse() -> None:
    from app.settings import Settings

    assert date(2026, 11, 26) in parse_holidays(Settings().arxiv_holidays)


# --- properties -----------------------------------------------------------------------------

instants = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2031, 12, 31), timezones=st.just(UTC)
)
holiday_sets = st.frozensets(
    st.dates(min_value=date(2019, 12, 1), max_value=date(2032, 1, 31)), max_size=40
)


@given(now=instants, holidays=holiday_sets)
def test_latest_and_next_bracket_now(now: datetime, holidays: frozenset[date]) -> None:
    latest = latest_listing_day(now, holidays)
    next_at, next_day = next_announcement(now, holidays)
    assert latest < next_day
    assert announcement_at(latest) <= now < next_at
    assert next_at == announcement_at(next_day)
    assert is_listing_day(latest, holidays) and is_listing_day(next_day, holidays)
    # Nothing is announced in between: they are consecutive listing days.
    assert listing_days(latest, next_day, holidays) == [latest, next_day]
    assert next_at.astimezone(ET).hour == 20


@given(now=instants, zone_now=st.sampled_from(["UTC", "America/New_York", "Asia/Tokyo"]))
def test_result_does_not_depend_on_the_callers_zone(now: datetime, zone_now: str) -> None:
    from zoneinfo import ZoneInfo

    same = now.astimezone(ZoneInfo(zone_now))
    assert latest_listing_day(same, HOLIDAYS) == latest_listing_day(now, HOLIDAYS)
    assert next_announcement(same, HOLIDAYS) == next_announcement(now, HOLIDAYS)
