"""Browser pages (Jinja2, server-rendered; reading works without JavaScript).

Every page error is an HTML page with a clear message (never the API's JSON, never a 500),
so page handlers return responses instead of raising HTTPException, and read query
parameters as plain strings that they validate themselves.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
import xml.etree.ElementTree as ET_XML
from collections import OrderedDict
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from itertools import groupby
from pathlib import Path
from typing import Annotated, Any, cast

import anyio.from_thread
import sqlalchemy as sa
from fastapi import APIRouter, Query, Request
from fastapi.responses import (
    FileResponse,
    HTMLResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from markupsafe import Markup, escape

from app.db import runs
from app.db.models import Announcement, Paper, Venue, VenuePaper
from app.db.queries import stats as read_stats
from app.ingest.ids import InvalidArxivId, split_id_list
from app.listing import (
    SORTS,
    CategoryExpr,
    InvalidExpression,
    ListingSort,
    PaperCard,
    announcement_history,
    day_listing,
    days_with_counts,
    latest_day,
    next_day,
    paper_cards,
    parse_expression,
    parse_keywords,
    previous_day,
)
from app.schedule import ET, parse_holidays
from app.search.backend import Sort, search_papers
from app.settings import Settings, get_settings
from app.taxonomy import get_taxonomy
from app.web.deps import TEMPLATES, ConnDep

router = APIRouter()

STATIC_DIR = Path(__file__).resolve().parents[2] / "static"
SEARCH_PAGE_SIZE = 25
VENUE_PAGE_SIZE = 100
AUTHORS_SHOWN = 8  # longer author lists fold the rest into <details>
MAX_IDS = 200  # papers on one /arxiv/{id},{id}… page
CALENDAR_DAYS = 366  # how far back the day list beside a listing reaches
# A paper page for ids the store lacks asks the fetch pool for them, then reloads itself
# every FETCH_REFRESH_S seconds, at most FETCH_MAX_WAITS times (arXiv may not know an id).
FETCH_REFRESH_S = 5
FETCH_MAX_WAITS = 24


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def index(request: Request, conn: ConnDep, q: Annotated[str, Query(max_length=10_000)] = ""):
    settings = get_settings()
    s = read_stats(conn)
    page = search_papers(conn, q, limit=50) if q.strip() else None
    fetch = runs.status_summary(
        conn,
        categories=settings.categories,
        now=datetime.now(UTC),
        holidays=parse_holidays(settings.arxiv_holidays),
    )
    return TEMPLATES.TemplateResponse(
        request,
        "index.html",
        {
            "stats": s,
            "q": q,
            "page": page,
            "followed": settings.categories,
            "fetch": fetch,
            "upstream_down": _upstream_down(fetch),
            "ET": ET,
            "tree": get_taxonomy().tree(),
            "followed_set": set(settings.categories),
        },
    )


# --- the category picker's form (works without JavaScript) ------------------------------

PICK_STATES = ("inc", "exc", "off")


@router.get("/pick", include_in_schema=False)
def pick(request: Request) -> Response:
    """The picker on `/` submits `c.<category>=inc|exc|off` per category; this builds the
    expression (includes first, then exclusions, in form order) and redirects to it."""
    tax = get_taxonomy()
    states: dict[str, str] = {}
    for key, value in request.query_params.multi_items():
        if not key.startswith("c."):
            continue
        raw = key[2:]
        canon = tax.canonical(raw)
        if canon is None:
            return error_page(request, 400, "Unknown category", f"unknown category {raw[:40]!r}")
        value = value.strip() or "off"
        if value not in PICK_STATES:
            return error_page(
                request, 400, "Bad choice", f"{canon}: choose inc, exc or off, not {value[:20]!r}"
            )
        states.pop(canon, None)  # the last choice wins, in its own place
        states[canon] = value
    include = [c for c, v in states.items() if v == "inc"]
    exclude = [c for c, v in states.items() if v == "exc"]
    if not include:
        return error_page(
            request,
            400,
            "Nothing picked",
            "Include at least one category: exclusions only narrow the lists you include.",
        )
    try:
        expr = parse_expression("+".join(include) + "".join(f"-{c}" for c in exclude))
    except InvalidExpression as exc:
        return error_page(request, 400, "Not a category expression", str(exc))
    return RedirectResponse(f"/arxiv/{expr.canonical()}", status_code=303)


def _upstream_down(fetch: dict[str, Any]) -> dict[str, Any] | None:
    """The latest failed fetch, when nothing has succeeded since: shown as a notice."""
    failed, ok = fetch.get("last_failed"), fetch.get("last_ok")
    if not failed:
        return None
    if ok and (ok.get("finished_at") or ok["started_at"]) > failed["started_at"]:
        return None
    return failed


# --- rendering helpers (registered as Jinja filters) ------------------------------------

# $…$ and $$…$$, not \$; the body never spans another $.
_MATH = re.compile(r"(?<!\\)\$\$([^$]+?)\$\$|(?<!\\)\$([^$]+?)(?<!\\)\$")
_URL = re.compile(r"https?://[^\s<>\"']+", re.IGNORECASE)
_MATHML_NS = "{http://www.w3.org/1998/Math/MathML}"
# latex2mathml passes \text{…} through raw and turns \href into an href attribute, so its
# output is rebuilt from these elements and attributes only; anything else falls back to
# the escaped TeX source.
_TAGS = (
    "math mrow mi mn mo ms mtext mspace msup msub msubsup mfrac msqrt mroot mover munder "
    "munderover mtable mtr mtd mstyle mpadded mphantom menclose mfenced semantics "
    "annotation merror mmultiscripts mprescripts none"
)
_ATTRS = (
    "display mathvariant stretchy fence separator separators lspace rspace accent "
    "accentunder movablelimits columnalign columnspacing rowspacing columnlines rowlines "
    "linethickness scriptlevel displaystyle largeop symmetric form width height depth "
    "minsize maxsize notation open close encoding"
)
_MATHML_TAGS = frozenset(_TAGS.split())
_MATHML_ATTRS = frozenset(_ATTRS.split())


def _safe_mathml(tex: str, display: bool) -> Markup | None:
    try:
        from latex2mathml.converter import convert

        raw = convert(tex, display="block" if display else "inline")
        root = ET_XML.fromstring(raw)
    except Exception:  # the converter raises many kinds of errors on odd TeX
        return None
    out: list[str] = []

    def walk(el: ET_XML.Element) -> bool:
        tag = el.tag.removeprefix(_MATHML_NS)
        if tag not in _MATHML_TAGS:
            return False
        attrs = "".join(f' {k}="{escape(v)}"' for k, v in el.attrib.items() if k in _MATHML_ATTRS)
        if tag == "math":
            attrs = ' xmlns="http://www.w3.org/1998/Math/MathML"' + attrs
        out.append(f"<{tag}{attrs}>{escape(el.text or '')}")
        for child in el:
            if not walk(child):
                return False
            out.append(str(escape(child.tail or "")))
        out.append(f"</{tag}>")
        return True

    return Markup("".join(out)) if walk(root) else None


def _highlighter(terms: Sequence[str]) -> re.Pattern[str] | None:
    """Terms are index-token strings ("state space"): match their tokens separated by any
    non-word characters, whole tokens only, ignoring case."""
    alts = [r"\W+".join(re.escape(t) for t in term.split()) for term in terms if term.split()]
    if not alts:
        return None
    alts.sort(key=len, reverse=True)  # longest first, so phrases win over their words
    return re.compile(r"(?<!\w)(?:" + "|".join(alts) + r")(?!\w)", re.IGNORECASE)


def _highlight(text: str, pattern: re.Pattern[str] | None) -> Markup:
    if pattern is None:
        return escape(text)
    out: list[str] = []
    last = 0
    for m in pattern.finditer(text):
        out.append(str(escape(text[last : m.start()])))
        out.append(f"<mark>{escape(m.group(0))}</mark>")
        last = m.end()
    out.append(str(escape(text[last:])))
    return Markup("".join(out))


def rich(text: str | None, terms: Sequence[str] = ()) -> Markup:
    """Title/abstract text: whitespace collapsed, $TeX$ as MathML, search terms marked,
    everything else escaped."""
    text = " ".join((text or "").split())
    pattern = _highlighter(terms)
    out: list[str] = []
    last = 0
    for m in _MATH.finditer(text):
        out.append(_highlight(text[last : m.start()], pattern))
        display = m.group(1) is not None
        math = _safe_mathml(m.group(1) if display else m.group(2), display)
        out.append(math if math is not None else escape(m.group(0)))
        last = m.end()
    out.append(_highlight(text[last:], pattern))
    return Markup("".join(out))


def linkify(text: str | None) -> Markup:
    """Escaped text with http(s) URLs made into links."""
    text = text or ""
    out: list[str] = []
    last = 0
    for m in _URL.finditer(text):
        url = m.group(0).rstrip(".,;:!?)]}")
        out.append(str(escape(text[last : m.start()])))
        out.append(f'<a href="{escape(url)}" rel="noopener">{escape(url)}</a>')
        last = m.start() + len(url)
    out.append(str(escape(text[last:])))
    return Markup("".join(out))


def category_name(cat: str) -> str:
    return get_taxonomy().name(cat) or cat


TEMPLATES.env.filters["rich"] = rich
TEMPLATES.env.filters["linkify"] = linkify
TEMPLATES.env.filters["catname"] = category_name
TEMPLATES.env.globals["AUTHORS_SHOWN"] = AUTHORS_SHOWN


def error_page(request: Request, status: int, title: str, message: str) -> HTMLResponse:
    return TEMPLATES.TemplateResponse(
        request,
        "error.html",
        {"status": status, "title": title, "message": message},
        status_code=status,
    )


def _parse_day(raw: str, what: str) -> date:
    try:
        return date.fromisoformat(raw.strip())
    except ValueError:
        raise ValueError(f"{what} {raw[:40]!r} is not a date (use YYYY-MM-DD)") from None


@router.get("/static/papershelf.css", include_in_schema=False)
def stylesheet() -> FileResponse:
    return FileResponse(STATIC_DIR / "papershelf.css", media_type="text/css")


@router.get("/static/papershelf.js", include_in_schema=False)
def script() -> FileResponse:
    """The reader tools (stars, read marks, filter bar, keys, theme, copy): one hand-written
    file, so a CSP of script-src 'self' holds; every page works without it."""
    return FileResponse(STATIC_DIR / "papershelf.js", media_type="text/javascript")


@router.get("/starred", response_class=HTMLResponse, include_in_schema=False)
def starred_page(request: Request) -> Response:
    """A shell: the stars live in the browser's localStorage, and papershelf.js fills it
    (and imports stars from a `#import=<base64url JSON>` link)."""
    return TEMPLATES.TemplateResponse(request, "starred.html", {})


# --- /arxiv/{ids or expression} --------------------------------------------------------

_ID_SHAPE = re.compile(r"\d{4}\.\d|/\d{5}")


@router.get("/arxiv/{rest:path}", response_class=HTMLResponse, include_in_schema=False)
def arxiv_page(
    request: Request,
    conn: ConnDep,
    rest: str,
    date: str = "",
    sort: str = "order",
    kw: str = "",
    wait: str = "",
) -> Response:
    """Paper pages for id lists, day listings for category expressions. The /feed and
    /bibtex suffixes are dispatched here too: a path parameter would swallow them."""
    rest = rest.strip().strip("/")
    if rest.endswith("/feed"):
        from app.web.feeds import category_feed

        return category_feed(request, conn, rest.removesuffix("/feed"))
    if rest.endswith("/bibtex"):
        return bibtex(request, conn, rest.removesuffix("/bibtex"))
    try:
        ids = split_id_list(rest)
    except InvalidArxivId as id_error:
        try:
            expr = parse_expression(rest)
        except InvalidExpression as exc:
            # Say what the reader most likely meant: an id, or a category list.
            message = str(id_error) if _ID_SHAPE.search(rest) else str(exc)
            return error_page(request, 400, "Not a paper id or category", message)
        return _listing_page(request, conn, expr, date, sort, kw)
    if not ids:
        return error_page(request, 400, "Nothing to show", "Name a category or a paper id.")
    if len(ids) > MAX_IDS:
        return error_page(request, 400, "Too many ids", f"Ask for at most {MAX_IDS} papers.")
    return _papers_page(request, conn, [i for i, _ in ids], wait)


def _redis_where(url: str) -> str:
    """host:port of a Redis URL, never its password."""
    from urllib.parse import urlsplit

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
    from workers.fetch import QueueUnavailable, enqueue, ids_request

    try:
        await enqueue(settings, ids_request(ids), quick=True)
    except QueueUnavailable as exc:  # unreachable, refused, timed out
        where = _redis_where(settings.redis_url)
        cause = type(exc.__cause__).__name__ if exc.__cause__ else "no answer"
        return f"the fetch queue (Redis at {where}) is unreachable ({cause})"
    return None


def _papers_page(request: Request, conn: ConnDep, ids: list[str], raw_wait: str = "") -> Response:
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
        etag = '"' + hashlib.sha256(bytes(page.body)).hexdigest()[:32] + '"'
        headers = {"ETag": etag, "Cache-Control": "public, max-age=300"}
        if etag in _etags(request.headers.get("if-none-match")):
            return Response(status_code=304, headers=headers)
        page.headers.update(headers)
    return page


def _listing_page(
    request: Request, conn: ConnDep, expr: CategoryExpr, raw_date: str, sort: str, kw: str
) -> Response:
    if sort not in SORTS:
        return error_page(
            request, 400, "Unknown sort", f"sort must be one of {', '.join(SORTS)}, not {sort!r}"
        )
    if raw_date:
        try:
            day: date | None = _parse_day(raw_date, "date")
        except ValueError as exc:
            return error_page(request, 400, "Bad date", str(exc))
    else:
        day = latest_day(conn, expr)
    keywords = parse_keywords(kw)
    order = cast(ListingSort, sort)
    # A day's list barely changes once announced: validate and serve it from a small cache
    # keyed by a cheap version of the data it shows (popularity order changes with every
    # click, so it is always rendered).
    etag = None
    if day is not None and order != "popularity":
        version = _listing_version(conn, expr, day)
        etag = (
            '"'
            + hashlib.sha256(
                f"{expr.canonical()}|{day}|{order}|{','.join(keywords)}|{version}".encode()
            ).hexdigest()[:32]
            + '"'
        )
        if etag in _etags(request.headers.get("if-none-match")):
            return Response(status_code=304, headers=_listing_headers(etag))
        cached = _PAGE_CACHE.get(etag)
        if cached is not None:
            return HTMLResponse(cached, headers=_listing_headers(etag))
    listing = day_listing(conn, expr, day, sort=order, keywords=keywords) if day else None
    prev = previous_day(conn, expr, day) if day else None
    nxt = next_day(conn, expr, day) if day else None
    if raw_date and listing is not None and listing.total == 0:
        return TEMPLATES.TemplateResponse(
            request,
            "error.html",
            {
                "status": 404,
                "title": "No list that day",
                "message": f"No papers for {expr.canonical()} were announced on {day}.",
                "expr": expr,
                "prev": prev,
                "next": nxt,
            },
            status_code=404,
        )
    calendar: list[tuple[str, list[tuple[date, int]]]] = []
    if day is not None:
        days = days_with_counts(conn, expr, since=day - timedelta(days=CALENDAR_DAYS))
        calendar = [
            (month, list(group))
            for month, group in groupby(reversed(days), key=lambda d: d[0].strftime("%B %Y"))
        ]
    page = TEMPLATES.TemplateResponse(
        request,
        "listing.html",
        {
            "expr": expr,
            "names": [(t, neg, category_name(t)) for neg, t in expr.terms],
            "day": day,
            "listing": listing,
            "prev": prev,
            "next": nxt,
            "calendar": calendar,
            "sort": sort,
            "kw": ", ".join(keywords),
            "sorts": SORTS,
        },
    )
    if etag is not None and page.status_code == 200:
        _PAGE_CACHE.put(etag, bytes(page.body))
        page.headers.update(_listing_headers(etag))
    return page


class _PageCache:
    """Rendered listing pages by ETag (the ETag covers the data version, so entries never
    go stale: a change makes a new key). Small and per process; thread-safe."""

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        with self._lock:
            body = self._items.get(key)
            if body is not None:
                self._items.move_to_end(key)
            return body

    def put(self, key: str, body: bytes) -> None:
        with self._lock:
            self._items[key] = body
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)


_PAGE_CACHE = _PageCache()


_VERSIONS: dict[tuple[str, date], tuple[float, str]] = {}
VERSION_TTL = 2.0  # seconds a computed version is trusted (pages say max-age=60 anyway)


def _listing_version(conn: sa.Connection, expr: CategoryExpr, day: date) -> str:
    """The data version, remembered for a couple of seconds: under load a revalidation (304)
    then costs no query at all."""
    key = (expr.canonical(), day)
    now = time.monotonic()
    hit = _VERSIONS.get(key)
    if hit is not None and now - hit[0] < VERSION_TTL:
        return hit[1]
    version = _query_version(conn, expr, day)
    if len(_VERSIONS) > 1024:
        _VERSIONS.clear()
    _VERSIONS[key] = (now, version)
    return version


def _query_version(conn: sa.Connection, expr: CategoryExpr, day: date) -> str:
    """Changes whenever the page could: the day's entries and their papers' metadata, and
    the newest day (prev/next links and the calendar)."""
    ann = Announcement.__table__
    paper = Paper.__table__
    cats = sorted(expr.include | expr.exclude)
    n, changed = conn.execute(
        sa.select(sa.func.count(), sa.func.max(paper.c.changed_at))
        .select_from(ann.join(paper, paper.c.arxiv_id == ann.c.arxiv_id))
        .where(ann.c.day == day, ann.c.category.in_(cats))
    ).one()
    newest = conn.scalar(sa.select(sa.func.max(ann.c.day)).where(ann.c.category.in_(cats)))
    return f"{n}|{changed}|{newest}"


def _etags(header: str | None) -> set[str]:
    if not header:
        return set()
    return {t.strip().removeprefix("W/") for t in header.split(",")}


def _listing_headers(etag: str) -> dict[str, str]:
    return {"ETag": etag, "Cache-Control": "public, max-age=60"}


# --- BibTeX -----------------------------------------------------------------------------


def _bib_value(text: str) -> str:
    text = " ".join(text.split())
    # An unbalanced brace would end the field early; drop braces then.
    depth = 0
    for ch in text:
        depth += (ch == "{") - (ch == "}")
        if depth < 0:
            break
    return text if depth == 0 else text.replace("{", "").replace("}", "")


def bibtex_entry(card: PaperCard) -> str:
    year = (
        card.first_submitted_at.year
        if card.first_submitted_at
        else card.sort_date.year
        if card.sort_date
        else None
    )
    last = card.authors[0].split()[-1] if card.authors and card.authors[0].split() else "anon"
    word = next((w for w in re.findall(r"[A-Za-z]+", card.title) if len(w) > 3), "paper")
    key = re.sub(r"[^a-z0-9]", "", f"{last}{year or ''}{word}".lower()) or "arxiv"
    fields = [
        ("title", _bib_value(card.title)),
        ("author", " and ".join(_bib_value(a) for a in card.authors)),
        ("year", str(year) if year else ""),
        ("eprint", card.arxiv_id),
        ("archivePrefix", "arXiv"),
        ("primaryClass", card.primary_category),
        ("doi", card.doi or ""),
        ("journal", _bib_value(card.journal_ref or "")),
        ("url", card.abs_url),
    ]
    body = ",\n".join(f"  {k} = {{{v}}}" for k, v in fields if v)
    return f"@misc{{{key},\n{body}\n}}\n"


def bibtex(request: Request, conn: ConnDep, raw: str) -> Response:
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


# --- search -----------------------------------------------------------------------------


@router.get("/search", response_class=HTMLResponse, include_in_schema=False)
def search_page(
    request: Request,
    conn: ConnDep,
    q: str = "",
    category: str = "",
    sort: str = "relevance",
    page: str = "1",
) -> Response:
    raw_from = request.query_params.get("from", "")
    raw_to = request.query_params.get("to", "")
    form = {"q": q, "category": category, "from": raw_from, "to": raw_to, "sort": sort}
    try:
        number = int(page)
        if not 1 <= number <= 10_000:
            raise ValueError
    except ValueError:
        return error_page(request, 400, "Bad page", f"page must be a positive number, not {page!r}")
    if sort not in ("relevance", "date"):
        return error_page(request, 400, "Unknown sort", "sort must be relevance or date")
    try:
        date_from = _parse_day(raw_from, "from") if raw_from.strip() else None
        date_to = _parse_day(raw_to, "to") if raw_to.strip() else None
    except ValueError as exc:
        return error_page(request, 400, "Bad date", str(exc))
    categories: list[str] = []
    text = q[:10_000]
    if category.strip():
        try:
            expr = parse_expression(category)
        except InvalidExpression as exc:
            return error_page(request, 400, "Unknown category", str(exc))
        categories = sorted(expr.include)
        # Exclusions ride on the query's own syntax.
        text += "".join(f" -cat:{c}" for c in sorted(expr.exclude))
    result = None
    cards: list[PaperCard] = []
    if q.strip() or categories or date_from or date_to:
        result = search_papers(
            conn,
            text,
            categories=categories,
            date_from=date_from,
            date_to=date_to,
            sort=cast(Sort, sort),
            limit=SEARCH_PAGE_SIZE,
            offset=(number - 1) * SEARCH_PAGE_SIZE,
        )
        found = paper_cards(conn, [h.arxiv_id for h in result.hits])
        cards = [found[h.arxiv_id] for h in result.hits if h.arxiv_id in found]
    terms = result.query.highlight_terms() if result and result.query else ()
    return TEMPLATES.TemplateResponse(
        request,
        "search.html",
        {
            "form": form,
            "result": result,
            "papers": cards,
            "terms": terms,
            "page": number,
            "page_size": SEARCH_PAGE_SIZE,
            "feed_url": _feed_query(q) if q.strip() else None,
        },
    )


def _feed_query(q: str) -> str:
    from urllib.parse import urlencode

    return "/search/feed?" + urlencode({"q": q})


# --- venues -----------------------------------------------------------------------------


@router.get("/venue", response_class=HTMLResponse, include_in_schema=False)
def venues_page(request: Request, conn: ConnDep) -> Response:
    venues = conn.execute(sa.select(Venue.__table__).order_by(Venue.name)).all()
    return TEMPLATES.TemplateResponse(request, "venues.html", {"venues": venues})


@router.get("/venue/{name}", response_class=HTMLResponse, include_in_schema=False)
def venue_page(request: Request, conn: ConnDep, name: str, page: str = "1") -> Response:
    venue = conn.execute(sa.select(Venue.__table__).where(Venue.name == name)).first()
    if venue is None:
        return error_page(request, 404, "Unknown venue", f"No venue named {name!r} is stored.")
    try:
        number = int(page)
        if number < 1:
            raise ValueError
    except ValueError:
        return error_page(request, 400, "Bad page", f"page must be a positive number, not {page!r}")
    vp = VenuePaper.__table__
    rows = conn.execute(
        sa.select(vp)
        .where(vp.c.venue == name)
        .order_by(vp.c.status, vp.c.title, vp.c.pk)
        .limit(VENUE_PAGE_SIZE)
        .offset((number - 1) * VENUE_PAGE_SIZE)
    ).all()
    return TEMPLATES.TemplateResponse(
        request,
        "venue.html",
        {
            "venue": venue,
            "papers": rows,
            "page": number,
            "has_more": number * VENUE_PAGE_SIZE < venue.paper_count,
        },
    )
