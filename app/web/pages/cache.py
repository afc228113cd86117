"""The day listings' page cache: one object per app (created in its lifespan, on
`app.state.page_cache`), reached by the pages through `PageCacheDep`."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from datetime import date
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Connection

from app.listing import CategoryExpr, listing_version

PAGES_KEPT = 64
VERSION_TTL = 2.0  # seconds a computed version is trusted (pages say max-age=60 anyway)
VERSIONS_KEPT = 1024


class PageCache:
    """Rendered listing pages by ETag (the ETag covers the data version, so entries never
    go stale: a change makes a new key), and each listing's data version for a couple of
    seconds, so under load a revalidation (304) costs no query at all. Per process;
    thread-safe."""

    def __init__(self, size: int = PAGES_KEPT, version_ttl: float = VERSION_TTL) -> None:
        self.size = size
        self.version_ttl = version_ttl
        self._pages: OrderedDict[str, bytes] = OrderedDict()
        self._versions: dict[tuple[str, date], tuple[float, str]] = {}
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

    def version(self, conn: Connection, expr: CategoryExpr, day: date) -> str:
        """The listing's data version (`app.listing.listing_version`), remembered for
        `version_ttl` seconds."""
        key = (expr.canonical(), day)
        now = time.monotonic()
        with self._lock:
            hit = self._versions.get(key)
        if hit is not None and now - hit[0] < self.version_ttl:
            return hit[1]
        version = listing_version(conn, expr, day)
        with self._lock:
            if len(self._versions) > VERSIONS_KEPT:
                self._versions.clear()
            self._versions[key] = (now, version)
        return version

    def forget_versions(self) -> None:
        """Drop the remembered versions (what `version_ttl` does on its own)."""
        with self._lock:
            self._versions.clear()


async def get_page_cache(request: Request) -> PageCache:
    # async: a plain attribute read, which FastAPI would otherwise run in its threadpool.
    return request.app.state.page_cache


PageCacheDep = Annotated[PageCache, Depends(get_page_cache)]
