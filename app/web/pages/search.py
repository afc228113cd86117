"""`/search`: the search form and one page of results as paper cards, terms marked.

A page is named by an ETag over its query, the results found and the shown papers' data
version (`app.listing.paper_page_version`), and kept rendered in the app's search-page
cache: a repeated query costs the search and one query, not the cards. For `version_ttl`
seconds after that check, `CachedSearches` answers the same URL before routing, as the day
listings' fast path does, so a burst of one popular query renders it once.
"""

from __future__ import annotations

from typing import cast

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import Connection
from starlette.types import Scope

from app import __version__
from app.hybrid import MODES, search
from app.listing import (
    InvalidExpression,
    PaperCard,
    paper_cards,
    paper_page_version,
    parse_expression,
)
from app.search import SearchPage, Sort
from app.web.deps import ConnDep
from app.web.feeds import search_feed_path
from app.web.http import SEARCH_CACHE, cache_headers, etag_for, not_modified
from app.web.pages.cache import (
    Answer,
    FastPath,
    PageCache,
    SearchPagesDep,
    cached_answer,
    request_key,
    scope_key,
)
from app.web.pages.errors import error_page
from app.web.pages.params import parse_day, parse_page
from app.web.templating import TEMPLATES

router = APIRouter()

SEARCH_PAGE_SIZE = 25
SEARCH_PATH = "/search"
_SEARCH_CACHE = SEARCH_CACHE.encode()


@router.get(SEARCH_PATH, response_class=HTMLResponse, include_in_schema=False)
def search_page(
    request: Request,
    conn: ConnDep,
    cache: SearchPagesDep,
    q: str = "",
    category: str = "",
    sort: str = "relevance",
    page: str = "1",
    mode: str = "",
) -> Response:
    raw_from = request.query_params.get("from", "")
    raw_to = request.query_params.get("to", "")
    form = {
        "q": q,
        "category": category,
        "from": raw_from,
        "to": raw_to,
        "sort": sort,
        "mode": mode,
    }
    try:
        number = parse_page(page)
    except ValueError as exc:
        return error_page(request, 400, "Bad page", str(exc))
    if sort not in ("relevance", "date"):
        return error_page(request, 400, "Unknown sort", "sort must be relevance or date")
    if mode and mode not in MODES:
        return error_page(request, 400, "Unknown mode", "mode must be keyword, semantic or hybrid")
    try:
        date_from = parse_day(raw_from, "from") if raw_from.strip() else None
        date_to = parse_day(raw_to, "to") if raw_to.strip() else None
    except ValueError as exc:
        return error_page(request, 400, "Bad date", str(exc))
    categories: list[str] = []
    canonical_category = ""
    text = q[:10_000]
    if category.strip():
        try:
            expr = parse_expression(category)
        except InvalidExpression as exc:
            return error_page(request, 400, "Unknown category", str(exc))
        categories = sorted(expr.include)
        canonical_category = expr.canonical()
        # Exclusions ride on the query's own syntax.
        text += "".join(f" -cat:{c}" for c in sorted(expr.exclude))
    result = None
    if q.strip() or categories or date_from or date_to:
        result = search(
            conn,
            text,
            mode=mode or None,
            categories=categories,
            date_from=date_from,
            date_to=date_to,
            sort=cast(Sort, sort),
            limit=SEARCH_PAGE_SIZE,
            offset=(number - 1) * SEARCH_PAGE_SIZE,
        )
    key = request_key(request)
    etag = _page_etag(conn, key, result) if cache is not None else None
    if cache is not None and etag is not None:
        if not_modified(request, etag):
            cache.remember_answer(key, etag)
            return Response(status_code=304, headers=cache_headers(etag, SEARCH_CACHE))
        if (kept := cache.get(etag)) is not None:
            cache.remember_answer(key, etag)
            return HTMLResponse(kept, headers=cache_headers(etag, SEARCH_CACHE))
    cards: list[PaperCard] = []
    if result is not None:
        found = paper_cards(conn, [h.arxiv_id for h in result.hits])
        cards = [found[h.arxiv_id] for h in result.hits if h.arxiv_id in found]
    terms = result.query.highlight_terms() if result and result.query else ()
    rendered = TEMPLATES.TemplateResponse(
        request,
        "search.html",
        {
            "form": form,
            "result": result,
            "papers": cards,
            "terms": terms,
            "page": number,
            "page_size": SEARCH_PAGE_SIZE,
            "modes": MODES,
            "saved_category": canonical_category,
            "feed_url": search_feed_path(
                q,
                category=canonical_category,
                date_from=date_from,
                date_to=date_to,
                mode=mode,
            )
            if q.strip()
            else None,
        },
    )
    if cache is not None and etag is not None:
        cache.put(etag, bytes(rendered.body))
        cache.remember_answer(key, etag)
        rendered.headers.update(cache_headers(etag, SEARCH_CACHE))
    return rendered


def _page_etag(conn: Connection, key: str, result: SearchPage | None) -> str | None:
    """The ETag of the page for this query string and what the search found: it changes
    whenever the page could (other results, a shown paper's data, a new release); None
    when a shown paper is not stored (its card would be missing: not kept)."""
    if result is None:
        return etag_for(f"search|{__version__}|{key}|form".encode())
    ids = [h.arxiv_id for h in result.hits]
    version = paper_page_version(conn, ids) if ids else ""
    if version is None:
        return None
    found = (
        ids,
        result.total,
        result.total_capped,
        result.mode,
        result.notices,
        result.warnings,
        version,
    )
    return etag_for(f"search|{__version__}|{key}|{found!r}".encode())


class CachedSearches(FastPath):
    """Answers `GET /search?…` from the app's search-page cache while the route validated
    that URL's page less than `version_ttl` seconds ago: a matching `If-None-Match` gets
    its 304 and anything else the kept page, exactly as the route would answer. Innermost
    of the app's layers with `CachedListings`, so the rate limit, Host check, headers, log,
    metrics and compression apply as to any route's answer."""

    state_name = "search_pages"
    route_path = SEARCH_PATH

    def wants(self, path: str) -> bool:
        return path == SEARCH_PATH

    def answer(self, scope: Scope, cache: PageCache) -> Answer | None:
        etag = cache.fresh_answer(scope_key(scope))
        if etag is None:
            return None
        return cached_answer(cache, etag.encode(), scope["headers"], _SEARCH_CACHE)
