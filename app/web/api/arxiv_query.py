"""`GET /api/query`: arXiv's query API (export.arxiv.org/api/query) over the papers this
instance holds, so arXiv's clients and scripts can use it as a local mirror.

Parameters as arXiv takes them: `search_query` (`app.search.arxiv_query`), `id_list`, `start`,
`max_results` (default 10; at most 2000 per call and start + max_results at most 30000, as
arXiv's manual states), `sortBy` (relevance, lastUpdatedDate, submittedDate) and `sortOrder`
(ascending, descending). Answers are Atom (`app.web.arxiv_atom`); bad input gets arXiv's
error feed with HTTP 400, checked in arXiv's order (id_list, max_results, start, sortBy,
sortOrder), then the limits and the query. Outside `/api/v1`: the path is arXiv's.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, cast
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from app.search.arxiv_query import (
    ArxivQueryError,
    ListedId,
    Node,
    parse_id_list,
    parse_search_query,
    render,
)
from app.search.arxiv_search import (
    MAX_PAGE,
    MAX_REACH,
    SORT_BY,
    SORT_ORDER,
    SortBy,
    SortOrder,
    run_query,
)
from app.web.arxiv_atom import MEDIA_TYPE, error_feed, results_feed
from app.web.deps import ConnDep
from app.web.feeds import site_url

router = APIRouter()

DEFAULT_MAX_RESULTS = 10
_INTEGER = re.compile(r"\s*([+-]?)(\d+)\s*", re.ASCII)
_SHOWN = ":,*"  # left as they are in the feed's title and link, as arXiv shows them

_ATOM_RESPONSE = {"content": {"application/atom+xml": {"schema": {"type": "string"}}}}


class _BadInput(Exception):
    pass


def _integer(raw: str | None, name: str, default: int, cap: int) -> int:
    """arXiv's integer rules; anything past `cap` is reported as over the cap."""
    if raw is None or raw == "":
        return default
    m = _INTEGER.fullmatch(raw)
    if m is None:
        raise _BadInput(f"{name} must be an integer")
    if m.group(1) == "-" and int(m.group(2)[:12]) != 0:
        raise _BadInput(f"{name} must be non-negative")
    digits = m.group(2).lstrip("0") or "0"
    return cap + 1 if len(digits) > len(str(cap)) else int(digits)


def _one_of(raw: str | None, name: str, allowed: tuple[str, ...]) -> str:
    if raw is None or raw == "":
        return allowed[0] if name == "sortBy" else "descending"
    if raw not in allowed:
        raise _BadInput(f"{name} must be in: {', '.join(allowed)}")
    return raw


def _shown(text: str) -> str:
    return quote(text, safe=_SHOWN)


@router.get(
    "/api/query",
    tags=["arxiv"],
    response_class=Response,
    responses={200: _ATOM_RESPONSE, 400: {"description": "arXiv's error feed", **_ATOM_RESPONSE}},
    summary="arXiv's query API over the papers held here",
)
def arxiv_query(
    request: Request,
    conn: ConnDep,
    search_query: Annotated[
        str | None, Query(description="arXiv search_query: ti: au: abs: co: jr: cat: id: all:")
    ] = None,
    id_list: Annotated[str | None, Query(description="comma-separated arXiv ids")] = None,
    start: Annotated[str | None, Query(description="0-based index of the first result")] = None,
    max_results: Annotated[str | None, Query(description="results per call, at most 2000")] = None,
    sortBy: Annotated[  # arXiv's parameter name
        str | None, Query(description="relevance, lastUpdatedDate or submittedDate")
    ] = None,
    sortOrder: Annotated[  # arXiv's parameter name
        str | None, Query(description="ascending or descending")
    ] = None,
) -> Response:
    site = site_url(request)
    now = datetime.now(UTC)
    try:
        ids: list[ListedId] = parse_id_list(id_list) if id_list else []
        size = _integer(max_results, "max_results", DEFAULT_MAX_RESULTS, MAX_PAGE)
        first = _integer(start, "start", 0, MAX_REACH)
        sort_by = _one_of(sortBy, "sortBy", SORT_BY)
        sort_order = _one_of(sortOrder, "sortOrder", SORT_ORDER)
        if size > MAX_PAGE:
            raise _BadInput(f"max_results must be at most {MAX_PAGE}")
        if first + size > MAX_REACH:
            raise _BadInput(f"start + max_results must be at most {MAX_REACH}")
        node: Node | None = parse_search_query(search_query or "")
    except (_BadInput, ArxivQueryError) as exc:
        body = error_feed(site=site, message=str(exc), now=now)
        return Response(body, status_code=400, media_type=MEDIA_TYPE)

    page = run_query(
        conn,
        node,
        ids,
        sort_by=cast(SortBy, sort_by),
        sort_order=cast(SortOrder, sort_order),
        start=first,
        max_results=size,
    )
    # The title shows the query as text (the XML escapes it); the link is a URL.
    query_text = render(node) if node is not None else ""
    listed = ",".join(i.raw for i in ids)
    title = f"search_query={query_text}&id_list={listed}&start={first}&max_results={size}"
    link = (
        f"search_query={_shown(query_text)}&start={first}&max_results={size}"
        f"&id_list={_shown(listed)}"
    )
    body = results_feed(
        site=site,
        title_query=title,
        link_query=link,
        entries=page.entries,
        total=page.total,
        start=first,
        items_per_page=size,
        now=now,
    )
    return Response(body, media_type=MEDIA_TYPE)
