"""The ML pool's embedding jobs through a real arq worker and a real Redis, with a fake
embedder injected through the worker's ctx (deterministic unit vectors, no model): jobs
store one vector per paper, re-runs change nothing, a new paper version or another embedder
makes a vector stale, a day's embeddings go before its TL;DRs and before the back catalogue,
and inference runs on the pool's one executor thread. One test runs the real embedder."""

from __future__ import annotations

import hashlib
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from arq import Worker, create_pool
from arq.connections import ArqRedis
from arq.worker import get_kwargs
from sqlalchemy import Engine, select

from app.artifacts import embeddings
from app.db import store
from app.db.models import PaperEmbedding
from app.ingest.records import AnnounceKind, Announcement, PaperRecord
from app.jobs import embeddings as embedding_jobs
from app.jobs import summaries as tldr_jobs
from app.jobs.connections import redis_settings
from app.jobs.queueing import submit
from app.settings import Settings
from tests.workers import conftest as worker_fixtures
from workers import ml as ml_worker
from workers.ml import embeddings as ml_embeddings
from workers.ml import lifecycle as ml_lifecycle
from workers.ml import models as ml_models

# The pool loads its models (torch) at start-up: the ML extra is needed.
pytest.importorskip("torch", reason="the ML extra is not installed")
pytestmark = pytest.mark.anyio
redis_url = worker_fixtures.redis_url
anyio_backend = worker_fixtures.anyio_backend
DAY = date(2026, 7, 1)
OLD_DAY = date(2025, 1, 6)
DIM = 384


def fake_vector(title: str, abstract: str) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha1(f"{title}\n{abstract}".encode()).digest()[:8], "little")
    v = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    return v / np.linalg.norm(v)


class FakeEmbedder:
    """Deterministic unit vectors from the text; records each call's titles and thread."""

    backend = "fake"

    def __init__(self, version: str = "emb-1", log: list[str] | None = None) -> None:
        self.version = version
        self.calls: list[list[str]] = []
        self.threads: set[str] = set()
        self.log = log  # shared with a FakeSummarizer: which model ran when
        self.on_call: Callable[[int], None] | None = None

    def embed(self, papers: Sequence[tuple[str, str]]) -> np.ndarray:
        self.calls.append([title for title, _abstract in papers])
        self.threads.add(threading.current_thread().name)
        if self.log is not None:
            self.log.append("embed " + ",".join(title for title, _a in papers))
        if self.on_call:
            self.on_call(len(self.calls))
        return np.stack([fake_vector(t, a) for t, a in papers]).reshape(len(papers), DIM)


class LoggingSummarizer:
    version = "tldr-1"

    def __init__(self, log: list[str]) -> None:
        self.log = log

    def summarize(
        self, items: Sequence[tuple[str, str]], *, beams: int = 1, batch_size: int = 32
    ) -> list[str]:
        self.log.append("tldr " + ",".join(title for title, _a in items))
        return [f"tldr of {title}" for title, _abstract in items]


def no_embedder(_settings: Settings) -> Any:
    raise ml_models.EmbedderMissing("no embedder: it needs the ML extra")


def rec(n: int, version: int = 1, cat: str = "cs.CL", day: date = DAY) -> PaperRecord:
    return PaperRecord(
        arxiv_id=f"2607.{n:05d}",
        title=f"P{n}",
        abstract=f"Abstract {n}.",
        authors=["Ada Lovelace"],
        primary_category=cat,
        categories=[cat],
        version=version,
        first_submitted_at=datetime(2026, 6, 28, tzinfo=UTC),
        announcements=[Announcement(cat, day, AnnounceKind.NEW, n)],
    )


def make_settings(engine: Engine, tmp_path: Path, redis: str, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": engine.url.render_as_string(hide_password=False),
        "data_dir": tmp_path,
        "redis_url": redis,
        "ml_queue": f"papershelf-test:ml:{uuid.uuid4().hex}",
        "embeddings_batch_size": 2,
        # No picture checkpoints: the picture models stay absent.
        "fsq_path": tmp_path / "absent-fsq",
        "diffusion_path": tmp_path / "absent-diffusion",
        **extra,
    }
    return Settings(**values)


@pytest.fixture
def settings(engine: Engine, tmp_path: Path, redis_url: str) -> Settings:
    return make_settings(engine, tmp_path, redis_url)


@pytest.fixture
async def pool(redis_url: str) -> AsyncIterator[ArqRedis]:
    redis = await create_pool(redis_settings(redis_url))
    yield redis
    await redis.aclose()


async def run_burst(settings: Settings, keep_result: int = 0, **ctx_extra: Any) -> Worker:
    """Every queued ML job with the real WorkerSettings, start-up and job functions; the
    loaders in `ctx_extra` (`load_embedder`, `load_summarizer`) replace the real ones. No
    result is kept unless asked: a kept result would block its job id from running again."""

    async def startup(ctx: dict[str, Any]) -> None:
        ctx["settings"] = settings
        ctx.update(ctx_extra)
        await ml_lifecycle.startup(ctx)

    worker = Worker(
        **{
            **get_kwargs(ml_worker.WorkerSettings),
            "queue_name": settings.ml_queue,
            "redis_settings": redis_settings(settings.redis_url),
            "health_check_key": f"{settings.ml_queue}:health",
            "on_startup": startup,
            "burst": True,
            "poll_delay": 0.05,
            "keep_result": keep_result,
            "handle_signals": False,
        }
    )
    try:
        await worker.main()
    finally:
        await worker.close()
    return worker


def with_embedder(embedder: Any) -> dict[str, Any]:
    return {"load_embedder": lambda _settings: embedder}


def stored(engine: Engine) -> dict[str, tuple[int | None, str, bytes, datetime]]:
    with engine.connect() as conn:
        return {
            r.arxiv_id: (r.paper_version, r.model_version, r.vector, r.created_at)
            for r in conn.execute(select(PaperEmbedding.__table__))
        }


def seed(engine: Engine, records: list[PaperRecord]) -> None:
    with engine.begin() as conn:
        store.upsert_papers(conn, records)


async def queue_listing(pool: ArqRedis, settings: Settings, n: int) -> None:
    assert await submit(pool, settings, embedding_jobs.listing_request(DAY, "cs.CL", stored=n))


async def test_listing_job_stores_vectors_and_a_rerun_changes_nothing(
    engine: Engine, settings: Settings, pool: ArqRedis
) -> None:
    seed(engine, [rec(n) for n in range(1, 6)] + [rec(9, cat="cs.LG")])
    fake = FakeEmbedder()
    await queue_listing(pool, settings, 5)
    # The same request again collapses into the queued job.
    request = embedding_jobs.listing_request(DAY, "cs.CL", stored=5)
    assert await submit(pool, settings, request) is None
    worker = await run_burst(settings, **with_embedder(fake))
    assert (worker.jobs_complete, worker.jobs_failed) == (1, 0)

    rows = stored(engine)
    assert set(rows) == {f"2607.{n:05d}" for n in range(1, 6)}  # cs.LG's paper is not in it
    assert rows["2607.00003"][:2] == (1, "emb-1")
    with engine.connect() as conn:
        vector = embeddings.vector_for(conn, "2607.00003")
    assert vector is not None
    assert float(vector @ fake_vector("P3", "Abstract 3.")) == pytest.approx(1.0, abs=1e-3)
    # Batches of embeddings_batch_size, on the pool's single inference thread.
    assert [len(c) for c in fake.calls] == [2, 2, 1]
    assert fake.threads == {"summarizer_0"}
    assert await embedding_jobs.announced_embedder(pool, settings) == "emb-1"

    # Again: nothing is pending, the model is not called, no row changes.
    await queue_listing(pool, settings, 5)
    worker = await run_burst(settings, **with_embedder(fake))
    assert worker.jobs_complete == 1 and len(fake.calls) == 3
    assert stored(engine) == rows


async def test_stale_vectors_are_written_again(
    sqlite_engine: Engine, tmp_path: Path, redis_url: str, pool: ArqRedis
) -> None:
    settings = make_settings(sqlite_engine, tmp_path, redis_url)
    seed(sqlite_engine, [rec(1), rec(2), rec(3)])
    await queue_listing(pool, settings, 3)
    await run_burst(settings, **with_embedder(FakeEmbedder()))
    first = stored(sqlite_engine)

    # A new version of P2: only its vector is written again, for v2.
    seed(sqlite_engine, [rec(2, version=2)])
    fake = FakeEmbedder()
    ids = ["2607.00001", "2607.00002"]
    assert await submit(pool, settings, embedding_jobs.ids_request(ids))
    await run_burst(settings, **with_embedder(fake))
    assert fake.calls == [["P2"]]
    after = stored(sqlite_engine)
    assert after["2607.00002"][:2] == (2, "emb-1")
    assert after["2607.00001"] == first["2607.00001"]

    # Another embedder: every vector is stale for it.
    newer = FakeEmbedder("emb-2")
    await queue_listing(pool, settings, 3)
    await run_burst(settings, **with_embedder(newer))
    assert sorted(t for call in newer.calls for t in call) == ["P1", "P2", "P3"]
    assert {v[1] for v in stored(sqlite_engine).values()} == {"emb-2"}


async def test_a_days_embeddings_go_before_its_tldrs_and_the_back_catalogue(
    sqlite_engine: Engine, tmp_path: Path, redis_url: str, pool: ArqRedis
) -> None:
    """A back-fill is queued, then a day's list arrives: its TL;DRs and embeddings are
    queued in the order the fetch pool queues them (embeddings first): the pool embeds the
    day, summarises it, then goes back to the back catalogue."""
    settings = make_settings(sqlite_engine, tmp_path, redis_url, ml_batch_size=2)
    seed(sqlite_engine, [rec(1), rec(2)] + [rec(n, day=OLD_DAY) for n in (11, 12)])
    old = ["2607.00011", "2607.00012"]
    assert await submit(pool, settings, embedding_jobs.ids_request(old))
    assert await submit(pool, settings, embedding_jobs.listing_request(DAY, "cs.CL", stored=2))
    assert await submit(pool, settings, tldr_jobs.listing_request(DAY, "cs.CL", stored=2))
    log: list[str] = []
    worker = await run_burst(
        settings,
        **with_embedder(FakeEmbedder(log=log)),
        load_summarizer=lambda _settings: LoggingSummarizer(log),
    )
    assert (worker.jobs_complete, worker.jobs_failed) == (3, 0)
    assert log == ["embed P1,P2", "tldr P1,P2", "embed P11,P12"]


async def test_ids_job_skips_unknown_ids(
    sqlite_engine: Engine, tmp_path: Path, redis_url: str, pool: ArqRedis
) -> None:
    settings = make_settings(sqlite_engine, tmp_path, redis_url)
    seed(sqlite_engine, [rec(1)])
    fake = FakeEmbedder()
    assert await submit(pool, settings, embedding_jobs.ids_request(["2607.00001", "2607.99999"]))
    worker = await run_burst(settings, **with_embedder(fake))
    assert (worker.jobs_complete, worker.jobs_failed) == (1, 0)
    assert fake.calls == [["P1"]] and set(stored(sqlite_engine)) == {"2607.00001"}


async def test_the_embedder_alone_starts_the_pool_and_its_absence_is_a_reason(
    sqlite_engine: Engine, tmp_path: Path, redis_url: str, pool: ArqRedis
) -> None:
    """No summarizer and no picture model: the embedder is enough, and a TL;DR job is
    skipped with the reason. Without the embedder an embedding job is skipped likewise, and
    with no model at all the pool does not start, naming each missing one."""
    settings = make_settings(sqlite_engine, tmp_path, redis_url)
    seed(sqlite_engine, [rec(1)])
    job_tldr = await pool.enqueue_job(
        "summarize_ids", ["2607.00001"], _queue_name=settings.ml_queue
    )
    job_emb = await pool.enqueue_job("embed_ids", ["2607.00001"], _queue_name=settings.ml_queue)
    worker = await run_burst(settings, keep_result=60, **with_embedder(FakeEmbedder()))
    assert (worker.jobs_complete, worker.jobs_failed) == (2, 0)
    assert "train-summarizer" in (await job_tldr.result(timeout=5))["skipped"]  # type: ignore[union-attr]
    assert (await job_emb.result(timeout=5))["written"] == 1  # type: ignore[union-attr]

    # A summarizer but no embedder: the embedding job says why it wrote nothing.
    job = await pool.enqueue_job("embed_ids", ["2607.00001"], _queue_name=settings.ml_queue)
    await run_burst(
        settings,
        keep_result=60,
        load_embedder=no_embedder,
        load_summarizer=lambda _s: LoggingSummarizer([]),
    )
    assert "ML extra" in (await job.result(timeout=5))["skipped"]  # type: ignore[union-attr]

    with pytest.raises(ml_models.NoModel, match=r"train-summarizer.*ML extra.*train-fsq"):
        await ml_lifecycle.startup(
            {"settings": settings, "redis": pool, "load_embedder": no_embedder}
        )


def test_inline_back_fill(sqlite_engine: Engine, tmp_path: Path) -> None:
    """`reindex --embeddings --inline`'s core: newest papers first, batch by batch, no
    Redis; progress is reported per batch."""
    settings = make_settings(sqlite_engine, tmp_path, "redis://unused")
    seed(sqlite_engine, [rec(1), rec(2), rec(3, day=OLD_DAY)])
    fake = FakeEmbedder()
    steps: list[int] = []
    done = ml_embeddings.embed_inline(
        settings, sqlite_engine, embedder=fake, limit=2, on_batch=steps.append
    )
    # Three stored vectors are far below a build's threshold: readers scan them exactly.
    base = {"model": "emb-1", "backend": "fake", "vectors": None}
    assert done == {**base, "pending": 2, "written": 2}
    done = ml_embeddings.embed_inline(settings, sqlite_engine, embedder=fake)
    assert done == {**base, "pending": 1, "written": 1}
    assert fake.calls == [["P2", "P1"], ["P3"]] and steps == [2]
    with sqlite_engine.connect() as conn:
        assert list(embeddings.pending_ids(conn, "emb-1")) == []


@pytest.mark.slow
async def test_the_real_embedder_writes_vectors(
    sqlite_engine: Engine, tmp_path: Path, redis_url: str, pool: ArqRedis
) -> None:
    """No fake: the packaged MiniLM, loaded by the worker's own start-up, on three papers."""
    from ml.embeddings import VERSION

    settings = make_settings(sqlite_engine, tmp_path, redis_url, embeddings_device="cpu")
    papers = [
        replace(rec(1), title="Sparse attention for long documents"),
        replace(rec(2), title="Efficient attention over long sequences"),
        replace(rec(3), title="Soil moisture in alpine meadows"),
    ]
    seed(sqlite_engine, papers)
    await queue_listing(pool, settings, 3)
    worker = await run_burst(settings)
    assert (worker.jobs_complete, worker.jobs_failed) == (1, 0)
    assert {r[1] for r in stored(sqlite_engine).values()} == {VERSION}
    with sqlite_engine.connect() as conn:
        v = embeddings.vectors_for(conn, ["2607.00001", "2607.00002", "2607.00003"])
    assert all(abs(float(np.linalg.norm(x)) - 1.0) < 1e-2 for x in v.values())
    # The two attention papers are nearer each other than either is to the meadows.
    near = float(v["2607.00001"] @ v["2607.00002"])
    assert near > float(v["2607.00001"] @ v["2607.00003"])
    assert near > float(v["2607.00002"] @ v["2607.00003"])
