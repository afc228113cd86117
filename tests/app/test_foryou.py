"""The "for you" ranking: the pure maths, the `starred` parameter, and a day's listing
re-ordered from stored embeddings. `seed_for_you` is the store the page, API and browser
tests share."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest
from sqlalchemy import Connection

from app.artifacts import embeddings
from app.db import store
from app.foryou import MAX_STARRED, InvalidStarred, for_you, parse_starred, rank
from app.ingest.records import AnnounceKind, Announcement, PaperRecord
from app.listing import day_listing, parse_expression

STAR_DAY, DAY = date(2026, 3, 2), date(2026, 3, 3)
STAR_A, STAR_B = "2603.00101", "2603.00102"
STAR_A_TITLE = "Quokkas & <wombats> in the wild"
STAR_B_TITLE = "Protein folding at scale"
NO_VECTOR = "2603.00205"
# The day's papers in announcement order: (id, title, vector as {axis: weight} or None).
DAY_PAPERS: list[tuple[str, str, dict[int, float] | None]] = [
    ("2603.00201", "Sea shanties", {6: 1.0, 1: 0.05}),  # barely like B
    ("2603.00202", "Marsupial census methods", {0: 1.0, 4: 0.6}),  # like A
    ("2603.00203", "Folding proteins with diffusion", {1: 1.0, 3: 0.3}),  # much like B
    ("2603.00204", "Tax law for robots", {0: 0.2, 5: 1.0}),  # a little like A
    (NO_VECTOR, "A paper not embedded yet", None),
    ("2603.00206", "Counting quokkas from the air", {0: 1.0, 2: 0.1}),  # nearly A
]
PLAIN_ORDER = [p[0] for p in DAY_PAPERS]
# By the nearest star: 0.995 (A), 0.958 (B), 0.857 (A), 0.196 (A), 0.05 (B); then unranked.
FOR_YOU_ORDER = ["2603.00206", "2603.00203", "2603.00202", "2603.00204", "2603.00201"]
NEAREST = {
    "2603.00206": STAR_A,
    "2603.00203": STAR_B,
    "2603.00202": STAR_A,
    "2603.00204": STAR_A,
    "2603.00201": STAR_B,
}
DIM = 8


def vector(weights: dict[int, float]) -> np.ndarray:
    v = np.zeros(DIM, dtype=np.float32)
    for axis, w in weights.items():
        v[axis] = w
    return v / np.linalg.norm(v)


def seed_for_you(conn: Connection) -> None:
    """Two starred papers on STAR_DAY and six papers on DAY in cs.CL, with small
    deterministic embeddings (all but NO_VECTOR)."""
    new = AnnounceKind.NEW
    stars = [(STAR_A, STAR_A_TITLE, {0: 1.0}), (STAR_B, STAR_B_TITLE, {1: 1.0})]
    records = [
        PaperRecord(
            arxiv_id=arxiv_id,
            title=title,
            abstract=f"About {title.lower()}.",
            authors=["Ada Lovelace"],
            primary_category="cs.CL",
            categories=["cs.CL"],
            version=1,
            announcements=[Announcement("cs.CL", day, new, position)],
        )
        for papers, day in ((stars, STAR_DAY), (DAY_PAPERS, DAY))
        for position, (arxiv_id, title, _w) in enumerate(papers)
    ]
    store.upsert_papers(conn, records)
    embeddings.upsert(
        conn,
        [
            embeddings.Written(arxiv_id, 1, "test-embedder-1", vector(weights))
            for arxiv_id, _title, weights in [*stars, *DAY_PAPERS]
            if weights is not None
        ],
    )


# --- the ranking ------------------------------------------------------------------------


def unit(*values: float) -> np.ndarray:
    v = np.array(values, dtype=np.float32)
    return v / np.linalg.norm(v)


def test_nearest_star_serves_each_interest() -> None:
    # Two interests far apart: a centroid would sit between them and match neither paper.
    vectors = {
        "s1": unit(1, 0, 0),
        "s2": unit(0, 1, 0),
        "near1": unit(1, 0.1, 0),
        "near2": unit(0.1, 1, 0.2),
        "between": unit(1, 1, 3),
        "off": unit(0, 0, 1),
    }
    r = rank(["off", "between", "near2", "near1"], ["s1", "s2"], vectors)
    assert [m.arxiv_id for m in r.ranked] == ["near1", "near2", "between", "off"]
    assert [m.nearest for m in r.ranked][:2] == ["s1", "s2"]
    assert r.ranked[0].score == pytest.approx(float(vectors["near1"] @ vectors["s1"]))
    assert r.unranked == [] and r.stars_used == ["s1", "s2"]


def test_unscored_papers_keep_plain_order_after_the_ranked() -> None:
    vectors = {"s": unit(1, 0), "a": unit(1, 1), "b": unit(1, 0.1)}
    r = rank(["x", "a", "y", "b", "x"], ["s", "unknown"], vectors)
    assert [m.arxiv_id for m in r.ranked] == ["b", "a"]
    assert r.unranked == ["x", "y"]  # no vector: plain order, each once
    assert r.stars_used == ["s"]  # a star without a vector is ignored


def test_ties_keep_plain_order() -> None:
    vectors = {"s": unit(1, 0), "a": unit(1, 1), "b": unit(1, 1), "c": unit(1, 1)}
    assert [m.arxiv_id for m in rank(["c", "a", "b"], ["s"], vectors).ranked] == ["c", "a", "b"]


def test_a_starred_paper_is_ranked_by_the_other_stars() -> None:
    vectors = {"s1": unit(1, 0), "s2": unit(0.6, 0.8), "p": unit(0, 1)}
    r = rank(["s1", "p"], ["s1", "s2"], vectors)
    s1 = next(m for m in r.ranked if m.arxiv_id == "s1")
    assert s1.nearest == "s2" and s1.score == pytest.approx(0.6)
    # Alone, a star has nothing else to be compared with.
    alone = rank(["s1", "p"], ["s1"], vectors)
    assert [m.arxiv_id for m in alone.ranked] == ["p"] and alone.unranked == ["s1"]


def test_no_usable_star_leaves_the_plain_order() -> None:
    vectors = {"a": unit(1, 0), "zero": np.zeros(2, np.float32), "nan": np.full(2, np.nan)}
    for stars in ([], ["missing"], ["zero", "nan"]):
        r = rank(["b", "a"], stars, vectors)
        assert r.ranked == [] and r.unranked == ["b", "a"] and r.stars_used == []


def test_vectors_are_normalised_and_other_dimensions_ignored() -> None:
    vectors = {
        "s": np.array([3.0, 0.0], np.float32),  # not unit length: scores stay cosines
        "old": unit(1, 0, 0),  # another model's dimension, as a star and as a paper
        "a": np.array([2.0, 2.0], np.float32),
        "b": unit(1, 0, 0),
    }
    r = rank(["a", "b"], ["s", "old", "s"], vectors)
    assert [(m.arxiv_id, round(m.score, 4)) for m in r.ranked] == [("a", 0.7071)]
    assert r.unranked == ["b"] and r.stars_used == ["s"]


# --- the `starred` parameter ------------------------------------------------------------


def test_parse_starred() -> None:
    assert parse_starred("") == []
    assert parse_starred(" 2501.01234, arXiv:2501.05678v2 2501.01234v3,,hep-th/9901001") == [
        "2501.01234",
        "2501.05678",
        "hep-th/9901001",
    ]
    with pytest.raises(InvalidStarred, match="month 13 does not exist"):
        parse_starred("2501.01234,2513.00001")
    with pytest.raises(InvalidStarred, match="not an arXiv id"):
        parse_starred("<script>")
    many = ",".join(f"2501.{i:05d}" for i in range(1, MAX_STARRED + 2))
    with pytest.raises(InvalidStarred, match=f"at most {MAX_STARRED}"):
        parse_starred(many)
    assert len(parse_starred(",".join(many.split(",")[:MAX_STARRED]))) == MAX_STARRED


# --- a stored day -----------------------------------------------------------------------


def test_for_you_over_the_store(sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    with sqlite_engine.begin() as conn:
        seed_for_you(conn)
        listing = day_listing(conn, parse_expression("cs.CL"), DAY)
        assert [p.arxiv_id for p in listing.papers] == PLAIN_ORDER
        fy = for_you(conn, listing, [STAR_B, "2501.99999", STAR_A, NO_VECTOR])
    assert [(s.key, [p.arxiv_id for p in s.papers]) for s in fy.sections] == [
        ("foryou", FOR_YOU_ORDER),
        ("unranked", [NO_VECTOR]),
    ]
    assert {k: r.arxiv_id for k, r in fy.reasons.items()} == NEAREST
    assert fy.reasons["2603.00206"].title == STAR_A_TITLE
    assert fy.reasons["2603.00206"].score == pytest.approx(0.995, abs=2e-3)  # float16 storage
    assert (fy.starred, fy.stars_used, fy.ranked, fy.unranked) == (4, 2, 5, 1)
    assert fy.unknown == ["2501.99999"] and fy.without_vector == [NO_VECTOR]


def test_for_you_without_usable_stars_is_the_plain_listing(sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    with sqlite_engine.begin() as conn:
        seed_for_you(conn)
        listing = day_listing(conn, parse_expression("cs.CL"), DAY)
        fy = for_you(conn, listing, [NO_VECTOR, "2501.99999"])
    assert fy.sections == listing.sections and fy.reasons == {}
    assert (fy.ranked, fy.unranked, fy.stars_used) == (0, len(PLAIN_ORDER), 0)


def test_for_you_with_every_paper_ranked_has_no_unranked_section(sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    with sqlite_engine.begin() as conn:
        seed_for_you(conn)
        listing = day_listing(conn, parse_expression("cs.CL"), STAR_DAY)
        fy = for_you(conn, listing, [STAR_A, STAR_B])
    # Each star ranked by the other one.
    assert [s.key for s in fy.sections] == ["foryou"] and fy.unranked == 0
    assert {k: r.arxiv_id for k, r in fy.reasons.items()} == {STAR_A: STAR_B, STAR_B: STAR_A}
