"""Day listings for category expressions (`/arxiv/cs.CL+cs.LG?date=…&sort=…&kw=…`), with
the day calendar beside them; reached through the `/arxiv/` dispatcher in
`app.web.pages.arxiv`.

A day's list barely changes once announced: its page is validated by an ETag over a cheap
data version and served from the app's `PageCache` (popularity order changes with every
click, so it is always rendered). `CachedListings` answers a cached page, or its 304, below
the app's other layers but before routing: no route matching, no dependency, no database
connection and no threadpool, as long as the versions it needs are fresh in the cache (the
route computes them; they are trusted for `PageCache.version_ttl` seconds).

`sort=foryou&starred=<ids>` ranks the day by the reader's stars (`app.foryou`). That page is
one reader's: it never enters the shared cache and says `Cache-Control: private, no-store`.
Without stars (no JavaScript, or nothing starred) it is the plain order with a note, cached
like any other.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from datetime import date, timedelta
from itertools import groupby
from typing import Any
from urllib.parse import parse_qsl

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import Connection

from app.foryou import SORT as FOR_YOU
from app.foryou import ForYou, InvalidStarred, for_you, parse_starred
from app.ingest.ids import InvalidArxivId, split_id_list
from app.listing import (
    SORTS,
    WITHOUT_REPLACEMENTS,
    CategoryExpr,
    InvalidExpression,
    InvalidFilter,
    ListingSort,
    day_listing,
    days_with_counts,
    next_day,
    parse_code_only,
    parse_expression,
    parse_hide_replacements,
    parse_keywords,
    previous_day,
)
from app.web.http import LISTING_CACHE, cache_headers, etag_for, not_modified
from app.web.markup import category_name
from app.web.pages.cache import Answer, FastPath, PageCache, cached_answer
from app.web.pages.errors import error_page
from app.web.pages.params import parse_day
from app.web.templating import TEMPLATES

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

CALENDAR_DAYS = 366  # how far back the day list beside a listing reaches
PAGE_SORTS = (*SORTS, FOR_YOU)
SORT_LABELS = {
    "order": "announcement order",
    "popularity": "popularity",
    "keywords": "my keywords",
    FOR_YOU: "for you (like my stars)",
}
PERSONAL_CACHE = "private, no-store"  # one reader's page: no shared cache may keep it
# The sorts whose pages are cached (popularity follows every click; "for you" with stars is
# one reader's page and is told apart by its `starred` parameter).
CACHED_SORTS = frozenset({"order", "keywords", FOR_YOU})
# `?replacements=hide` leaves the replacements out (the browser remembers the choice too:
# static/papershelf.js); "show", or nothing, keeps them.


def listing_etag(
    expr: CategoryExpr,
    day: date,
    sort: str,
    keywords: list[str],
    version: str,
    hide_replacements: bool = False,
    code_only: bool = False,
) -> str:
    """The validator of a cached listing page: its expression, day, sort, keywords and
    whether replacements are hidden, at a data version (`PageCache.version`)."""
    hidden = "|-replace" if hide_replacements else ""
    hidden += "|+code" if code_only else ""
    key = f"{expr.canonical()}|{day}|{sort}|{','.join(keywords)}|{version}{hidden}"
    return etag_for(key.encode())


def listing_page(
    request: Request,
    conn: Connection,
    cache: PageCache,
    expr: CategoryExpr,
    raw_date: str,
    sort: str,
    kw: str,
    replacements: str = "",
    has_code: str = "",
) -> Response:
    try:
        code_only = parse_code_only(has_code)
    except InvalidFilter as exc:
        return error_page(request, 400, "Bad has_code", str(exc))
    try:
        hide_replacements = parse_hide_replacements(replacements)
    except InvalidFilter as exc:
        return error_page(request, 400, "Bad replacements", str(exc))
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
        day = cache.latest_day(conn, expr)
    keywords = parse_keywords(kw)
    # "for you" starts from the plain order; without stars it is the plain order.
    order: ListingSort = "order"
    if sort in SORTS:
        order = sort
    etag = None
    if day is not None and order != "popularity" and not starred:
        etag = listing_etag(
            expr,
            day,
            sort,
            keywords,
            cache.version(conn, expr, day),
            hide_replacements,
            code_only,
        )
        if not_modified(request, etag):
            return Response(status_code=304, headers=cache_headers(etag, LISTING_CACHE))
        cached = cache.get(etag)
        if cached is not None:
            return HTMLResponse(cached, headers=cache_headers(etag, LISTING_CACHE))
    kinds = WITHOUT_REPLACEMENTS if hide_replacements else None
    listing = (
        day_listing(
            conn,
            expr,
            day,
            sort=order,
            keywords=keywords,
            kinds=kinds,
            has_code=True if code_only else None,
        )
        if day
        else None
    )
    prev = previous_day(conn, expr, day) if day else None
    nxt = next_day(conn, expr, day) if day else None
    # A day the filter empties is still a day: its page says so, not a 404.
    if raw_date and listing is not None and listing.total == 0 and not code_only:
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
            "hide_replacements": hide_replacements,
            "has_code": code_only,
        },
    )
    if starred:
        page.headers["Cache-Control"] = PERSONAL_CACHE
    if etag is not None and page.status_code == 200:
        cache.put(etag, bytes(page.body))
        page.headers.update(cache_headers(etag, LISTING_CACHE))
    return page


# --- the fast path ---------------------------------------------------------------------

LISTING_PREFIX = "/arxiv/"
LISTING_ROUTE = "/arxiv/{rest:path}"  # the dispatcher's template (metrics, the access log)
ASKED_KEPT = 1024  # listing URLs whose reading the fast path remembers
_LISTING_CACHE = LISTING_CACHE.encode()


@dataclass(slots=True)
class _Asked:
    """What a listing URL asks for, as the route reads it; `day` None is the latest day.
    `last` keeps the last ETag made for it: (day, version, ETag)."""

    expr: CategoryExpr
    canonical: str
    sort: str
    day: date | None
    keywords: list[str]
    hide_replacements: bool = False
    code_only: bool = False
    last: tuple[date, str, bytes] | None = None


class CachedListings(FastPath):
    """Answers `GET /arxiv/{expression}` from the app's `PageCache` when the answer is
    certain without the database: the expression's latest day (for a listing without a
    date) and the listing's data version are fresh in the cache, and so is the page for
    the ETag they make. Then a matching `If-None-Match` gets its 304 and anything else
    the cached page, exactly as the route would answer; every other request (another
    sort, a bad date, a stale version, a page not cached yet) goes on to the route,
    which refreshes what this layer reads.

    Innermost of the app's layers, so the Host check, request id, security headers,
    access log, metrics, compression and HEAD apply as to any route's answer; it names
    the dispatcher's route in the scope, so metrics and the log count it there."""

    state_name = "page_cache"
    route_path = LISTING_ROUTE

    def __init__(self, app: ASGIApp) -> None:
        super().__init__(app)
        # (path, query string) → what it asks for, or None when this layer cannot answer it.
        self._asked: dict[tuple[str, bytes], _Asked | None] = {}

    def wants(self, path: str) -> bool:
        return path.startswith(LISTING_PREFIX)

    def answer(self, scope: Scope, cache: PageCache) -> Answer | None:
        key = (scope["path"], scope["query_string"])
        if key in self._asked:
            asked = self._asked[key]
        else:
            asked = _read_listing_url(*key)
            if len(self._asked) >= ASKED_KEPT:
                self._asked.clear()
            self._asked[key] = asked
        if asked is None:
            return None
        day = asked.day or cache.fresh_latest_day(asked.canonical)[1]
        if day is None or (version := cache.fresh_version(asked.canonical, day)) is None:
            return None
        last = asked.last
        if last is not None and last[0] == day and last[1] == version:
            etag = last[2]
        else:
            etag = listing_etag(
                asked.expr,
                day,
                asked.sort,
                asked.keywords,
                version,
                asked.hide_replacements,
                asked.code_only,
            ).encode()
            asked.last = (day, version, etag)
        return cached_answer(cache, etag, scope["headers"], _LISTING_CACHE)


def _read_listing_url(path: str, query: bytes) -> _Asked | None:
    """What `/arxiv/…?…` asks for when it is a cacheable listing with a valid (or no)
    date, read as the dispatcher and `listing_page` read it; None otherwise."""
    rest = path[len(LISTING_PREFIX) :].strip().strip("/")
    try:
        split_id_list(rest)  # the dispatcher tries paper ids first
        return None
    except InvalidArxivId:
        pass
    try:
        expr = parse_expression(rest)
    except InvalidExpression:
        return None
    # The last of repeated parameters wins, as for the route's own.
    params = dict(parse_qsl(query.decode("latin-1"), keep_blank_values=True))
    sort = params.get("sort", "order")
    if sort not in CACHED_SORTS or (sort == FOR_YOU and "starred" in params):
        return None
    raw_date = params.get("date", "")
    try:
        day = parse_day(raw_date, "date") if raw_date else None
    except ValueError:
        return None  # the route's 400 page
    keywords = parse_keywords(params.get("kw", ""))
    try:
        hide = parse_hide_replacements(params.get("replacements", ""))
        code_only = parse_code_only(params.get("has_code", ""))
    except InvalidFilter:
        return None  # the route's 400 page
    return _Asked(expr, expr.canonical(), sort, day, keywords, hide, code_only)
