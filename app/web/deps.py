"""Typed dependencies and the one JSON error shape shared by every router."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request
from fastapi.responses import JSONResponse
from fastapi.templating import Jinja2Templates
from sqlalchemy import Connection, Engine

from app.settings import Settings, get_settings

TEMPLATES = Jinja2Templates(directory=Path(__file__).resolve().parents[2] / "templates")


def get_engine_dep(request: Request) -> Engine:
    return request.app.state.engine


def get_conn(engine: Annotated[Engine, Depends(get_engine_dep)]) -> Iterator[Connection]:
    """One connection per request (reads); routes that write use `engine.begin()`."""
    with engine.connect() as conn:
        yield conn


ConnDep = Annotated[Connection, Depends(get_conn)]
EngineDep = Annotated[Engine, Depends(get_engine_dep)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


def error_response(status: int, code: str, message: str) -> JSONResponse:
    """Every API error: {"error": {"code": …, "message": …}}."""
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)
