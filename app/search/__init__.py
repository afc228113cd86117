"""Search: one query parser, the full-text index, and the database backends.

    from app.search import search_papers
    page = search_papers(conn, 'ti:transformer -survey cat:cs.LG date:2025')

`app.search.query` holds the query syntax; `app.search.fulltext` the full-text index (Tantivy,
beside any database; the default engine); `app.search.base` and `app.search.backend` the
database engine (SQLite FTS5 / PostgreSQL tsvector, also the fallback); `query_vector` embeds
a query without torch and `fusion` fuses rankings, for `app.hybrid`. The search package owns
its indexes: the store asks `index_for(conn).add(...)` to index new papers in the database,
and the full-text index follows the papers table by itself.

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
