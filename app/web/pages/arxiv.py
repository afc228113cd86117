"""`/arxiv/{ids or expression}`: one route for paper pages (id lists), day listings
(category expressions), and the `/feed` and `/bibtex` suffixes, which a path parameter
would otherwise swallow."""

from __future__ import annotations

import re

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from app.ingest.ids import InvalidArxivId, split_id_list
from app.listing import InvalidExpression, parse_expression
from app.web.deps import ConnDep
from app.web.feeds import category_feed
from app.web.pages.cache import PageCacheDep, PaperPagesDep
from app.web.pages.errors import error_page
from app.web.pages.listing import listing_page
from app.web.pages.papers import MAX_IDS, bibtex, papers_page

router = APIRouter()

_ID_SHAPE = re.compile(r"\d{4}\.\d|/\d{5}")


@router.get("/arxiv/{rest:path}", response_class=HTMLResponse, include_in_schema=False)
def arxiv_page(
    request: Request,
    conn: ConnDep,
    cache: PageCacheDep,
    paper_pages: PaperPagesDep,
    rest: str,
    date: str = "",
    sort: str = "order",
    kw: str = "",
    wait: str = "",
    replacements: str = "",
    has_code: str = "",
) -> Response:
    rest = rest.strip().strip("/")
    if rest.endswith("/feed"):
        return category_feed(request, conn, rest.removesuffix("/feed"), date)
    if rest.endswith("/bibtex"):
        return bibtex(conn, rest.removesuffix("/bibtex"))
    try:
        ids = split_id_list(rest)
    except InvalidArxivId as id_error:
        try:
            expr = parse_expression(rest)
        except InvalidExpression as exc:
            # Say what the reader most likely meant: an id, or a category list.
            message = str(id_error) if _ID_SHAPE.search(rest) else str(exc)
            return error_page(request, 400, "Not a paper id or category", message)
        return listing_page(
            request, conn, cache, expr, date, sort, kw, replacements, has_code=has_code
        )
    if not ids:
        return error_page(request, 400, "Nothing to show", "Name a category or a paper id.")
    if len(ids) > MAX_IDS:
        return error_page(request, 400, "Too many ids", f"Ask for at most {MAX_IDS} papers.")
    return papers_page(request, conn, [i for i, _ in ids], wait, paper_pages)
