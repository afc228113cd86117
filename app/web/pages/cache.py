"""The day listings' page cache: one object per app (created in its lifespan, on
`app.state.page_cache`), reached by the pages through `PageCacheDep` and by the listings'
fast path (`app.web.pages.listing.CachedListings`) directly.

Each web process keeps its own; what another process (or a fetch) writes reaches it through
the data versions, which are trusted for `version_ttl` seconds and then asked for again."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import date
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Connection

from app.listing import CategoryExpr, latest_day, listing_version

PAGES_KEPT = 64
PAPER_PAGES_KEPT = 1024  # paper pages are small (a few kB each)
VERSION_TTL = 2.0  # seconds a computed version is trusted (pages say max-age=60 anyway)
VERSIONS_KEPT = 1024


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
        """Drop the remembered versions and latest days (what `version_ttl` does on its
        own)."""
        with self._lock:
            self._versions.clear()
            self._latest.clear()


async def get_page_cache(request: Request) -> PageCache:
    # async: a plain attribute read, which FastAPI would otherwise run in its threadpool.
    return request.app.state.page_cache


PageCacheDep = Annotated[PageCache, Depends(get_page_cache)]


async def get_paper_pages(request: Request) -> PageCache | None:
    """The app's cache of rendered paper pages (`app.state.paper_pages`), if it keeps one."""
    cache = getattr(request.app.state, "paper_pages", None)
    return cache if isinstance(cache, PageCache) else None


PaperPagesDep = Annotated[PageCache | None, Depends(get_paper_pages)]
