"""HTTP protocol rules every route shares, applied below the routers so no route can miss
them (installed by `install(app)`):

- HEAD is answered wherever GET is: the request runs as a GET and the client gets the same
  status and headers without the body;
- a 405's `Allow` names every method the path answers (HEAD beside GET);
- requests no route could answer sensibly are refused before routing: a NUL anywhere in the
  decoded path or query string (PostgreSQL text cannot hold one) is a 400, and a URL over
  `MAX_URL_BYTES` a 414. The answer takes the shape of what was asked for: the API's JSON
  error under `/api/`, the HTML error page elsewhere.

The server's own HTTP parser refuses request lines far longer than `MAX_URL_BYTES` (uvicorn:
a plain-text 400 at 64 KiB) before the app sees them; below that, this limit answers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator, MutableMapping
from typing import Any
from urllib.parse import unquote_to_bytes

from fastapi import FastAPI, Request, Response
from starlette.middleware import Middleware
from starlette.routing import Match

from app.web.errors import error_response
from app.web.pages.errors import error_page

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Path plus query string, in bytes as sent (percent-encoded). Above any URL the site or the
# API makes (a search query of 10,000 characters fits), below the server's own limit
# (uvicorn with httptools: 64 KiB for the request head), so an over-long URL gets this app's
# error shape.
MAX_URL_BYTES = 32 * 1024
# Paths answered in the API's JSON error shape; everything else is a page.
JSON_PREFIXES = ("/api/",)
JSON_PATHS = frozenset({"/openapi.json", "/healthz", "/readyz", "/metrics"})


def wants_json(path: str) -> bool:
    return path.startswith(JSON_PREFIXES) or path in JSON_PATHS


def refusal(scope: Scope) -> tuple[int, str, str, str] | None:
    """Why this request is refused before routing, as (status, code, title, message); None
    when it may go on."""
    raw_path: bytes = scope.get("raw_path") or scope.get("path", "").encode("utf-8", "replace")
    query: bytes = scope.get("query_string", b"")
    if len(raw_path) + len(query) > MAX_URL_BYTES:
        return (
            414,
            "uri_too_long",
            "Address too long",
            f"the URL is longer than {MAX_URL_BYTES} bytes",
        )
    # A NUL reaches the query only percent-encoded: most queries need no decoding at all.
    if "\x00" in scope.get("path", "") or (b"%" in query and b"\x00" in unquote_to_bytes(query)):
        return (
            400,
            "bad_request",
            "Bad address",
            "the path or a query parameter holds a NUL character",
        )
    return None


async def _refuse(
    scope: Scope, receive: Receive, send: Send, refused: tuple[int, str, str, str]
) -> None:
    status, code, title, message = refused
    response: Response
    if wants_json(scope.get("path", "")):
        response = error_response(status, code, message)
    else:
        response = error_page(Request(scope, receive), status, title, message)
    await response(scope, receive, send)


class RequestGuard:
    """Refuses NUL characters and over-long URLs (see `refusal`) before any route runs.
    Innermost of the app's own layers, so the access log, metrics and security headers
    cover its answers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (refused := refusal(scope)) is not None:
            await _refuse(scope, receive, send, refused)
            return
        await self.app(scope, receive, send)


def _routes(routes: Iterable[Any]) -> Iterator[Any]:
    """Every route, through included routers."""
    for route in routes:
        if hasattr(route, "original_router"):
            yield from _routes(route.original_router.routes)
        else:
            yield route


def allowed_methods(scope: Scope) -> list[str]:
    """The methods the routes for this path answer, HEAD with GET. The router's own 405
    names only the first route it met; where several routes share the path (a GET and a
    POST), all count, and only the most specific template does (a `{id:path}` route must
    not claim `{id:path}/clicks`)."""
    router = getattr(scope.get("app"), "router", None)
    probe = {**scope, "method": "\0"}  # matches no route fully: every path match is partial
    found: dict[str, set[str]] = {}
    for route in _routes(getattr(router, "routes", ())):
        match, _ = route.matches(probe)
        if match != Match.NONE and getattr(route, "methods", None):
            found.setdefault(route.path, set()).update(route.methods)
    if not found:
        return []
    methods = found[max(found, key=len)]
    if "GET" in methods:
        methods.add("HEAD")
    order = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
    return sorted(methods, key=lambda m: (order.index(m) if m in order else len(order), m))


def _with_allow(scope: Scope, headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """A 405's headers with `Allow` naming every method of the path (see `allowed_methods`)."""
    methods = allowed_methods(scope)
    if not methods:
        return headers
    rest = [(k, v) for k, v in headers if k.lower() != b"allow"]
    return [*rest, (b"allow", ", ".join(methods).encode())]


class HeadAsGet:
    """HEAD runs as GET below this layer; the client gets GET's status and headers (its
    Content-Length and ETag included) and no body. Outermost, so every other layer (Host
    check, rate limit, compression) treats it exactly as the GET it stands for."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        head = scope.get("method") == "HEAD"
        done = False

        async def send_wrapper(message: Message) -> None:
            nonlocal done
            if done:
                return  # the rest of a GET's body (a stream, say) is not sent for HEAD
            if message["type"] == "http.response.start":
                if message["status"] == 405:
                    headers = _with_allow(scope, list(message.get("headers", [])))
                    message = {**message, "headers": headers}
                await send(message)
                if head:
                    # The whole answer to a HEAD: headers, then an empty, final body.
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                    done = True
                return
            await send(message)

        async def receive_wrapper() -> Message:
            if done:  # a HEAD is answered: a streaming GET below stops as on a disconnect
                return {"type": "http.disconnect"}
            return await receive()

        inner = {**scope, "method": "GET"} if head else scope
        await self.app(inner, receive_wrapper, send_wrapper)


def install(app: FastAPI) -> None:
    """Add both layers: `HeadAsGet` outermost, `RequestGuard` innermost of the app's own
    middleware (call after the other middleware is added, before the app starts)."""
    app.add_middleware(HeadAsGet)
    app.user_middleware.append(Middleware(RequestGuard))
