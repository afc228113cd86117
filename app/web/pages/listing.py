"""Day listings for category expressions (`/arxiv/cs.CL+cs.LG?date=…&sort=…&kw=…`), with
the day calendar beside them; reached through the `/arxiv/` dispatcher in
`app.web.pages.arxiv`.

A day's list barely changes once announced: its page is validated by an ETag over a cheap
data version and served from the app's `PageCache` (popularity order changes with every
click, so it is always rendered).
"""

from __future__ import annotations

from datetime import date, timedelta
from itertools import groupby

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import Connection

from app.listing import (
    SORTS,
    CategoryExpr,
    ListingSort,
    day_listing,
    days_with_counts,
    latest_day,
    next_day,
    parse_keywords,
    previous_day,
)
from app.web.http import LISTING_CACHE, cache_headers, etag_for, not_modified
from app.web.markup import category_name
from app.web.pages.cache import PageCache
from app.web.pages.errors import error_page
from app.web.pages.params import parse_day
from app.web.templating import TEMPLATES

CALENDAR_DAYS = 366  # how far back the day list beside a listing reaches


def listing_page(
    request: Request,
    conn: Connection,
    cache: PageCache,
    expr: CategoryExpr,
    raw_date: str,
    sort: str,
    kw: str,
) -> Response:
    if sort not in SORTS:
        return error_page(
            request, 400, "Unknown sort", f"sort must be one of {', '.join(SORTS)}, not {sort!r}"
        )
    if raw_date:
        try:
            day: date | None = parse_day(raw_date, "date")
        except ValueError as exc:
            return error_page(request, 400, "Bad date", str(exc))
    else:
        day = latest_day(conn, expr)
    keywords = parse_keywords(kw)
    order: ListingSort = sort
    etag = None
    if day is not None and order != "popularity":
        version = cache.version(conn, expr, day)
        etag = etag_for(f"{expr.canonical()}|{day}|{order}|{','.join(keywords)}|{version}".encode())
        if not_modified(request, etag):
            return Response(status_code=304, headers=cache_headers(etag, LISTING_CACHE))
        cached = cache.get(etag)
        if cached is not None:
            return HTMLResponse(cached, headers=cache_headers(etag, LISTING_CACHE))
    listing = day_listing(conn, expr, day, sort=order, keywords=keywords) if day else None
    prev = previous_day(conn, expr, day) if day else None
    nxt = next_day(conn, expr, day) if day else None
    if raw_date and listing is not None and listing.total == 0:
        return TEMPLATES.TemplateResponse(
            request,
            "error.html",
            {
                "status": 404,
                "title": "No list that day",
                "message": f"No papers for {expr.canonical()} were announced on {day}.",
                "expr": expr,
                "prev": prev,
                "next": nxt,
            },
            status_code=404,
        )
    calendar: list[tuple[str, list[tuple[date, int]]]] = []
    if day is not None:
        days = days_with_counts(conn, expr, since=day - timedelta(days=CALENDAR_DAYS))
        calendar = [
            (month, list(group))
            for month, group in groupby(reversed(days), key=lambda d: d[0].strftime("%B %Y"))
        ]
    page = TEMPLATES.TemplateResponse(
        request,
        "listing.html",
        {
            "expr": expr,
            "names": [(t, neg, category_name(t)) for neg, t in expr.terms],
            "day": day,
            "listing": listing,
            "prev": prev,
            "next": nxt,
            "calendar": calendar,
            "sort": sort,
            "kw": ", ".join(keywords),
            "sorts": SORTS,
        },
    )
    if etag is not None and page.status_code == 200:
        cache.put(etag, bytes(page.body))
        page.headers.update(cache_headers(etag, LISTING_CACHE))
    return page
