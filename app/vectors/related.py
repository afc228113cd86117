"""[Related] papers by embedding: the paper's stored vector, its nearest neighbours in the
vector index, optionally blended with shared-category and shared-author signals.

Falls back to the TF-IDF keywords (`app.artifacts.related`) only when the paper has no
embedding or there is no index to search; `Related.method` says which produced the list,
so the page and the API can say so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import sqlalchemy as sa
from sqlalchemy import Connection

from app.artifacts import embeddings
from app.artifacts import related as keywords
from app.db.models import Paper
from app.vectors.index import VectorIndex

papers = Paper.__table__

Method = Literal["embedding", "keywords"]
#: Neighbours re-ranked when blending (the blend only reorders the nearest ones).
BLEND_CANDIDATES = 50


@dataclass(frozen=True, slots=True)
class Blend:
    """Bonuses added to the cosine: same primary category, at least one shared author."""

    category: float = 0.05
    author: float = 0.05


@dataclass(frozen=True, slots=True)
class Related:
    method: Method
    pairs: list[tuple[str, float]]  # (arxiv_id, score), best first
    # The paper's keywords when the keyword method ran (None: not built for it).
    keywords: list[tuple[str, float]] | None = None


def blended(
    pairs: Sequence[tuple[str, float]],
    query: tuple[str, Sequence[str]],
    facts: dict[str, tuple[str, Sequence[str]]],
    blend: Blend,
) -> list[tuple[str, float]]:
    """Re-score (id, cosine) pairs: + blend.category for the query's primary category,
    + blend.author for a shared author; best first, ties by id."""
    q_primary, q_authors = query[0], set(query[1])
    out = []
    for a, cos in pairs:
        primary, authors = facts.get(a, ("", ()))
        score = cos + blend.category * (primary == q_primary)
        score += blend.author * bool(q_authors.intersection(authors))
        out.append((a, round(score, 6)))
    out.sort(key=lambda p: (-p[1], p[0]))
    return out


def _facts(conn: Connection, ids: Sequence[str]) -> dict[str, tuple[str, Sequence[str]]]:
    rows = conn.execute(
        sa.select(papers.c.arxiv_id, papers.c.primary_category, papers.c.authors).where(
            papers.c.arxiv_id.in_(list(ids))
        )
    )
    return {r.arxiv_id: (r.primary_category or "", r.authors or ()) for r in rows}


def related(
    conn: Connection,
    index: VectorIndex,
    arxiv_id: str,
    limit: int = 10,
    *,
    blend: Blend | None = None,
) -> Related:
    """Papers related to `arxiv_id` (never itself), best first: by embedding when the paper
    has one and the index has anything to search, else by TF-IDF keywords."""
    index.refresh(conn)
    vec = index.vector(arxiv_id)
    if vec is None:  # stored since the last refresh
        vec = embeddings.vector_for(conn, arxiv_id)
    if vec is not None and index.available:
        if limit <= 0:
            return Related("embedding", [])
        if blend is None:
            return Related("embedding", index.search(vec, limit, exclude={arxiv_id}))
        pairs = index.search(vec, max(limit, BLEND_CANDIDATES), exclude={arxiv_id})
        facts = _facts(conn, [arxiv_id, *(a for a, _ in pairs)])
        query = facts.get(arxiv_id, ("", ()))
        return Related("embedding", blended(pairs, query, facts, blend)[:limit])
    kws = keywords.keywords_for(conn, arxiv_id)
    return Related("keywords", keywords.related(conn, arxiv_id, limit) if kws else [], kws)


def has_embeddings(conn: Connection, index: VectorIndex) -> bool:
    """Whether [Related] can use embeddings at all (an index build or stored vectors)."""
    return index.available or embeddings.has_embeddings(conn)
