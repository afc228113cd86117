"""A small store of papers with clustered unit vectors stored as their embeddings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sqlalchemy import Engine

from app.artifacts import embeddings
from app.db import store
from app.ingest.records import PaperRecord

DIM = 16
N = 300
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def paper_id(i: int) -> str:
    return f"2601.{i:05d}"


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def clustered(n: int, seed: int = 0) -> np.ndarray:
    """n unit vectors around 10 centres (papers in a few topics)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((10, DIM))
    return unit(centres[rng.integers(0, 10, n)] + 0.5 * rng.standard_normal((n, DIM)))


def add_papers(engine: Engine, ids: list[str], category: str = "cs.LG") -> None:
    with engine.begin() as conn:
        store.upsert_papers(
            conn,
            [
                PaperRecord(
                    arxiv_id=a,
                    title=f"Paper {a}",
                    abstract=f"About {a}.",
                    authors=[f"Author {a}"],
                    primary_category=category,
                    categories=[category],
                    version=1,
                )
                for a in ids
            ],
        )


def write_vectors(
    engine: Engine, ids: list[str], vectors: np.ndarray, *, at: datetime, version: int | None = 1
) -> None:
    with engine.begin() as conn:
        embeddings.upsert(
            conn,
            [
                embeddings.Written(a, version, "test-model", v)
                for a, v in zip(ids, vectors, strict=True)
            ],
            now=at,
        )


@pytest.fixture
def vectors() -> np.ndarray:
    return clustered(N)


@pytest.fixture
def stored(engine: Engine, vectors: np.ndarray) -> Engine:
    """N papers, each with its vector, written at T0."""
    ids = [paper_id(i) for i in range(N)]
    add_papers(engine, ids)
    write_vectors(engine, ids, vectors, at=T0)
    return engine


def later(minutes: int) -> datetime:
    """A write well after the build's watermark (the build runs now, T0 is in the past)."""
    return datetime.now(UTC) + timedelta(minutes=minutes)
