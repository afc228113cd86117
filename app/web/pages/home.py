"""The front page (stats, fetch status, the category picker), the picker's form handler
and the starred-papers shell."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from app import fetch_status
from app.db.queries import stats as read_stats
from app.hybrid import search
from app.listing import InvalidExpression, parse_expression
from app.schedule import ET, parse_holidays
from app.settings import get_settings
from app.taxonomy import get_taxonomy
from app.web.deps import ConnDep
from app.web.pages.errors import error_page
from app.web.templating import TEMPLATES

router = APIRouter()

PICK_STATES = ("inc", "exc", "off")


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def index(
    request: Request, conn: ConnDep, q: Annotated[str, Query(max_length=10_000)] = ""
) -> Response:
    settings = get_settings()
    s = read_stats(conn)
    page = search(conn, q, limit=50) if q.strip() else None
    fetch = fetch_status.status_summary(
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
            "upstream_down": upstream_down(fetch),
            "ET": ET,
            "tree": get_taxonomy().tree(),
            "followed_set": set(settings.categories),
        },
    )


def upstream_down(fetch: dict[str, Any]) -> dict[str, Any] | None:
    """The latest failed fetch, when nothing has succeeded since: shown as a notice."""
    failed, ok = fetch.get("last_failed"), fetch.get("last_ok")
    if not failed:
        return None
    if ok and (ok.get("finished_at") or ok["started_at"]) > failed["started_at"]:
        return None
    return failed


@router.get("/pick", include_in_schema=False)
def pick(request: Request) -> Response:
    """The picker on `/` submits `c.<category>=inc|exc|off` per category; this builds the
    expression (includes first, then exclusions, in form order) and redirects to it. Works
    without JavaScript."""
    tax = get_taxonomy()
    states: dict[str, str] = {}
    for key, value in request.query_params.multi_items():
        if not key.startswith("c."):
            continue
        raw = key[2:]
        canon = tax.canonical(raw)
        if canon is None:
            return error_page(request, 400, "Unknown category", f"unknown category {raw[:40]!r}")
        value = value.strip() or "off"
        if value not in PICK_STATES:
            return error_page(
                request, 400, "Bad choice", f"{canon}: choose inc, exc or off, not {value[:20]!r}"
            )
        states.pop(canon, None)  # the last choice wins, in its own place
        states[canon] = value
    include = [c for c, v in states.items() if v == "inc"]
    exclude = [c for c, v in states.items() if v == "exc"]
    if not include:
        return error_page(
            request,
            400,
            "Nothing picked",
            "Include at least one category: exclusions only narrow the lists you include.",
        )
    try:
        expr = parse_expression("+".join(include) + "".join(f"-{c}" for c in exclude))
    except InvalidExpression as exc:
        return error_page(request, 400, "Not a category expression", str(exc))
    return RedirectResponse(f"/arxiv/{expr.canonical()}", status_code=303)


@router.get("/starred", response_class=HTMLResponse, include_in_schema=False)
def starred_page(request: Request) -> Response:
    """A shell: the stars live in the browser's localStorage, and papershelf.js fills it
    (and imports stars from a `#import=<base64url JSON>` link)."""
    return TEMPLATES.TemplateResponse(request, "starred.html", {})
