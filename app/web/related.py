"""[Related] papers: `/arxiv/{id}/related` (HTML) and `/api/v1/papers/{id}/related` (JSON).

Include this router before the pages router, whose `/arxiv/{rest:path}` would otherwise
answer `/arxiv/{id}/related`. The list comes from `app.vectors.related`: by embedding
when the paper has one (the vector index, `papershelf reindex --vectors`; its nearest papers
re-ordered by the rare words they share, from the full-text index), else by the TF-IDF
keywords of `papershelf reindex`. The page says which, and so does the API (`method` on each
item and the `X-Related-Method` header); until either exists, the page says so and the API
returns an empty list.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel

from app.artifacts import related as rel
from app.ingest.ids import InvalidArxivId, parse_arxiv_id
from app.listing import paper_cards, papers_version
from app.search.fulltext import FullTextIndex, fulltext_for
from app.vectors import VectorIndex, index_for
from app.vectors import related as vrel
from app.web.api.params import PaperId
from app.web.deps import ConnDep, SettingsDep
from app.web.errors import error_response
from app.web.http import LISTING_CACHE, cache_headers, etag_for, not_modified
from app.web.pages.cache import PageCacheDep
from app.web.pages.errors import error_page
from app.web.templating import TEMPLATES

router = APIRouter()

NOT_BUILT = "Related papers have not been computed yet: run papershelf reindex."
BY_EMBEDDING = "Related by the meaning of their titles and abstracts (embeddings)."
BY_KEYWORDS = "Related by shared keywords: embeddings have not been computed for this paper yet."
MAX_LIMIT = 50


def get_vector_index(request: Request, settings: SettingsDep) -> VectorIndex:
    """The app's vector index (`app.state.vector_index` when set), else the process's."""
    index = getattr(request.app.state, "vector_index", None)
    return index if isinstance(index, VectorIndex) else index_for(settings)


VectorIndexDep = Annotated[VectorIndex, Depends(get_vector_index)]


def get_fulltext(conn: ConnDep, settings: SettingsDep) -> FullTextIndex | None:
    """The database's full-text index (its word statistics re-order [Related])."""
    return fulltext_for(settings, conn.engine.url)


FullTextDep = Annotated[FullTextIndex | None, Depends(get_fulltext)]


class RelatedOut(BaseModel):
    arxiv_id: str
    title: str
    score: float
    method: vrel.Method


@router.get("/arxiv/{arxiv_id:path}/related", include_in_schema=False)
def related_page(
    request: Request,
    conn: ConnDep,
    index: VectorIndexDep,
    fulltext: FullTextDep,
    cache: PageCacheDep,
    arxiv_id: str,
) -> Response:
    try:
        key, _version = parse_arxiv_id(arxiv_id)
    except InvalidArxivId as exc:
        return error_page(request, 400, "Not a paper id", str(exc))
    found = vrel.related(conn, index, key, fulltext=fulltext)
    # The page changes when the list does or any of its papers does: rendering ten cards
    # costs far more than finding them, so a repeat is served from the page cache.
    shown = [key, *(a for a, _ in found.pairs)]
    version = papers_version(conn, shown)
    etag = etag_for(f"related|{found.method}|{','.join(shown)}|{version}".encode())
    if version is not None:
        if not_modified(request, etag):
            return Response(status_code=304, headers=cache_headers(etag, LISTING_CACHE))
        if (cached := cache.get(etag)) is not None:
            headers = {**cache_headers(etag, LISTING_CACHE), "X-Related-Method": found.method}
            return HTMLResponse(cached, headers=headers)
    paper = paper_cards(conn, [key]).get(key)
    if paper is None:
        return error_page(
            request, 404, "Unknown paper", f"{key}: unknown to this shelf and not yet fetched."
        )
    cards = paper_cards(conn, [a for a, _ in found.pairs])
    not_built = (
        found.method == "keywords"
        and found.keywords is None
        and not rel.has_keywords(conn)
        and not vrel.has_embeddings(conn, index)
    )
    page = TEMPLATES.TemplateResponse(
        request,
        "related.html",
        {
            "paper": paper,
            "method": found.method,
            "method_note": BY_EMBEDDING if found.method == "embedding" else BY_KEYWORDS,
            "keywords": found.keywords or [],
            "papers": [cards[a] for a, _ in found.pairs if a in cards],
            "note": NOT_BUILT if not_built else None,
        },
        headers={"X-Related-Method": found.method},
    )
    if page.status_code == 200:
        cache.put(etag, bytes(page.body))
        page.headers.update(cache_headers(etag, LISTING_CACHE))
    return page


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
    index: VectorIndexDep,
    fulltext: FullTextDep,
    arxiv_id: PaperId,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 10,
    blend: Annotated[
        bool, Query(description="With embeddings: favour shared categories and authors.")
    ] = False,
) -> Response:
    """Papers related to this one, best first: by embedding (`method: "embedding"`, score
    = cosine) when the paper has one, else by shared TF-IDF keywords (`method:
    "keywords"`); empty until `papershelf reindex` has computed either."""
    try:
        key, _version = parse_arxiv_id(arxiv_id)
    except InvalidArxivId as exc:
        return error_response(400, "bad_request", str(exc))
    cards = paper_cards(conn, [key])
    if key not in cards:
        return error_response(404, "not_found", f"paper {key} is not in the store")
    found = vrel.related(
        conn, index, key, limit, fulltext=fulltext, blend=vrel.Blend() if blend else None
    )
    cards = paper_cards(conn, [a for a, _ in found.pairs])
    return JSONResponse(
        [
            {"arxiv_id": a, "title": cards[a].title, "score": score, "method": found.method}
            for a, score in found.pairs
            if a in cards
        ],
        headers={"X-Related-Method": found.method},
    )
