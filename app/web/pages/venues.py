"""`/venue`: the imported conference venues, and one venue's papers a page at a time."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from app.db.queries import venue, venue_papers, venues
from app.web.deps import ConnDep
from app.web.pages.errors import error_page
from app.web.pages.params import parse_page
from app.web.templating import TEMPLATES

router = APIRouter()

VENUE_PAGE_SIZE = 100


@router.get("/venue", response_class=HTMLResponse, include_in_schema=False)
def venues_page(request: Request, conn: ConnDep) -> Response:
    return TEMPLATES.TemplateResponse(request, "venues.html", {"venues": venues(conn)})


@router.get("/venue/{name}", response_class=HTMLResponse, include_in_schema=False)
def venue_page(request: Request, conn: ConnDep, name: str, page: str = "1") -> Response:
    row = venue(conn, name)
    if row is None:
        return error_page(request, 404, "Unknown venue", f"No venue named {name!r} is stored.")
    try:
        number = parse_page(page)
    except ValueError as exc:
        return error_page(request, 400, "Bad page", str(exc))
    rows = venue_papers(conn, name, limit=VENUE_PAGE_SIZE, offset=(number - 1) * VENUE_PAGE_SIZE)
    return TEMPLATES.TemplateResponse(
        request,
        "venue.html",
        {
            "venue": row,
            "papers": rows,
            "page": number,
            "has_more": number * VENUE_PAGE_SIZE < row.paper_count,
        },
    )
