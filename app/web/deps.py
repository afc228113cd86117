"""Typed dependencies shared by every router: settings, the engine, a connection per
request and the admin check (the page templates: `app.web.templating`)."""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Connection, Engine

from app.settings import Settings, get_settings
from app.web.errors import ApiError


def get_engine_dep(request: Request) -> Engine:
    return request.app.state.engine


def get_conn(engine: Annotated[Engine, Depends(get_engine_dep)]) -> Iterator[Connection]:
    """One connection per request (reads); routes that write use `engine.begin()`.

    On PostgreSQL the connection runs in autocommit: each read is its own statement, as it
    is inside a READ COMMITTED transaction anyway (every statement takes a new snapshot),
    without a BEGIN and a ROLLBACK round trip around every request. SQLite's driver opens
    no transaction for reads in the first place."""
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.execution_options(isolation_level="AUTOCOMMIT")
        yield conn


ConnDep = Annotated[Connection, Depends(get_conn)]
EngineDep = Annotated[Engine, Depends(get_engine_dep)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


def require_admin(request: Request, settings: SettingsDep) -> None:
    """Pass when the request carries the admin bearer token; else an `ApiError` (the route
    must be an `ApiRoute` for it to become the error response)."""
    expected = settings.admin_token
    if not expected:
        # 403, not 503: a deliberate configuration, not an outage to alert on.
        raise ApiError(
            403,
            "admin_disabled",
            "the admin API is disabled: set PAPERSHELF_ADMIN_TOKEN to enable it",
        )
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        given.strip().encode(), expected.encode()
    ):
        raise ApiError(
            401,
            "unauthorized",
            "a valid admin bearer token is required",
            headers={"WWW-Authenticate": 'Bearer realm="papershelf-admin"'},
        )


AdminDep = Annotated[None, Depends(require_admin)]
