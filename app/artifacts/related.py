"""Related papers by TF-IDF keywords (Cool Papers' [REL], done better).

Each paper's title and abstract become terms: lower-cased words split where the search
index splits them, stop words dropped, plus 2-grams of words adjacent in the text (so each
2-gram is a phrase the full-text index can match). `build` makes two streaming passes over
the store: document frequencies, then each paper's top 10 terms by TF-IDF, written to
`paper_keywords` as a unit-length vector. `related` searches the full-text index with a
paper's keywords OR-ed together as phrases and re-scores the candidates by the cosine
similarity of their keyword vectors, blended with the search score.

The maths (`terms`, `top_keywords`, `cosine`, `keyword_query`) are pure functions.
"""

from __future__ import annotations

import heapq
import math
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from app.artifacts.base import ArtifactTable
from app.db.models import Paper, PaperKeywords
from app.search.backend import backend_for
from app.search.query import parse_query

papers = Paper.__table__
paper_keywords = PaperKeywords.__table__
KEYWORDS = ArtifactTable(paper_keywords)

TOP_K = 10
# A term in fewer papers than this is a typo, a name or a formula fragment: it finds nothing.
MIN_DF = 2
# 2-grams seen in only a few papers are mostly accidents of wording ("applies neural"), not
# phrases; they would outrank every real keyword on idf alone.
MIN_DF_BIGRAM = 5
# Title words say more about a paper than abstract words.
TITLE_WEIGHT = 2
# Candidates the search returns for re-scoring.
CANDIDATES = 100
# How much of the final score comes from the search rank (the rest is keyword cosine).
SEARCH_SHARE = 0.5
_WRITE_CHUNK = 1000

# Words: runs of letters and digits (the search index also splits at "_").
_WORD = re.compile(r"[^\W_]+")

_STOP_TEXT = """
    a about above across after again against all almost along already also although always
    am among an and another any are around as at be became because been before being below
    between both but by can cannot could did do does doing done down due during each either
    else enough etc even ever every few for from further had has have having he her here hers
    him his how however i if in into is it its itself just least less like made make makes
    many may me might more most much must my neither no nor not now of off often on once one
    only onto or other others otherwise our ours out over own per perhaps quite rather
    really same several she should since so some such than that the their theirs them then
    there therefore these they this those though through thus to too toward towards under
    until up upon us use used uses using very via was we well were what whatever when where
    whereas whether which while who whom whose why will with within without would yet you
    your
    abstract approach approaches based paper papers propose proposed proposes present
    presents show shows shown study studies work works result results method methods new
    novel existing recent recently demonstrate demonstrates significant significantly
    achieve achieves achieving various different first two three furthermore
    moreover experiments experimental extensive introduce introduces provide
    provides
"""
STOP_WORDS = frozenset(_STOP_TEXT.split())


def words(text: str) -> list[str]:
    """Lower-cased index words, in order, with "" in place of stop words, one-letter words
    and bare numbers, so 2-grams never span them."""
    stop = STOP_WORDS
    return [
        "" if w in stop or len(w) < 2 or w.isdigit() else w for w in _WORD.findall(text.lower())
    ]


def terms(title: str, abstract: str) -> Counter[str]:
    """Term counts for one paper: 1-grams and adjacent 2-grams, title terms counted
    TITLE_WEIGHT times."""
    counts: Counter[str] = Counter()
    for text, weight in ((title, TITLE_WEIGHT), (abstract, 1)):
        ws = words(text)
        grams = [w for w in ws if w]
        grams += [f"{a} {b}" for a, b in pairwise(ws) if a and b]
        counts.update(grams * weight)
    return counts


def idf(df: int, n_docs: int) -> float:
    """Smoothed inverse document frequency (always > 0)."""
    return math.log((1 + n_docs) / (1 + df)) + 1.0


def idf_weights(
    df: Mapping[str, int],
    n_docs: int,
    *,
    min_df: int = MIN_DF,
    min_df_bigram: int = MIN_DF_BIGRAM,
) -> dict[str, float]:
    """idf of every term that may be a keyword: words in at least `min_df` papers, 2-grams
    in at least `min_df_bigram`."""
    return {
        t: idf(d, n_docs) for t, d in df.items() if d >= (min_df_bigram if " " in t else min_df)
    }


def top_keywords(
    counts: Mapping[str, int], idfs: Mapping[str, float], *, k: int = TOP_K
) -> list[tuple[str, float]]:
    """The k terms with the highest TF-IDF (sublinear tf; terms without an idf are left
    out), as a unit-length vector, best first; ties broken by term."""
    get = idfs.get
    log = math.log
    scored = [((1.0 + log(c)) * w, t) for t, c in counts.items() if (w := get(t)) is not None]
    best = heapq.nsmallest(k, scored, key=lambda p: (-p[0], p[1]))
    norm = math.sqrt(sum(s * s for s, _ in best))
    if not norm:
        return []
    return [(t, round(s / norm, 6)) for s, t in best]


def cosine(a: Iterable[Sequence[str | float]], b: Iterable[Sequence[str | float]]) -> float:
    """Cosine similarity of two sparse keyword vectors given as (term, weight) pairs."""
    va = {str(t): float(w) for t, w in a}
    vb = {str(t): float(w) for t, w in b}
    dot = sum(w * vb[t] for t, w in va.items() if t in vb)
    if not dot:
        return 0.0
    na = math.sqrt(sum(w * w for w in va.values()))
    nb = math.sqrt(sum(w * w for w in vb.values()))
    return dot / (na * nb)


def keyword_query(keywords: Iterable[Sequence[str | float]]) -> str:
    """Search text matching any keyword: `"kw one" OR "kw two" OR ...`."""
    return " OR ".join(f'"{t}"' for t, *_ in keywords)


# --- the store -------------------------------------------------------------------------


def _stream(conn: Connection, batch: int) -> Iterator[Sequence[sa.Row[*tuple[Any, ...]]]]:
    """(pk, arxiv_id, title, abstract) rows in pk order, `batch` at a time (keyset pages,
    so the connection stays free for writes between pages)."""
    last = None
    while True:
        q = sa.select(papers.c.pk, papers.c.arxiv_id, papers.c.title, papers.c.abstract)
        if last is not None:
            q = q.where(papers.c.pk > last)
        rows = conn.execute(q.order_by(papers.c.pk).limit(batch)).all()
        if not rows:
            return
        yield rows
        last = rows[-1].pk


def document_frequencies(conn: Connection, *, batch: int = 5000) -> tuple[Counter[str], int]:
    """(papers containing each term, number of papers) over the whole store."""
    df: Counter[str] = Counter()
    n = 0
    for rows in _stream(conn, batch):
        for r in rows:
            df.update(terms(r.title or "", r.abstract or "").keys())
        n += len(rows)
    return df, n


def build(conn: Connection, *, batch: int = 5000, now: datetime | None = None) -> int:
    """Recompute every paper's keywords into `paper_keywords`, replacing what is there.
    Run inside a transaction (`engine.begin()`). Returns the number of papers written."""
    built_at = now or datetime.now(UTC)
    df, n_docs = document_frequencies(conn, batch=batch)
    idfs = idf_weights(df, n_docs)
    del df
    conn.execute(paper_keywords.delete())
    written = 0
    pending: list[dict[str, object]] = []
    for rows in _stream(conn, batch):
        for r in rows:
            kws = top_keywords(terms(r.title or "", r.abstract or ""), idfs)
            pending.append(
                {
                    "arxiv_id": r.arxiv_id,
                    "keywords": [[t, w] for t, w in kws],
                    "built_at": built_at,
                }
            )
            if len(pending) >= _WRITE_CHUNK:
                conn.execute(paper_keywords.insert(), pending)
                written += len(pending)
                pending = []
    if pending:
        conn.execute(paper_keywords.insert(), pending)
        written += len(pending)
    return written


def keywords_for(conn: Connection, arxiv_id: str) -> list[tuple[str, float]] | None:
    """The paper's stored keywords, or None when they have not been built for it."""
    raw = conn.scalar(
        sa.select(paper_keywords.c.keywords).where(paper_keywords.c.arxiv_id == arxiv_id)
    )
    if raw is None:
        return None
    return [(str(t), float(w)) for t, w in raw]


def has_keywords(conn: Connection) -> bool:
    """Whether `build` has written anything yet."""
    return conn.scalar(sa.select(paper_keywords.c.arxiv_id).limit(1)) is not None


def related(conn: Connection, arxiv_id: str, limit: int = 10) -> list[tuple[str, float]]:
    """Up to `limit` (arxiv_id, score) pairs, best first, for papers related to `arxiv_id`
    (never itself). Empty when its keywords have not been built or it has none."""
    kws = keywords_for(conn, arxiv_id)
    if not kws or limit <= 0:
        return []
    query = parse_query(keyword_query(kws))
    page = backend_for(conn).search(conn, query, limit=CANDIDATES + 1)
    hits = [h for h in page.hits if h.arxiv_id != arxiv_id]
    if not hits:
        return []
    scores = [h.score or 0.0 for h in hits]
    lo, hi = min(scores), max(scores)
    span = hi - lo
    ids = [h.arxiv_id for h in hits]
    vectors: dict[str, list[list[str | float]]] = {
        a: k
        for a, k in KEYWORDS.rows_for(
            conn, ids, paper_keywords.c.arxiv_id, paper_keywords.c.keywords
        )
    }
    out = []
    for h, s in zip(hits, scores, strict=True):
        rank = (s - lo) / span if span else 1.0
        vec = vectors.get(h.arxiv_id)
        if vec:
            score = (1 - SEARCH_SHARE) * cosine(kws, vec) + SEARCH_SHARE * rank
        else:
            score = SEARCH_SHARE * rank
        out.append((h.arxiv_id, round(score, 6)))
    out.sort(key=lambda p: (-p[1], p[0]))
    return out[:limit]
