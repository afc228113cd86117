"""Reciprocal rank fusion: scores worked by hand, what agreement and weights do to the order,
ties, odd input, and properties that hold for any lists."""

from __future__ import annotations

from collections.abc import Hashable
from fractions import Fraction
from typing import TypeVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.search.fusion import reciprocal_rank_fusion, standardised_fusion

K = TypeVar("K", bound=Hashable)


def order(fused: list[tuple[K, float]]) -> list[K]:
    return [key for key, _ in fused]


def test_scores_worked_by_hand() -> None:
    fused = reciprocal_rank_fusion([["a", "b", "c"], ["c", "a"]], k=60)
    assert fused == [
        ("a", pytest.approx(1 / 61 + 1 / 62)),
        ("c", pytest.approx(1 / 63 + 1 / 61)),
        ("b", pytest.approx(1 / 62)),
    ]


def test_a_small_k_lets_the_top_of_one_list_win() -> None:
    lexical, vector = ["x", "both"], ["y", "z", "both"]
    # k=0: x scores 1, both 1/2 + 1/3; k=60: both's two terms beat x's one.
    assert order(reciprocal_rank_fusion([lexical, vector], k=0))[0] == "x"
    assert order(reciprocal_rank_fusion([lexical, vector], k=60))[0] == "both"


def test_an_id_in_both_lists_beats_ids_in_one() -> None:
    lexical = ["l1", "l2", "shared", "l3"]
    vector = ["v1", "v2", "v3", "shared"]
    fused = order(reciprocal_rank_fusion([lexical, vector]))
    assert fused[0] == "shared"
    assert set(fused) == set(lexical) | set(vector)


def test_weights_shift_the_order() -> None:
    lexical, vector = ["lex", "other"], ["vec", "else"]
    assert order(reciprocal_rank_fusion([lexical, vector], weights=[1.0, 2.0]))[0] == "vec"
    assert order(reciprocal_rank_fusion([lexical, vector], weights=[2.0, 1.0]))[0] == "lex"
    fused = reciprocal_rank_fusion([lexical, vector], weights=[0.5, 2.0])
    assert dict(fused)["vec"] == pytest.approx(2 / 61)
    assert dict(fused)["lex"] == pytest.approx(0.5 / 61)


def test_a_zero_weight_list_only_adds_its_ids_at_the_end() -> None:
    fused = reciprocal_rank_fusion([["a", "b"], ["c", "a"]], weights=[1.0, 0.0])
    assert fused == [("a", pytest.approx(1 / 61)), ("b", pytest.approx(1 / 62)), ("c", 0.0)]


def test_ties_go_to_the_best_single_rank_then_to_first_appearance() -> None:
    # Mirror images score the same to the bit; the earlier list's top comes first.
    fused = reciprocal_rank_fusion([["a", "b"], ["b", "a"]])
    assert fused[0][1] == fused[1][1]
    assert order(fused) == ["a", "b"]
    assert order(reciprocal_rank_fusion([["b", "a"], ["a", "b"]])) == ["b", "a"]

    # Same score, different best rank: ids that topped a list come first, even one seen
    # later. k=0: x, y and solo score 1/1, pair 1/2 + 1/2.
    fused = reciprocal_rank_fusion([["x", "pair"], ["y", "pair"], ["solo"]], k=0)
    assert {score for _, score in fused} == {1.0}
    assert order(fused) == ["x", "y", "solo", "pair"]

    # Same score and best rank: first appearance, list by list.
    assert order(reciprocal_rank_fusion([["m", "n"], ["o"]])) == ["m", "o", "n"]
    assert order(reciprocal_rank_fusion([["o"], ["m", "n"]])) == ["o", "m", "n"]


def test_an_id_repeated_in_one_list_counts_once_at_its_best_rank() -> None:
    assert reciprocal_rank_fusion([["a", "b", "a"]]) == [
        ("a", pytest.approx(1 / 61)),
        ("b", pytest.approx(1 / 62)),
    ]


def test_limit_keeps_the_head() -> None:
    rankings = [["a", "b", "c"], ["c", "d"]]
    full = reciprocal_rank_fusion(rankings)
    assert reciprocal_rank_fusion(rankings, limit=2) == full[:2]
    assert reciprocal_rank_fusion(rankings, limit=0) == []
    assert reciprocal_rank_fusion(rankings, limit=99) == full


def test_empty_input_gives_nothing() -> None:
    assert reciprocal_rank_fusion([]) == []
    assert reciprocal_rank_fusion([[], []]) == []
    assert order(reciprocal_rank_fusion([[], ["a"]])) == ["a"]


def test_any_hashable_id() -> None:
    fused = reciprocal_rank_fusion([[(1, "v1"), (2, "v1")], [(2, "v1")]])
    assert order(fused) == [(2, "v1"), (1, "v1")]
    assert order(reciprocal_rank_fusion([[3, 1], [1]])) == [1, 3]


def test_settings_that_make_no_sense_are_refused() -> None:
    with pytest.raises(ValueError, match="weights"):
        reciprocal_rank_fusion([["a"], ["b"]], weights=[1.0])
    with pytest.raises(ValueError, match="k must"):
        reciprocal_rank_fusion([["a"]], k=-1)
    with pytest.raises(ValueError, match="limit"):
        reciprocal_rank_fusion([["a"]], limit=-1)


rankings = st.lists(st.lists(st.integers(0, 12), max_size=10), max_size=4)


@given(rankings, st.integers(0, 100))
def test_properties_for_any_lists(lists: list[list[int]], k: int) -> None:
    fused = reciprocal_rank_fusion(lists, k=k)
    ids = [key for key, _ in fused]
    # Every id once; scores never rise; the scores are the formula's.
    assert sorted(ids) == sorted({key for ranking in lists for key in ranking})
    scores = [score for _, score in fused]
    assert scores == sorted(scores, reverse=True)
    for key, score in fused:
        exact = sum(
            (Fraction(1, k + ranking.index(key) + 1) for ranking in lists if key in ranking),
            Fraction(0),
        )
        assert score == pytest.approx(float(exact), rel=1e-12)
    # Lists given in another order keep the same scores (ties may reorder).
    assert dict(reciprocal_rank_fusion(lists[::-1], k=k)) == pytest.approx(dict(fused))


# --- standardised fusion -------------------------------------------------------------------


def test_standardised_fusion_keeps_how_close_results_are() -> None:
    # "near" is a close second by words and first by meaning; "far" wins words by a mile.
    lexical = [("far", 30.0), ("near", 10.2), ("x", 10.0), ("y", 9.8)]
    vector = [("near", 0.80), ("z", 0.79), ("far", 0.50), ("w", 0.49)]
    fused = standardised_fusion([lexical, vector])
    assert order(fused)[0] == "far"  # its lead by words outweighs its place by meaning
    ranks_only = reciprocal_rank_fusion([[a for a, _ in lexical], [a for a, _ in vector]], k=5)
    assert order(ranks_only)[0] == "near"  # ranks forget the margin
    assert {a for a, _ in fused} == {"far", "near", "x", "y", "z", "w"}


def test_standardised_fusion_missing_counts_as_the_lowest_and_weights_tilt() -> None:
    a = [("p", 3.0), ("q", 2.0), ("r", 1.0)]
    b = [("s", 0.9), ("p", 0.1)]
    fused = dict(standardised_fusion([a, b]))
    # "r" is a's lowest and missing from b: b's lowest z-score is added, as for "q".
    assert fused["q"] - fused["r"] == pytest.approx(1.224744871, rel=1e-6)
    assert order(standardised_fusion([a, b], weights=[0.0, 1.0]))[0] == "s"
    with pytest.raises(ValueError, match="weights"):
        standardised_fusion([a, b], weights=[1.0])


def test_standardised_fusion_head_fixes_the_scale_and_equal_scores_add_nothing() -> None:
    short = [("a", 2.0), ("b", 1.0)]
    deeper = [*short, ("c", -50.0)]
    top = order(standardised_fusion([short, [("b", 1.0), ("a", 0.5)]], head=2))
    deep = order(standardised_fusion([deeper, [("b", 1.0), ("a", 0.5)]], head=2))
    assert deep[:2] == top[:2]  # the deeper list does not move the first places
    flat = dict(standardised_fusion([[("a", 1.0), ("b", 1.0)]]))
    assert flat == {"a": 0.0, "b": 0.0}
    assert standardised_fusion([]) == [] and standardised_fusion([[], []]) == []
