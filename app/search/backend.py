"""Which backend serves a database, and the one-call search every caller uses.

The implementations (`sqlite_fts`, `postgres`) import the shared types from `base`; this
module imports both implementations and never the other way round.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import date
from typing import Literal

from sqlalchemy import Connection, Engine

from app.search.base import SearchBackend, SearchIndex, SearchPage, Sort
from app.search.fulltext import IndexUnavailable, fulltext_for
from app.search.postgres import PostgresBackend, PostgresIndex
from app.search.query import parse_query
from app.search.sqlite_fts import SqliteFtsBackend, SqliteFtsIndex

Engine_ = Literal["index", "database"]


def _dialect(target: Connection | Engine | str) -> str:
    name = target if isinstance(target, str) else target.dialect.name
    return "postgresql" if name == "postgres" else name


def index_for(target: Connection | Engine | str) -> SearchIndex:
    """The search index of a connection's, an engine's or a named dialect's database."""
    name = _dialect(target)
    if name == "sqlite":
        return SqliteFtsIndex()
    if name == "postgresql":
        return PostgresIndex()
    raise ValueError(f"no search backend for database dialect {name!r}")


def backend_for(
    target: Connection | Engine | str, *, max_results: int | None = None
) -> SearchBackend:
    """The backend for a connection, an engine or a dialect name ("sqlite", "postgresql")."""
    name = _dialect(target)
    if name == "sqlite":
        return SqliteFtsBackend(max_results=max_results)
    if name == "postgresql":
        return PostgresBackend(max_results=max_results)
    raise ValueError(f"no search backend for database dialect {name!r}")


def search_papers(
    conn: Connection,
    text: str,
    *,
    categories: Sequence[str] = (),
    date_from: date | None = None,
    date_to: date | None = None,
    sort: Sort = "relevance",
    limit: int = 20,
    offset: int = 0,
    max_chars: int | None = None,
    engine: Engine_ | None = None,
) -> SearchPage:
    """Parse `text` and search by keyword: with the full-text index (`engine="index"`, the
    default setting) or the database's own backend. Never raises for odd query text; an index
    that cannot answer yet hands over to the database backend, with a notice."""
    from app.settings import get_settings

    settings = get_settings()
    if max_chars is None:
        max_chars = settings.search_max_query_chars
    query = parse_query(text, max_chars=max_chars)
    notices: list[str] = []
    if (engine or settings.search_engine) == "index":
        index = fulltext_for(settings, conn.engine.url)
        if index is not None:
            try:
                page = index.search(
                    conn,
                    query,
                    categories=categories,
                    date_from=date_from,
                    date_to=date_to,
                    sort=sort,
                    limit=limit,
                    offset=offset,
                    max_results=settings.search_max_results,
                )
                return replace(page, engine="index")
            except IndexUnavailable as exc:
                notices.append(f"{exc}: every word is required until it is ready")
    page = backend_for(conn).search(
        conn,
        query,
        categories=categories,
        date_from=date_from,
        date_to=date_to,
        sort=sort,
        limit=limit,
        offset=offset,
    )
    return replace(page, engine="database", notices=notices)
