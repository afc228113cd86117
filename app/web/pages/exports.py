"""Downloads of a list as a file: `/export.bib`, `/export.ris`, `/export.csl.json`,
`/export.md`, with the list in the query (`?list=day&expr=cs.CL&date=…`; see
`app.web.export_lists`), or posted as a form for a long list of stars
(`list=stars&ids=…`, more ids than fit a URL). Bad input is an HTML error page."""

from __future__ import annotations

from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import Connection
from starlette.concurrency import run_in_threadpool

from app.exports import BY_EXTENSION, download_name, render
from app.web.deps import ConnDep
from app.web.export_lists import MAX_GET_IDS, MAX_POST_IDS, ExportError, export_list
from app.web.pages.errors import error_page

router = APIRouter()

MAX_FORM_BYTES = 256 * 1024  # MAX_POST_IDS ids with their separators, and room to spare
_TITLES = {400: "Cannot export", 404: "Nothing to export", 413: "Too much to export"}


def export_response(conn: Connection, ext: str, params: dict[str, str], max_ids: int) -> Response:
    """The file, or the error page's (status, message) as an `ExportError`."""
    fmt = BY_EXTENSION.get(ext)
    if fmt is None:
        known = ", ".join(f"/export.{e}" for e in BY_EXTENSION)
        raise ExportError(404, f"no export format .{ext[:20]}: use {known}")
    found = export_list(conn, params, max_ids=max_ids)
    body = render(fmt.name, found.works, found.heading)
    headers = {
        "Content-Disposition": f'attachment; filename="{download_name(found.stem, fmt.name)}"',
        "Cache-Control": "private, no-store",
    }
    if found.missing:
        headers["X-Export-Missing"] = ",".join(found.missing)
    return Response(body.encode(), media_type=fmt.media_type, headers=headers)


def _error(request: Request, exc: ExportError) -> Response:
    return error_page(request, exc.status, _TITLES.get(exc.status, "Cannot export"), exc.message)


@router.get("/export.{ext}", include_in_schema=False)
def export_get(request: Request, conn: ConnDep, ext: str) -> Response:
    params = dict(request.query_params)
    try:
        return export_response(conn, ext, params, MAX_GET_IDS)
    except ExportError as exc:
        return error_page(
            request, exc.status, _TITLES.get(exc.status, "Cannot export"), exc.message
        )


@router.post("/export.{ext}", include_in_schema=False)
async def export_post(request: Request, ext: str) -> Response:
    """A posted form (`application/x-www-form-urlencoded`, what a plain `<form>` sends)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        return error_page(request, 415, "Cannot export", "post the export as a plain HTML form")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return error_page(
                request, 413, "Too much to export", f"export at most {MAX_POST_IDS} ids at once"
            )
    try:
        params = dict(parse_qsl(body.decode(), keep_blank_values=True, max_num_fields=50))
    except (UnicodeDecodeError, ValueError):
        return error_page(request, 400, "Cannot export", "the form could not be read")
    params.update({k: v for k, v in request.query_params.items() if k not in params})
    engine = request.app.state.engine

    def answer() -> Response:
        with engine.connect() as conn:
            return export_response(conn, ext, params, MAX_POST_IDS)

    try:
        # The database work runs off the event loop, as a sync route's would.
        return await run_in_threadpool(answer)
    except ExportError as exc:
        return error_page(
            request, exc.status, _TITLES.get(exc.status, "Cannot export"), exc.message
        )
