"""`GET /api/v1/export`: a list (stars, a search, a day listing, a venue) as BibTeX, RIS,
CSL-JSON or Markdown, the same files as the pages' `/export.*` downloads; `POST
/api/v1/export` takes a long list of ids as JSON (as the pages take a posted form)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy import Connection

from app.exports import FORMATS, download_name, render
from app.web.api import params as api_params
from app.web.deps import ConnDep
from app.web.errors import API_ERRORS, ApiError, ApiRoute, documented
from app.web.export_lists import MAX_GET_IDS, MAX_POST_IDS, ExportError, export_list

router = APIRouter(prefix="/api/v1", responses=API_ERRORS, route_class=ApiRoute)

_CODES = {400: "invalid_export", 404: "not_found", 413: "too_many_ids"}
Text = Annotated[str, Query(max_length=10_000, pattern=api_params.NO_NUL_PATTERN)]
_FILES = {f.media_type.split(";")[0]: {"schema": {"type": "string"}} for f in FORMATS.values()}
Format = Literal["bibtex", "ris", "csl-json", "markdown"]


@router.get(
    "/export",
    tags=["export"],
    response_class=Response,
    responses={
        200: {"description": "The file, as an attachment", "content": _FILES},
        404: documented("Unknown venue, no stored paper among the ids, or an empty day"),
        413: documented(f"More than {MAX_GET_IDS} ids"),
    },
)
def api_export(
    conn: ConnDep,
    format: Format,
    list: Annotated[
        Literal["stars", "search", "day", "venue"],
        Query(
            description="stars: `ids`; search: `q`, `category`, `from`, `to`, `sort`, "
            "`mode`; day: `expr`, `date`, `sort`, `kw`, `replacements`, `has_code`; venue: `name`"
        ),
    ],
    ids: Annotated[
        str,
        Query(
            max_length=20 * MAX_GET_IDS,
            description=f"comma-separated arXiv ids, at most {MAX_GET_IDS}",
            pattern=api_params.NO_NUL_PATTERN,
        ),
    ] = "",
    q: Text = "",
    category: Annotated[
        str, Query(max_length=500, description="a category expression, e.g. cs.AI+cs.LG-cs.CY")
    ] = "",
    date_from: Annotated[str, Query(alias="from", max_length=10)] = "",
    date_to: Annotated[str, Query(alias="to", max_length=10)] = "",
    sort: Annotated[
        str,
        Query(
            max_length=20,
            description="search: relevance or date; day: order, popularity or keywords",
        ),
    ] = "",
    mode: Annotated[str, Query(max_length=10)] = "",
    expr: Annotated[str, Query(max_length=500, description="a day's category expression")] = "",
    date: Annotated[str, Query(max_length=10, description="the day, YYYY-MM-DD")] = "",
    kw: Text = "",
    name: Annotated[str, Query(max_length=64, description="a venue's name")] = "",
    replacements: Annotated[
        Literal["show", "hide"], Query(description="day: leave out the replacements")
    ] = "show",
    has_code: Annotated[
        bool, Query(description="day: only the papers that link their code")
    ] = False,
) -> Response:
    given = {
        "list": list,
        "ids": ids,
        "q": q,
        "category": category,
        "from": date_from,
        "to": date_to,
        "sort": sort,
        "mode": mode,
        "expr": expr,
        "date": date,
        "kw": kw,
        "name": name,
        "replacements": replacements,
        "has_code": "1" if has_code else "",
    }
    return _file(conn, format, {k: v for k, v in given.items() if v}, MAX_GET_IDS)


class ExportIn(BaseModel):
    """A list of ids too long for a URL."""

    model_config = ConfigDict(extra="forbid")
    format: Format
    ids: list[Annotated[str, StringConstraints(min_length=1, max_length=40)]] = Field(
        min_length=1,
        max_length=MAX_POST_IDS,
        description=f"arXiv ids (with or without a version), at most {MAX_POST_IDS}",
    )


@router.post(
    "/export",
    tags=["export"],
    response_class=Response,
    responses={
        200: {"description": "The file, as an attachment", "content": _FILES},
        404: documented("No stored paper among the ids"),
    },
)
def api_export_post(conn: ConnDep, body: ExportIn) -> Response:
    """The papers `ids` names, in that order, as one file: the starred papers' export of
    `GET /api/v1/export?list=stars` for lists of up to 5,000 ids."""
    return _file(conn, body.format, {"list": "stars", "ids": ",".join(body.ids)}, MAX_POST_IDS)


def _file(conn: Connection, format: Format, params: dict[str, str], max_ids: int) -> Response:
    try:
        found = export_list(conn, params, max_ids=max_ids)
    except ExportError as exc:
        raise ApiError(exc.status, _CODES.get(exc.status, "invalid_export"), exc.message) from None
    fmt = FORMATS[format]
    headers = {
        "Content-Disposition": f'attachment; filename="{download_name(found.stem, format)}"',
    }
    if found.missing:
        headers["X-Export-Missing"] = ",".join(found.missing)
    body = render(format, found.works, found.heading)
    return Response(body.encode(), media_type=fmt.media_type, headers=headers)
