"""Query and path parameters several resources share, checked into what the routes use:
arXiv ids, category filters, date ranges. Bad input is an HTTP 400, never a 500."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Annotated

from fastapi import HTTPException, Query

from app.ingest.ids import InvalidArxivId, parse_arxiv_id
from app.taxonomy import get_taxonomy
from app.web.http import MAX_TOKEN_CHARS

MAX_CATEGORY_PARAMS = 20

DateFrom = Annotated[date | None, Query(alias="from")]
DateTo = Annotated[date | None, Query(alias="to")]
PageToken = Annotated[str | None, Query(max_length=MAX_TOKEN_CHARS)]


def paper_id(text: str) -> str:
    """The canonical id for any accepted spelling (old or new style, vN, URL)."""
    try:
        key, _version = parse_arxiv_id(text)
    except InvalidArxivId as exc:
        raise HTTPException(400, str(exc)) from None
    return key


def check_category_count(raw: Sequence[str]) -> None:
    if len(raw) > MAX_CATEGORY_PARAMS:
        raise HTTPException(400, f"at most {MAX_CATEGORY_PARAMS} categories per request")


def categories(raw: Sequence[str]) -> list[str]:
    """Canonical categories for category/archive params ("cs" is every cs category)."""
    check_category_count(raw)
    out: dict[str, None] = {}
    taxonomy = get_taxonomy()
    for item in raw:
        expanded = taxonomy.expand(item[:64]) if len(item) <= 64 else []
        if not expanded:
            raise HTTPException(400, f"unknown arXiv category or archive {item[:64]!r}")
        out.update(dict.fromkeys(expanded))
    return list(out)


def date_range(date_from: date | None, date_to: date | None) -> None:
    if date_from and date_to and date_from > date_to:
        raise HTTPException(400, f"'from' ({date_from}) is after 'to' ({date_to})")
