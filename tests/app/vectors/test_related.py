"""[Related] by embedding: nearest papers by stored vector, the optional blend, and the
keyword fallback when a paper has no embedding."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from app.artifacts import related as rel
from app.db import store
from app.db.models import Paper
from app.ingest.records import PaperRecord
from app.search import fulltext
from app.settings import get_settings
from app.vectors import VectorIndex
from app.vectors import related as vrel
from tests.app.artifacts.test_related import records
from tests.app.vectors.conftest import T0, unit, write_vectors

papers = Paper.__table__

# 2601.00001/2 are about protein folding, 3/4 graph networks, 5/6 speech (see records()).
TOPICS = {"2601.00001": 0, "2601.00002": 0, "2601.00003": 1, "2601.00004": 1}


def seed(engine: Engine, *, with_vectors: bool) -> None:
    with engine.begin() as conn:
        store.upsert_papers(conn, records())
        rel.build(conn)
    if with_vectors:
        rng = np.random.default_rng(1)
        centres = np.eye(16, dtype=np.float32)[:2] * 4
        ids = list(TOPICS)
        vecs = unit(np.stack([centres[TOPICS[a]] for a in ids]) + rng.random((4, 16)) * 0.5)
        write_vectors(engine, ids, vecs, at=T0, version=None)


def test_related_by_embedding(engine: Engine, tmp_path: Path) -> None:
    seed(engine, with_vectors=True)
    index = VectorIndex(tmp_path / "vectors", check_every=0)
    with engine.connect() as conn:
        found = vrel.related(conn, index, "2601.00001", 3)
    assert found.method == "embedding"
    assert found.pairs[0][0] == "2601.00002"
    assert "2601.00001" not in [a for a, _ in found.pairs]
    assert len(found.pairs) == 3


def test_papers_without_embedding_fall_back_to_keywords(engine: Engine, tmp_path: Path) -> None:
    seed(engine, with_vectors=True)
    index = VectorIndex(tmp_path / "vectors", check_every=0)
    with engine.connect() as conn:
        found = vrel.related(conn, index, "2601.00005", 3)  # speech: no vector
    assert found.method == "keywords"
    assert found.keywords
    assert found.pairs[0][0] == "2601.00006"


def test_no_embeddings_at_all_uses_keywords(engine: Engine, tmp_path: Path) -> None:
    seed(engine, with_vectors=False)
    index = VectorIndex(tmp_path / "vectors", check_every=0)
    with engine.connect() as conn:
        found = vrel.related(conn, index, "2601.00001", 3)
        assert not vrel.has_embeddings(conn, index)
    assert found.method == "keywords"
    assert found.pairs[0][0] == "2601.00002"


def test_blend_adds_category_and_author_bonuses() -> None:
    pairs = [("a", 0.80), ("b", 0.78), ("c", 0.70)]
    facts = {"a": ("cs.CV", ["X"]), "b": ("cs.LG", ["Y"]), "c": ("cs.LG", ["Q"])}
    out = vrel.blended(pairs, ("cs.LG", ["Q"]), facts, vrel.Blend(category=0.05, author=0.1))
    assert [a for a, _ in out] == ["c", "b", "a"]
    assert vrel.blended(pairs, ("cs.LG", []), facts, vrel.Blend(0, 0)) == pairs


# --- re-ordered by shared words ---------------------------------------------------------


def test_by_words_moves_a_neighbour_that_shares_the_words() -> None:
    pairs = [("a", 0.80), ("b", 0.78), ("c", 0.50)]
    out = vrel.by_words(pairs, {"b": 0.3, "c": 0.1}, weight=1.0)
    assert [a for a, _ in out] == ["b", "a", "c"]
    assert vrel.by_words(pairs, {}, weight=1.0) == pairs


def test_nearest_papers_are_reordered_by_the_words_they_share(
    sqlite_engine: Engine, tmp_path: Path
) -> None:
    """Two neighbours equally near by embedding: the one naming the query's method comes
    first once the full-text index says which words are rare; without an index, the
    embedding order stands."""
    engine = sqlite_engine
    texts = {
        "2601.00011": ("Zorbnet: sparse routing for transformers", "Zorbnet routes tokens."),
        "2601.00012": ("Efficient attention for long inputs", "Attention over long inputs."),
        "2601.00013": ("Zorbnet at scale", "We train Zorbnet routing on larger models."),
    }
    for i in range(14, 40):  # filler, so "zorbnet" is rare and "attention" is not
        texts[f"2601.{i:05d}"] = (f"Attention study {i}", "Attention models and inputs.")
    with engine.begin() as conn:
        store.upsert_papers(
            conn,
            [
                PaperRecord(
                    arxiv_id=a,
                    title=t,
                    abstract=ab,
                    authors=[f"Author {a}"],
                    primary_category="cs.LG",
                    categories=["cs.LG"],
                )
                for a, (t, ab) in texts.items()
            ],
        )
    ids = list(texts)
    rng = np.random.default_rng(3)
    base = unit(rng.standard_normal(16))
    vecs = unit(base + 0.05 * rng.standard_normal((len(ids), 16)))
    # 00012 (no shared words) a little nearer than 00013 (shares "zorbnet", "routing").
    vecs[1] = unit(base + 0.01 * rng.standard_normal(16))
    vecs[2] = unit(base + 0.03 * rng.standard_normal(16))
    vecs[3:] = unit(-base + 0.05 * rng.standard_normal((len(ids) - 3, 16)))
    write_vectors(engine, ids, vecs, at=T0, version=None)
    index = VectorIndex(tmp_path / "vectors", check_every=0)
    with engine.connect() as conn:
        plain = vrel.related(conn, index, "2601.00011", 2)
    assert [a for a, _ in plain.pairs] == ["2601.00012", "2601.00013"]
    fulltext.rebuild(get_settings(), engine)
    words = fulltext.fulltext_for(get_settings(), engine.url)
    assert words is not None
    with engine.connect() as conn:
        found = vrel.related(conn, index, "2601.00011", 2, fulltext=words)
        pk = dict(conn.execute(sa.select(papers.c.arxiv_id, papers.c.pk)).all())
    assert found.method == "embedding"
    assert [a for a, _ in found.pairs] == ["2601.00013", "2601.00012"]
    # The shared-word score: 1 for the paper itself, more for the one naming its method.
    title, abstract = texts["2601.00011"]
    like = words.likeness(
        f"{title}\n{abstract}", pk["2601.00011"], [pk["2601.00013"], pk["2601.00012"]]
    )
    assert like is not None
    assert like[pk["2601.00013"]] > 0.2 > like[pk["2601.00012"]]
    assert words.likeness("the of and", pk["2601.00011"], [pk["2601.00013"]]) == {
        pk["2601.00013"]: 0.0
    }


def test_a_re_ordered_list_is_kept_until_an_index_changes(
    sqlite_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = sqlite_engine
    seed(engine, with_vectors=True)
    fulltext.rebuild(get_settings(), engine)
    words = fulltext.fulltext_for(get_settings(), engine.url)
    assert words is not None
    calls: list[int] = []
    real = words.likeness

    def counted(*args, **kw):  # type: ignore[no-untyped-def]
        calls.append(1)
        return real(*args, **kw)

    monkeypatch.setattr(words, "likeness", counted)
    index = VectorIndex(tmp_path / "vectors", check_every=0)
    with engine.connect() as conn:
        first = vrel.related(conn, index, "2601.00001", 3, fulltext=words)
        again = vrel.related(conn, index, "2601.00001", 3, fulltext=words)
    assert again == first
    assert len(calls) == 1
    # A paper embedded since: the vector index changed, so the list is made again.
    write_vectors(
        engine, ["2601.00005"], unit(np.ones((1, 16))), at=datetime.now(UTC), version=None
    )
    with engine.connect() as conn:
        vrel.related(conn, index, "2601.00001", 3, fulltext=words)
    assert len(calls) == 2
