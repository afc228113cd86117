"""Listings: arXiv's taxonomy with paper counts, announcement days, and a day's list for a
category expression, also ranked by a reader's starred papers (`sort=foryou`)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response
from sqlalchemy import func, select

from app import __version__
from app.db.models import Announcement, PaperCategory
from app.foryou import MAX_STARRED, InvalidStarred, for_you, parse_starred
from app.listing import (
    KINDS,
    InvalidExpression,
    InvalidKinds,
    ListingSort,
    day_listing,
    next_day,
    parse_expression,
    parse_keywords,
    parse_kinds,
    previous_day,
)
from app.taxonomy import get_taxonomy
from app.web.api import params
from app.web.api.schemas import (
    ArchiveOut,
    CategoriesOut,
    CategoryOut,
    DayOut,
    DaysOut,
    ForYouListingOut,
    ForYouMatchOut,
    ForYouOut,
    GroupOut,
    ListingOut,
    ListingSectionOut,
)
from app.web.deps import ConnDep
from app.web.errors import API_ERRORS, ApiRoute, documented
from app.web.http import (
    LISTING_CACHE,
    NOT_MODIFIED,
    cache_headers,
    cached_json,
    etag_for,
    not_modified,
)
from app.web.pages.cache import PageCacheDep

PERSONAL_CACHE = "private, no-store"  # one reader's answer: no shared cache may keep it
# Room for MAX_STARRED new-style ids and their commas; small enough that the longest query
# this route takes stays inside the site's URL limit (app.web.protocol), even
# percent-encoded.
MAX_STARRED_CHARS = 6_000

router = APIRouter(prefix="/api/v1", responses=API_ERRORS, route_class=ApiRoute)

categories_t = PaperCategory.__table__
announcements_t = Announcement.__table__


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
    return cached_json(request, CategoriesOut(groups=groups), LISTING_CACHE)


@router.get("/days", tags=["listings"], response_model=DaysOut, responses=NOT_MODIFIED)
def api_days(
    request: Request,
    conn: ConnDep,
    category: Annotated[
        list[str], params.category_query("Category or archive id; none means every category")
    ] = [],  # noqa: B006 - FastAPI copies defaults
    date_from: params.DateFrom = None,
    date_to: params.DateTo = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    """Announcement days, newest first, with the number of papers announced in the
    categories (new, cross-lists and replacements; each paper once per day)."""
    cats = params.categories(category)
    params.date_range(date_from, date_to)
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
    return cached_json(request, out, LISTING_CACHE)


@router.get(
    "/listings/{expression}",
    tags=["listings"],
    response_model=ListingOut | ForYouListingOut,
    responses={
        **NOT_MODIFIED,
        400: documented("Invalid expression, date, sort, keywords, kinds or starred ids"),
    },
)
def api_listing(
    request: Request,
    conn: ConnDep,
    cache: PageCacheDep,
    expression: Annotated[str, Path(max_length=500, description="e.g. cs.AI+cs.LG-cs.CY")],
    day: Annotated[
        params.Day | None, Query(alias="date", description="default: latest day")
    ] = None,
    sort: Annotated[Literal["order", "popularity", "keywords", "foryou"], Query()] = "order",
    kw: Annotated[str, Query(max_length=500, description="comma-separated keywords")] = "",
    kind: Annotated[
        str,
        Query(
            max_length=100,
            description=f"keep only these announcement kinds, comma-separated ({', '.join(KINDS)};"
            " replace keeps replace-cross too); default: every kind",
        ),
    ] = "",
    has_code: Annotated[
        bool | None,
        Query(
            description="true: only papers that link their code (GitHub, GitLab…); false: "
            "only papers that do not; default: both"
        ),
    ] = None,
    starred: Annotated[
        str,
        Query(
            max_length=MAX_STARRED_CHARS,
            description=f"sort=foryou: the reader's starred arXiv ids, comma-separated (at "
            f"most {MAX_STARRED} ids, {MAX_STARRED_CHARS} characters); used for this answer "
            "only, never stored",
        ),
    ] = "",
) -> Response:
    """A day's list for a category expression (`,`/`+` union, `-` exclusion, archives
    expand, aliases merge): each paper once, in sections new / cross-lists / replacements.

    `sort=foryou` ranks the day by similarity to the nearest of the `starred` papers (their
    embeddings), in sections "foryou" and "unranked" (papers without an embedding, in
    announcement order); that answer is `Cache-Control: private, no-store`.

    `kind` keeps only papers of those kinds. A replaced paper's card says what changed:
    `previous_version` (the version stored before) and `changes`, a word-level diff per
    field (`diff`: `[[op, text], ...]`, op `=`, `-` or `+`), null when that version's text
    was never seen here."""
    try:
        expr = parse_expression(expression)
        stars = parse_starred(starred) if sort == "foryou" else []
        kinds = parse_kinds(kind) if kind else None
    except (InvalidExpression, InvalidStarred, InvalidKinds) as exc:
        raise HTTPException(400, str(exc)) from None
    shown = day or cache.latest_day(conn, expr)
    keywords = parse_keywords(kw)
    order: ListingSort = "order" if sort == "foryou" else sort
    etag = None
    if shown is not None and sort in ("order", "keywords"):
        # Kept by the listing's data version, as the day's page is (clicks, which order
        # `popularity`, are not in it; a "for you" answer is one reader's).
        etag = etag_for(
            "|".join(
                (
                    f"api-listing|{__version__}|{expr.canonical()}|{shown}|{sort}",
                    ",".join(keywords),
                    ",".join(sorted(kinds or ())),
                    str(has_code),
                    cache.version(conn, expr, shown),
                )
            ).encode()
        )
        if not_modified(request, etag):
            return Response(status_code=304, headers=cache_headers(etag, LISTING_CACHE))
        if (kept := cache.get(etag)) is not None:
            return Response(
                kept, media_type="application/json", headers=cache_headers(etag, LISTING_CACHE)
            )
    listing = (
        day_listing(
            conn, expr, shown, sort=order, keywords=keywords, kinds=kinds, has_code=has_code
        )
        if shown
        else None
    )
    # A day the code filter empties is still a day (an empty answer, not a 404).
    if day is not None and (listing is None or (listing.total == 0 and has_code is None)):
        raise HTTPException(404, f"no papers for {expr.canonical()} were announced on {day}")
    ranked = for_you(conn, listing, stars) if sort == "foryou" and listing is not None else None
    sections = ranked.sections if ranked else listing.sections if listing else []
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
            for sec in sections
        ],
    )
    if etag is not None:
        data = out.model_dump_json().encode()
        cache.put(etag, data)
        return Response(
            data, media_type="application/json", headers=cache_headers(etag, LISTING_CACHE)
        )
    if sort != "foryou":
        return cached_json(request, out, LISTING_CACHE)
    for_you_out = ForYouOut(
        starred=len(stars),
        stars_used=ranked.stars_used if ranked else 0,
        unknown=ranked.unknown if ranked else [],
        without_vector=ranked.without_vector if ranked else [],
        ranked=[
            ForYouMatchOut(
                arxiv_id=arxiv_id,
                score=round(reason.score, 4),
                nearest_starred=reason.arxiv_id,
                nearest_title=reason.title,
            )
            for arxiv_id, reason in (ranked.reasons.items() if ranked else [])
        ],
        unranked=ranked.unranked if ranked else 0,
    )
    body = ForYouListingOut(**dict(out), for_you=for_you_out)
    return Response(
        body.model_dump_json(),
        media_type="application/json",
        headers={"Cache-Control": PERSONAL_CACHE},
    )
