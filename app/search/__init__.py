"""Full-text search: one query parser, one backend per database.

    from app.search import search_papers
    page = search_papers(conn, 'ti:transformer -survey cat:cs.LG date:2025')

See `app.search.query` for the query syntax and `app.search.backend` for the interface.
"""

from app.search.backend import (
    SearchBackend,
    SearchHit,
    SearchPage,
    Sort,
    backend_for,
    search_papers,
)
from app.search.query import ParsedQuery, Term, index_tokens, parse_query

__all__ = [
    "ParsedQuery",
    "SearchBackend",
    "SearchHit",
    "SearchPage",
    "Sort",
    "Term",
    "backend_for",
    "index_tokens",
    "parse_query",
    "search_papers",
]
