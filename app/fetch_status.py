"""What `papershelf status` and the front page show about fetching: is each followed category
up to date, and why not. The store's facts (`app.db.runs.fetch_health`) joined with arXiv's
announcement calendar (`app.schedule`)."""

from __future__ import annotations

from collections.abc import Iterable, Set
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Connection

from app import schedule
from app.db import runs


def status_summary(
    conn: Connection,
    *,
    categories: Iterable[str],
    now: datetime,
    holidays: Set[date] = frozenset(),
) -> dict[str, Any]:
    """Values are Python objects (date, datetime, int, None, dicts of run columns); orjson
    serialises them as they are. Per category: the newest stored day and its size,
    whether that is the newest list arXiv has announced (`up_to_date`), the newest day
    check, and the last ok and last failed run for that category. Runs recorded without a
    category (multi-category feeds, id look-ups) show up in the top-level `last_ok` /
    `last_failed` / `running`.
    """
    expected = schedule.latest_listing_day(now, holidays)
    next_at, next_day = schedule.next_announcement(now, holidays)
    health = runs.fetch_health(conn, categories=categories, expected=expected)
    return {
        "now": now.astimezone(UTC),
        "papers": health["papers"],
        "latest_listing_day": expected,
        "next_announcement": {"at": next_at, "listing_day": next_day},
        "upcoming_holidays": schedule.upcoming_holidays(now, holidays),
        "categories": health["categories"],
        "last_ok": health["last_ok"],
        "last_failed": health["last_failed"],
        "running": health["running"],
    }
