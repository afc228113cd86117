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
from app.web import api, feeds, middleware, pages
from app.web.deps import ConnDep, error_response


@asynccontextmanager
async def lifespan(app: FastAPI):  # type: ignore[no-untyped-def]
    app.state.engine = get_engine()
    yield
    app.state.engine.dispose()


app = FastAPI(title="Papershelf", version=__version__, lifespan=lifespan)
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
def readyz(conn: ConnDep) -> dict[str, str]:
    conn.execute(text("SELECT 1"))
    return {"status": "ready", "database": "ok"}
