"""The `paper_embeddings` table (app.artifacts.embeddings) on SQLite and PostgreSQL: what needs
an embedding (a new paper version or another embedder makes one stale), idempotent upserts
that never put an older paper version back, and the reads [Related] and the vector index
use."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest
from sqlalchemy import Engine, select

from app.artifacts import embeddings
from app.db import store
from app.db.models import PaperEmbedding
from app.ingest.records import AnnounceKind, Announcement, PaperRecord

DAY = date(2026, 7, 1)
T0 = datetime(2026, 7, 2, tzinfo=UTC)
DIM = 384


def rec(n: int, version: int | None = 1, cat: str = "cs.CL") -> PaperRecord:
    return PaperRecord(
        arxiv_id=f"2607.{n:05d}",
        title=f"Paper {n}",
        abstract=f"Abstract {n}.",
        authors=["Ada Lovelace"],
        primary_category=cat,
        categories=[cat],
        version=version,
        first_submitted_at=datetime(2026, 6, 28, tzinfo=UTC),
        announcements=[Announcement(cat, DAY, AnnounceKind.NEW, n)],
    )


def unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    return v / np.linalg.norm(v)


def written(
    n: int, version: int | None = 1, model: str = "e1", seed: int | None = None
) -> embeddings.Written:
    return embeddings.Written(f"2607.{n:05d}", version, model, unit(n if seed is None else seed))


def ids(pending: list[embeddings.Pending]) -> list[str]:
    return [p.arxiv_id for p in pending]


def stored(engine: Engine) -> dict[str, tuple[int | None, str, datetime]]:
    with engine.connect() as conn:
        return {
            # SQLite hands back naive UTC.
            r.arxiv_id: (r.paper_version, r.model_version, r.created_at.replace(tzinfo=UTC))
            for r in conn.execute(select(PaperEmbedding.__table__))
        }


def seed(engine: Engine, records: list[PaperRecord]) -> None:
    with engine.begin() as conn:
        store.upsert_papers(conn, records)


def test_pending_and_staleness(engine: Engine) -> None:
    seed(engine, [rec(1), rec(2), rec(3, version=None), rec(4, cat="cs.LG")])
    with engine.connect() as conn:
        day = embeddings.pending_for_day(conn, DAY, "cs.CL", "e1")
        assert ids(day) == ["2607.00001", "2607.00002", "2607.00003"]
        assert day[0] == embeddings.Pending("2607.00001", 1, "Paper 1", "Abstract 1.")
        # By id: stored papers only, in the order asked.
        got = embeddings.pending_for_ids(conn, ["2607.00004", "9999.99999", "2607.00001"], "e1")
        assert ids(got) == ["2607.00004", "2607.00001"]
        assert embeddings.pending_count(conn, "e1") == 4

    with engine.begin() as conn:
        assert embeddings.upsert(conn, [written(1), written(2), written(3, None)], now=T0) == 3
    with engine.connect() as conn:
        assert embeddings.pending_for_day(conn, DAY, "cs.CL", "e1") == []
        # Another embedder: every stored vector is stale for it.
        assert len(embeddings.pending_for_day(conn, DAY, "cs.CL", "e2")) == 3
        assert embeddings.pending_count(conn, "e2") == 4
        # Unknown embedder (none announced): any model's vector counts as current.
        assert list(embeddings.pending_ids(conn, None)) == ["2607.00004"]

    # A new version of paper 2 makes its embedding stale; a version now known for paper 3 too.
    seed(engine, [rec(2, version=2), rec(3, version=1)])
    with engine.connect() as conn:
        assert ids(embeddings.pending_for_day(conn, DAY, "cs.CL", "e1")) == [
            "2607.00002",
            "2607.00003",
        ]
        assert embeddings.pending_count(conn, None) == 3
        newest_first = list(embeddings.pending_ids(conn, "e1"))
        assert set(newest_first) == {"2607.00002", "2607.00003", "2607.00004"}
        assert list(embeddings.pending_ids(conn, "e1", limit=1)) == newest_first[:1]


def test_upsert_is_idempotent_and_never_goes_back_a_version(engine: Engine) -> None:
    seed(engine, [rec(1), rec(2)])
    with engine.begin() as conn:
        assert embeddings.upsert(conn, [written(1), written(2)], now=T0) == 2
    # The same rows again change nothing, not even created_at (the index would re-read it).
    later = T0 + timedelta(hours=1)
    with engine.begin() as conn:
        assert embeddings.upsert(conn, [written(1), written(2)], now=later) == 0
    assert stored(engine)["2607.00001"] == (1, "e1", T0)

    # A new paper version is written, and created_at moves with it.
    seed(engine, [rec(2, version=2)])
    with engine.begin() as conn:
        assert embeddings.upsert(conn, [written(2, 2, seed=22)], now=later) == 1
        # A slow job's vector of the older version never replaces the newer one.
        assert embeddings.upsert(conn, [written(2, 1, seed=21)], now=later) == 0
        assert embeddings.upsert(conn, [written(2, 1, "e2", seed=21)], now=later) == 0
    assert stored(engine)["2607.00002"] == (2, "e1", later)
    with engine.connect() as conn:
        vector = embeddings.vector_for(conn, "2607.00002")
    assert vector is not None and np.allclose(vector, unit(22), atol=1e-3)

    # Another embedder at the same paper version replaces the vector.
    latest = later + timedelta(hours=1)
    with engine.begin() as conn:
        assert embeddings.upsert(conn, [written(1, model="e2", seed=12)], now=latest) == 1
    assert stored(engine)["2607.00001"] == (1, "e2", latest)


def test_vectors_round_trip(engine: Engine) -> None:
    seed(engine, [rec(1), rec(2), rec(3)])
    with engine.connect() as conn:
        assert not embeddings.has_embeddings(conn)
    with engine.begin() as conn:
        embeddings.upsert(conn, [written(1), written(2)], now=T0)
    with engine.connect() as conn:
        assert embeddings.has_embeddings(conn)
        got = embeddings.vectors_for(conn, ["2607.00002", "2607.00003", "2607.00001"])
        assert embeddings.vector_for(conn, "2607.00003") is None
    assert set(got) == {"2607.00001", "2607.00002"}
    for n in (1, 2):
        v = got[f"2607.{n:05d}"]
        assert v.dtype == np.float32 and v.shape == (DIM,)
        # float16 storage: a cosine moves far less than anything that reorders neighbours.
        assert float(v @ unit(n)) == pytest.approx(1.0, abs=1e-3)

    raw = embeddings.encode(unit(5))
    assert len(raw) == 2 * DIM
    assert np.allclose(embeddings.decode(raw, DIM), unit(5), atol=1e-3)
    with pytest.raises(ValueError, match="384 dimensions, expected 128"):
        embeddings.decode(raw, 128)


def test_stream_vectors_pages_in_paper_order_and_since(engine: Engine) -> None:
    seed(engine, [rec(n) for n in range(1, 6)])
    with engine.begin() as conn:
        embeddings.upsert(conn, [written(n) for n in (5, 3, 1, 2, 4)], now=T0)
    with engine.connect() as conn:
        batches = list(embeddings.stream_vectors(conn, batch=2))
    assert [len(b.ids) for b in batches] == [2, 2, 1]
    pks = np.concatenate([b.pks for b in batches])
    assert pks.dtype == np.int64 and list(pks) == sorted(pks)
    every = [i for b in batches for i in b.ids]
    assert sorted(every) == [f"2607.{n:05d}" for n in range(1, 6)]
    for b in batches:
        assert b.vectors.shape == (len(b.ids), DIM) and b.last_created_at == T0
        for i, v in zip(b.ids, b.vectors, strict=True):
            assert float(v @ unit(int(i[-5:]))) == pytest.approx(1.0, abs=1e-3)

    # Rewritten rows (another embedder) are what comes after `since`.
    later = T0 + timedelta(minutes=5)
    with engine.begin() as conn:
        embeddings.upsert(conn, [written(2, model="e2"), written(4, model="e2")], now=later)
    with engine.connect() as conn:
        since = list(embeddings.stream_vectors(conn, since=T0, batch=1))
        assert list(embeddings.stream_vectors(conn, since=later)) == []
    assert [i for b in since for i in b.ids] == sorted(["2607.00002", "2607.00004"])
    assert since[-1].last_created_at == later
