"""The FastAPI application: the JSON API under /api/v1 and the browser pages."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.templating import Jinja2Templates
from sqlalchemy import Connection, Engine, text

from app import __version__
from app.db import runs
from app.db.engine import get_engine
from app.db.queries import get_paper
from app.db.queries import stats as read_stats
from app.ingest.ids import InvalidArxivId, parse_arxiv_id
from app.schedule import ET, parse_holidays
from app.search.backend import search_papers
from app.settings import get_settings

TEMPLATES = Jinja2Templates(directory=Path(__file__).resolve().parents[1] / "templates")


@asynccontextmanager
async def lifespan(app: FastAPI):  # type: ignore[no-untyped-def]
    app.state.engine = get_engine()
    yield
    app.state.engine.dispose()


app = FastAPI(title="Papershelf", version=__version__, lifespan=lifespan)


def _engine(request: Request) -> Engine:
    return request.app.state.engine


def get_conn(engine: Annotated[Engine, Depends(_engine)]) -> Iterator[Connection]:
    with engine.connect() as conn:
        yield conn


ConnDep = Annotated[Connection, Depends(get_conn)]


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


@app.exception_handler(HTTPException)
async def _http_error(_request: Request, exc: HTTPException) -> JSONResponse:
    code = {404: "not_found", 400: "bad_request"}.get(exc.status_code, "error")
    return _error(exc.status_code, code, str(exc.detail))


@app.exception_handler(RequestValidationError)
async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
    problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
    return _error(422, "invalid_parameter", problems)


@app.get("/healthz", include_in_schema=False)
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/readyz", include_in_schema=False)
def readyz(conn: ConnDep) -> dict[str, str]:
    conn.execute(text("SELECT 1"))
    return {"status": "ready", "database": "ok"}


def _paper_json(paper: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in paper.items() if k not in ("pk", "content_hash", "title_key")}
    for key, value in out.items():
        if hasattr(value, "isoformat"):
            out[key] = value.isoformat()
    out["abs_url"] = f"https://arxiv.org/abs/{paper['arxiv_id']}"
    out["pdf_url"] = f"https://arxiv.org/pdf/{paper['arxiv_id']}"
    return out


@app.get("/api/v1/papers/{arxiv_id:path}", tags=["papers"])
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


@app.get("/api/v1/search", tags=["search"])
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


@app.get("/api/v1/stats", tags=["stats"])
def api_stats(conn: ConnDep) -> dict[str, Any]:
    return read_stats(conn).to_json()


@app.get("/", response_class=HTMLResponse, include_in_schema=False)
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
