"""Related papers: the TF-IDF maths on a tiny corpus, then build + related on both
databases (a paper about X finds the other paper about X first)."""

from __future__ import annotations

import math
from collections import Counter
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from app.artifacts import related as rel
from app.db import store
from app.db.models import PaperKeywords
from app.ingest.records import PaperRecord
from app.search.query import parse_query

CORPUS = {
    "2601.00001": (
        "Protein folding with diffusion models",
        "We predict protein folding pathways with a diffusion model over residue contacts.",
    ),
    "2601.00002": (
        "Fast protein folding prediction",
        "Protein folding prediction from residue contacts, faster than previous folding tools.",
    ),
    "2601.00003": (
        "Graph neural networks for traffic",
        "A graph neural network forecasts road traffic from sensor graphs.",
    ),
    "2601.00004": (
        "Message passing in graph neural networks",
        "We analyse message passing and oversmoothing in deep graph neural networks.",
    ),
    "2601.00005": (
        "Speech recognition for low-resource languages",
        "Speech recognition models transfer to low-resource languages with little audio.",
    ),
    "2601.00006": (
        "Robust speech recognition in noise",
        "Noisy audio hurts speech recognition; we augment training audio with noise.",
    ),
    "2601.00007": (
        "Diffusion models for image editing",
        "Image editing with text-guided diffusion models and masks.",
    ),
    "2601.00008": (
        "A survey of traffic forecasting",
        "Traffic forecasting methods for road sensors, from statistics to deep models.",
    ),
}


def records() -> list[PaperRecord]:
    return [
        PaperRecord(
            arxiv_id=aid,
            title=title,
            abstract=abstract,
            authors=[f"Author {aid[-1]}"],
            primary_category="cs.LG",
            categories=["cs.LG"],
        )
        for aid, (title, abstract) in CORPUS.items()
    ]


# --- the maths --------------------------------------------------------------------------


def test_words_drop_stop_words_and_keep_gaps() -> None:
    assert rel.words("The State-of-the-art GPT-4o, in 2025!") == [
        "",
        "state",
        "",
        "",
        "art",
        "gpt",
        "4o",
        "",
        "",
    ]


def test_terms_count_unigrams_bigrams_and_weight_titles() -> None:
    counts = rel.terms("Graph networks", "Deep graph networks of graph data.")
    assert counts["graph"] == rel.TITLE_WEIGHT + 2
    assert counts["graph networks"] == rel.TITLE_WEIGHT + 1
    assert counts["deep graph"] == 1
    # A 2-gram never spans a stop word: "networks of graph" gives no "networks graph".
    assert "networks graph" not in counts
    assert "of" not in counts


def test_idf_and_top_keywords() -> None:
    docs = [rel.terms(t, a) for t, a in CORPUS.values()]
    df = Counter(t for d in docs for t in d)
    n = len(docs)
    assert rel.idf(1, n) > rel.idf(4, n) > 0
    idfs = rel.idf_weights(df, n, min_df=2, min_df_bigram=2)
    assert "traffic" in idfs and "oversmoothing" not in idfs  # in one paper only
    kws = rel.top_keywords(docs[0], idfs, k=3)
    assert len(kws) == 3
    assert math.isclose(sum(w * w for _, w in kws), 1.0, rel_tol=1e-4)
    assert [w for _, w in kws] == sorted((w for _, w in kws), reverse=True)
    # Title words in two papers tie; ties go by term.
    assert kws == sorted(kws, key=lambda p: (-p[1], p[0]))
    assert {t for t, _ in kws} <= {"diffusion", "folding", "protein", "protein folding"}
    assert rel.top_keywords(Counter({"zzz": 3}), idfs) == []


def test_cosine_and_keyword_query() -> None:
    a = [("graph", 0.8), ("traffic", 0.6)]
    assert math.isclose(rel.cosine(a, a), 1.0)
    assert rel.cosine(a, [("speech", 1.0)]) == 0.0
    assert 0 < rel.cosine(a, [["graph", 1.0]]) < 1
    text = rel.keyword_query([("graph neural", 0.7), ("traffic", 0.3)])
    assert text == '"graph neural" OR "traffic"'
    parsed = parse_query(text)
    assert len(parsed.positive) == 1 and len(parsed.positive[0]) == 2


# --- the store ----------------------------------------------------------------------------


@pytest.fixture
def seeded(engine):  # type: ignore[no-untyped-def]
    with engine.begin() as conn:
        store.upsert_papers(conn, records())
    return engine


def test_related_before_build_is_empty(seeded) -> None:  # type: ignore[no-untyped-def]
    with seeded.connect() as conn:
        assert not rel.has_keywords(conn)
        assert rel.keywords_for(conn, "2601.00001") is None
        assert rel.related(conn, "2601.00001") == []


def test_build_and_related(seeded) -> None:  # type: ignore[no-untyped-def]
    when = datetime(2026, 1, 2, tzinfo=UTC)
    with seeded.begin() as conn:
        assert rel.build(conn, batch=3, now=when) == len(CORPUS)
    with seeded.begin() as conn:  # a rebuild replaces, never duplicates
        assert rel.build(conn, batch=100, now=when) == len(CORPUS)
    with seeded.connect() as conn:
        assert rel.has_keywords(conn)
        table = PaperKeywords.__table__
        assert conn.scalar(sa.select(sa.func.count()).select_from(table)) == len(CORPUS)
        kws = rel.keywords_for(conn, "2601.00001")
        assert kws and len(kws) <= rel.TOP_K
        assert {"protein", "folding"} & {t for t, _ in kws}

        for paper, twin in [
            ("2601.00001", "2601.00002"),
            ("2601.00003", "2601.00004"),
            ("2601.00005", "2601.00006"),
        ]:
            found = rel.related(conn, paper, limit=5)
            assert found, paper
            assert found[0][0] == twin, (paper, found)
            assert paper not in {a for a, _ in found}
            scores = [s for _, s in found]
            assert scores == sorted(scores, reverse=True)
        assert len(rel.related(conn, "2601.00003", limit=1)) == 1
        assert rel.related(conn, "2601.00003", limit=0) == []
        assert rel.related(conn, "9999.99999") == []
