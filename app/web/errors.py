"""The JSON API's one error shape, `{"error": {"code": …, "message": …}}`: the response
builder, the exception a route or dependency raises to send one, and the OpenAPI
`responses=` entries documenting it, built from one table.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from fastapi import Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail


def error_response(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """Every API error: {"error": {"code": …, "message": …}}."""
    return JSONResponse(
        {"error": {"code": code, "message": message}},
        status_code=status,
        headers=dict(headers) if headers else None,
    )


class ApiError(Exception):
    """An error answer (status, code, message); routes of an `ApiRoute` router, and their
    dependencies, raise it instead of returning the response."""

    def __init__(
        self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(status, code, message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})

    def response(self) -> JSONResponse:
        return error_response(self.status, self.code, self.message, self.headers)


class ApiRoute(APIRoute):
    """A route that answers an `ApiError` raised by its endpoint or its dependencies in the
    one error shape, whichever app includes it (no app-wide handler needed)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except ApiError as exc:
                return exc.response()

        return handle


# --- OpenAPI ------------------------------------------------------------------------------

Responses = dict[int | str, dict[str, Any]]


def documented(description: str) -> dict[str, Any]:
    """One OpenAPI `responses=` entry in the error shape."""
    return {"model": ErrorBody, "description": description}


# What any API route may answer (a router's default `responses=`).
COMMON: Mapping[int, str] = {
    400: "Invalid id, category, date range or page token",
    414: "The URL is longer than 32 KiB",
    422: "A parameter failed validation",
    429: "Too many requests; see Retry-After",
}


def error_responses(own: Mapping[int, str] | None = None, *, common: bool = True) -> Responses:
    """OpenAPI `responses=` for a router or route: the common errors (unless `common` is
    false) with `own` descriptions added or put in their place."""
    table = {**(COMMON if common else {}), **(own or {})}
    return {status: documented(description) for status, description in table.items()}


API_ERRORS = error_responses()
ADMIN_ERRORS = error_responses(
    {
        401: "Missing or wrong bearer token",
        403: "The admin API is disabled: no PAPERSHELF_ADMIN_TOKEN is configured",
    },
    common=False,
)
