"""Atom 1.0 feeds: a category expression's latest day, a venue, and a search (an alert).

Built with ElementTree so every title and abstract is escaped by the serializer. Feed
errors are short text/plain responses: feed readers show the body, not an HTML page.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable
from datetime import UTC, date, datetime, time
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response

from app import __version__
from app.db.queries import venue, venue_papers
from app.listing import (
    InvalidExpression,
    PaperCard,
    day_listing,
    latest_day,
    paper_cards,
    parse_expression,
)
from app.search import search_papers
from app.web.deps import ConnDep

router = APIRouter()

ATOM_NS = "http://www.w3.org/2005/Atom"
ATOM_TYPE = "application/atom+xml; charset=utf-8"
SEARCH_FEED_SIZE = 50
VENUE_FEED_SIZE = 500
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _stamp(value: datetime | date | None) -> datetime:
    """Atom needs full timestamps: a day becomes its midnight UTC; naive means UTC."""
    if value is None:
        return _EPOCH
    if not isinstance(value, datetime):
        return datetime.combine(value, time(), tzinfo=UTC)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    el = ET.SubElement(parent, tag, attrs)
    if text is not None:
        el.text = text
    return el


def _feed(
    request: Request,
    *,
    title: str,
    subtitle: str,
    alternate: str,
    entries: Iterable[ET.Element],
    updated: datetime,
) -> Response:
    feed = ET.Element("feed", {"xmlns": ATOM_NS})
    self_url = str(request.url)
    _sub(feed, "id", self_url)
    _sub(feed, "title", title)
    _sub(feed, "subtitle", subtitle)
    _sub(feed, "updated", _iso(updated))
    _sub(feed, "link", rel="self", type="application/atom+xml", href=self_url)
    site = str(request.base_url).rstrip("/")
    _sub(feed, "link", rel="alternate", type="text/html", href=site + alternate)
    # A feed-level author covers entries that have none (venue papers without authors).
    _sub(_sub(feed, "author"), "name", "Papershelf")
    _sub(feed, "generator", "Papershelf", version=__version__)
    for entry in entries:
        feed.append(entry)
    body = ET.tostring(feed, encoding="unicode", xml_declaration=False)
    return Response('<?xml version="1.0" encoding="utf-8"?>\n' + body, media_type=ATOM_TYPE)


def _paper_entry(card: PaperCard) -> ET.Element:
    entry = ET.Element("entry")
    _sub(entry, "id", card.abs_url)
    _sub(entry, "title", " ".join(card.title.split()))
    _sub(entry, "updated", _iso(_entry_updated(card)))
    if card.first_submitted_at:
        _sub(entry, "published", _iso(_stamp(card.first_submitted_at)))
    _sub(entry, "link", rel="alternate", type="text/html", href=card.abs_url)
    _sub(entry, "link", rel="related", type="application/pdf", href=card.pdf_url, title="pdf")
    for name in card.authors:
        _sub(_sub(entry, "author"), "name", name)
    for cat in card.categories:
        _sub(entry, "category", term=cat)
    _sub(entry, "summary", " ".join(card.abstract.split()), type="text")
    return entry


def _entry_updated(card: PaperCard) -> datetime:
    return _stamp(card.last_updated_at or card.announced_on or card.sort_date or card.changed_at)


def category_feed(request: Request, conn: ConnDep, expr_text: str) -> Response:
    """The latest announcement day's papers for a category expression."""
    try:
        expr = parse_expression(expr_text)
    except InvalidExpression as exc:
        return PlainTextResponse(f"{exc}\n", status_code=400)
    day = latest_day(conn, expr)
    cards = day_listing(conn, expr, day).papers if day else []
    canon = expr.canonical()
    return _feed(
        request,
        title=f"Papershelf: {canon}" + (f" ({day})" if day else ""),
        subtitle=f"arXiv {canon}: the latest announcement day's papers",
        alternate=f"/arxiv/{canon}",
        entries=[_paper_entry(c) for c in cards],
        updated=max((_entry_updated(c) for c in cards), default=_stamp(day)),
    )


@router.get("/arxiv/{expr}/feed", include_in_schema=False)
def arxiv_feed(request: Request, conn: ConnDep, expr: str) -> Response:
    return category_feed(request, conn, expr)


@router.get("/venue/{name}/feed", include_in_schema=False)
def venue_feed(request: Request, conn: ConnDep, name: str) -> Response:
    venue_row = venue(conn, name)
    if venue_row is None:
        return PlainTextResponse(f"no venue named {name!r} is stored\n", status_code=404)
    updated = _stamp(venue_row.imported_at)
    entries = []
    for row in venue_papers(conn, name, limit=VENUE_FEED_SIZE):
        entry = ET.Element("entry")
        _sub(entry, "id", f"urn:papershelf:venue:{name}:{row.venue_paper_id}")
        _sub(entry, "title", " ".join(row.title.split()))
        _sub(entry, "updated", _iso(updated))
        link = (
            f"https://arxiv.org/abs/{row.arxiv_id}"
            if row.arxiv_id
            # Only web links: imported data must not smuggle in javascript: URLs.
            else row.site
            if row.site and row.site.startswith(("https://", "http://"))
            else f"{str(request.base_url).rstrip('/')}/venue/{name}"
        )
        _sub(entry, "link", rel="alternate", href=link)
        for author in row.authors or []:
            _sub(_sub(entry, "author"), "name", author)
        summary = row.tldr or row.abstract
        if summary:
            _sub(entry, "summary", " ".join(summary.split()), type="text")
        entries.append(entry)
    return _feed(
        request,
        title=f"Papershelf: {name}",
        subtitle=f"Papers of {name}",
        alternate=f"/venue/{name}",
        entries=entries,
        updated=updated,
    )


@router.get("/search/feed", include_in_schema=False)
def search_feed(request: Request, conn: ConnDep, q: str = "") -> Response:
    """The newest matches of a query: a keyword alert for any feed reader."""
    if not q.strip():
        return PlainTextResponse("give a query: /search/feed?q=words\n", status_code=400)
    page = search_papers(conn, q[:10_000], sort="date", limit=SEARCH_FEED_SIZE)
    found = paper_cards(conn, [h.arxiv_id for h in page.hits])
    cards = [found[h.arxiv_id] for h in page.hits if h.arxiv_id in found]
    return _feed(
        request,
        title=f"Papershelf search: {q[:200]}",
        subtitle=f"The newest {SEARCH_FEED_SIZE} papers matching the query",
        alternate="/search?" + urlencode({"q": q, "sort": "date"}),
        entries=[_paper_entry(c) for c in cards],
        updated=max((_entry_updated(c) for c in cards), default=datetime.now(UTC)),
    )
