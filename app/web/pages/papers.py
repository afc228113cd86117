"""Paper pages for id lists (`/arxiv/{id},{id}…`), which ask the fetch pool for ids the
store lacks, and their BibTeX (`/arxiv/{ids}/bibtex`). Both are reached through the
`/arxiv/` dispatcher in `app.web.pages.arxiv`."""

from __future__ import annotations

from urllib.parse import urlsplit

import anyio.from_thread
from fastapi import Request
from fastapi.responses import PlainTextResponse, Response
from sqlalchemy import Connection

from app.ingest.ids import InvalidArxivId, split_id_list
from app.jobs.connections import QueueUnavailable
from app.jobs.fetch import ids_request
from app.jobs.queueing import enqueue
from app.listing import announcement_history, paper_cards
from app.settings import Settings, get_settings
from app.web.bibtex import bibtex_entry
from app.web.http import PAPER_CACHE, cache_headers, etag_for, not_modified
from app.web.pages.errors import error_page
from app.web.templating import TEMPLATES

MAX_IDS = 200  # papers on one /arxiv/{id},{id}… page
# A paper page for ids the store lacks asks the fetch pool for them, then reloads itself
# every FETCH_REFRESH_S seconds, at most FETCH_MAX_WAITS times (arXiv may not know an id).
FETCH_REFRESH_S = 5
FETCH_MAX_WAITS = 24


def redis_where(url: str) -> str:
    """host:port of a Redis URL, never its password."""
    try:
        parts = urlsplit(url)
        return f"{parts.hostname}:{parts.port or 6379}"
    except ValueError:
        return "the configured address"


async def enqueue_fetch_ids(settings: Settings, ids: list[str]) -> str | None:
    """Ask the fetch pool for `ids` (one `fetch_ids` job; repeats collapse on its job id).
    None when queued (or already queued), else why not, for the reader. Never waits long:
    no connection retries, short timeouts."""
    if not settings.redis_url:
        return "on-demand fetching is off here: no Redis is configured (PAPERSHELF_REDIS_URL)"
    try:
        await enqueue(settings, ids_request(ids), quick=True)
    except QueueUnavailable as exc:  # unreachable, refused, timed out
        where = redis_where(settings.redis_url)
        cause = type(exc.__cause__).__name__ if exc.__cause__ else "no answer"
        return f"the fetch queue (Redis at {where}) is unreachable ({cause})"
    return None


def papers_page(request: Request, conn: Connection, ids: list[str], raw_wait: str = "") -> Response:
    """The papers' cards; missing ids are fetched while the page reloads itself."""
    cards = paper_cards(conn, ids)
    missing = [i for i in ids if i not in cards]
    waited = int(raw_wait) if raw_wait.isdigit() and len(raw_wait) < 4 else 0
    fetching = False
    reason: str | None = None
    if missing:
        if waited >= FETCH_MAX_WAITS:
            reason = (
                f"asked arXiv for {FETCH_MAX_WAITS * FETCH_REFRESH_S} s without an answer: "
                "the id may not exist, or no fetch worker is running"
            )
        else:
            reason = anyio.from_thread.run(enqueue_fetch_ids, get_settings(), missing)
            fetching = reason is None
    if not cards and not fetching:
        return error_page(
            request,
            404,
            "Unknown paper",
            f"{', '.join(missing)}: unknown to this shelf and not yet fetched from arXiv; "
            f"{reason}.",
        )
    refresh = f"/arxiv/{','.join(ids)}?wait={waited + 1}" if fetching else None
    page = TEMPLATES.TemplateResponse(
        request,
        "papers.html",
        {
            "papers": [cards[i] for i in ids if i in cards],
            "missing": missing,
            "fetching": fetching,
            "reason": reason,
            "refresh": refresh,
            "refresh_s": FETCH_REFRESH_S,
            "history": {i: announcement_history(conn, i) for i in cards},
        },
        status_code=202 if not cards else 200,
    )
    if page.status_code == 200 and not missing:
        # A complete paper page: validate by its content, so revalidation costs no bytes.
        headers = cache_headers(etag_for(bytes(page.body)), PAPER_CACHE)
        if not_modified(request, headers["ETag"]):
            return Response(status_code=304, headers=headers)
        page.headers.update(headers)
    return page


def bibtex(conn: Connection, raw: str) -> Response:
    """BibTeX entries for an id list, as text: errors are short text too."""
    try:
        ids = [i for i, _ in split_id_list(raw)]
    except InvalidArxivId as exc:
        return PlainTextResponse(str(exc) + "\n", status_code=400)
    cards = paper_cards(conn, ids)
    missing = [i for i in ids if i not in cards]
    if not ids or missing:
        return PlainTextResponse(
            f"unknown to this shelf and not yet fetched: {', '.join(missing) or raw}\n",
            status_code=404,
        )
    return PlainTextResponse("\n".join(bibtex_entry(cards[i]) for i in ids))
