"""Search by meaning as well as by words: the one search every edge calls (page, API, feed,
CLI).

    page = search(conn, "diffusion models that generate protein structures")

Modes:
- `keyword`: the full-text index (app.search), every match ranked by BM25.
- `semantic`: the papers nearest the query's embedding (app.vectors), within the query's
  filters and exclusions.
- `hybrid` (the default once papers have embeddings and the query encoder runs): both lists
  fused by their standardised scores (app.search.fusion). A paper found both ways beats one
  found one way; a paper described in other words than its abstract's is still found.

The query's vector comes from `app.search.query_vector` (ONNX Runtime in this process, no
torch), computed on a thread of its own while the keyword search runs: ONNX Runtime releases
the GIL, and on a sentence both take about as long, so a hybrid search costs the longer of
the two rather than their sum. When the encoder cannot run, or no paper has an embedding
yet, the search answers by keyword and says so on the page. Date order is a keyword listing:
meaning has no date.

Ranked ids are cached per (query, filters, mode) and per state of both indexes, so a
day's repeated queries are answered from memory and a fetch (which moves the indexes) drops
them.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import date
from typing import TYPE_CHECKING, Literal

import sqlalchemy as sa
from sqlalchemy import Connection

from app.db.models import Paper, PaperCategory
from app.lru import LRU
from app.search import SearchHit, SearchPage, Sort, parse_query, search_papers
from app.search.fulltext import fulltext_for, is_optional
from app.search.fusion import standardised_fusion
from app.search.query import ParsedQuery
from app.search.query_vector import encoder_unavailable_reason, query_encoder_for
from app.settings import Settings, get_settings
from app.vectors import VectorIndex
from app.vectors import index_for as vectors_for

if TYPE_CHECKING:
    import numpy as np

Mode = Literal["keyword", "semantic", "hybrid"]
MODES: tuple[Mode, ...] = ("keyword", "semantic", "hybrid")

#: How deep each list goes before fusing: the fused ranking is exact for the first
#: FUSE_DEPTH places, which covers every page a reader turns to.
FUSE_DEPTH = 100
#: The lists' weights (lexical, semantic) in standardised fusion: each list's scores
#: (BM25, cosine) as z-scores over its first FUSE_DEPTH, summed. On the 50k known-item
#: benchmark (bench.search's 1,453 TL;DRs, split by paper into halves) equal weights were
#: best on each half (0.1-0.9 tried) and give MRR@10 0.875 / 0.877 on the other half,
#: against 0.852 / 0.864 for reciprocal-rank fusion with k = 5, the previous fusion.
WEIGHTS = (1.0, 1.0)
CACHE_SIZE = 512
#: Threads embedding queries beside their keyword searches (one ONNX Runtime thread each).
ENCODER_THREADS = 4

papers = Paper.__table__
paper_categories = PaperCategory.__table__


@dataclass(frozen=True, slots=True)
class Filters:
    """The caller's filters, on top of the query's own `cat:` and `date:` terms."""

    categories: tuple[str, ...] = ()
    date_from: date | None = None
    date_to: date | None = None

    @property
    def any(self) -> bool:
        return bool(self.categories or self.date_from or self.date_to)


@dataclass(frozen=True, slots=True)
class _Ranked:
    ids: tuple[str, ...]
    scores: tuple[float, ...]
    total: int
    total_capped: bool
    mode: Mode
    notices: tuple[str, ...]


CACHE: LRU[tuple[object, ...], _Ranked] = LRU(CACHE_SIZE)


def search(
    conn: Connection,
    text: str,
    *,
    mode: Mode | None = None,
    categories: Sequence[str] = (),
    date_from: date | None = None,
    date_to: date | None = None,
    sort: Sort = "relevance",
    limit: int = 20,
    offset: int = 0,
    settings: Settings | None = None,
) -> SearchPage:
    """One page of results for `text` in `mode` (None: hybrid when it can run, else
    keyword). Never raises for odd query text; a mode that cannot run answers by keyword
    with a notice."""
    settings = settings or get_settings()
    query = parse_query(text, max_chars=settings.search_max_query_chars)
    filters = Filters(tuple(categories), date_from, date_to)

    def keyword(sort: Sort, limit: int, offset: int) -> SearchPage:
        return search_papers(
            conn,
            text,
            categories=filters.categories,
            date_from=filters.date_from,
            date_to=filters.date_to,
            sort=sort,
            limit=limit,
            offset=offset,
        )

    if mode == "keyword" or sort == "date" or not query.has_positive_terms:
        page = keyword(sort, limit, offset)
        if mode in ("semantic", "hybrid"):
            why = "results are sorted by date" if sort == "date" else "the query has no words"
            page.notices.append(f"keyword results: {why}")
        return page

    vectors = vectors_for(settings)
    vectors.refresh(conn)
    reason = _unavailable(conn, vectors, settings)
    if reason is not None:
        page = keyword(sort, limit, offset)
        if mode is not None or vectors.available:
            # Asked for by name, or the default would have been hybrid: say why not.
            page.notices.append(f"keyword results only: {reason}")
        return page
    want: Mode = mode or "hybrid"
    limit = max(0, min(limit, settings.search_max_results))
    offset = max(0, offset)
    depth = min(max(FUSE_DEPTH, offset + limit), settings.search_max_results)
    key = _cache_key(conn, settings, vectors, text, want, filters, depth)
    ranked = CACHE.get(key) if key is not None else None
    if ranked is None:
        vector = _start_encoding(settings, query)
        lexical = keyword("relevance", depth, 0)
        ranked = _rank(conn, settings, vectors, query, want, lexical, vector, filters, depth)
        if key is not None:
            CACHE.put(key, ranked)
    window = slice(offset, offset + limit)
    hits = _hits(conn, ranked.ids[window], ranked.scores[window])
    return SearchPage(
        hits,
        ranked.total,
        limit,
        offset,
        total_capped=ranked.total_capped,
        warnings=list(query.warnings),
        query=query,
        engine="index",
        mode=ranked.mode,
        notices=list(ranked.notices),
    )


def _unavailable(conn: Connection, vectors: VectorIndex, settings: Settings) -> str | None:
    if not vectors.available:
        return "no paper has an embedding yet (the ML pool writes them)"
    if fulltext_for(settings, conn.engine.url) is None:
        return "this database has no full-text index"
    if query_encoder_for(settings) is None:
        return encoder_unavailable_reason(settings) or "the query encoder is not ready"
    return None


def _cache_key(
    conn: Connection,
    settings: Settings,
    vectors: VectorIndex,
    text: str,
    mode: Mode,
    filters: Filters,
    depth: int,
) -> tuple[object, ...] | None:
    index = fulltext_for(settings, conn.engine.url)
    if index is None:
        return None
    try:
        state = index.catch_up(conn)
    except RuntimeError:
        return None
    status = vectors.status()
    return (
        str(conn.engine.url),
        text,
        mode,
        filters,
        depth,
        state.max_pk,
        state.watermark,
        status.get("count"),
        status.get("delta"),
        status.get("generation"),
    )


_encoding: ThreadPoolExecutor | None = None
_encoding_lock = threading.Lock()


def _start_encoding(settings: Settings, query: ParsedQuery) -> Future[np.ndarray]:
    """The query's vector, being computed on the encoder threads (made on first use, so a
    process that never searches by meaning starts none)."""
    global _encoding
    encoder = query_encoder_for(settings)
    assert encoder is not None  # checked by _unavailable
    with _encoding_lock:
        if _encoding is None:
            _encoding = ThreadPoolExecutor(ENCODER_THREADS, thread_name_prefix="query-vector")
    return _encoding.submit(encoder.encode, " ".join(t.text for t in query.terms()))


def _rank(
    conn: Connection,
    settings: Settings,
    vectors: VectorIndex,
    query: ParsedQuery,
    mode: Mode,
    lexical: SearchPage,
    vector_job: Future[np.ndarray],
    filters: Filters,
    depth: int,
) -> _Ranked:
    if lexical.engine != "index":
        # The index is not ready: its notice says so; keyword results only.
        vector_job.cancel()
        return _Ranked(
            tuple(h.arxiv_id for h in lexical.hits),
            tuple(h.score or 0.0 for h in lexical.hits),
            lexical.total,
            lexical.total_capped,
            "keyword",
            tuple(lexical.notices),
        )
    vector = vector_job.result()
    constrained = bool(
        query.negative
        or query.has_filters
        or filters.any
        or any(not is_optional(query, g) for g in query.positive)
    )
    # With constraints, ask for more neighbours: some will not pass them.
    nearest = vectors.search(vector, depth * (4 if constrained else 1))
    semantic_ids = [a for a, _ in nearest]
    if constrained and semantic_ids:
        passing = _passing(conn, settings, query, semantic_ids, filters)
        semantic_ids = [a for a in semantic_ids if a in passing]
    semantic_ids = semantic_ids[:depth]
    cos = dict(nearest)
    if mode == "semantic":
        return _Ranked(
            tuple(semantic_ids),
            tuple(cos[a] for a in semantic_ids),
            len(semantic_ids),
            False,
            "semantic",
            (),
        )
    lexical_ids = [h.arxiv_id for h in lexical.hits]
    fused = standardised_fusion(
        [
            [(h.arxiv_id, h.score or 0.0) for h in lexical.hits],
            [(a, cos[a]) for a in semantic_ids],
        ],
        weights=WEIGHTS,
        head=FUSE_DEPTH,
    )
    extra = len(set(semantic_ids) - set(lexical_ids))
    return _Ranked(
        tuple(a for a, _ in fused[:depth]),
        tuple(s for _, s in fused[:depth]),
        lexical.total + extra,
        lexical.total_capped,
        "hybrid",
        (),
    )


def _passing(
    conn: Connection,
    settings: Settings,
    query: ParsedQuery,
    ids: Sequence[str],
    filters: Filters,
) -> set[str]:
    """The ids that satisfy the query's constraints: its filters, exclusions and required
    terms (its optional words are what the vector already stands for)."""
    hard = replace(
        query,
        positive=tuple(g for g in query.positive if not is_optional(query, g)),
    )
    index = fulltext_for(settings, conn.engine.url)
    assert index is not None
    pks = dict(
        conn.execute(
            sa.select(papers.c.pk, papers.c.arxiv_id).where(papers.c.arxiv_id.in_(ids))
        ).all()
    )
    kept = index.among(
        hard,
        list(pks),
        categories=filters.categories,
        date_from=filters.date_from,
        date_to=filters.date_to,
    )
    return {pks[pk] for pk in kept}


def _hits(conn: Connection, ids: Sequence[str], scores: Sequence[float]) -> tuple[SearchHit, ...]:
    if not ids:
        return ()
    rows = {
        r.arxiv_id: r
        for r in conn.execute(
            sa.select(
                papers.c.arxiv_id,
                papers.c.title,
                papers.c.sort_date,
                papers.c.primary_category,
                papers.c.authors,
            ).where(papers.c.arxiv_id.in_(list(ids)))
        )
    }
    return tuple(
        SearchHit(
            arxiv_id=a,
            score=float(s),
            title=r.title,
            sort_date=r.sort_date,
            primary_category=r.primary_category,
            authors=tuple(r.authors or ()),
        )
        for a, s in zip(ids, scores, strict=True)
        if (r := rows.get(a)) is not None
    )
