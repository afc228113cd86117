"""The "for you" sort: a day's papers ranked by their similarity to a reader's stars.

Stars live in the reader's browser; a request names them (`starred=2501.01234,…`) and
nothing is stored. A day's list is a few hundred papers, so scoring is exact: one matrix
product of the day's unit vectors with the starred ones (`app.artifacts.embeddings`).

A paper's score is its cosine similarity to its *nearest* starred paper. Readers star
papers on several subjects; a centroid of the stars lands between them and matches none,
and a mean over all stars lets the subject starred most bury the others. The nearest star
serves every interest, however few papers it has, and the reason shown ("because you
starred …") is then the whole reason for the rank. A starred paper listed that day is
ranked by the other stars (matching itself says nothing).

Papers that cannot be scored (no embedding yet, or no other star to compare with) follow
the ranked ones in plain announcement order. `rank` and `parse_starred` are pure;
`for_you` and `titles` read the store.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import sqlalchemy as sa
from sqlalchemy import Connection

from app.artifacts.embeddings import vectors_for
from app.db.models import Paper
from app.db.statements import chunks
from app.ingest.ids import InvalidArxivId, split_id_list
from app.listing import DayListing, PaperCard, Section

papers = Paper.__table__

SORT = "foryou"
# Far above what a reader stars in practice; bounds the query and the request line.
MAX_STARRED = 500


class InvalidStarred(ValueError):
    """The `starred` parameter is not a list of arXiv ids; the message says why."""


def parse_starred(raw: str) -> list[str]:
    """ "2501.01234, 2501.05678v2" → distinct ids without versions, in the order given (at
    most MAX_STARRED). Raises InvalidStarred naming the first bad item."""
    try:
        parsed = split_id_list(raw)
    except InvalidArxivId as exc:
        raise InvalidStarred(f"starred: {exc}") from None
    ids = list(dict.fromkeys(arxiv_id for arxiv_id, _version in parsed))
    if len(ids) > MAX_STARRED:
        raise InvalidStarred(f"starred: name at most {MAX_STARRED} papers, not {len(ids)}")
    return ids


# --- ranking (pure) ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Match:
    arxiv_id: str
    score: float  # cosine similarity to the nearest starred paper
    nearest: str  # that starred paper's id


@dataclass(frozen=True, slots=True)
class Ranking:
    ranked: list[Match]  # best first; ties keep the order given
    unranked: list[str]  # the papers that could not be scored, in the order given
    stars_used: list[str]  # the starred ids that had a vector to compare with


def _unit_rows(
    ids: Sequence[str], vectors: Mapping[str, np.ndarray], dim: int
) -> tuple[list[str], np.ndarray]:
    """The ids among `ids` with a usable vector of `dim` dimensions (not zero, all finite),
    and those vectors as unit rows."""
    have = [i for i in ids if (v := vectors.get(i)) is not None and v.shape == (dim,)]
    if not have:
        return [], np.empty((0, dim), dtype=np.float32)
    rows = np.stack([vectors[i] for i in have]).astype(np.float32, copy=False)
    norms = np.linalg.norm(rows, axis=1)
    ok = np.isfinite(norms) & (norms > 0)
    return [i for i, keep in zip(have, ok, strict=True) if keep], rows[ok] / norms[ok, None]


def rank(
    day_ids: Sequence[str], starred_ids: Sequence[str], vectors: Mapping[str, np.ndarray]
) -> Ranking:
    """Rank `day_ids` (in plain order) by the nearest of `starred_ids`, using `vectors`
    (any length; rows are normalised here). Ids without a usable vector (missing, zero or
    not finite, or of another dimension than most of the stars') are left out of the
    scoring."""
    day = list(dict.fromkeys(day_ids))
    starred = list(dict.fromkeys(starred_ids))
    dims = Counter(v.shape[0] for s in starred if (v := vectors.get(s)) is not None and v.ndim == 1)
    if not dims:
        return Ranking([], day, [])
    # Stored vectors share one model's dimension; after a model change with another
    # dimension, the stars' most common one wins and the rest wait for re-embedding.
    dim = dims.most_common(1)[0][0]
    stars, star_rows = _unit_rows(starred, vectors, dim)
    scored, day_rows = _unit_rows(day, vectors, dim)
    if not stars or not scored:
        return Ranking([], day, stars)
    sims = day_rows @ star_rows.T
    column = {s: j for j, s in enumerate(stars)}
    for i, arxiv_id in enumerate(scored):
        if arxiv_id in column:  # a starred paper is ranked by the other stars
            sims[i, column[arxiv_id]] = -np.inf
    nearest = np.argmax(sims, axis=1)
    best = sims[np.arange(len(scored)), nearest]
    # Stable: equal scores keep the plain order.
    matches = [
        Match(scored[i], float(best[i]), stars[int(nearest[i])])
        for i in np.argsort(-best, kind="stable")
        if np.isfinite(best[i])
    ]
    ranked = {m.arxiv_id for m in matches}
    return Ranking(matches, [d for d in day if d not in ranked], stars)


# --- a day's listing, ranked ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reason:
    """Why a paper ranks where it does: the starred paper it is nearest to."""

    arxiv_id: str
    title: str
    score: float


@dataclass(slots=True)
class ForYou:
    """A day's listing in "for you" order, with what the page says about it."""

    # "foryou" (ranked) then any "unranked"; the plain sections when none could be ranked.
    sections: list[Section]
    reasons: dict[str, Reason]  # by ranked paper id
    starred: int  # distinct ids the reader sent
    stars_used: int  # of those, with an embedding to compare with
    unknown: list[str] = field(default_factory=list)  # not stored on this shelf
    without_vector: list[str] = field(default_factory=list)  # stored, no embedding yet

    @property
    def ranked(self) -> int:
        return len(self.reasons)

    @property
    def unranked(self) -> int:
        """The papers left in announcement order (all of them when none could be ranked)."""
        return sum(s.count for s in self.sections) - self.ranked


def titles(conn: Connection, ids: Sequence[str]) -> dict[str, str]:
    """The titles of the stored papers among `ids`."""
    out: dict[str, str] = {}
    for chunk in chunks(list(dict.fromkeys(ids))):
        rows = conn.execute(
            sa.select(papers.c.arxiv_id, papers.c.title).where(papers.c.arxiv_id.in_(chunk))
        )
        out.update({a: t for a, t in rows})
    return out


def for_you(conn: Connection, listing: DayListing, starred_ids: Sequence[str]) -> ForYou:
    """`listing` (built in plain order) re-ordered for a reader who starred `starred_ids`."""
    starred = list(dict.fromkeys(starred_ids))
    cards: dict[str, PaperCard] = {p.arxiv_id: p for p in listing.papers}
    order = list(cards)
    vectors = vectors_for(conn, [*order, *starred])
    known = titles(conn, starred)
    ranking = rank(order, starred, vectors)
    used = set(ranking.stars_used)
    result = ForYou(
        sections=listing.sections,
        reasons={},
        starred=len(starred),
        stars_used=len(used),
        unknown=[s for s in starred if s not in known],
        without_vector=[s for s in starred if s in known and s not in used],
    )
    if ranking.ranked:
        result.sections = [
            Section("foryou", "For you", [cards[m.arxiv_id] for m in ranking.ranked])
        ]
        if ranking.unranked:
            rest = [cards[i] for i in ranking.unranked]
            result.sections.append(Section("unranked", "Not ranked yet", rest))
        result.reasons = {
            m.arxiv_id: Reason(m.nearest, known.get(m.nearest, m.nearest), m.score)
            for m in ranking.ranked
        }
    return result
