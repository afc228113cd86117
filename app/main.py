"""The FastAPI application: routers for pages and the JSON API, health endpoints."""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import text
from starlette.exceptions import HTTPException

from app import __version__
from app.db.engine import get_engine
from app.settings import get_settings
from app.web import api, faq, feeds, lab, middleware, ml_api, pages, related
from app.web.deps import error_response


@asynccontextmanager
async def lifespan(app: FastAPI):  # type: ignore[no-untyped-def]
    app.state.engine = get_engine()
    yield
    app.state.engine.dispose()


app = FastAPI(title="Papershelf", version=__version__, lifespan=lifespan)
# First: the API's /papers/{id:path} and the pages' /arxiv/{rest:path} would otherwise
# swallow the .../related routes.
app.include_router(related.router)
app.include_router(faq.router)  # before api/pages too, for the same reason
app.include_router(ml_api.router)  # before api: /papers/{id}/thumbnail.png
app.include_router(lab.router)
app.include_router(api.router)
app.include_router(feeds.router)
app.include_router(pages.router)
middleware.install(app, get_settings())


# Starlette's HTTPException (FastAPI's subclasses it) so the router's own 404/405 answers
# use the one error shape too.
@app.exception_handler(HTTPException)
async def _http_error(_request: Request, exc: HTTPException) -> JSONResponse:
    code = {404: "not_found", 400: "bad_request", 405: "method_not_allowed"}.get(
        exc.status_code, "error"
    )
    return error_response(exc.status_code, code, str(exc.detail))


@app.exception_handler(RequestValidationError)
async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
    problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
    return error_response(422, "invalid_parameter", problems)


@app.get("/healthz", include_in_schema=False)
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/readyz", include_in_schema=False)
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
