"""The JSON API under /api/v1 (OpenAPI documented). Errors use `deps.error_response`'s
shape; every bad input is a 4xx, never a 500.

Listings page by keyset, newest first on (sort_date, arxiv_id), with an opaque page token:
`v1.<base64url(JSON position)>.<base64url(HMAC-SHA256, 16 bytes)>`. The JSON names the listing
kind, a fingerprint of the filters it was made for and the last row's key; a garbled,
tampered or foreign token (other filters, other listing) is a 400.

Paper and listing responses carry a strong `ETag` (a hash of the body) and `Cache-Control`;
a matching `If-None-Match` is answered 304 without a body.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Sequence
from datetime import date
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter, HTTPException, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select

from app.db import store
from app.db.models import Announcement, Paper, PaperCategory, Venue, VenuePaper
from app.db.queries import get_paper
from app.db.queries import stats as read_stats
from app.ingest.ids import InvalidArxivId, parse_arxiv_id
from app.search.backend import backend_for, search_papers
from app.settings import Settings
from app.summaries import shown_tldrs
from app.taxonomy import get_taxonomy
from app.web.deps import ConnDep, EngineDep, SettingsDep, error_response

papers_t = Paper.__table__
categories_t = PaperCategory.__table__
announcements_t = Announcement.__table__
venues_t = Venue.__table__
venue_papers_t = VenuePaper.__table__

LISTING_CACHE = "public, max-age=60"
PAPER_CACHE = "public, max-age=300"
MAX_CATEGORY_PARAMS = 20
MAX_TOKEN_CHARS = 512


# --- response models --------------------------------------------------------------------


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail


def _err(description: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description}


ERRORS: dict[int | str, dict[str, Any]] = {
    400: _err("Invalid id, category, date range or page token"),
    422: _err("A parameter failed validation"),
    429: _err("Too many requests; see Retry-After"),
}
NOT_MODIFIED: dict[int | str, dict[str, Any]] = {
    304: {"description": "Not modified (the `If-None-Match` ETag matches)"}
}

router = APIRouter(prefix="/api/v1", responses=ERRORS)


class VersionOut(BaseModel):
    version: int
    submitted_at: str | None


class AnnouncementOut(BaseModel):
    category: str
    day: str
    kind: str


class TldrFields(BaseModel):
    tldr: str | None = Field(
        default=None,
        description="A one-sentence summary: a linked venue paper's, else the ML pool's",
    )
    tldr_model: str | None = Field(
        default=None,
        description="The model version that wrote `tldr`; null when it is the authors' own",
    )
    tldr_paper_version: int | None = Field(
        default=None, description="The paper version a machine-written `tldr` summarises"
    )
    tldr_stale: bool = Field(
        default=False,
        description="`tldr` was written for another version of the paper; the ML pool "
        "writes a new one",
    )


class PaperOut(TldrFields):
    """One paper with its version history and announcements."""

    arxiv_id: str
    version: int | None
    title: str
    abstract: str
    authors: list[str]
    primary_category: str
    categories: list[str]
    classes: list[str] | None
    comments: str | None
    journal_ref: str | None
    doi: str | None
    license: str | None
    first_submitted_at: str | None
    last_updated_at: str | None
    announced_on: str | None
    sort_date: str
    stored_at: str
    changed_at: str
    versions: list[VersionOut]
    announcements: list[AnnouncementOut]
    abs_url: str
    pdf_url: str


class PaperSummary(TldrFields):
    arxiv_id: str
    version: int | None
    title: str
    abstract: str
    authors: list[str]
    primary_category: str
    categories: list[str]
    sort_date: date
    announced_on: date | None
    abs_url: str
    pdf_url: str


class PapersPage(BaseModel):
    papers: list[PaperSummary]
    limit: int
    next_page_token: str | None = Field(
        description="Pass as `page_token` (with the same filters) for the next page; "
        "null on the last page."
    )


class SearchHitOut(BaseModel):
    arxiv_id: str
    title: str
    authors: list[str]
    primary_category: str
    date: str | None
    score: float | None


class SearchOut(BaseModel):
    query: str
    total: int
    total_capped: bool
    warnings: list[str]
    hits: list[SearchHitOut]


class StatsOut(BaseModel):
    papers: int
    versions: int
    announcements: int
    days: int
    first_day: str | None
    last_day: str | None
    categories: dict[str, int]
    latest_days: dict[str, dict[str, int]]
    venues: dict[str, dict[str, int]]


class CategoryOut(BaseModel):
    id: str
    name: str
    papers: int


class ArchiveOut(BaseModel):
    id: str
    name: str
    papers: int = Field(description="Sum over its categories (a cross-list counts in each)")
    categories: list[CategoryOut]


class GroupOut(BaseModel):
    id: str
    name: str
    archives: list[ArchiveOut]


class CategoriesOut(BaseModel):
    groups: list[GroupOut]


class DayOut(BaseModel):
    day: date
    papers: int


class DaysOut(BaseModel):
    categories: list[str]
    days: list[DayOut]


class VenueOut(BaseModel):
    name: str
    papers: int
    linked_to_arxiv: int
    imported_at: str


class VenuesOut(BaseModel):
    venues: list[VenueOut]


class VenuePaperOut(BaseModel):
    venue_paper_id: str
    title: str
    authors: list[str]
    abstract: str | None
    status: str | None
    track: str | None
    site: str | None
    keywords: list[str] | None
    tldr: str | None
    arxiv_id: str | None


class VenuePage(BaseModel):
    venue: VenueOut
    papers: list[VenuePaperOut]
    limit: int
    next_page_token: str | None


class ClickIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["pdf", "summary"]


class ClicksOut(BaseModel):
    arxiv_id: str
    pdf: int
    summary: int


class ReindexOut(BaseModel):
    status: Literal["ok"]
    linked_venue_papers: int


# --- helpers ----------------------------------------------------------------------------


def _iso(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def _paper_json(paper: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in paper.items() if k not in ("pk", "content_hash", "title_key")}
    for key, value in out.items():
        out[key] = _iso(value)
    out["abs_url"] = f"https://arxiv.org/abs/{paper['arxiv_id']}"
    out["pdf_url"] = f"https://arxiv.org/pdf/{paper['arxiv_id']}"
    return out


def _etag(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def _etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    wanted = etag.removeprefix("W/")
    for part in header.split(","):
        tag = part.strip()
        if tag == "*" or tag.removeprefix("W/") == wanted:
            return True
    return False


def _cached(request: Request, model: BaseModel, cache_control: str) -> Response:
    """The model as JSON with a strong ETag; 304 without a body when the client has it."""
    body = model.model_dump_json().encode()
    etag = _etag(body)
    headers = {"ETag": etag, "Cache-Control": cache_control}
    if _etag_matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="application/json", headers=headers)


def _parse_id(text: str) -> str:
    try:
        key, _version = parse_arxiv_id(text)
    except InvalidArxivId as exc:
        raise HTTPException(400, str(exc)) from None
    return key


def _categories(raw: Sequence[str]) -> list[str]:
    """Canonical categories for category/archive params ("cs" is every cs category)."""
    if len(raw) > MAX_CATEGORY_PARAMS:
        raise HTTPException(400, f"at most {MAX_CATEGORY_PARAMS} categories per request")
    out: dict[str, None] = {}
    taxonomy = get_taxonomy()
    for item in raw:
        expanded = taxonomy.expand(item[:64]) if len(item) <= 64 else []
        if not expanded:
            raise HTTPException(400, f"unknown arXiv category or archive {item[:64]!r}")
        out.update(dict.fromkeys(expanded))
    return list(out)


def _date_range(date_from: date | None, date_to: date | None) -> None:
    if date_from and date_to and date_from > date_to:
        raise HTTPException(400, f"'from' ({date_from}) is after 'to' ({date_to})")


# --- page tokens ------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _token_key(settings: Settings) -> bytes:
    secret = getattr(settings, "secret_key", None) or settings.admin_token or "papershelf"
    return hashlib.sha256(b"papershelf page token\0" + str(secret).encode()).digest()


def _fingerprint(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:16]


def encode_page_token(settings: Settings, kind: str, filters: str, position: list[Any]) -> str:
    payload = json.dumps({"k": kind, "f": filters, "p": position}, separators=(",", ":"))
    body = _b64(payload.encode())
    sig = hmac.new(_token_key(settings), body.encode(), hashlib.sha256).digest()[:16]
    return f"v1.{body}.{_b64(sig)}"


def decode_page_token(settings: Settings, token: str, kind: str, filters: str) -> list[Any]:
    """The position a token stands for; HTTP 400 for anything but a token this API made
    for the same listing and filters."""
    bad = HTTPException(400, "invalid page token: pass next_page_token back unchanged")
    if len(token) > MAX_TOKEN_CHARS or not token.isascii():
        raise bad
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != "v1":
        raise bad
    try:
        sig = _unb64(parts[2])
        payload = json.loads(_unb64(parts[1]))
    except (binascii.Error, ValueError):
        raise bad from None
    want = hmac.new(_token_key(settings), parts[1].encode(), hashlib.sha256).digest()[:16]
    if not hmac.compare_digest(sig, want):
        raise bad
    if not isinstance(payload, dict) or payload.get("k") != kind:
        raise bad
    if payload.get("f") != filters:
        raise HTTPException(400, "page token was made for other filters; start again")
    position = payload.get("p")
    if not isinstance(position, list):
        raise bad
    return position


# --- papers -----------------------------------------------------------------------------


@router.get("/papers", tags=["papers"], response_model=PapersPage, responses=NOT_MODIFIED)
def api_papers(
    request: Request,
    conn: ConnDep,
    settings: SettingsDep,
    category: Annotated[
        list[str], Query(description="Category or archive id; repeat for any-of")
    ] = [],  # noqa: B006 - FastAPI copies defaults
    date_from: Annotated[date | None, Query(alias="from")] = None,
    date_to: Annotated[date | None, Query(alias="to")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    page_token: Annotated[str | None, Query(max_length=MAX_TOKEN_CHARS)] = None,
) -> Response:
    """Papers newest first (by announcement day, else submission day), keyset-paged."""
    cats = _categories(category)
    _date_range(date_from, date_to)
    filters = _fingerprint(sorted(cats), date_from, date_to)
    where: list[Any] = []
    if cats:
        where.append(
            sa.exists().where(
                categories_t.c.arxiv_id == papers_t.c.arxiv_id,
                categories_t.c.category.in_(cats),
            )
        )
    if date_from:
        where.append(papers_t.c.sort_date >= date_from)
    if date_to:
        where.append(papers_t.c.sort_date <= date_to)
    if page_token:  # an empty token is the first page
        position = decode_page_token(settings, page_token, "papers", filters)
        try:
            if len(position) != 2 or not isinstance(position[1], str):
                raise ValueError
            after_day, after_id = date.fromisoformat(position[0]), position[1]
        except (TypeError, ValueError):
            raise HTTPException(400, "invalid page token") from None
        where.append(
            sa.or_(
                papers_t.c.sort_date < after_day,
                sa.and_(papers_t.c.sort_date == after_day, papers_t.c.arxiv_id < after_id),
            )
        )
    rows = conn.execute(
        select(
            papers_t.c.arxiv_id,
            papers_t.c.version,
            papers_t.c.title,
            papers_t.c.abstract,
            papers_t.c.authors,
            papers_t.c.primary_category,
            papers_t.c.categories,
            papers_t.c.sort_date,
            papers_t.c.announced_on,
        )
        .where(*where)
        .order_by(papers_t.c.sort_date.desc(), papers_t.c.arxiv_id.desc())
        .limit(limit + 1)
    ).all()
    more = len(rows) > limit
    rows = rows[:limit]
    token = None
    if more:
        last = rows[-1]
        token = encode_page_token(
            settings, "papers", filters, [last.sort_date.isoformat(), last.arxiv_id]
        )
    tldrs = shown_tldrs(conn, [r.arxiv_id for r in rows])

    def tldr_fields(arxiv_id: str, version: int | None) -> dict[str, Any]:
        shown = tldrs.get(arxiv_id)
        if shown is None:
            return {}
        return {
            "tldr": shown.text,
            "tldr_model": shown.model,
            "tldr_paper_version": shown.paper_version,
            "tldr_stale": shown.stale(version),
        }

    page = PapersPage(
        papers=[
            PaperSummary(
                arxiv_id=r.arxiv_id,
                version=r.version,
                title=r.title,
                abstract=r.abstract,
                authors=list(r.authors or []),
                primary_category=r.primary_category,
                categories=list(r.categories or []),
                sort_date=r.sort_date,
                announced_on=r.announced_on,
                abs_url=f"https://arxiv.org/abs/{r.arxiv_id}",
                pdf_url=f"https://arxiv.org/pdf/{r.arxiv_id}",
                **tldr_fields(r.arxiv_id, r.version),
            )
            for r in rows
        ],
        limit=limit,
        next_page_token=token,
    )
    return _cached(request, page, LISTING_CACHE)


@router.post(
    "/papers/{arxiv_id:path}/clicks",
    tags=["papers"],
    response_model=ClicksOut,
    responses={404: _err("Unknown paper"), 413: _err("Request body too large")},
)
def api_paper_click(arxiv_id: str, click: ClickIn, engine: EngineDep) -> ClicksOut:
    """Count a click on a paper's PDF or summary link."""
    key = _parse_id(arxiv_id)
    clicks_t = store.clicks_t
    with engine.begin() as conn:
        if conn.scalar(select(papers_t.c.pk).where(papers_t.c.arxiv_id == key)) is None:
            raise HTTPException(404, f"paper {key} is not in the store")
        store.record_click(conn, key, click.kind)
        row = conn.execute(
            select(clicks_t.c.pdf, clicks_t.c.summary).where(clicks_t.c.arxiv_id == key)
        ).one()
    return ClicksOut(arxiv_id=key, pdf=row.pdf, summary=row.summary)


@router.get(
    "/papers/{arxiv_id:path}",
    tags=["papers"],
    response_model=PaperOut,
    responses={**NOT_MODIFIED, 404: _err("Unknown paper")},
)
def api_paper(request: Request, arxiv_id: str, conn: ConnDep) -> Response:
    """One paper by arXiv id (any accepted spelling: old or new style, vN, URL)."""
    key = _parse_id(arxiv_id)
    paper = get_paper(conn, key)
    if paper is None:
        raise HTTPException(404, f"paper {key} is not in the store")
    return _cached(request, PaperOut.model_validate(_paper_json(paper)), PAPER_CACHE)


# --- search and stats -------------------------------------------------------------------


@router.get("/search", tags=["search"], response_model=SearchOut)
def api_search(
    conn: ConnDep,
    q: Annotated[str, Query(max_length=10_000)],
    category: Annotated[list[str], Query()] = [],  # noqa: B006 - FastAPI copies defaults
    date_from: Annotated[date | None, Query(alias="from")] = None,
    date_to: Annotated[date | None, Query(alias="to")] = None,
    sort: Literal["relevance", "date"] = "relevance",
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=1000)] = 0,
) -> dict[str, Any]:
    if len(category) > MAX_CATEGORY_PARAMS:
        raise HTTPException(400, f"at most {MAX_CATEGORY_PARAMS} categories per request")
    page = search_papers(
        conn,
        q,
        categories=category,
        date_from=date_from,
        date_to=date_to,
        sort=sort,
        limit=limit,
        offset=offset,
    )
    return {"query": q, **page.to_json()}


@router.get("/stats", tags=["stats"], response_model=StatsOut)
def api_stats(conn: ConnDep) -> dict[str, Any]:
    return read_stats(conn).to_json()


# --- categories and days ----------------------------------------------------------------


@router.get("/categories", tags=["listings"], response_model=CategoriesOut, responses=NOT_MODIFIED)
def api_categories(request: Request, conn: ConnDep) -> Response:
    """arXiv's taxonomy (groups → archives → categories) with papers per category."""
    counts: dict[str, int] = dict(
        conn.execute(
            select(categories_t.c.category, func.count()).group_by(categories_t.c.category)
        ).all()
    )
    groups = []
    for node in get_taxonomy().tree():
        archives = []
        for arch in node.archives:
            cats = [
                CategoryOut(id=c.id, name=c.name, papers=counts.get(c.id, 0))
                for c in arch.categories
            ]
            archives.append(
                ArchiveOut(
                    id=arch.archive.id,
                    name=arch.archive.name,
                    papers=sum(c.papers for c in cats),
                    categories=cats,
                )
            )
        groups.append(GroupOut(id=node.group.id, name=node.group.name, archives=archives))
    return _cached(request, CategoriesOut(groups=groups), LISTING_CACHE)


@router.get("/days", tags=["listings"], response_model=DaysOut, responses=NOT_MODIFIED)
def api_days(
    request: Request,
    conn: ConnDep,
    category: Annotated[
        list[str], Query(description="Category or archive id; none means every category")
    ] = [],  # noqa: B006 - FastAPI copies defaults
    date_from: Annotated[date | None, Query(alias="from")] = None,
    date_to: Annotated[date | None, Query(alias="to")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    """Announcement days, newest first, with the number of papers announced in the
    categories (new, cross-lists and replacements; each paper once per day)."""
    cats = _categories(category)
    _date_range(date_from, date_to)
    day = announcements_t.c.day
    where: list[Any] = []
    if cats:
        where.append(announcements_t.c.category.in_(cats))
    if date_from:
        where.append(day >= date_from)
    if date_to:
        where.append(day <= date_to)
    rows = conn.execute(
        select(day, func.count(func.distinct(announcements_t.c.arxiv_id)))
        .where(*where)
        .group_by(day)
        .order_by(day.desc())
        .limit(limit)
    ).all()
    out = DaysOut(categories=cats, days=[DayOut(day=d, papers=n) for d, n in rows])
    return _cached(request, out, LISTING_CACHE)


class ListingSectionOut(BaseModel):
    key: str
    title: str
    count: int
    papers: list[dict[str, Any]]


class ListingOut(BaseModel):
    expression: str
    day: date | None
    previous_day: date | None
    next_day: date | None
    summary: str
    total: int
    sort: str
    sections: list[ListingSectionOut]


@router.get(
    "/listings/{expression}",
    tags=["listings"],
    response_model=ListingOut,
    responses={**NOT_MODIFIED, 400: _err("Invalid expression, date, sort or keywords")},
)
def api_listing(
    request: Request,
    conn: ConnDep,
    expression: Annotated[str, Path(max_length=500, description="e.g. cs.AI+cs.LG-cs.CY")],
    day: Annotated[date | None, Query(alias="date", description="default: latest day")] = None,
    sort: Annotated[Literal["order", "popularity", "keywords"], Query()] = "order",
    kw: Annotated[str, Query(max_length=500, description="comma-separated keywords")] = "",
) -> Response:
    """A day's list for a category expression (`,`/`+` union, `-` exclusion, archives
    expand, aliases merge): each paper once, in sections new / cross-lists / replacements."""
    from app.listing import (
        InvalidExpression,
        day_listing,
        latest_day,
        next_day,
        parse_expression,
        parse_keywords,
        previous_day,
    )

    try:
        expr = parse_expression(expression)
    except InvalidExpression as exc:
        raise HTTPException(400, str(exc)) from None
    shown = day or latest_day(conn, expr)
    keywords = parse_keywords(kw)
    listing = day_listing(conn, expr, shown, sort=sort, keywords=keywords) if shown else None
    if day is not None and (listing is None or listing.total == 0):
        raise HTTPException(404, f"no papers for {expr.canonical()} were announced on {day}")
    out = ListingOut(
        expression=expr.canonical(),
        day=shown,
        previous_day=previous_day(conn, expr, shown) if shown else None,
        next_day=next_day(conn, expr, shown) if shown else None,
        summary=listing.summary if listing else "0 papers",
        total=listing.total if listing else 0,
        sort=sort,
        sections=[
            ListingSectionOut(
                key=sec.key,
                title=sec.title,
                count=sec.count,
                papers=[p.to_json() for p in sec.papers],
            )
            for sec in (listing.sections if listing else [])
        ],
    )
    return _cached(request, out, LISTING_CACHE)


# --- venues -----------------------------------------------------------------------------

VenueName = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")]


def _venue_out(row: Any) -> VenueOut:
    return VenueOut(
        name=row.name,
        papers=row.paper_count,
        linked_to_arxiv=row.linked_count,
        imported_at=_iso(row.imported_at),
    )


@router.get("/venues", tags=["venues"], response_model=VenuesOut, responses=NOT_MODIFIED)
def api_venues(request: Request, conn: ConnDep) -> Response:
    """Imported conference venues (e.g. iclr2018)."""
    rows = conn.execute(select(venues_t).order_by(venues_t.c.name)).all()
    return _cached(request, VenuesOut(venues=[_venue_out(r) for r in rows]), LISTING_CACHE)


@router.get(
    "/venues/{name}",
    tags=["venues"],
    response_model=VenuePage,
    responses={**NOT_MODIFIED, 404: _err("Unknown venue")},
)
def api_venue(
    request: Request,
    conn: ConnDep,
    settings: SettingsDep,
    name: VenueName,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    page_token: Annotated[str | None, Query(max_length=MAX_TOKEN_CHARS)] = None,
) -> Response:
    """A venue's papers in import order, keyset-paged."""
    venue = conn.execute(select(venues_t).where(venues_t.c.name == name)).first()
    if venue is None:
        raise HTTPException(404, f"venue {name} is not in the store")
    filters = _fingerprint(name)
    where: list[Any] = [venue_papers_t.c.venue == name]
    if page_token:  # an empty token is the first page
        position = decode_page_token(settings, page_token, "venue", filters)
        if len(position) != 1 or type(position[0]) is not int:
            raise HTTPException(400, "invalid page token")
        where.append(venue_papers_t.c.pk > position[0])
    rows = conn.execute(
        select(venue_papers_t).where(*where).order_by(venue_papers_t.c.pk).limit(limit + 1)
    ).all()
    more = len(rows) > limit
    rows = rows[:limit]
    token = encode_page_token(settings, "venue", filters, [rows[-1].pk]) if more else None
    page = VenuePage(
        venue=_venue_out(venue),
        papers=[
            VenuePaperOut(
                venue_paper_id=r.venue_paper_id,
                title=r.title,
                authors=list(r.authors or []),
                abstract=r.abstract,
                status=r.status,
                track=r.track,
                site=r.site,
                keywords=r.keywords,
                tldr=r.tldr,
                arxiv_id=r.arxiv_id,
            )
            for r in rows
        ],
        limit=limit,
        next_page_token=token,
    )
    return _cached(request, page, LISTING_CACHE)


# --- admin ------------------------------------------------------------------------------


def _admin_denied(request: Request, settings: Settings) -> Any:
    """None when the request carries the admin bearer token, else the error response."""
    expected = settings.admin_token
    if not expected:
        # 403, not 503: a deliberate configuration, not an outage to alert on.
        return error_response(
            403,
            "admin_disabled",
            "the admin API is disabled: set PAPERSHELF_ADMIN_TOKEN to enable it",
        )
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        given.strip().encode(), expected.encode()
    ):
        response = error_response(401, "unauthorized", "a valid admin bearer token is required")
        response.headers["WWW-Authenticate"] = 'Bearer realm="papershelf-admin"'
        return response
    return None


@router.post(
    "/admin/reindex",
    tags=["admin"],
    response_model=ReindexOut,
    responses={
        401: _err("Missing or wrong bearer token"),
        403: _err("The admin API is disabled: no PAPERSHELF_ADMIN_TOKEN is configured"),
    },
)
def api_admin_reindex(request: Request, engine: EngineDep, settings: SettingsDep) -> Any:
    """Rebuild the search index and re-link venue papers. Needs
    `Authorization: Bearer <PAPERSHELF_ADMIN_TOKEN>`."""
    if (denied := _admin_denied(request, settings)) is not None:
        return denied
    with engine.begin() as conn:
        backend_for(conn).rebuild(conn)
        linked = store.link_venues(conn)
    return ReindexOut(status="ok", linked_venue_papers=linked)


class FetchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    category: str | None = Field(default=None, max_length=32, description="today's list")
    ids: list[str] | None = Field(default=None, max_length=200, description="arXiv ids")


class FetchOut(BaseModel):
    status: Literal["queued", "already-queued"]
    job: str
    job_id: str


@router.post(
    "/admin/fetch",
    tags=["admin"],
    response_model=FetchOut,
    status_code=202,
    responses={
        400: _err("Neither a known category nor valid ids"),
        401: _err("Missing or wrong bearer token"),
        403: _err("The admin API is disabled: no PAPERSHELF_ADMIN_TOKEN is configured"),
        503: _err("No Redis is configured or it is unreachable"),
    },
)
async def api_admin_fetch(request: Request, body: FetchIn, settings: SettingsDep) -> Any:
    """Re-fetch now: today's list of a category (rss.arxiv.org) or papers by id (the query
    API), queued for the fetch pool. Needs the admin bearer token."""
    if (denied := _admin_denied(request, settings)) is not None:
        return denied
    from workers import fetch as jobs

    if (body.category is None) == (body.ids is None):
        return error_response(400, "bad_request", "give exactly one of 'category' or 'ids'")
    if body.category is not None:
        category = get_taxonomy().canonical(body.category)
        if category is None:
            return error_response(400, "bad_request", f"unknown category {body.category!r}")
        request = jobs.listing_request(category)
    else:
        try:
            ids = [parse_arxiv_id(i)[0] for i in body.ids or []]
        except InvalidArxivId as exc:
            return error_response(400, "bad_request", str(exc))
        if not ids:
            return error_response(400, "bad_request", "'ids' is empty")
        request = jobs.ids_request(ids)
    try:
        queued = await jobs.enqueue(settings, request, quick=True)
    except jobs.QueueUnavailable as exc:  # never a 500: say why
        return error_response(503, "no_queue", str(exc))
    return FetchOut(
        status="queued" if queued else "already-queued",
        job=request.function,
        job_id=jobs.scoped_job_id(settings, request.job_id),
    )
