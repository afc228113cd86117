"""Full-text search over the papers (the search backend of the store's database)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from app.hybrid import Mode, search
from app.web.api import params
from app.web.api.schemas import SearchOut
from app.web.deps import ConnDep
from app.web.errors import API_ERRORS, ApiRoute

router = APIRouter(prefix="/api/v1", responses=API_ERRORS, route_class=ApiRoute)


@router.get("/search", tags=["search"], response_model=SearchOut)
def api_search(
    conn: ConnDep,
    q: Annotated[
        str, Query(max_length=10_000, json_schema_extra={"pattern": params.NO_NUL_PATTERN})
    ],
    category: Annotated[list[str], params.category_query("Category or archive id")] = [],  # noqa: B006 - FastAPI copies defaults
    date_from: params.DateFrom = None,
    date_to: params.DateTo = None,
    sort: Literal["relevance", "date"] = "relevance",
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=1000)] = 0,
    has_code: Annotated[
        bool | None,
        Query(
            description="true: only papers that link their code (the query's `has:code`); "
            "false: only papers that do not (`-has:code`)"
        ),
    ] = None,
    mode: Annotated[
        Mode | None,
        Query(
            description="keyword, semantic or hybrid; default: hybrid once papers have "
            "embeddings, else keyword"
        ),
    ] = None,
) -> dict[str, Any]:
    # Unknown categories are a 400, as on /papers (not a silently empty result).
    categories = params.categories(category)
    params.date_range(date_from, date_to)
    # In front: a query cut at the length limit keeps the filter.
    text = q if has_code is None else f"{'' if has_code else '-'}has:code {q}"
    page = search(
        conn,
        text,
        mode=mode,
        categories=categories,
        date_from=date_from,
        date_to=date_to,
        sort=sort,
        limit=limit,
        offset=offset,
    )
    return {"query": q, **page.to_json()}
