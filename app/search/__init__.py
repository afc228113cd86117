"""Full-text search: one query parser, one backend per database.

    from app.search import search_papers
    page = search_papers(conn, 'ti:transformer -survey cat:cs.LG date:2025')

See `app.search.query` for the query syntax, `app.search.base` for the backend and index
interfaces and `app.search.backend` for picking one by database. The search package owns its
index: the store asks `index_for(conn).add(...)` to index new papers; nothing outside this
package writes index SQL (the migrations create the index structures).

Part of the domain: imports the store's models and settings, never web, CLI, jobs, workers
or ML code.
"""

from app.search import fulltext
from app.search.backend import backend_for, index_for, search_papers
from app.search.base import SearchBackend, SearchHit, SearchIndex, SearchPage, Sort
from app.search.query import ParsedQuery, Term, index_tokens, parse_query

__all__ = [
    "ParsedQuery",
    "SearchBackend",
    "SearchHit",
    "SearchIndex",
    "SearchPage",
    "Sort",
    "Term",
    "backend_for",
    "fulltext",
    "index_for",
    "index_tokens",
    "parse_query",
    "search_papers",
]
