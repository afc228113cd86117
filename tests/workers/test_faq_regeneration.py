"""A fetched day with new versions of papers whose FAQ a reader once asked for: the fetch
pool queues one FAQ job per paper and language on the LLM queue (behind readers' requests,
ahead of anything queued as due now), at most `faq_regenerate_per_day` a day, and the LLM
pool then writes the new version's answers. Through real arq workers, a real Redis, the
fake arXiv and the fake LLM, on SQLite and PostgreSQL."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from arq import create_pool
from arq.connections import ArqRedis
from arq.jobs import Job
from sqlalchemy import Engine, select

from app.artifacts import faqs
from app.artifacts.faqs import FaqKey, Lang
from app.db import store
from app.db.models import Faq
from app.ingest.records import PaperRecord
from app.jobs import embeddings as embedding_jobs
from app.jobs import faq as faq_jobs
from app.jobs.connections import redis_settings
from app.jobs.queueing import JobRequest, submit
from app.settings import Settings
from tests.fakes.arxiv_server import FakeArxiv
from tests.fakes.llm_server import DEFAULT_REPLY, FakeLLM
from tests.workers import test_fetch, test_llm
from tests.workers.test_fetch import DAY, paper

pytestmark = pytest.mark.anyio
MODEL = "fake-model-1"


def pid(n: int) -> str:
    return f"2606.{n:05d}"


@pytest.fixture
def fake_llm() -> Iterator[FakeLLM]:
    with FakeLLM(chunk_chars=50) as fake:
        yield fake


@pytest.fixture
def make_settings(
    fake_arxiv: FakeArxiv,
    fake_llm: FakeLLM,
    tmp_path: Path,
    redis_key: str,
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Any:
    # These tests are about the FAQ: no embedding jobs beside them.
    monkeypatch.setattr(embedding_jobs, "embedder_installed", lambda: False)

    def go(engine: Engine, **extra: Any) -> Settings:
        fake_arxiv.feed_day = DAY
        values: dict[str, Any] = {
            "database_url": engine.url.render_as_string(hide_password=False),
            "data_dir": tmp_path,
            "redis_url": redis_url,
            "categories": ["cs.CL"],
            # Every queue under this test's key: deleted afterwards.
            "fetch_queue": f"{redis_key}:fetch",
            "ml_queue": f"{redis_key}:ml",
            "llm_queue": f"{redis_key}:llm",
            "llm_base_url": fake_llm.base_url,
            "llm_model": MODEL,
        }
        return fake_arxiv.settings(**{**values, **extra})

    return go


@pytest.fixture
async def pool(redis_url: str) -> AsyncIterator[ArqRedis]:
    redis = await create_pool(redis_settings(redis_url))
    yield redis
    await redis.aclose()


def seed_v1(engine: Engine, answered: dict[int, tuple[Lang, ...]], papers: range) -> None:
    """Version 1 of each paper, stored before the day, and the FAQ answers readers asked for."""
    with engine.begin() as conn:
        store.upsert_papers(
            conn,
            [
                PaperRecord(
                    arxiv_id=pid(n),
                    title=f"Paper number {n}, first version",
                    abstract="We study tokenizers.",
                    authors=[f"Author {n}"],
                    primary_category="cs.CL",
                    categories=["cs.CL", "cs.LG"],
                    version=1,
                    first_submitted_at=datetime(2026, 5, 30, tzinfo=UTC),
                )
                for n in papers
            ],
        )
        for n, langs in answered.items():
            for lang in langs:
                faqs.save_faq(
                    conn,
                    FaqKey(pid(n), 1, lang, MODEL),
                    f"the v1 answer ({lang})",
                    prompt_hash="p",
                    finish_reason="stop",
                )


async def fetch_day(
    pool: ArqRedis, settings: Settings, redis_url: str, run: str, category: str = "cs.CL"
) -> dict[str, Any]:
    request = JobRequest("fetch_listing", (category,), f"rss:{category}:{run}")
    job = await submit(pool, settings, request)
    assert job is not None
    worker = await test_fetch.run_burst(settings, redis_url)
    assert worker.jobs_complete == 1, worker.jobs_failed
    return await job.result(timeout=5)


async def llm_jobs(pool: ArqRedis, settings: Settings) -> list[tuple[tuple[Any, ...], float]]:
    """(args, score) of every job on the LLM queue, first to run first."""
    out = []
    for raw, score in await pool.zrange(settings.llm_queue, 0, -1, withscores=True):
        info = await Job(raw.decode(), pool, _queue_name=settings.llm_queue).info()
        assert info is not None and info.function == faqs.JOB_FUNCTION
        out.append((info.args, score))
    return out


def stored(engine: Engine) -> dict[tuple[str, int, str], str]:
    with engine.connect() as conn:
        rows = conn.execute(select(Faq.version, Faq.arxiv_id, Faq.lang, Faq.content))
        return {(r.arxiv_id, r.version, r.lang): r.content for r in rows}


def days_ago(score: float) -> float:
    return (datetime.now(UTC).timestamp() * 1000 - score) / 86_400_000


async def test_a_replacement_with_an_faq_is_written_again(
    engine: Engine,
    make_settings: Any,
    fake_arxiv: FakeArxiv,
    fake_llm: FakeLLM,
    pool: ArqRedis,
    redis_url: str,
) -> None:
    settings = make_settings(engine)
    # Paper 1: readers asked in English and Chinese; paper 2: nobody asked; paper 3: its
    # English answer, but it is not replaced today; paper 4 is new today.
    seed_v1(engine, {1: ("en", "zh"), 3: ("en",)}, range(1, 4))
    fake_arxiv.add_papers([paper(1, versions=2), paper(2, versions=2), paper(4)])

    result = await fetch_day(pool, settings, redis_url, "a")
    assert result["updated"] >= 2 and result["faqs_queued"] == 2
    jobs = await llm_jobs(pool, settings)
    assert [args for args, _ in jobs] == [(pid(1), "en"), (pid(1), "zh")]
    # Ahead of anything queued as due now, behind readers (app.jobs.faq).
    assert all(300 < days_ago(score) < 400 for _, score in jobs)

    # The same list fetched again queues nothing more.
    again = await fetch_day(pool, settings, redis_url, "b")
    assert again["faqs_queued"] == 0 and len(await llm_jobs(pool, settings)) == 2

    # A reader asking now goes first.
    reader = FaqKey(pid(4), 1, "en", MODEL)
    state = await faq_jobs.request_generation(pool, settings, reader)
    assert state.state == "queued" and state.position == 0
    first_args, _ = (await llm_jobs(pool, settings))[0]
    assert first_args == (pid(4), "en")

    worker = await test_llm.run_burst(settings, redis_url)
    assert worker.jobs_complete == 3, worker.jobs_failed
    answers = stored(engine)
    assert answers[(pid(1), 2, "en")] == DEFAULT_REPLY
    assert answers[(pid(1), 2, "zh")] == DEFAULT_REPLY
    assert answers[(pid(1), 1, "en")] == "the v1 answer (en)"  # kept: a record of v1
    assert not any(arxiv_id == pid(2) for arxiv_id, _, _ in answers)
    assert len(fake_llm.completions()) == 3
    # Both prompts were made from the new version.
    prompts = [c.body["messages"][-1]["content"] for c in fake_llm.completions()]
    assert sum(f"arXiv: {pid(1)}v2" in p for p in prompts) == 2


async def test_the_daily_cap_and_its_log(
    sqlite_engine: Engine,
    make_settings: Any,
    fake_arxiv: FakeArxiv,
    pool: ArqRedis,
    redis_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = make_settings(sqlite_engine, faq_regenerate_per_day=2)
    seed_v1(sqlite_engine, {1: ("en", "zh"), 2: ("en",), 3: ("zh",)}, range(1, 4))
    fake_arxiv.add_papers([paper(n, versions=2) for n in (1, 2, 3)])
    with caplog.at_level(logging.WARNING, logger="workers.fetch"):
        result = await fetch_day(pool, settings, redis_url, "a")
    assert result["faqs_queued"] == 2
    assert [args for args, _ in await llm_jobs(pool, settings)] == [
        (pid(1), "en"),
        (pid(1), "zh"),
    ]
    assert "cap of 2 a day" in caplog.text and "left 2 of 4 unqueued" in caplog.text
    # The cap is per announcement day, every category together: cs.LG's list of the same
    # day (the same papers, cross-listed) gets nothing more.
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="workers.fetch"):
        cross = await fetch_day(pool, settings, redis_url, "a", category="cs.LG")
    assert cross["faqs_queued"] == 0 and len(await llm_jobs(pool, settings)) == 2
    assert "left 2 of 4 unqueued" in caplog.text


async def test_nothing_is_queued_without_an_llm_or_a_prior_faq(
    sqlite_engine: Engine,
    make_settings: Any,
    fake_arxiv: FakeArxiv,
    pool: ArqRedis,
    redis_url: str,
) -> None:
    seed_v1(sqlite_engine, {1: ("en",)}, range(1, 3))
    fake_arxiv.add_papers([paper(1, versions=2), paper(2, versions=2)])
    off = make_settings(sqlite_engine, llm_base_url=None)
    assert (await fetch_day(pool, off, redis_url, "a"))["faqs_queued"] == 0
    none = make_settings(sqlite_engine, faq_regenerate_per_day=0)
    assert (await fetch_day(pool, none, redis_url, "b"))["faqs_queued"] == 0
    assert await pool.zcard(off.llm_queue) == 0
    # With the LLM on, only paper 1 (whose v1 had an answer) is queued.
    on = make_settings(sqlite_engine)
    assert (await fetch_day(pool, on, redis_url, "c"))["faqs_queued"] == 1
    assert [args for args, _ in await llm_jobs(pool, on)] == [(pid(1), "en")]


async def test_a_reader_moves_a_queued_regeneration_up(
    sqlite_engine: Engine, make_settings: Any, pool: ArqRedis
) -> None:
    settings = make_settings(sqlite_engine)
    first, second = (FaqKey(pid(n), 2, "en", MODEL) for n in (1, 2))
    done = await faq_jobs.queue_regenerations(pool, settings, DAY, [first, second])
    assert (done.queued, done.joined, done.cut) == (2, 0, 0)
    assert [args[0] for args, _ in await llm_jobs(pool, settings)] == [pid(1), pid(2)]
    state = await faq_jobs.request_generation(pool, settings, second)
    assert state.state == "queued" and state.position == 0  # one job, now first
    jobs = await llm_jobs(pool, settings)
    assert [args[0] for args, _ in jobs] == [pid(2), pid(1)]
    assert days_ago(jobs[0][1]) > 700
    # Queued again for the day (a re-fetch): joined, and it keeps the reader's place.
    again = await faq_jobs.queue_regenerations(pool, settings, DAY, [second])
    assert (again.queued, again.joined) == (0, 1)
    assert [args[0] for args, _ in await llm_jobs(pool, settings)] == [pid(2), pid(1)]
