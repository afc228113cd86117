"""`/search`: the search form and one page of results as paper cards, terms marked."""

from __future__ import annotations

from typing import cast

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from app.hybrid import MODES, search
from app.listing import InvalidExpression, PaperCard, paper_cards, parse_expression
from app.search import Sort
from app.web.deps import ConnDep
from app.web.feeds import search_feed_path
from app.web.pages.errors import error_page
from app.web.pages.params import parse_day, parse_page
from app.web.templating import TEMPLATES

router = APIRouter()

SEARCH_PAGE_SIZE = 25


@router.get("/search", response_class=HTMLResponse, include_in_schema=False)
def search_page(
    request: Request,
    conn: ConnDep,
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
    cards: list[PaperCard] = []
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
        found = paper_cards(conn, [h.arxiv_id for h in result.hits])
        cards = [found[h.arxiv_id] for h in result.hits if h.arxiv_id in found]
    terms = result.query.highlight_terms() if result and result.query else ()
    return TEMPLATES.TemplateResponse(
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
