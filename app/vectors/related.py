"""[Related] papers by embedding: the paper's stored vector, its nearest neighbours in the
vector index, re-ordered by the rare words they share with it (when the full-text index is
there to say which words are rare), optionally blended with shared-category and
shared-author signals.

Falls back to the TF-IDF keywords (`app.artifacts.related`) only when the paper has no
embedding or there is no index to search; `Related.method` says which produced the list,
so the page and the API can say so.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import sqlalchemy as sa
from sqlalchemy import Connection

from app.artifacts import embeddings
from app.artifacts import related as keywords
from app.db.models import Paper
from app.lru import LRU
from app.search.fulltext import FullTextIndex
from app.vectors.index import VectorIndex

papers = Paper.__table__

Method = Literal["embedding", "keywords"]
#: Neighbours re-ranked by shared words and by the blend: only the nearest ones move.
RERANK_CANDIDATES = 50
#: Weight of the shared words (`FullTextIndex.likeness`: BM25 against the paper's words as
#: a share of its own score) added to the embedding cosine. Embeddings find the same
#: subject; a group's papers also share rare words (a method's or a dataset's name) that a
#: sentence embedding blurs. Chosen among 0.25-2 on a third sample of 2,000 papers
#: (bench.related --seed 9): shared-author share 0.023 -> 0.028, category share kept; the
#: two samples the README reports were not used to choose it.
WORDS_WEIGHT = 1.0


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


#: Re-ranked lists kept, by paper, length, blend and both indexes' contents.
_RECENT: LRU[Hashable, Related] = LRU(4096)


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


def by_words(
    pairs: Sequence[tuple[str, float]],
    similarity: Mapping[str, float],
    weight: float | None = None,
) -> list[tuple[str, float]]:
    """(id, cosine) pairs re-scored as cosine + weight (default WORDS_WEIGHT) x word
    similarity; best first, ties by id."""
    weight = WORDS_WEIGHT if weight is None else weight
    out = [(a, round(cos + weight * similarity.get(a, 0.0), 6)) for a, cos in pairs]
    out.sort(key=lambda p: (-p[1], p[0]))
    return out


@dataclass(frozen=True, slots=True)
class _Facts:
    primary: str
    authors: Sequence[str]


def _pks(conn: Connection, ids: Sequence[str]) -> dict[str, int]:
    # Only the unique index on arxiv_id is read: a paper's row (its abstract) is not.
    rows = conn.execute(
        sa.select(papers.c.arxiv_id, papers.c.pk).where(papers.c.arxiv_id.in_(list(ids)))
    )
    return {r.arxiv_id: r.pk for r in rows}


def _facts(conn: Connection, ids: Sequence[str]) -> dict[str, _Facts]:
    rows = conn.execute(
        sa.select(papers.c.arxiv_id, papers.c.primary_category, papers.c.authors).where(
            papers.c.arxiv_id.in_(list(ids))
        )
    )
    return {r.arxiv_id: _Facts(r.primary_category or "", r.authors or ()) for r in rows}


def _text(conn: Connection, arxiv_id: str) -> str:
    row = conn.execute(
        sa.select(papers.c.title, papers.c.abstract).where(papers.c.arxiv_id == arxiv_id)
    ).one()
    return f"{row.title or ''}\n{row.abstract or ''}"


def _reranked(
    conn: Connection,
    arxiv_id: str,
    pairs: list[tuple[str, float]],
    fulltext: FullTextIndex | None,
    blend: Blend | None,
) -> list[tuple[str, float]]:
    ids = [arxiv_id, *(a for a, _ in pairs)]
    if fulltext is not None:
        pk_of = _pks(conn, ids)
        if (own := pk_of.pop(arxiv_id, None)) is not None:
            like = fulltext.likeness(_text(conn, arxiv_id), own, list(pk_of.values()))
            if like is not None:
                pairs = by_words(pairs, {a: like[pk] for a, pk in pk_of.items()})
    if blend is not None:
        facts = _facts(conn, ids)
        query = facts.get(arxiv_id)
        pairs = blended(
            pairs,
            (query.primary, query.authors) if query else ("", ()),
            {a: (f.primary, f.authors) for a, f in facts.items()},
            blend,
        )
    return pairs


def related(
    conn: Connection,
    index: VectorIndex,
    arxiv_id: str,
    limit: int = 10,
    *,
    fulltext: FullTextIndex | None = None,
    blend: Blend | None = None,
) -> Related:
    """Papers related to `arxiv_id` (never itself), best first: by embedding when the paper
    has one and the index has anything to search (the nearest RERANK_CANDIDATES re-ordered
    by shared words when `fulltext` has an index), else by TF-IDF keywords."""
    index.refresh(conn)
    vec = index.vector(arxiv_id)
    if vec is None:  # stored since the last refresh
        vec = embeddings.vector_for(conn, arxiv_id)
    if vec is not None and index.available:
        if limit <= 0:
            return Related("embedding", [])
        if blend is None and fulltext is None:
            return Related("embedding", index.search(vec, limit, exclude={arxiv_id}))
        # Re-ranking costs several times the search: a list is kept while neither index
        # changes (a repeated page is then cheap, and pages are cached by the list).
        key = (arxiv_id, limit, blend, index.contents, fulltext and fulltext.contents())
        if (found := _RECENT.get(key)) is not None:
            return found
        pairs = index.search(vec, max(limit, RERANK_CANDIDATES), exclude={arxiv_id})
        found = Related("embedding", _reranked(conn, arxiv_id, pairs, fulltext, blend)[:limit])
        _RECENT.put(key, found)
        return found
    kws = keywords.keywords_for(conn, arxiv_id)
    return Related("keywords", keywords.related(conn, arxiv_id, limit) if kws else [], kws)


def has_embeddings(conn: Connection, index: VectorIndex) -> bool:
    """Whether [Related] can use embeddings at all (an index build or stored vectors)."""
    return index.available or embeddings.has_embeddings(conn)
