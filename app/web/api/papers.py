"""Papers: the keyset-paged list (newest first on (sort_date, arxiv_id), signed page
tokens), one paper by id, and click counts."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, HTTPException, Query, Request, Response
from sqlalchemy import select

from app.artifacts.summaries import shown_tldrs
from app.db import store
from app.db.models import Paper, PaperCategory
from app.listing import paper_detail
from app.web.api import params
from app.web.api.schemas import ClickIn, ClicksOut, PaperOut, PapersPage, PaperSummary, isoformat
from app.web.deps import ConnDep, EngineDep, SettingsDep
from app.web.errors import API_ERRORS, ApiRoute, documented
from app.web.http import (
    LISTING_CACHE,
    NOT_MODIFIED,
    PAPER_CACHE,
    cached_json,
    decode_page_token,
    encode_page_token,
    fingerprint,
)

router = APIRouter(prefix="/api/v1", responses=API_ERRORS, route_class=ApiRoute)

papers_t = Paper.__table__
categories_t = PaperCategory.__table__


def _paper_json(paper: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in paper.items() if k not in ("pk", "content_hash", "title_key")}
    for key, value in out.items():
        out[key] = isoformat(value)
    out["abs_url"] = f"https://arxiv.org/abs/{paper['arxiv_id']}"
    out["pdf_url"] = f"https://arxiv.org/pdf/{paper['arxiv_id']}"
    return out


@router.get("/papers", tags=["papers"], response_model=PapersPage, responses=NOT_MODIFIED)
def api_papers(
    request: Request,
    conn: ConnDep,
    settings: SettingsDep,
    category: Annotated[
        list[str], params.category_query("Category or archive id; repeat for any-of")
    ] = [],  # noqa: B006 - FastAPI copies defaults
    date_from: params.DateFrom = None,
    date_to: params.DateTo = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    page_token: params.PageToken = None,
) -> Response:
    """Papers newest first (by announcement day, else submission day), keyset-paged."""
    cats = params.categories(category)
    params.date_range(date_from, date_to)
    filters = fingerprint(sorted(cats), date_from, date_to)
    where: list[Any] = []
    if cats:
        where.append(
            sa.exists().where(
                categories_t.c.arxiv_id == papers_t.c.arxiv_id,
                categories_t.c.category.in_(cats),
            )
        )
    if date_from:
        where.append(papers_t.c.sort_date >= date_from)
    if date_to:
        where.append(papers_t.c.sort_date <= date_to)
    if page_token:  # an empty token is the first page
        position = decode_page_token(settings, page_token, "papers", filters)
        try:
            if len(position) != 2 or not isinstance(position[1], str):
                raise ValueError
            after_day, after_id = date.fromisoformat(position[0]), position[1]
        except (TypeError, ValueError):
            raise HTTPException(400, "invalid page token") from None
        where.append(
            sa.or_(
                papers_t.c.sort_date < after_day,
                sa.and_(papers_t.c.sort_date == after_day, papers_t.c.arxiv_id < after_id),
            )
        )
    rows = conn.execute(
        select(
            papers_t.c.arxiv_id,
            papers_t.c.version,
            papers_t.c.title,
            papers_t.c.abstract,
            papers_t.c.authors,
            papers_t.c.primary_category,
            papers_t.c.categories,
            papers_t.c.sort_date,
            papers_t.c.announced_on,
        )
        .where(*where)
        .order_by(papers_t.c.sort_date.desc(), papers_t.c.arxiv_id.desc())
        .limit(limit + 1)
    ).all()
    more = len(rows) > limit
    rows = rows[:limit]
    token = None
    if more:
        last = rows[-1]
        token = encode_page_token(
            settings, "papers", filters, [last.sort_date.isoformat(), last.arxiv_id]
        )
    tldrs = shown_tldrs(conn, [r.arxiv_id for r in rows])

    def tldr_fields(arxiv_id: str, version: int | None) -> dict[str, Any]:
        shown = tldrs.get(arxiv_id)
        if shown is None:
            return {}
        return {
            "tldr": shown.text,
            "tldr_model": shown.model,
            "tldr_paper_version": shown.paper_version,
            "tldr_stale": shown.stale(version),
        }

    page = PapersPage(
        papers=[
            PaperSummary(
                arxiv_id=r.arxiv_id,
                version=r.version,
                title=r.title,
                abstract=r.abstract,
                authors=list(r.authors or []),
                primary_category=r.primary_category,
                categories=list(r.categories or []),
                sort_date=r.sort_date,
                announced_on=r.announced_on,
                abs_url=f"https://arxiv.org/abs/{r.arxiv_id}",
                pdf_url=f"https://arxiv.org/pdf/{r.arxiv_id}",
                **tldr_fields(r.arxiv_id, r.version),
            )
            for r in rows
        ],
        limit=limit,
        next_page_token=token,
    )
    return cached_json(request, page, LISTING_CACHE)


@router.post(
    "/papers/{arxiv_id:path}/clicks",
    tags=["papers"],
    response_model=ClicksOut,
    responses={404: documented("Unknown paper"), 413: documented("Request body too large")},
)
def api_paper_click(arxiv_id: params.PaperId, click: ClickIn, engine: EngineDep) -> ClicksOut:
    """Count a click on a paper's PDF or summary link."""
    key = params.paper_id(arxiv_id)
    clicks_t = store.clicks_t
    with engine.begin() as conn:
        if conn.scalar(select(papers_t.c.pk).where(papers_t.c.arxiv_id == key)) is None:
            raise HTTPException(404, f"paper {key} is not in the store")
        store.record_click(conn, key, click.kind)
        row = conn.execute(
            select(clicks_t.c.pdf, clicks_t.c.summary).where(clicks_t.c.arxiv_id == key)
        ).one()
    return ClicksOut(arxiv_id=key, pdf=row.pdf, summary=row.summary)


@router.get(
    "/papers/{arxiv_id:path}",
    tags=["papers"],
    response_model=PaperOut,
    responses={**NOT_MODIFIED, 404: documented("Unknown paper")},
)
def api_paper(request: Request, arxiv_id: params.PaperId, conn: ConnDep) -> Response:
    """One paper by arXiv id (any accepted spelling: old or new style, vN, URL)."""
    if arxiv_id.endswith("/clicks"):  # this route's `:path` would take the POST-only route's
        raise HTTPException(405, "Method Not Allowed", headers={"Allow": "POST"})
    key = params.paper_id(arxiv_id)
    paper = paper_detail(conn, key)
    if paper is None:
        raise HTTPException(404, f"paper {key} is not in the store")
    return cached_json(request, PaperOut.model_validate(_paper_json(paper)), PAPER_CACHE)
