"""Browser pages (Jinja2, server-rendered; reading works without JavaScript)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from app.db import runs
from app.db.queries import stats as read_stats
from app.schedule import ET, parse_holidays
from app.search.backend import search_papers
from app.settings import get_settings
from app.web.deps import TEMPLATES, ConnDep

router = APIRouter()


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def index(request: Request, conn: ConnDep, q: Annotated[str, Query(max_length=10_000)] = ""):
    settings = get_settings()
    s = read_stats(conn)
    page = search_papers(conn, q, limit=50) if q.strip() else None
    fetch = runs.status_summary(
        conn,
        categories=settings.categories,
        now=datetime.now(UTC),
        holidays=parse_holidays(settings.arxiv_holidays),
    )
    return TEMPLATES.TemplateResponse(
        request,
        "index.html",
        {
            "stats": s,
            "q": q,
            "page": page,
            "followed": settings.categories,
            "fetch": fetch,
            "upstream_down": _upstream_down(fetch),
            "ET": ET,
        },
    )


def _upstream_down(fetch: dict[str, Any]) -> dict[str, Any] | None:
    """The latest failed fetch, when nothing has succeeded since: shown as a notice."""
    failed, ok = fetch.get("last_failed"), fetch.get("last_ok")
    if not failed:
        return None
    if ok and (ok.get("finished_at") or ok["started_at"]) > failed["started_at"]:
        return None
    return failed
