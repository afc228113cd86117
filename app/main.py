"""The FastAPI application: `create_app` builds it (routers for pages and the JSON API,
the template filters, the middleware, error handlers, health endpoints); `app` is the one
the server runs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import text
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware

from app import __version__
from app.db.engine import get_engine
from app.settings import get_settings
from app.web import api, feeds, lab, middleware, pages, protocol, related
from app.web.errors import error_response
from app.web.pages.cache import PAPER_PAGES_KEPT, SEARCH_PAGES_KEPT, PageCache
from app.web.pages.listing import CachedListings
from app.web.pages.search import CachedSearches
from app.web.templating import TEMPLATES, install_filters


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """The app's resources: the engine, and the page caches of the day listings, the paper
    pages and the search pages."""
    app.state.engine = get_engine()
    app.state.page_cache = PageCache()
    app.state.paper_pages = PageCache(size=PAPER_PAGES_KEPT)
    app.state.search_pages = PageCache(size=SEARCH_PAGES_KEPT)
    yield
    app.state.engine.dispose()


async def _http_error(_request: Request, exc: HTTPException) -> JSONResponse:
    code = {404: "not_found", 400: "bad_request", 405: "method_not_allowed"}.get(
        exc.status_code, "error"
    )
    # Its headers too: a 405 names the allowed methods (`Allow`).
    return error_response(exc.status_code, code, str(exc.detail), exc.headers)


async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
    problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
    return error_response(422, "invalid_parameter", problems)


def healthz() -> dict[str, str]:
    return {"status": "ok"}


async def readyz(request: Request) -> JSONResponse:
    """Ready when the database answers, and Redis too where one is configured. Otherwise
    503 with the API's error shape naming what failed; every check is bounded (a few
    seconds), so a probe never hangs."""
    import asyncio

    from redis.asyncio import Redis
    from starlette.concurrency import run_in_threadpool

    def ping_db() -> None:
        with request.app.state.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    async def ping_redis(url: str) -> None:
        client = Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        try:
            await client.ping()
        finally:
            await client.aclose()

    checks = {"database": lambda: run_in_threadpool(ping_db)}
    redis_url = get_settings().redis_url
    if redis_url:
        checks["redis"] = lambda: ping_redis(redis_url)
    body: dict[str, str] = {}
    failed: dict[str, str] = {}
    for name, check in checks.items():
        try:
            await asyncio.wait_for(check(), timeout=3)
            body[name] = "ok"
        except Exception as exc:  # down, refused, timed out: all mean not ready
            body[name] = "unavailable"
            failed[name] = f"{type(exc).__name__}: {exc}"[:300] if str(exc) else type(exc).__name__
    if failed:
        message = "; ".join(f"{name}: {why}" for name, why in failed.items())
        return JSONResponse(
            {
                "error": {"code": "not_ready", "message": message, "failing": sorted(failed)},
                "status": "not_ready",
                **body,
            },
            status_code=503,
        )
    return JSONResponse({"status": "ready", **body})


def create_app() -> FastAPI:
    # No /docs or /redoc: FastAPI's pages load their scripts from a CDN. The schema stays at
    # /openapi.json for any OpenAPI viewer or client generator.
    app = FastAPI(
        title="Papershelf",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    install_filters(TEMPLATES.env)
    # First: the API's /papers/{id:path} and the pages' /arxiv/{rest:path} would otherwise
    # swallow the .../related routes.
    app.include_router(related.router)
    app.include_router(lab.router)
    app.include_router(api.router)
    app.include_router(feeds.router)
    app.include_router(pages.router)
    middleware.install(app, get_settings())
    protocol.install(app)  # HEAD as GET, Allow on 405, NUL and URL-length refusals
    # Innermost: cached day listings, repeated searches and their 304s answered before
    # routing, inside every layer above (Host check, rate limit, headers, log, metrics,
    # compression, HEAD).
    app.user_middleware.append(Middleware(CachedListings))
    app.user_middleware.append(Middleware(CachedSearches))
    # Starlette's HTTPException (FastAPI's subclasses it) so the router's own 404/405
    # answers use the one error shape too.
    # Starlette types a handler as taking any Exception; ours take the one class they handle.
    app.add_exception_handler(HTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_api_route("/healthz", healthz, methods=["GET"], include_in_schema=False)
    app.add_api_route("/readyz", readyz, methods=["GET"], include_in_schema=False)
    return app


app = create_app()
