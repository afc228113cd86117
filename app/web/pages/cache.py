"""The rendered pages' caches: one object per kind of page and app (created in its
lifespan): the day listings' (`app.state.page_cache`, reached through `PageCacheDep` and by
the listings' fast path, `app.web.pages.listing.CachedListings`), the paper pages'
(`app.state.paper_pages`) and the search pages' (`app.state.search_pages`, with its fast
path `app.web.pages.search.CachedSearches`).

Each web process keeps its own; what another process (or a fetch) writes reaches it through
the data versions, which are trusted for `version_ttl` seconds and then asked for again."""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable
from datetime import date
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import Connection
from starlette.types import ASGIApp, Receive, Scope, Send

from app.listing import CategoryExpr, latest_day, listing_version
from app.web.http import etag_matches

PAGES_KEPT = 64
PAPER_PAGES_KEPT = 1024  # paper pages are small (a few kB each)
SEARCH_PAGES_KEPT = 128  # ~70 kB each: a day's popular queries, not every query
VERSION_TTL = 2.0  # seconds a computed version is trusted (pages say max-age=60 anyway)
VERSIONS_KEPT = 1024
HTML = b"text/html; charset=utf-8"

#: What a fast path answers: status, raw headers, body.
Answer = tuple[int, list[tuple[bytes, bytes]], bytes]


class PageCache:
    """Rendered listing pages by ETag (the ETag covers the data version, so entries never
    go stale: a change makes a new key); each listing's data version, and each expression's
    latest day, for `version_ttl` seconds, so under load a cached page or a revalidation
    (304) costs no query at all. Per process; thread-safe. `clock` is what ages the
    remembered versions (monotonic seconds)."""

    def __init__(
        self,
        size: int = PAGES_KEPT,
        version_ttl: float = VERSION_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.size = size
        self.version_ttl = version_ttl
        self.clock = clock
        self._pages: OrderedDict[str, bytes] = OrderedDict()
        # (canonical expression, day) → (when computed, version)
        self._versions: dict[tuple[str, date], tuple[float, str]] = {}
        # canonical expression → (when computed, its latest day)
        self._latest: dict[str, tuple[float, date | None]] = {}
        # request key → (when validated, the ETag of its answer): pages whose version costs
        # more than a query to know (a search's results must be found first).
        self._answers: dict[str, tuple[float, str]] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        with self._lock:
            body = self._pages.get(key)
            if body is not None:
                self._pages.move_to_end(key)
            return body

    def put(self, key: str, body: bytes) -> None:
        with self._lock:
            self._pages[key] = body
            self._pages.move_to_end(key)
            while len(self._pages) > self.size:
                self._pages.popitem(last=False)

    def fresh_version(self, canonical: str, day: date) -> str | None:
        """The listing's remembered version while it is younger than `version_ttl`, else
        None (no query: the fast path's question)."""
        hit = self._versions.get((canonical, day))
        if hit is None or self.clock() - hit[0] >= self.version_ttl:
            return None
        return hit[1]

    def fresh_latest_day(self, canonical: str) -> tuple[bool, date | None]:
        """(known, day): the expression's remembered latest day while it is younger than
        `version_ttl`; (False, None) when it must be asked for."""
        hit = self._latest.get(canonical)
        if hit is None or self.clock() - hit[0] >= self.version_ttl:
            return False, None
        return True, hit[1]

    def fresh_answer(self, key: str) -> str | None:
        """The ETag of the answer to `key` while it was validated less than `version_ttl`
        seconds ago, else None."""
        hit = self._answers.get(key)
        if hit is None or self.clock() - hit[0] >= self.version_ttl:
            return None
        return hit[1]

    def remember_answer(self, key: str, etag: str) -> None:
        """`etag` names the answer to `key` as of now (see `fresh_answer`)."""
        now = self.clock()
        with self._lock:
            if len(self._answers) > VERSIONS_KEPT:
                self._answers.clear()
            self._answers[key] = (now, etag)

    def version(self, conn: Connection, expr: CategoryExpr, day: date) -> str:
        """The listing's data version (`app.listing.listing_version`), remembered for
        `version_ttl` seconds."""
        canonical = expr.canonical()
        if (known := self.fresh_version(canonical, day)) is not None:
            return known
        now = self.clock()
        version = listing_version(conn, expr, day)
        with self._lock:
            if len(self._versions) > VERSIONS_KEPT:
                self._versions.clear()
            self._versions[(canonical, day)] = (now, version)
        return version

    def latest_day(self, conn: Connection, expr: CategoryExpr) -> date | None:
        """The expression's latest day with papers (`app.listing.latest_day`), remembered
        for `version_ttl` seconds: a listing without a date costs no extra query."""
        canonical = expr.canonical()
        known, day = self.fresh_latest_day(canonical)
        if known:
            return day
        now = self.clock()
        day = latest_day(conn, expr)
        with self._lock:
            if len(self._latest) > VERSIONS_KEPT:
                self._latest.clear()
            self._latest[canonical] = (now, day)
        return day

    def forget_versions(self) -> None:
        """Drop the remembered versions, latest days and answers (what `version_ttl` does on
        its own)."""
        with self._lock:
            self._versions.clear()
            self._latest.clear()
            self._answers.clear()


def cached_answer(
    cache: PageCache, etag: bytes, request_headers: list[tuple[bytes, bytes]], cache_control: bytes
) -> Answer | None:
    """A fast path's answer for a page whose current ETag is known: 304 for a matching
    `If-None-Match`, else the page kept under that ETag; None when it is not kept (the
    route renders it)."""
    for name, value in request_headers:
        if name == b"if-none-match":
            if etag_matches(value.decode("latin-1"), etag.decode()):
                return 304, [(b"etag", etag), (b"cache-control", cache_control)], b""
            break  # the route reads the first one too
    body = cache.get(etag.decode())
    if body is None:
        return None
    headers = [
        (b"etag", etag),
        (b"cache-control", cache_control),
        (b"content-length", str(len(body)).encode()),
        (b"content-type", HTML),
    ]
    return 200, headers, body


def route_named(routes: list[Any], path: str) -> Any:
    """The route with this template, through included routers; None when there is none (a
    fast path names it in the scope, so metrics and the log count its answers there)."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        found = route_named(inner.routes, path) if inner else None
        if found is not None or getattr(route, "path", None) == path:
            return found or route
    return None


def scope_key(scope: Scope) -> str:
    """What the page caches know a URL's answer by (`remember_answer`): its path and query
    string, as sent."""
    return f"{scope['path']}?{scope['query_string'].decode('latin-1')}"


def request_key(request: Request) -> str:
    return scope_key(request.scope)


class FastPath(ABC):
    """An innermost ASGI layer answering some GETs from one of the app's page caches before
    routing (no dependency injection, no database connection, no threadpool hop); every
    other request goes on to the route. A subclass names the cache (`state_name`, on
    `app.state`) and the route it answers for (`route_path`, named in the scope so metrics
    and the access log count the answer there), and says which paths it may answer
    (`wants`) and with what (`answer`; None when the route must)."""

    state_name = ""
    route_path = ""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._route: Any = None

    @abstractmethod
    def wants(self, path: str) -> bool:
        """Whether a GET of `path` is one this layer may answer."""

    @abstractmethod
    def answer(self, scope: Scope, cache: PageCache) -> Answer | None:
        """The answer from `cache`, or None when the route must give it."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "GET"
            and self.wants(scope["path"])
            and (answer := self._answer(scope)) is not None
        ):
            status, headers, body = answer
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)

    def _answer(self, scope: Scope) -> Answer | None:
        app = scope.get("app")
        cache = getattr(getattr(app, "state", None), self.state_name, None)
        if not isinstance(cache, PageCache) or scope.get("root_path"):
            return None
        answer = self.answer(scope, cache)
        if answer is not None:
            if self._route is None:
                self._route = route_named(getattr(app, "routes", []), self.route_path)
            scope["route"] = self._route
        return answer


async def get_page_cache(request: Request) -> PageCache:
    # async: a plain attribute read, which FastAPI would otherwise run in its threadpool.
    return request.app.state.page_cache


PageCacheDep = Annotated[PageCache, Depends(get_page_cache)]


async def get_paper_pages(request: Request) -> PageCache | None:
    """The app's cache of rendered paper pages (`app.state.paper_pages`), if it keeps one."""
    cache = getattr(request.app.state, "paper_pages", None)
    return cache if isinstance(cache, PageCache) else None


PaperPagesDep = Annotated[PageCache | None, Depends(get_paper_pages)]


async def get_search_pages(request: Request) -> PageCache | None:
    """The app's cache of rendered search pages (`app.state.search_pages`), if it keeps one."""
    cache = getattr(request.app.state, "search_pages", None)
    return cache if isinstance(cache, PageCache) else None


SearchPagesDep = Annotated[PageCache | None, Depends(get_search_pages)]
