"""Merging ranked lists (a lexical and a vector search) into one ranking.

Reciprocal rank fusion (Cormack, Clarke and Büttcher, 2009) needs only each list's order,
not its scores, so lists whose scores are not comparable (BM25 against cosine) still merge.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from typing import TypeVar

K = TypeVar("K", bound=Hashable)

#: The paper's constant: it flattens the head of each list, so a single first place does
#: not outweigh agreement further down.
RRF_K = 60


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[K]],
    *,
    k: int = RRF_K,
    weights: Sequence[float] | None = None,
    limit: int | None = None,
) -> list[tuple[K, float]]:
    """Every id of `rankings` with its fused score, best first.

    An id's score is the sum over the lists it is in of `w_i / (k + rank_i)`, ranks counting
    from 1 (an id repeated in one list counts once, at its best rank). Equal scores are
    ordered by the best rank the id has in any one list, then by first appearance (the
    lists in the order given, each from its top), so the result never depends on hashing.
    `weights` (one per list, default 1) tilt the fusion toward a list; `limit` keeps the
    first `limit` ids.
    """
    if k < 0:
        raise ValueError(f"k must be 0 or more, not {k}")
    if weights is not None and len(weights) != len(rankings):
        raise ValueError(f"{len(weights)} weights for {len(rankings)} rankings")
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be 0 or more, not {limit}")
    terms: dict[K, list[float]] = {}  # insertion order is first appearance
    best: dict[K, int] = {}
    for i, ranking in enumerate(rankings):
        weight = 1.0 if weights is None else float(weights[i])
        seen: set[K] = set()
        for rank, key in enumerate(ranking, start=1):
            if key in seen:
                continue
            seen.add(key)
            terms.setdefault(key, []).append(weight / (k + rank))
            best[key] = min(best.get(key, rank), rank)
    # fsum is exact before its one rounding: ids with the same ranks in different lists
    # get bit-equal scores, whatever order the terms were added in.
    scores = {key: math.fsum(parts) for key, parts in terms.items()}
    first = {key: n for n, key in enumerate(terms)}
    fused = sorted(scores.items(), key=lambda item: (-item[1], best[item[0]], first[item[0]]))
    return fused if limit is None else fused[:limit]
