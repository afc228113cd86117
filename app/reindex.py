"""Rebuilding, in bulk, what is derived from the stored papers (`papershelf reindex`): the
search index, the venue papers' links to arXiv, and the related-paper keywords.

Part of the domain: imports the store, the search package and the derived artifacts only.
"""

from __future__ import annotations

from sqlalchemy import Engine

from app.artifacts import related
from app.db import bulk, store
from app.search import backend_for, fulltext
from app.settings import get_settings


def rebuild_search_index(engine: Engine) -> int:
    """Rebuild both search indexes (the database's own and the full-text index beside it)
    and re-link venue papers to arXiv. Returns the number of venue papers linked."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            bulk.complete_indexes(conn)  # what an interrupted bulk load left unbuilt
        backend_for(conn).rebuild(conn)
        linked = store.link_venues(conn)
    fulltext.rebuild(get_settings(), engine)
    return linked


def build_related_keywords(engine: Engine) -> int:
    """Rebuild the TF-IDF keywords behind [Related], in one transaction. Returns the number
    of papers that got keywords."""
    with engine.begin() as conn:
        return related.build(conn)
