"""Paper pages for id lists (`/arxiv/{id},{id}…`), which ask the fetch pool for ids the
store lacks, and their BibTeX (`/arxiv/{ids}/bibtex`). Both are reached through the
`/arxiv/` dispatcher in `app.web.pages.arxiv`.

Asking is bounded (`app.jobs.ondemand`): ids that cannot exist yet are answered 404 with no
look-up; the others join one shared batch within the client's and the instance's hourly
budgets; over budget, the page says so (429 when it has nothing else to show).

A complete page (every id stored) is validated by an ETag over a one-query data version
(`app.listing.paper_page_version`) and kept rendered in the app's paper-page cache, so a
repeat or a revalidation costs that one query instead of five and a render."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit

import anyio.from_thread
from fastapi import Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from sqlalchemy import Connection

from app import __version__
from app.exports import from_card, to_bibtex
from app.ingest.ids import InvalidArxivId, not_yet_issued, split_id_list
from app.jobs import ondemand
from app.jobs.connections import QueueUnavailable
from app.listing import (
    add_changes,
    announcement_history,
    paper_cards,
    paper_page_version,
    version_history,
)
from app.settings import Settings, get_settings
from app.web.http import PAPER_CACHE, cache_headers, etag_for, not_modified
from app.web.middleware import client_address
from app.web.pages.cache import PageCache
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


async def ask_for_ids(settings: Settings, ids: list[str], client: str) -> ondemand.Asked | str:
    """Ask the fetch pool for `ids` on behalf of `client` (`app.jobs.ondemand`): what became
    of each id, or why nothing could be asked, for the reader. Never waits long: no
    connection retries, short timeouts."""
    if not settings.redis_url:
        return "on-demand fetching is off here: no Redis is configured (PAPERSHELF_REDIS_URL)"
    if not ondemand.enabled(settings):
        return "on-demand fetching is off here"
    try:
        return await ondemand.ask(settings, ids, client)
    except QueueUnavailable as exc:  # unreachable, refused, timed out
        where = redis_where(settings.redis_url)
        cause = type(exc.__cause__).__name__ if exc.__cause__ else "no answer"
        return f"the fetch queue (Redis at {where}) is unreachable ({cause})"


def _not_fetched(ids: list[str], reason: str) -> str:
    return f"Unknown to this shelf and not yet fetched: {', '.join(ids)} ({reason})."


@dataclass(slots=True)
class _Asked:
    fetching: list[str] = field(default_factory=list)  # on their way: the page refreshes
    notes: list[str] = field(default_factory=list)  # why the others are not
    retry_after: int = 0  # over a budget: seconds until it refills


def _ask(request: Request, ids: list[str], waited: int) -> _Asked:
    """Ask for the ids that may exist, unless the page has waited long enough already."""
    out = _Asked()
    if not ids:
        return out
    if waited >= FETCH_MAX_WAITS:
        why = (
            f"asked arXiv for {FETCH_MAX_WAITS * FETCH_REFRESH_S} s without an answer: "
            "the id may not exist, or no fetch worker is running"
        )
        out.notes.append(_not_fetched(ids, why))
        return out
    settings = get_settings()
    asked = anyio.from_thread.run(ask_for_ids, settings, ids, client_address(request, settings))
    if isinstance(asked, str):
        out.notes.append(_not_fetched(ids, asked))
        return out
    out.fetching = asked.fetching
    if asked.unknown:
        out.notes.append(_not_fetched(asked.unknown, "arXiv has no paper with this id"))
    if asked.over_budget:
        out.retry_after = asked.retry_after
        minutes = asked.retry_after // 60 + 1
        out.notes.append(
            _not_fetched(
                asked.over_budget,
                "too many look-ups from here or on this site lately: "
                f"try later, within {minutes} min",
            )
        )
    return out


def papers_page(
    request: Request,
    conn: Connection,
    ids: list[str],
    raw_wait: str = "",
    cache: PageCache | None = None,
) -> Response:
    """The papers' cards; missing ids are fetched while the page reloads itself. With a
    `cache`, complete pages are kept rendered by their version's ETag."""
    etag = None
    if cache is not None and (version := paper_page_version(conn, ids)) is not None:
        # The release too: a new one may render the same data differently.
        etag = etag_for(f"papers|{__version__}|{','.join(ids)}|{version}".encode())
        if not_modified(request, etag):
            return Response(status_code=304, headers=cache_headers(etag, PAPER_CACHE))
        if (cached := cache.get(etag)) is not None:
            return HTMLResponse(cached, headers=cache_headers(etag, PAPER_CACHE))
    cards = paper_cards(conn, ids)
    add_changes(conn, cards.values())  # what changed since the version stored before
    missing = [i for i in ids if i not in cards]
    waited = int(raw_wait) if raw_wait.isdigit() and len(raw_wait) < 4 else 0
    now = datetime.now(UTC)
    impossible = {i: why for i in missing if (why := not_yet_issued(i, now))}
    possible = [i for i in missing if i not in impossible]
    notes = [f"{why}." for why in impossible.values()]  # what the reader is told, per group
    asked = _ask(request, possible, waited)
    notes += asked.notes
    fetching, retry_after = asked.fetching, asked.retry_after
    if not cards and not fetching:
        status = 429 if retry_after else 404
        page = error_page(
            request,
            status,
            "Not fetched: try later" if retry_after else "Unknown paper",
            " ".join(notes),
        )
        if retry_after:
            page.headers["Retry-After"] = str(retry_after)
        return page
    refresh = f"/arxiv/{','.join(ids)}?wait={waited + 1}" if fetching else None
    page = TEMPLATES.TemplateResponse(
        request,
        "papers.html",
        {
            "papers": [cards[i] for i in ids if i in cards],
            "missing": fetching,
            "fetching": bool(fetching),
            "notes": notes,
            "refresh": refresh,
            "refresh_s": FETCH_REFRESH_S,
            "history": {i: announcement_history(conn, i) for i in cards},
            "versions": {i: version_history(conn, i) for i in cards},
        },
        status_code=202 if not cards else 200,
    )
    if page.status_code == 200 and not missing:
        # A complete paper page: validated by its version (or, without a cache, its
        # content), so revalidation costs no bytes.
        if etag is not None and cache is not None:
            cache.put(etag, bytes(page.body))
        headers = cache_headers(etag or etag_for(bytes(page.body)), PAPER_CACHE)
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
    return PlainTextResponse(to_bibtex([from_card(cards[i]) for i in ids]))
