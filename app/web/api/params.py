"""Query and path parameters several resources share, checked into what the routes use:
arXiv ids, category filters, date ranges. Bad input is an HTTP 400, never a 500."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date
from typing import Annotated, Any

from fastapi import HTTPException, Path, Query
from pydantic import BeforeValidator

from app.ingest.ids import InvalidArxivId, parse_arxiv_id
from app.taxonomy import get_taxonomy
from app.web.http import MAX_TOKEN_CHARS

MAX_CATEGORY_PARAMS = 20

_ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)


def iso_day(value: object) -> date:
    """A date written YYYY-MM-DD, the one form the schema documents: pydantic's lax mode
    would also take a Unix time (`?to=0` as 1970-01-01) or a datetime."""
    if isinstance(value, date):
        return value
    text = value.strip() if isinstance(value, str) else ""
    if not _ISO_DAY.fullmatch(text):
        raise ValueError(f"{str(value)[:40]!r} is not a date (use YYYY-MM-DD)")
    return date.fromisoformat(text)  # ValueError for a day that does not exist


# Query dates: YYYY-MM-DD only (a bad one is a 422 in the error shape).
Day = Annotated[date, BeforeValidator(iso_day)]
DateFrom = Annotated[Day | None, Query(alias="from")]
DateTo = Annotated[Day | None, Query(alias="to")]
# The shape of what `app.web.http.encode_page_token` makes (empty: the first page), for the
# schema; the server checks more (the signature, the filters) and answers any bad token 400.
PAGE_TOKEN_PATTERN = r"^(v1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)?$"
PageToken = Annotated[
    str | None,
    Query(
        max_length=MAX_TOKEN_CHARS,
        description="`next_page_token` of the previous page, unchanged",
        json_schema_extra={"pattern": PAGE_TOKEN_PATTERN},
    ),
]


# An arXiv id as the schema documents it, exactly the ids the server takes as they are
# written: new style (YYMM.NNNN for 0704-1412, YYMM.NNNNN from 1501, numbers from 1) or old
# style (archive/YYMMNNN for 9107-0703, a known archive, an optional subject class), and an
# optional vN. The server also takes an `arXiv:` prefix and arxiv.org URLs (a 400 for
# anything else); an id beyond arXiv's current numbering is a 404.
_MONTH = r"(0[1-9]|1[0-2])"
_VERSION = r"(v[1-9][0-9]{0,5})?"
_NEW_4 = (
    rf"(07(0[4-9]|1[0-2])|(0[89]|1[0-3]){_MONTH}|14{_MONTH})\."
    r"(000[1-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-9][0-9]{3})"
)
_NEW_5 = (
    rf"(1[5-9]|[2-9][0-9]){_MONTH}\."
    r"(0000[1-9]|000[1-9][0-9]|00[1-9][0-9]{2}|0[1-9][0-9]{3}|[1-9][0-9]{4})"
)
_OLD_MONTH = rf"(91(0[7-9]|1[0-2])|9[2-9]{_MONTH}|0[0-6]{_MONTH}|070[1-3])"
_OLD = (
    "(" + "|".join(re.escape(a) for a in sorted(get_taxonomy().archives)) + ")"
    rf"(\.[A-Za-z]{{2}})?/{_OLD_MONTH}(00[1-9]|0[1-9][0-9]|[1-9][0-9]{{2}})"
)
PAPER_ID_PATTERN = rf"^({_NEW_4}|{_NEW_5}|{_OLD}){_VERSION}$"
PaperId = Annotated[
    str,
    Path(
        description="An arXiv id, e.g. 2501.00001, 2501.00001v2 or hep-th/9901001",
        json_schema_extra={"pattern": PAPER_ID_PATTERN},
    ),
]


def paper_id(text: str) -> str:
    """The canonical id for any accepted spelling (old or new style, vN, URL)."""
    try:
        key, _version = parse_arxiv_id(text)
    except InvalidArxivId as exc:
        raise HTTPException(400, str(exc)) from None
    return key


def _category_ids() -> list[str]:
    taxonomy = get_taxonomy()
    return sorted(t for t in {*taxonomy.categories, *taxonomy.archives} if taxonomy.expand(t))


# The schema of a repeatable category filter: the ids the server takes (a category or an
# archive; the server also takes a few aliases and any letter case), at most
# MAX_CATEGORY_PARAMS of them.
CATEGORY_ITEMS: dict[str, Any] = {
    "items": {"type": "string", "enum": _category_ids()},
    "maxItems": MAX_CATEGORY_PARAMS,
}


def category_query(description: str) -> Any:
    """`Query(...)` for a repeatable category filter (see `CATEGORY_ITEMS`)."""
    return Query(description=description, json_schema_extra=CATEGORY_ITEMS)


# Free text that may hold anything but a NUL (refused before routing: `app.web.protocol`).
NO_NUL_PATTERN = r"^[^\x00]*$"


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
