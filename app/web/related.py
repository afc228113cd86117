"""[Related] papers: `/arxiv/{id}/related` (HTML) and `/api/v1/papers/{id}/related` (JSON).

Include this router before the pages router, whose `/arxiv/{rest:path}` would otherwise
answer `/arxiv/{id}/related`. Keywords come from `app.artifacts.related.build` (`papershelf
reindex`); until it has run, the page says so and the API returns an empty list.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from app.artifacts import related as rel
from app.ingest.ids import InvalidArxivId, parse_arxiv_id
from app.listing import paper_cards
from app.web.api.params import PaperId
from app.web.deps import ConnDep
from app.web.errors import error_response
from app.web.pages.errors import error_page
from app.web.templating import TEMPLATES

router = APIRouter()

NOT_BUILT = "Related papers have not been computed yet: run papershelf reindex."
MAX_LIMIT = 50


class RelatedOut(BaseModel):
    arxiv_id: str
    title: str
    score: float


@router.get("/arxiv/{arxiv_id:path}/related", include_in_schema=False)
def related_page(request: Request, conn: ConnDep, arxiv_id: str) -> Response:
    try:
        key, _version = parse_arxiv_id(arxiv_id)
    except InvalidArxivId as exc:
        return error_page(request, 400, "Not a paper id", str(exc))
    paper = paper_cards(conn, [key]).get(key)
    if paper is None:
        return error_page(
            request, 404, "Unknown paper", f"{key}: unknown to this shelf and not yet fetched."
        )
    keywords = rel.keywords_for(conn, key)
    pairs = rel.related(conn, key) if keywords else []
    cards = paper_cards(conn, [a for a, _ in pairs])
    return TEMPLATES.TemplateResponse(
        request,
        "related.html",
        {
            "paper": paper,
            "keywords": keywords or [],
            "papers": [cards[a] for a, _ in pairs if a in cards],
            "note": NOT_BUILT if keywords is None and not rel.has_keywords(conn) else None,
        },
    )


@router.get(
    "/api/v1/papers/{arxiv_id:path}/related",
    tags=["papers"],
    response_model=list[RelatedOut],
    responses={
        400: {"description": "Not a paper id"},
        404: {"description": "Unknown paper"},
    },
)
def api_related(
    conn: ConnDep,
    arxiv_id: PaperId,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 10,
) -> Response:
    """Papers related to this one, best first, by shared TF-IDF keywords (empty until
    `papershelf reindex` has computed them)."""
    try:
        key, _version = parse_arxiv_id(arxiv_id)
    except InvalidArxivId as exc:
        return error_response(400, "bad_request", str(exc))
    cards = paper_cards(conn, [key])
    if key not in cards:
        return error_response(404, "not_found", f"paper {key} is not in the store")
    pairs = rel.related(conn, key, limit)
    cards = paper_cards(conn, [a for a, _ in pairs])
    return JSONResponse(
        [
            {"arxiv_id": a, "title": cards[a].title, "score": score}
            for a, score in pairs
            if a in cards
        ]
    )
