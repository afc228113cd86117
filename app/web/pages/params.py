"""Query parameters the pages read as plain strings and validate themselves (a bad value
is an HTML error page, not the API's 422)."""

from __future__ import annotations

from datetime import date

from app.web.api.params import iso_day


def parse_day(raw: str, what: str) -> date:
    """A YYYY-MM-DD date (the API's one rule); ValueError naming `what` otherwise."""
    try:
        return iso_day(raw)
    except ValueError:
        raise ValueError(f"{what} {raw[:40]!r} is not a date (use YYYY-MM-DD)") from None


# Deeper than any real listing reaches (a venue of a million papers at 100 a page), small
# enough that page × page size stays far inside every database's integers.
MAX_PAGE = 10_000


def parse_page(raw: str) -> int:
    """A page number, 1 to `MAX_PAGE`; ValueError with the message to show otherwise."""
    text = raw.strip()
    if not (text.isascii() and text.isdigit() and len(text) <= 6) or not (
        1 <= int(text) <= MAX_PAGE
    ):
        raise ValueError(f"page must be a number from 1 to {MAX_PAGE}, not {raw[:40]!r}")
    return int(text)
