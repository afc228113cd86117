"""The JSON API under /api/v1 (OpenAPI documented). Errors use `deps.error_response`'s
shape; every bad input is a 4xx, never a 500."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query

from app.db.queries import get_paper
from app.db.queries import stats as read_stats
from app.ingest.ids import InvalidArxivId, parse_arxiv_id
from app.search.backend import search_papers
from app.web.deps import ConnDep

router = APIRouter(prefix="/api/v1")


def _paper_json(paper: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in paper.items() if k not in ("pk", "content_hash", "title_key")}
    for key, value in out.items():
        if hasattr(value, "isoformat"):
            out[key] = value.isoformat()
    out["abs_url"] = f"https://arxiv.org/abs/{paper['arxiv_id']}"
    out["pdf_url"] = f"https://arxiv.org/pdf/{paper['arxiv_id']}"
    return out


@router.get("/papers/{arxiv_id:path}", tags=["papers"])
def api_paper(arxiv_id: str, conn: ConnDep) -> dict[str, Any]:
    """One paper by arXiv id (any accepted spelling: old or new style, vN, URL)."""
    try:
        key, _version = parse_arxiv_id(arxiv_id)
    except InvalidArxivId as exc:
        raise HTTPException(400, str(exc)) from None
    paper = get_paper(conn, key)
    if paper is None:
        raise HTTPException(404, f"paper {key} is not in the store")
    return _paper_json(paper)


@router.get("/search", tags=["search"])
def api_search(
    conn: ConnDep,
    q: Annotated[str, Query(max_length=10_000)],
    category: Annotated[list[str], Query()] = [],  # noqa: B006 - FastAPI copies defaults
    date_from: Annotated[date | None, Query(alias="from")] = None,
    date_to: Annotated[date | None, Query(alias="to")] = None,
    sort: Literal["relevance", "date"] = "relevance",
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=1000)] = 0,
) -> dict[str, Any]:
    page = search_papers(
        conn,
        q,
        categories=category,
        date_from=date_from,
        date_to=date_to,
        sort=sort,
        limit=limit,
        offset=offset,
    )
    return {"query": q, **page.to_json()}


@router.get("/stats", tags=["stats"])
def api_stats(conn: ConnDep) -> dict[str, Any]:
    return read_stats(conn).to_json()
