"""[Related] by embedding: nearest papers by stored vector, the optional blend, and the
keyword fallback when a paper has no embedding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sqlalchemy import Engine

from app.artifacts import related as rel
from app.db import store
from app.vectors import VectorIndex
from app.vectors import related as vrel
from tests.app.artifacts.test_related import records
from tests.app.vectors.conftest import T0, unit, write_vectors

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
