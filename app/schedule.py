"""arXiv's announcement calendar, as pure functions of an instant and a holiday set.

Convention (used by the fetch workers, the site and our data alike):

- A *listing day* D is the date arXiv puts on a list: the day of its RSS ``pubDate``, and
  the ``listing_date`` of the bundled data (shared/data/README.md: "in effect it is
  arXiv's announcement date").
- List D is announced at 20:00 America/New_York on the *evening before* D. Submissions for
  it closed at 14:00 ET that same day.
- Announcements happen on Sunday to Thursday evenings only, so listing days are Monday to
  Friday: Sunday evening brings Monday's list, Thursday evening Friday's, and Friday and
  Saturday evenings bring nothing.
- A holiday H (settings ``arxiv_holidays``) means there is no announcement on the evening
  of H, so listing day H + 1 does not exist. A holiday on a Friday or Saturday therefore
  changes nothing.

Times are computed in America/New_York with :mod:`zoneinfo`, so they follow daylight
saving: the announcement is at 20:00 local time, which is 00:00 UTC in summer (EDT) and
01:00 UTC in winter (EST). 20:00 is never inside a DST gap or fold (those happen at 02:00),
so every announcement instant is unambiguous. Instants passed in must be timezone-aware;
instants returned are in UTC (see `announcement_at`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Set
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

ET = ZoneInfo("America/New_York")
ANNOUNCE_TIME = time(20, 0)
SUBMISSION_DEADLINE = time(14, 0)

_ONE_DAY = timedelta(days=1)
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")

Holidays = Set[date]


def _local(now: datetime) -> datetime:
    # A naive datetime would silently be read as the machine's local time; refuse it.
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"expected a timezone-aware datetime, got naive {now!r}")
    return now.astimezone(ET)


def _instant(day: date, at: time) -> datetime:
    # Returned in UTC: Python subtracts two datetimes sharing one tzinfo by wall clock, so
    # `announcement - datetime.now(ET)` across a DST change would be an hour off.
    return datetime.combine(day, at, tzinfo=ET).astimezone(UTC)


def announcement_at(listing_day: date) -> datetime:
    """When list ``listing_day`` is (or would be) announced: 20:00 ET the evening before.

    The instant is returned in UTC; use ``.astimezone(ET)`` to show it in New York time.
    """
    return _instant(listing_day - _ONE_DAY, ANNOUNCE_TIME)


def submission_deadline(listing_day: date) -> datetime:
    """The last moment a submission could make list ``listing_day`` (14:00 ET, day before)."""
    return _instant(listing_day - _ONE_DAY, SUBMISSION_DEADLINE)


def is_listing_day(day: date, holidays: Holidays = frozenset()) -> bool:
    """Whether arXiv publishes a list dated ``day``: a weekday whose eve is no holiday."""
    return day.weekday() < 5 and (day - _ONE_DAY) not in holidays


def _newest_candidate(now: datetime) -> date:
    """The listing day whose announcement evening is the latest one at or before ``now``,
    ignoring weekends and holidays."""
    local = _local(now)
    today = local.date()
    # Tonight's announcement is out from 20:00:00 on; it carries tomorrow's date.
    return today + _ONE_DAY if local.time() >= ANNOUNCE_TIME else today


def latest_listing_day(now: datetime, holidays: Holidays = frozenset()) -> date:
    """The newest list already announced at instant ``now``."""
    day = _newest_candidate(now)
    # Terminates: at most two weekend days plus the (finite) holidays in a row.
    while not is_listing_day(day, holidays):
        day -= _ONE_DAY
    return day


def next_announcement(now: datetime, holidays: Holidays = frozenset()) -> tuple[datetime, date]:
    """The next announcement strictly after ``now``: its instant (UTC) and its listing day."""
    day = _newest_candidate(now) + _ONE_DAY
    while not is_listing_day(day, holidays):
        day += _ONE_DAY
    return announcement_at(day), day


def listing_days(start: date, end: date, holidays: Holidays = frozenset()) -> list[date]:
    """Every listing day from ``start`` to ``end``, both included, oldest first."""
    out: list[date] = []
    day = start
    while day <= end:
        if is_listing_day(day, holidays):
            out.append(day)
        day += _ONE_DAY
    return out


def upcoming_holidays(now: datetime, holidays: Holidays, within_days: int = 21) -> list[date]:
    """Configured holidays from today (ET) to ``within_days`` ahead, oldest first.

    Holidays on a Friday or Saturday are included too: they cancel nothing, but an admin
    who configured one may still want to see it listed.
    """
    today = _local(now).date()
    last = today + timedelta(days=within_days)
    return sorted(h for h in holidays if today <= h <= last)


def poll_due(
    now: datetime,
    day: date,
    holidays: Holidays = frozenset(),
    *,
    arrived: bool,
    grace: timedelta = timedelta(minutes=5),
    stop_after: timedelta = timedelta(hours=6),
) -> bool:
    """Whether the fetch worker should poll for list ``day`` at ``now``.

    It polls from ``grace`` after the announcement (arXiv's feeds lag the announcement by
    a few minutes) until the list has arrived, and gives up ``stop_after`` the
    announcement so a list that never comes (an unannounced outage) does not keep it
    polling all night. A day that is not a listing day is never due.
    """
    now = _local(now)  # also rejects naive instants
    if arrived or not is_listing_day(day, holidays):
        return False
    announced = announcement_at(day)
    return announced + grace <= now < announced + stop_after


def parse_holidays(values: Iterable[str | date]) -> frozenset[date]:
    """ISO dates (YYYY-MM-DD) to a set; blank entries are skipped, bad ones raise."""
    out: set[date] = set()
    for value in values:
        if isinstance(value, datetime):
            raise ValueError(f"invalid arXiv holiday {value!r}: expected a date")
        if isinstance(value, date):
            out.add(value)
            continue
        if not isinstance(value, str):
            raise ValueError(f"invalid arXiv holiday {value!r}: expected YYYY-MM-DD")
        text = value.strip()
        if not text:
            continue
        # fromisoformat alone also accepts "20261126" and week dates; settings should be
        # written one way only, so a typo is an error rather than a different day.
        if not _ISO_DATE.fullmatch(text):
            raise ValueError(f"invalid arXiv holiday {value!r}: expected YYYY-MM-DD")
        try:
            out.add(date.fromisoformat(text))
        except ValueError as exc:
            raise ValueError(f"invalid arXiv holiday {value!r}: {exc}") from None
    return frozenset(out)
