"""The lists a reader can export (`app.exports`), read from request parameters the same way
for the download pages (`/export.bib?list=…`) and the API (`/api/v1/export?list=…`):

- `stars`: the ids starred in the browser (`ids=a,b,c`; at most `MAX_GET_IDS` in a URL,
  `MAX_POST_IDS` in a posted form);
- `search`: a search with the search page's parameters (`q`, `category`, `from`, `to`,
  `sort`, `mode`), every result up to `settings.search_max_results`;
- `day`: a day listing with the listing page's (`expr`, `date` (default: the latest day),
  `sort`, `kw`, `replacements=hide`, `has_code=1`), every paper of the day in its sections' order;
- `venue`: an imported venue (`name`), every paper up to `MAX_VENUE_PAPERS`; those linked
  to arXiv are exported as the arXiv paper, with the venue in a note.

Bad input is an `ExportError` carrying its 4xx status and the message to show.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import cast

from sqlalchemy import Connection

from app.db.queries import venue, venue_papers
from app.exports import FORMATS, Work, from_card
from app.hybrid import MODES, search
from app.ingest.ids import InvalidArxivId, split_id_list
from app.listing import (
    SORTS,
    WITHOUT_REPLACEMENTS,
    InvalidExpression,
    InvalidFilter,
    day_listing,
    latest_day,
    paper_cards,
    parse_code_only,
    parse_expression,
    parse_hide_replacements,
    parse_keywords,
)
from app.search import Sort
from app.settings import get_settings

LISTS = ("stars", "search", "day", "venue")
MAX_GET_IDS = 500  # the same bound as "for you"'s stars in a URL
MAX_POST_IDS = 5000
MAX_VENUE_PAPERS = 10_000
MAX_TEXT = 10_000  # characters of any one parameter


_ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)


def parse_day(raw: str, what: str) -> date:
    """YYYY-MM-DD, the one date form of the pages and the API; ValueError naming `what`."""
    try:
        if _ISO_DAY.fullmatch(raw):
            return date.fromisoformat(raw)
    except ValueError:
        pass
    raise ValueError(f"{what} {raw[:40]!r} is not a date (use YYYY-MM-DD)")


class ExportError(ValueError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(slots=True)
class ExportList:
    works: list[Work]
    heading: str  # the Markdown file's title
    stem: str  # the download's file name, before its extension
    missing: list[str]  # starred ids this shelf does not hold


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise ExportError(400, f"format must be one of {', '.join(FORMATS)}, not {fmt[:40]!r}")
    return fmt


def export_list(
    conn: Connection, params: Mapping[str, str], *, max_ids: int = MAX_GET_IDS
) -> ExportList:
    """The list `params` name (see the module docstring); `ExportError` for bad input."""
    for name, value in params.items():
        if len(value) > MAX_TEXT and name != "ids":
            raise ExportError(400, f"{name} is longer than {MAX_TEXT} characters")
    kind = params.get("list", "")
    if kind == "stars":
        return _stars(conn, params.get("ids", ""), max_ids)
    if kind == "search":
        return _search(conn, params)
    if kind == "day":
        return _day(conn, params)
    if kind == "venue":
        return _venue(conn, params.get("name", ""))
    raise ExportError(400, f"list must be one of {', '.join(LISTS)}, not {kind[:40]!r}")


def _stars(conn: Connection, raw: str, max_ids: int) -> ExportList:
    # Counted before parsing, so a huge list costs no parsing.
    if raw.count(",") + raw.count(" ") + raw.count("\n") >= max_ids * 2 + 10:
        raise ExportError(413, f"export at most {max_ids} ids at once")
    try:
        ids = [i for i, _ in split_id_list(raw)]
    except InvalidArxivId as exc:
        raise ExportError(400, str(exc)) from None
    ids = list(dict.fromkeys(ids))
    if not ids:
        raise ExportError(400, "name the papers to export: ids=2401.00001,2401.00002")
    if len(ids) > max_ids:
        raise ExportError(413, f"export at most {max_ids} ids at once, not {len(ids)}")
    cards = paper_cards(conn, ids)
    if not cards:
        raise ExportError(404, "none of these papers is stored on this shelf")
    missing = [i for i in ids if i not in cards]
    works = [from_card(cards[i]) for i in ids if i in cards]
    return ExportList(works, "Starred papers", "stars", missing)


def _search(conn: Connection, params: Mapping[str, str]) -> ExportList:
    q = params.get("q", "")
    category = params.get("category", "")
    sort = params.get("sort", "relevance") or "relevance"
    mode = params.get("mode", "")
    if sort not in ("relevance", "date"):
        raise ExportError(400, "sort must be relevance or date")
    if mode and mode not in MODES:
        raise ExportError(400, f"mode must be one of {', '.join(MODES)}")
    try:
        raw_from, raw_to = params.get("from", "").strip(), params.get("to", "").strip()
        date_from = parse_day(raw_from, "from") if raw_from else None
        date_to = parse_day(raw_to, "to") if raw_to else None
    except ValueError as exc:
        raise ExportError(400, str(exc)) from None
    if date_from and date_to and date_from > date_to:
        raise ExportError(400, f"'from' ({date_from}) is after 'to' ({date_to})")
    text, categories = q, []
    if category.strip():
        try:
            expr = parse_expression(category)
        except InvalidExpression as exc:
            raise ExportError(400, str(exc)) from None
        categories = sorted(expr.include)
        text += "".join(f" -cat:{c}" for c in sorted(expr.exclude))
    if not (q.strip() or categories or date_from or date_to):
        raise ExportError(400, "a search export needs q, category, from or to")
    result = search(
        conn,
        text,
        mode=mode or None,
        categories=categories,
        date_from=date_from,
        date_to=date_to,
        sort=cast(Sort, sort),
        limit=get_settings().search_max_results,
    )
    cards = paper_cards(conn, [h.arxiv_id for h in result.hits])
    works = [from_card(cards[h.arxiv_id]) for h in result.hits if h.arxiv_id in cards]
    heading = f"Search: {q.strip() or category.strip() or 'all papers'}"
    return ExportList(works, heading, "search-" + (q.strip() or "all")[:40], [])


def _day(conn: Connection, params: Mapping[str, str]) -> ExportList:
    try:
        expr = parse_expression(params.get("expr", ""))
    except InvalidExpression as exc:
        raise ExportError(400, str(exc)) from None
    sort = params.get("sort", "order") or "order"
    if sort not in SORTS:
        raise ExportError(400, f"sort must be one of {', '.join(SORTS)}, not {sort[:40]!r}")
    raw_date = params.get("date", "").strip()
    try:
        day = parse_day(raw_date, "date") if raw_date else latest_day(conn, expr)
    except ValueError as exc:
        raise ExportError(400, str(exc)) from None
    canonical = expr.canonical()
    if day is None:
        raise ExportError(404, f"no papers for {canonical} are stored yet")
    try:
        code_only = parse_code_only(params.get("has_code", ""))
        hide = parse_hide_replacements(params.get("replacements", ""))
    except InvalidFilter as exc:
        raise ExportError(400, str(exc)) from None
    listing = day_listing(
        conn,
        expr,
        day,
        sort=sort,
        keywords=parse_keywords(params.get("kw", "")),
        has_code=True if code_only else None,
    )
    if not listing.total:
        with_code = " with a code link" if code_only else ""
        raise ExportError(404, f"no papers for {canonical}{with_code} were announced on {day}")
    cards = [c for c in listing.papers if not hide or c.kind in WITHOUT_REPLACEMENTS]
    works = [from_card(card) for card in cards]
    return ExportList(works, f"{canonical}, {day}", f"{canonical}-{day}", [])


def _venue(conn: Connection, name: str) -> ExportList:
    row = venue(conn, name) if name and len(name) <= 64 else None
    if row is None:
        raise ExportError(404, f"no venue named {name[:64]!r} is stored")
    rows = venue_papers(conn, name, limit=MAX_VENUE_PAPERS)
    cards = paper_cards(conn, [r.arxiv_id for r in rows if r.arxiv_id])
    works = []
    for r in rows:
        card = cards.get(r.arxiv_id) if r.arxiv_id else None
        if card is not None:
            works.append(from_card(card, venue=name, status=r.status))
            continue
        works.append(
            Work(
                title=r.title,
                authors=list(r.authors or []),
                abstract=r.abstract or "",
                url=r.site if (r.site or "").startswith(("https://", "http://")) else None,
                tldr=r.tldr,
                venue=name,
                venue_status=r.status,
            )
        )
    return ExportList(works, f"Venue {name}", f"venue-{name}", [])
