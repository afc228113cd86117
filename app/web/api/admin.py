"""The admin API: rebuild the search index, queue a re-fetch. Every route needs
`Authorization: Bearer <PAPERSHELF_ADMIN_TOKEN>` (`AdminDep`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from app.ingest.ids import InvalidArxivId, parse_arxiv_id
from app.jobs import fetch as jobs
from app.jobs.connections import QueueUnavailable
from app.jobs.queueing import enqueue, scoped_job_id
from app.reindex import rebuild_search_index
from app.taxonomy import get_taxonomy
from app.web.api.schemas import FetchIn, FetchOut, ReindexOut
from app.web.deps import AdminDep, EngineDep, SettingsDep
from app.web.errors import ADMIN_ERRORS, API_ERRORS, ApiRoute, documented, error_response

router = APIRouter(prefix="/api/v1", responses=API_ERRORS, route_class=ApiRoute)


@router.post(
    "/admin/reindex",
    tags=["admin"],
    response_model=ReindexOut,
    responses=ADMIN_ERRORS,
)
def api_admin_reindex(_admin: AdminDep, engine: EngineDep) -> Any:
    """Rebuild the search index and re-link venue papers. Needs
    `Authorization: Bearer <PAPERSHELF_ADMIN_TOKEN>`."""
    linked = rebuild_search_index(engine)
    return ReindexOut(status="ok", linked_venue_papers=linked)


@router.post(
    "/admin/fetch",
    tags=["admin"],
    response_model=FetchOut,
    status_code=202,
    responses={
        400: documented("Neither a known category nor valid ids"),
        **ADMIN_ERRORS,
        503: documented("No Redis is configured or it is unreachable"),
    },
)
async def api_admin_fetch(_admin: AdminDep, body: FetchIn, settings: SettingsDep) -> Any:
    """Re-fetch now: today's list of a category (rss.arxiv.org) or papers by id (the query
    API), queued for the fetch pool. Needs the admin bearer token."""
    if (body.category is None) == (body.ids is None):
        return error_response(400, "bad_request", "give exactly one of 'category' or 'ids'")
    if body.category is not None:
        category = get_taxonomy().canonical(body.category)
        if category is None:
            return error_response(400, "bad_request", f"unknown category {body.category!r}")
        job = jobs.listing_request(category)
    else:
        try:
            ids = [parse_arxiv_id(i)[0] for i in body.ids or []]
        except InvalidArxivId as exc:
            return error_response(400, "bad_request", str(exc))
        if not ids:
            return error_response(400, "bad_request", "'ids' is empty")
        job = jobs.ids_request(ids)
    try:
        queued = await enqueue(settings, job, quick=True)
    except QueueUnavailable as exc:  # never a 500: say why
        return error_response(503, "no_queue", str(exc))
    return FetchOut(
        status="queued" if queued else "already-queued",
        job=job.function,
        job_id=scoped_job_id(settings, job.job_id),
    )
