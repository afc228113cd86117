"""Merging ranked lists (a lexical and a vector search) into one ranking.

Reciprocal rank fusion (Cormack, Clarke and Büttcher, 2009) needs only each list's order,
not its scores, so lists whose scores are not comparable (BM25 against cosine) still merge.
Standardised fusion makes the scores comparable instead (each list's z-scores) and keeps
how close two results are, which ranks lose; hybrid search uses it (see app.hybrid).
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


def standardised_fusion(
    scored: Sequence[Sequence[tuple[K, float]]],
    *,
    weights: Sequence[float] | None = None,
    head: int | None = None,
) -> list[tuple[K, float]]:
    """Every id of the scored lists with its fused score, best first: the weighted sum of
    its standardised scores ((score - mean) / sd within its list), an id missing from a list
    counting as that list's lowest. Unlike ranks, scores keep how far apart two results
    are (a near tie stays near). The mean and sd come from each list's first `head` entries
    (all by default), so a deeper list (a later page) does not move the first places. A
    list whose scores are all equal contributes 0. Ties: the best rank in any one list,
    then first appearance."""
    if weights is not None and len(weights) != len(scored):
        raise ValueError(f"{len(weights)} weights for {len(scored)} lists")
    standard: list[dict[K, float]] = []
    floors: list[float] = []
    for lst in scored:
        values = [float(s) for _, s in lst]
        basis = values[:head] if head is not None else values
        mean = math.fsum(basis) / len(basis) if basis else 0.0
        sd = math.sqrt(math.fsum((v - mean) ** 2 for v in basis) / len(basis)) if basis else 0.0
        z: dict[K, float] = {}
        for key, v in zip((k for k, _ in lst), values, strict=True):
            if key not in z:
                z[key] = (v - mean) / sd if sd > 0 else 0.0
        standard.append(z)
        floors.append(min(z.values(), default=0.0))
    first: dict[K, int] = {}
    best: dict[K, int] = {}
    for lst in scored:
        for rank, (key, _) in enumerate(lst, start=1):
            first.setdefault(key, len(first))
            best[key] = min(best.get(key, rank), rank)
    scores = {
        key: math.fsum(
            (1.0 if weights is None else float(weights[i])) * z.get(key, floors[i])
            for i, z in enumerate(standard)
        )
        for key in first
    }
    return sorted(scores.items(), key=lambda item: (-item[1], best[item[0]], first[item[0]]))
