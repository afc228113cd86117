"""The ML pool through a real arq worker and a real Redis, with a fake summarizer injected
through the worker's ctx (no checkpoint, no model): jobs store TL;DRs, re-runs change
nothing, stale ones are written again, a day's list goes before the back catalogue, and
inference runs on the pool's one executor thread."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from arq import Worker, create_pool
from arq.connections import ArqRedis
from arq.worker import get_kwargs
from sqlalchemy import Engine, select

from app.artifacts import summaries
from app.db import store
from app.db.models import Summary
from app.ingest.records import AnnounceKind, Announcement, PaperRecord
from app.jobs import summaries as ml_jobs
from app.jobs.connections import redis_settings
from app.jobs.queueing import submit
from app.settings import Settings
from tests.workers import conftest as worker_fixtures
from tests.workers.test_ml_embeddings import no_embedder
from workers import ml as ml_worker
from workers.ml import lifecycle as ml_lifecycle
from workers.ml import models as ml_models
from workers.ml import summaries as ml_summaries

# The pool loads its models (torch) at start-up: the ML extra is needed.
pytest.importorskip("torch", reason="the ML extra is not installed")
pytestmark = pytest.mark.anyio
# The worker tests' real Redis on loopback (skips, or fails in CI, without one) and asyncio.
redis_url = worker_fixtures.redis_url
anyio_backend = worker_fixtures.anyio_backend
DAY = date(2026, 7, 1)
OLD_DAY = date(2025, 1, 6)


class FakeSummarizer:
    """Deterministic: "tldr of <title>"; records each call's titles and thread."""

    def __init__(self, version: str = "fake-1") -> None:
        self.version = version
        self.calls: list[list[str]] = []
        self.threads: set[str] = set()
        self.on_call: Callable[[int], None] | None = None

    def summarize(
        self, items: Sequence[tuple[str, str]], *, beams: int = 1, batch_size: int = 32
    ) -> list[str]:
        self.calls.append([title for title, _abstract in items])
        self.threads.add(threading.current_thread().name)
        if self.on_call:
            self.on_call(len(self.calls))
        return [f"tldr of {title}" for title, _abstract in items]


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


def make_settings(engine: Engine, tmp_path: Path, redis: str) -> Settings:
    return Settings(
        database_url=engine.url.render_as_string(hide_password=False),
        data_dir=tmp_path,
        redis_url=redis,
        ml_queue=f"papershelf-test:ml:{uuid.uuid4().hex}",
        ml_batch_size=2,
    )


@pytest.fixture
def settings(engine: Engine, tmp_path: Path, redis_url: str) -> Settings:
    return make_settings(engine, tmp_path, redis_url)


@pytest.fixture
async def pool(redis_url: str) -> AsyncIterator[ArqRedis]:
    redis = await create_pool(redis_settings(redis_url))
    yield redis
    await redis.aclose()


async def run_burst(settings: Settings, summarizer: FakeSummarizer | None) -> Worker:
    """Run every queued ML job with the real WorkerSettings (one job at a time), the real
    job functions and start-up, and the fake model (None: the real loader)."""

    async def startup(ctx: dict[str, Any]) -> None:
        ctx["settings"] = settings
        if summarizer is not None:
            ctx["load_summarizer"] = lambda _settings: summarizer
        ctx["load_embedder"] = no_embedder  # these tests are about TL;DRs
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
            "keep_result": 0,
            "handle_signals": False,
        }
    )
    try:
        await worker.main()
    finally:
        await worker.close()
    return worker


def stored(engine: Engine) -> dict[str, tuple[int | None, str, str, datetime]]:
    with engine.connect() as conn:
        return {
            r.arxiv_id: (r.paper_version, r.model_version, r.tldr, r.created_at)
            for r in conn.execute(select(Summary.__table__))
        }


def seed(engine: Engine, records: list[PaperRecord]) -> None:
    with engine.begin() as conn:
        store.upsert_papers(conn, records)


async def queue_listing(pool: ArqRedis, settings: Settings, n: int) -> None:
    assert await submit(pool, settings, ml_jobs.listing_request(DAY, "cs.CL", stored=n))


async def test_listing_job_stores_tldrs_and_a_rerun_changes_nothing(
    engine: Engine, settings: Settings, pool: ArqRedis
) -> None:
    seed(engine, [rec(n) for n in range(1, 6)] + [rec(9, cat="cs.LG")])
    fake = FakeSummarizer()
    await queue_listing(pool, settings, 5)
    # The same request again collapses into the queued job.
    assert await submit(pool, settings, ml_jobs.listing_request(DAY, "cs.CL", stored=5)) is None
    worker = await run_burst(settings, fake)
    assert (worker.jobs_complete, worker.jobs_failed) == (1, 0)

    rows = stored(engine)
    assert set(rows) == {f"2607.{n:05d}" for n in range(1, 6)}  # cs.LG's paper is not in it
    assert rows["2607.00003"][:3] == (1, "fake-1", "tldr of P3")
    # Batches of ml_batch_size, on the pool's single inference thread.
    assert [len(c) for c in fake.calls] == [2, 2, 1]
    assert fake.threads == {"summarizer_0"}
    assert await pool.get(ml_jobs.model_key(settings)) == b"fake-1"

    # Again: nothing is pending, the model is not called, no row changes.
    await queue_listing(pool, settings, 5)
    worker = await run_burst(settings, fake)
    assert worker.jobs_complete == 1 and len(fake.calls) == 3
    assert stored(engine) == rows


async def test_stale_tldrs_are_written_again(
    sqlite_engine: Engine,
    tmp_path: Path,
    redis_url: str,
    pool: ArqRedis,
) -> None:
    engine = sqlite_engine
    settings = make_settings(engine, tmp_path, redis_url)
    seed(engine, [rec(1), rec(2), rec(3)])
    await queue_listing(pool, settings, 3)
    await run_burst(settings, FakeSummarizer())
    first = stored(engine)

    # A new version of P2: only its TL;DR is written again, for v2.
    seed(engine, [rec(2, version=2)])
    fake = FakeSummarizer()
    assert await submit(pool, settings, ml_jobs.ids_request(["2607.00001", "2607.00002"]))
    await run_burst(settings, fake)
    assert fake.calls == [["P2"]]
    after = stored(engine)
    assert after["2607.00002"][:2] == (2, "fake-1")
    assert after["2607.00001"] == first["2607.00001"]

    # Another model: every TL;DR is stale for it.
    newer = FakeSummarizer("fake-2")
    await queue_listing(pool, settings, 3)
    await run_burst(settings, newer)
    assert sorted(t for call in newer.calls for t in call) == ["P1", "P2", "P3"]
    assert {v[1] for v in stored(engine).values()} == {"fake-2"}


async def test_a_days_list_goes_before_the_back_catalogue(
    sqlite_engine: Engine,
    tmp_path: Path,
    redis_url: str,
    pool: ArqRedis,
) -> None:
    """Queued while a back-fill runs, a day's list is the next job: the back-catalogue jobs
    queued before it wait (the list's score is earlier; the worker re-reads the queue)."""
    engine = sqlite_engine
    settings = make_settings(engine, tmp_path, redis_url)
    seed(engine, [rec(1), rec(2)] + [rec(n, day=OLD_DAY) for n in range(11, 17)])
    start = datetime.now(UTC)
    for rank, ids in enumerate([[11, 12], [13, 14], [15, 16]]):
        request = ml_jobs.ids_request([f"2607.{n:05d}" for n in ids], rank=rank, start=start)
        assert await submit(pool, settings, request)
    fake = FakeSummarizer()
    loop = asyncio.get_running_loop()

    def during_first_batch(n_calls: int) -> None:
        if n_calls == 1:  # the first back-catalogue job is running: today's list arrives
            asyncio.run_coroutine_threadsafe(queue_listing(pool, settings, 2), loop).result()

    fake.on_call = during_first_batch
    worker = await run_burst(settings, fake)
    assert worker.jobs_complete == 4
    assert fake.calls == [["P11", "P12"], ["P1", "P2"], ["P13", "P14"], ["P15", "P16"]]


async def test_ids_job_skips_unknown_ids(
    sqlite_engine: Engine,
    tmp_path: Path,
    redis_url: str,
    pool: ArqRedis,
) -> None:
    settings = make_settings(sqlite_engine, tmp_path, redis_url)
    seed(sqlite_engine, [rec(1)])
    fake = FakeSummarizer()
    assert await submit(pool, settings, ml_jobs.ids_request(["2607.00001", "2607.99999"]))
    worker = await run_burst(settings, fake)
    assert (worker.jobs_complete, worker.jobs_failed) == (1, 0)
    assert fake.calls == [["P1"]] and set(stored(sqlite_engine)) == {"2607.00001"}


def test_no_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    with pytest.raises(ml_models.SummarizerMissing, match="papershelf ml train-summarizer"):
        ml_models.load_summarizer(settings)


def test_inline_back_fill(sqlite_engine: Engine, tmp_path: Path) -> None:
    """`reindex --summaries --inline`'s core: newest papers first, batch by batch, no Redis."""
    settings = make_settings(sqlite_engine, tmp_path, "redis://unused")
    seed(sqlite_engine, [rec(1), rec(2), rec(3, day=OLD_DAY)])
    fake = FakeSummarizer()
    done = ml_summaries.summarize_inline(settings, sqlite_engine, summarizer=fake, limit=2)
    assert done == {"model": "fake-1", "pending": 2, "written": 2}
    done = ml_summaries.summarize_inline(settings, sqlite_engine, summarizer=fake)
    assert done == {"model": "fake-1", "pending": 1, "written": 1}
    assert fake.calls == [["P2", "P1"], ["P3"]]
    with sqlite_engine.connect() as conn:
        assert list(summaries.pending_ids(conn, "fake-1")) == []


async def test_the_real_model_from_a_checkpoint_writes_tldrs(
    sqlite_engine: Engine, tmp_path: Path, redis_url: str, pool: ArqRedis, shared_data: Path
) -> None:
    """No fake: a tiny trained checkpoint, loaded by the worker's own start-up."""
    from ml.summarizer import checkpoint
    from ml.summarizer.train import train
    from tests.ml.test_summarizer import tiny_config

    ckpt = tmp_path / "summarizer"
    train(tiny_config(ckpt, shared_data, max_steps=2))
    settings = make_settings(sqlite_engine, tmp_path, redis_url).model_copy(
        update={"summarizer_path": ckpt, "summarizer_device": "cpu"}
    )
    seed(sqlite_engine, [rec(1), rec(2)])
    await queue_listing(pool, settings, 2)

    worker = await run_burst(settings, None)
    assert (worker.jobs_complete, worker.jobs_failed) == (1, 0)
    version = checkpoint.read(ckpt).version
    rows = stored(sqlite_engine)
    assert set(rows) == {"2607.00001", "2607.00002"}
    assert {r[1] for r in rows.values()} == {version}
