"""Query parameters the pages read as plain strings and validate themselves (a bad value
is an HTML error page, not the API's 422)."""

from __future__ import annotations

from datetime import date


def parse_day(raw: str, what: str) -> date:
    """A YYYY-MM-DD date; ValueError naming `what` otherwise."""
    try:
        return date.fromisoformat(raw.strip())
    except ValueError:
        raise ValueError(f"{what} {raw[:40]!r} is not a date (use YYYY-MM-DD)") from None
