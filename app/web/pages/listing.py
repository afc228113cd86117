"""Day listings for category expressions (`/arxiv/cs.CL+cs.LG?date=…&sort=…&kw=…`), with
the day calendar beside them; reached through the `/arxiv/` dispatcher in
`app.web.pages.arxiv`.

A day's list barely changes once announced: its page is validated by an ETag over a cheap
data version and served from the app's `PageCache` (popularity order changes with every
click, so it is always rendered).

`sort=foryou&starred=<ids>` ranks the day by the reader's stars (`app.foryou`). That page is
one reader's: it never enters the shared cache and says `Cache-Control: private, no-store`.
Without stars (no JavaScript, or nothing starred) it is the plain order with a note, cached
like any other.
"""

from __future__ import annotations

from datetime import date, timedelta
from itertools import groupby

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import Connection

from app.foryou import SORT as FOR_YOU
from app.foryou import ForYou, InvalidStarred, for_you, parse_starred
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
PAGE_SORTS = (*SORTS, FOR_YOU)
SORT_LABELS = {
    "order": "announcement order",
    "popularity": "popularity",
    "keywords": "my keywords",
    FOR_YOU: "for you (like my stars)",
}
PERSONAL_CACHE = "private, no-store"  # one reader's page: no shared cache may keep it


def listing_page(
    request: Request,
    conn: Connection,
    cache: PageCache,
    expr: CategoryExpr,
    raw_date: str,
    sort: str,
    kw: str,
) -> Response:
    if sort not in PAGE_SORTS:
        return error_page(
            request,
            400,
            "Unknown sort",
            f"sort must be one of {', '.join(PAGE_SORTS)}, not {sort[:40]!r}",
        )
    starred: list[str] = []
    if sort == FOR_YOU:
        try:
            starred = parse_starred(request.query_params.get("starred", ""))
        except InvalidStarred as exc:
            return error_page(request, 400, "Bad starred papers", str(exc))
    if raw_date:
        try:
            day: date | None = parse_day(raw_date, "date")
        except ValueError as exc:
            return error_page(request, 400, "Bad date", str(exc))
    else:
        day = latest_day(conn, expr)
    keywords = parse_keywords(kw)
    # "for you" starts from the plain order; without stars it is the plain order.
    order: ListingSort = "order"
    if sort in SORTS:
        order = sort
    etag = None
    if day is not None and order != "popularity" and not starred:
        version = cache.version(conn, expr, day)
        etag = etag_for(f"{expr.canonical()}|{day}|{sort}|{','.join(keywords)}|{version}".encode())
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
    ranked: ForYou | None = None
    if starred and listing is not None:
        ranked = for_you(conn, listing, starred)
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
            "sorts": PAGE_SORTS,
            "sort_labels": SORT_LABELS,
            "foryou": ranked,
        },
    )
    if starred:
        page.headers["Cache-Control"] = PERSONAL_CACHE
    if etag is not None and page.status_code == 200:
        cache.put(etag, bytes(page.body))
        page.headers.update(cache_headers(etag, LISTING_CACHE))
    return page
