"""Imported conference venues and their papers (keyset-paged in import order)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response
from sqlalchemy import select

from app.db.models import Venue, VenuePaper
from app.web.api import params
from app.web.api.schemas import VenueOut, VenuePage, VenuePaperOut, VenuesOut, isoformat
from app.web.deps import ConnDep, SettingsDep
from app.web.errors import API_ERRORS, ApiRoute, documented
from app.web.http import (
    LISTING_CACHE,
    NOT_MODIFIED,
    cached_json,
    decode_page_token,
    encode_page_token,
    fingerprint,
)

router = APIRouter(prefix="/api/v1", responses=API_ERRORS, route_class=ApiRoute)

venues_t = Venue.__table__
venue_papers_t = VenuePaper.__table__

VenueName = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")]


def _venue_out(row: Any) -> VenueOut:
    return VenueOut(
        name=row.name,
        papers=row.paper_count,
        linked_to_arxiv=row.linked_count,
        imported_at=isoformat(row.imported_at),
    )


@router.get("/venues", tags=["venues"], response_model=VenuesOut, responses=NOT_MODIFIED)
def api_venues(request: Request, conn: ConnDep) -> Response:
    """Imported conference venues (e.g. iclr2018)."""
    rows = conn.execute(select(venues_t).order_by(venues_t.c.name)).all()
    return cached_json(request, VenuesOut(venues=[_venue_out(r) for r in rows]), LISTING_CACHE)


@router.get(
    "/venues/{name}",
    tags=["venues"],
    response_model=VenuePage,
    responses={**NOT_MODIFIED, 404: documented("Unknown venue")},
)
def api_venue(
    request: Request,
    conn: ConnDep,
    settings: SettingsDep,
    name: VenueName,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    page_token: params.PageToken = None,
) -> Response:
    """A venue's papers in import order, keyset-paged."""
    venue = conn.execute(select(venues_t).where(venues_t.c.name == name)).first()
    if venue is None:
        raise HTTPException(404, f"venue {name} is not in the store")
    filters = fingerprint(name)
    where: list[Any] = [venue_papers_t.c.venue == name]
    if page_token:  # an empty token is the first page
        position = decode_page_token(settings, page_token, "venue", filters)
        if len(position) != 1 or type(position[0]) is not int:
            raise HTTPException(400, "invalid page token")
        where.append(venue_papers_t.c.pk > position[0])
    rows = conn.execute(
        select(venue_papers_t).where(*where).order_by(venue_papers_t.c.pk).limit(limit + 1)
    ).all()
    more = len(rows) > limit
    rows = rows[:limit]
    token = encode_page_token(settings, "venue", filters, [rows[-1].pk]) if more else None
    page = VenuePage(
        venue=_venue_out(venue),
        papers=[
            VenuePaperOut(
                venue_paper_id=r.venue_paper_id,
                title=r.title,
                authors=list(r.authors or []),
                abstract=r.abstract,
                status=r.status,
                track=r.track,
                site=r.site,
                keywords=r.keywords,
                tldr=r.tldr,
                arxiv_id=r.arxiv_id,
            )
            for r in rows
        ],
        limit=limit,
        next_page_token=token,
    )
    return cached_json(request, page, LISTING_CACHE)
