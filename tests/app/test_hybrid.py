"""Hybrid search (app.hybrid) where it cannot search by meaning: no paper has an embedding
yet, no query model in the cache, results in date order, a query without words. It answers
by keyword, and says why whenever meaning was asked for or would have been used. (With
real embeddings and the query model: tests/ml/test_hybrid_search.py.)"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime

import numpy as np
import pytest
from sqlalchemy import Engine

from app import hybrid
from app.artifacts import embeddings
from app.db.engine import make_engine
from app.db.store import upsert_papers
from app.ingest.records import PaperRecord
from app.search import SearchPage, query_vector, search_papers
from app.settings import Settings

PAPERS = {
    1: ("Capsule networks", "Groups of neurons vote on the pose of an object.", "cs.CV"),
    2: ("Routing by agreement", "We revisit capsule networks and their routing.", "cs.CV"),
    3: ("Sparse attention", "Attention over a few tokens only.", "cs.LG"),
}


def record(n: int) -> PaperRecord:
    title, abstract, category = PAPERS[n]
    return PaperRecord(
        arxiv_id=f"2504.{n:05d}",
        title=title,
        abstract=abstract,
        authors=["Ada Lovelace"],
        primary_category=category,
        categories=[category],
        version=1,
        first_submitted_at=datetime(2025, n, 1, 12, tzinfo=UTC),
    )


def numbers(page: SearchPage) -> list[int]:
    return [int(h.arxiv_id.split(".")[1]) for h in page.hits]


@pytest.fixture(autouse=True)
def fresh_caches() -> Iterator[None]:
    hybrid.CACHE.clear()
    query_vector.reset()
    yield
    hybrid.CACHE.clear()
    query_vector.reset()


@pytest.fixture
def site(site_settings: Callable[..., Settings]) -> Iterator[tuple[Settings, Engine]]:
    """A site with the papers stored, no embeddings and no query model."""
    settings = site_settings()
    engine = make_engine(settings.database_url_resolved)
    with engine.begin() as conn:
        upsert_papers(conn, [record(n) for n in PAPERS])
    yield settings, engine
    engine.dispose()


def run(site: tuple[Settings, Engine], text: str, **kw: object) -> SearchPage:
    settings, engine = site
    with engine.connect() as conn:
        return hybrid.search(conn, text, settings=settings, **kw)  # type: ignore[arg-type]


def keyword(site: tuple[Settings, Engine], text: str, **kw: object) -> SearchPage:
    with site[1].connect() as conn:
        return search_papers(conn, text, **kw)  # type: ignore[arg-type]


def embed_every_paper(site: tuple[Settings, Engine]) -> None:
    """Embeddings as the ML pool stores them (any unit vectors: no query is embedded)."""
    vectors = np.random.default_rng(0).standard_normal((len(PAPERS), 384))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    with site[1].begin() as conn:
        embeddings.upsert(
            conn,
            [
                embeddings.Written(f"2504.{n:05d}", 1, "test-model", v)
                for n, v in zip(PAPERS, vectors, strict=True)
            ],
        )


def test_without_embeddings_the_search_is_by_keyword(site: tuple[Settings, Engine]) -> None:
    page = run(site, "capsule")
    assert page.mode == "keyword" and page.engine == "index"
    assert numbers(page) == [1, 2] == numbers(keyword(site, "capsule"))
    assert page.notices == []  # nothing was asked for that it could not do


@pytest.mark.parametrize("mode", ["semantic", "hybrid"])
def test_asking_for_meaning_without_embeddings_says_why_not(
    site: tuple[Settings, Engine], mode: str
) -> None:
    page = run(site, "capsule", mode=mode)
    assert page.mode == "keyword"
    assert numbers(page) == [1, 2]
    assert page.notices == [
        "keyword results only: no paper has an embedding yet (the ML pool writes them)"
    ]


def test_embeddings_without_a_query_model_say_why_not(site: tuple[Settings, Engine]) -> None:
    embed_every_paper(site)
    for mode in (None, "semantic", "hybrid"):
        page = run(site, "capsule", mode=mode)
        assert page.mode == "keyword" and numbers(page) == [1, 2]
        [notice] = page.notices
        assert notice.startswith("keyword results only: no query vectors yet")
    # Keyword asked for by name: nothing to explain.
    page = run(site, "capsule", mode="keyword")
    assert page.mode == "keyword" and page.notices == [] and numbers(page) == [1, 2]


def test_date_order_is_a_keyword_listing(site: tuple[Settings, Engine]) -> None:
    page = run(site, "capsule", mode="hybrid", sort="date")
    assert page.mode == "keyword" and numbers(page) == [2, 1]
    assert page.notices == ["keyword results: results are sorted by date"]
    assert run(site, "capsule", sort="date").notices == []


def test_a_query_without_words_is_a_keyword_listing(site: tuple[Settings, Engine]) -> None:
    page = run(site, "cat:cs.CV", mode="semantic")
    assert page.mode == "keyword" and numbers(page) == [2, 1]
    assert page.notices == ["keyword results: the query has no words"]
    page = run(site, "", mode="hybrid", date_from=date(2025, 3, 1))
    assert numbers(page) == [3]


def test_odd_text_never_raises(site: tuple[Settings, Engine]) -> None:
    embed_every_paper(site)
    for text in ["", '"', "-", "OR", "ti:", "cat:", "\x00", "NEAR(", "-capsule", "a" * 20_000]:
        for mode in (None, "keyword", "semantic", "hybrid"):
            page = run(site, text, mode=mode)
            assert page.total >= len(page.hits)
