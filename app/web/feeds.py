"""Atom 1.0 feeds: a category expression's latest day, a venue, and a search (an alert).

Built with ElementTree so every title and abstract is escaped by the serializer, and every
text and attribute passes `strip_xml_illegal` on the way in: the store's text is cleaned at
import, but a feed must stay well-formed whatever a row or a query holds. Absolute links start
at the `public_url` setting (the request's own address only when it is unset), never at a
client's Host header. Feed errors are short text/plain responses: feed readers show the body,
not an HTML page.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, time
from urllib.parse import urlencode

import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response
from sqlalchemy import Connection

from app import __version__
from app.db.models import Announcement
from app.db.queries import venue, venue_papers
from app.hybrid import MODES, search
from app.ingest.tex_macros import plain
from app.ingest.text import strip_xml_illegal
from app.listing import (
    InvalidExpression,
    PaperCard,
    day_listing,
    latest_day,
    paper_cards,
    parse_expression,
)
from app.settings import get_settings
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
    # ElementTree escapes markup but writes control characters as they are: not XML.
    el = ET.SubElement(parent, tag, {k: strip_xml_illegal(v) for k, v in attrs.items()})
    if text is not None:
        el.text = strip_xml_illegal(text)
    return el


def _one_line(text: str) -> str:
    """Forbidden characters dropped before whitespace is collapsed: "a \x02 b" is "a b";
    LaTeX text macros cleaned for plain-text readers (`\\emph{x}` is "x")."""
    return " ".join(plain(strip_xml_illegal(text)).split())


def site_url(request: Request) -> str:
    """The site's absolute address without a trailing slash: the `public_url` setting, or,
    when unset (local use), what the request was addressed to."""
    public = get_settings().public_url
    if public:
        return public
    return str(request.base_url).rstrip("/")


def _self_url(request: Request) -> str:
    """This feed's own absolute URL, its query included, under `site_url`."""
    path = request.url.path
    root = request.scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    query = request.url.query
    return site_url(request) + path + (f"?{query}" if query else "")


def _feed(
    request: Request,
    *,
    title: str,
    subtitle: str,
    alternate: str,
    entries: Iterable[ET.Element],
    updated: datetime,
    self_path: str | None = None,
) -> Response:
    feed = ET.Element("feed", {"xmlns": ATOM_NS})
    # A feed with a canonical address (a saved search) keeps one id however it was asked.
    self_url = site_url(request) + self_path if self_path else _self_url(request)
    _sub(feed, "id", self_url)
    _sub(feed, "title", title)
    _sub(feed, "subtitle", subtitle)
    _sub(feed, "updated", _iso(updated))
    _sub(feed, "link", rel="self", type="application/atom+xml", href=self_url)
    _sub(feed, "link", rel="alternate", type="text/html", href=site_url(request) + alternate)
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
    _sub(entry, "title", _one_line(card.title))
    _sub(entry, "updated", _iso(_entry_updated(card)))
    if card.first_submitted_at:
        _sub(entry, "published", _iso(_stamp(card.first_submitted_at)))
    _sub(entry, "link", rel="alternate", type="text/html", href=card.abs_url)
    _sub(entry, "link", rel="related", type="application/pdf", href=card.pdf_url, title="pdf")
    for name in card.authors:
        _sub(_sub(entry, "author"), "name", name)
    for cat in card.categories:
        _sub(entry, "category", term=cat)
    _sub(entry, "summary", _replaced(card) + _one_line(card.abstract), type="text")
    return entry


def _replaced(card: PaperCard) -> str:
    """ "Replaced: v1 → v3 (Abstract, Comments changed). " before a replacement's abstract."""
    if card.changes is None and not card.previous_version:
        return ""
    before = f"v{card.previous_version}" if card.previous_version else "an earlier version"
    if card.changes is None:
        what = " (earlier text not seen)"
    elif card.changes:
        what = f" ({', '.join(c.label for c in card.changes)} changed)"
    else:
        what = " (no change to the text)"
    return f"Replaced: {before} → v{card.version}{what}. "


def _entry_updated(card: PaperCard) -> datetime:
    return _stamp(card.last_updated_at or card.announced_on or card.sort_date or card.changed_at)


def category_feed(request: Request, conn: ConnDep, expr_text: str, raw_date: str = "") -> Response:
    """A category expression's papers of one announcement day: `raw_date` (YYYY-MM-DD, as the
    listing page takes it) or, when empty, the latest day."""
    try:
        expr = parse_expression(expr_text)
    except InvalidExpression as exc:
        return PlainTextResponse(f"{exc}\n", status_code=400)
    canon = expr.canonical()
    if raw_date:
        # The listing page's rule (app.web.pages.params.parse_day; pages import this module).
        try:
            day: date | None = date.fromisoformat(raw_date.strip())
        except ValueError:
            return PlainTextResponse(
                f"date {raw_date[:40]!r} is not a date (use YYYY-MM-DD)\n", status_code=400
            )
    else:
        day = latest_day(conn, expr)
    cards = day_listing(conn, expr, day).papers if day else []
    if raw_date and not cards:
        # As the listing page: a day without papers is not a list.
        return PlainTextResponse(f"no {canon} papers were announced on {day}\n", status_code=404)
    which = f"the papers announced on {day}" if raw_date else "the latest announcement day's papers"
    return _feed(
        request,
        title=f"Papershelf: {canon}" + (f" ({day})" if day else ""),
        subtitle=f"arXiv {canon}: {which}",
        alternate=f"/arxiv/{canon}" + (f"?date={day}" if raw_date else ""),
        entries=[_paper_entry(c) for c in cards],
        updated=max((_entry_updated(c) for c in cards), default=_stamp(day)),
    )


@router.get("/arxiv/{expr}/feed", include_in_schema=False)
def arxiv_feed(request: Request, conn: ConnDep, expr: str, date: str = "") -> Response:
    return category_feed(request, conn, expr, date)


@router.get("/venue/{name}/feed", include_in_schema=False)
def venue_feed(request: Request, conn: ConnDep, name: str) -> Response:
    # Imports never store a forbidden character (and PostgreSQL cannot even compare a NUL).
    venue_row = venue(conn, name) if strip_xml_illegal(name) == name else None
    if venue_row is None:
        return PlainTextResponse(f"no venue named {name!r} is stored\n", status_code=404)
    updated = _stamp(venue_row.imported_at)
    entries = []
    for row in venue_papers(conn, name, limit=VENUE_FEED_SIZE):
        entry = ET.Element("entry")
        _sub(entry, "id", f"urn:papershelf:venue:{name}:{row.venue_paper_id}")
        _sub(entry, "title", _one_line(row.title))
        _sub(entry, "updated", _iso(updated))
        link = (
            f"https://arxiv.org/abs/{row.arxiv_id}"
            if row.arxiv_id
            # Only web links: imported data must not smuggle in javascript: URLs.
            else row.site
            if row.site and row.site.startswith(("https://", "http://"))
            else f"{site_url(request)}/venue/{name}"
        )
        _sub(entry, "link", rel="alternate", href=link)
        for author in row.authors or []:
            _sub(_sub(entry, "author"), "name", author)
        summary = row.tldr or row.abstract
        if summary:
            _sub(entry, "summary", _one_line(summary), type="text")
        entries.append(entry)
    return _feed(
        request,
        title=f"Papershelf: {name}",
        subtitle=f"Papers of {name}",
        alternate=f"/venue/{name}",
        entries=entries,
        updated=updated,
    )


def search_feed_path(
    q: str,
    *,
    category: str = "",
    date_from: date | None = None,
    date_to: date | None = None,
    crosslists: bool = True,
    replacements: bool = False,
    mode: str = "",
) -> str:
    """A search feed's canonical address: parameters in one order, defaults left out, so
    the same saved search always has the same URL."""
    params: list[tuple[str, str]] = [("q", q)]
    if category:
        params.append(("category", category))
    if date_from:
        params.append(("from", date_from.isoformat()))
    if date_to:
        params.append(("to", date_to.isoformat()))
    if not crosslists:
        params.append(("crosslists", "0"))
    if replacements:
        params.append(("replacements", "1"))
    if mode:
        params.append(("mode", mode))
    return "/search/feed?" + urlencode(params)


def _flag(raw: str, name: str, default: bool) -> bool:
    value = raw.strip().lower()
    if not value:
        return default
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name} must be 1 or 0")


def _feed_day(raw: str, name: str) -> date | None:
    if not raw.strip():
        return None
    try:
        return date.fromisoformat(raw.strip())
    except ValueError:
        raise ValueError(f"{name} {raw[:40]!r} is not a date (use YYYY-MM-DD)") from None


def _announced(
    conn: Connection, ids: list[str], lists: frozenset[str], kinds: Sequence[str]
) -> dict[str, date]:
    """Each paper's latest announcement day of `kinds`, in `lists` when given."""
    if not ids:
        return {}
    table = Announcement.__table__
    where = [table.c.arxiv_id.in_(ids), table.c.kind.in_(list(kinds))]
    if lists:
        where.append(table.c.category.in_(sorted(lists)))
    rows = conn.execute(
        sa.select(table.c.arxiv_id, sa.func.max(table.c.day))
        .where(*where)
        .group_by(table.c.arxiv_id)
    )
    return {arxiv_id: day for arxiv_id, day in rows}


@router.get("/search/feed", include_in_schema=False)
def search_feed(request: Request, conn: ConnDep, q: str = "", mode: str = "") -> Response:
    """The newest matches of a query, by announcement date (newest first): a keyword alert
    for any feed reader, with the search page's filters (`category`, `from`, `to`) and the
    alert toggles: `crosslists=0` leaves out papers whose primary category is outside the
    `category` lists, `replacements=1` also dates a paper by its newest replacement, so a
    new version brings it back to the top. With `mode=semantic` or `hybrid`, the best
    matches by meaning instead (ranked, not dated)."""
    q = strip_xml_illegal(q)  # no stored text holds these; PostgreSQL refuses a NUL
    if not q.strip():
        return PlainTextResponse("give a query: /search/feed?q=words\n", status_code=400)
    if mode and mode not in MODES:
        return PlainTextResponse("mode must be keyword, semantic or hybrid\n", status_code=400)
    params = request.query_params
    try:
        date_from = _feed_day(params.get("from", ""), "from")
        date_to = _feed_day(params.get("to", ""), "to")
        crosslists = _flag(params.get("crosslists", ""), "crosslists", True)
        replacements = _flag(params.get("replacements", ""), "replacements", False)
    except ValueError as exc:
        return PlainTextResponse(f"{exc}\n", status_code=400)
    category = strip_xml_illegal(params.get("category", "")).strip()
    text = q[:10_000]
    include: frozenset[str] = frozenset()
    if category:
        try:
            expr = parse_expression(category)
        except InvalidExpression as exc:
            return PlainTextResponse(f"{exc}\n", status_code=400)
        category, include = expr.canonical(), expr.include
        text += "".join(f" -cat:{c}" for c in sorted(expr.exclude))
    ranked = mode in ("semantic", "hybrid")
    page = search(
        conn,
        text,
        mode=mode or "keyword",
        categories=sorted(include),
        date_from=date_from,
        date_to=date_to,
        sort="relevance" if ranked else "date",
        # A wider window when filtering or re-dating, so the feed still fills up.
        limit=SEARCH_FEED_SIZE * (4 if replacements or not crosslists else 1),
    )
    found = paper_cards(conn, [h.arxiv_id for h in page.hits])
    cards = [found[h.arxiv_id] for h in page.hits if h.arxiv_id in found]
    if include and not crosslists:
        cards = [c for c in cards if c.primary_category in include]
    if not ranked:
        kinds = ["new", "cross", "replace", "replace-cross"] if replacements else ["new", "cross"]
        days = _announced(conn, [c.arxiv_id for c in cards], include, kinds)

        def announced(card: PaperCard) -> date:
            return max(d for d in (days.get(card.arxiv_id), card.sort_date, date.min) if d)

        cards.sort(key=lambda c: (announced(c), c.arxiv_id), reverse=True)
    cards = cards[:SEARCH_FEED_SIZE]
    canonical = search_feed_path(
        q,
        category=category,
        date_from=date_from,
        date_to=date_to,
        crosslists=crosslists,
        replacements=replacements,
        mode=mode,
    )
    search_params = {"q": q, "category": category} if category else {"q": q}
    return _feed(
        request,
        title=f"Papershelf search: {q[:200]}" + (f" in {category}" if category else ""),
        subtitle=f"The best {SEARCH_FEED_SIZE} papers for the query ({page.mode})"
        if ranked
        else f"The newest {SEARCH_FEED_SIZE} papers matching the query, by announcement date",
        alternate="/search?"
        + urlencode(
            {**search_params, "mode": mode} if ranked else {**search_params, "sort": "date"}
        ),
        entries=[_paper_entry(c) for c in cards],
        updated=max((_entry_updated(c) for c in cards), default=datetime.now(UTC)),
        self_path=canonical,
    )
