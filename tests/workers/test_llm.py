"""The LLM pool against a fake OpenAI-compatible server, a real Redis and a real arq worker:
streaming, retries (429 with Retry-After, 5xx, timeouts, cut and garbled streams), refusals,
single flight for concurrent requests, and never a half-written answer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from arq import Worker, create_pool
from arq.connections import ArqRedis
from sqlalchemy import Engine, func, select

from app.artifacts import faqs
from app.artifacts.faqs import FaqKey, load_prompt
from app.db import store
from app.db.models import Faq
from app.ingest.records import PaperRecord
from app.jobs import faq as faq_jobs
from app.jobs.connections import redis_settings
from app.settings import Settings
from app.web.api import faq as faq_web
from tests.fakes.llm_server import (
    DEFAULT_REPLY,
    FakeLLM,
    cut,
    delay,
    error_chunk,
    hold,
    status,
)
from workers import llm

pytestmark = pytest.mark.anyio
ARXIV_ID = "2401.00001"


# --- fixtures -------------------------------------------------------------------------------


@pytest.fixture
def fake_llm() -> Iterator[FakeLLM]:
    with FakeLLM(chunk_chars=9) as fake:
        yield fake


@pytest.fixture(autouse=True)
def quick_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    # Readers check the queue between stream reads; no need to wait a second in tests.
    monkeypatch.setattr(faq_web, "POLL_MS", 50)


def seed(engine: Engine, version: int = 2) -> None:
    with engine.begin() as conn:
        store.upsert_papers(
            conn,
            [
                PaperRecord(
                    arxiv_id=ARXIV_ID,
                    title="Quokka tokenizers",
                    abstract="We study tokenizers for {braces} and $x^2$.",
                    authors=["Ada Lovelace"],
                    primary_category="cs.CL",
                    categories=["cs.CL"],
                    version=version,
                    first_submitted_at=datetime(2024, 1, 1, tzinfo=UTC),
                )
            ],
        )


def make_settings(
    fake: FakeLLM, engine: Engine, tmp_path: Path, redis_key: str, redis_url: str, **extra: Any
) -> Settings:
    return fake.settings(
        database_url=engine.url.render_as_string(hide_password=False),
        data_dir=tmp_path,
        redis_url=redis_url,
        llm_queue=f"{redis_key}:llm",
        **extra,
    )


@pytest.fixture
def settings(
    fake_llm: FakeLLM, sqlite_engine: Engine, tmp_path: Path, redis_key: str, redis_url: str
) -> Settings:
    seed(sqlite_engine)
    return make_settings(fake_llm, sqlite_engine, tmp_path, redis_key, redis_url)


@pytest.fixture
async def pool(redis_url: str) -> AsyncIterator[ArqRedis]:
    redis = await create_pool(redis_settings(redis_url))
    yield redis
    await redis.aclose()


class Sleeps(list[float]):
    """The back-off tenacity asked for, without waiting it."""

    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


async def run_burst(settings: Settings, redis_url: str, sleeps: Sleeps | None = None) -> Worker:
    async def startup(ctx: dict[str, Any]) -> None:
        ctx["settings"] = settings
        ctx["llm_sleep"] = sleeps if sleeps is not None else Sleeps()
        await llm.startup(ctx)

    worker = Worker(
        functions=llm.FUNCTIONS,
        queue_name=settings.llm_queue,
        redis_settings=redis_settings(redis_url),
        on_startup=startup,
        on_shutdown=llm.shutdown,
        burst=True,
        max_tries=llm.MAX_TRIES,
        keep_result=llm.worker_settings(settings)["keep_result"],
        poll_delay=0.05,
        handle_signals=False,
    )
    try:
        await worker.main()
    finally:
        await worker.close()
    return worker


def key_for(settings: Settings, version: int = 2, lang: str = "en") -> FaqKey:
    return FaqKey(ARXIV_ID, version, lang, settings.llm_model)  # type: ignore[arg-type]


def parse(frame: str) -> tuple[str, dict[str, Any]] | None:
    import json

    event = data = None
    for line in frame.splitlines():
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            data = json.loads(line[6:])
    return (event, data) if event and data is not None else None


async def read(settings: Settings, engine: Engine, key: FaqKey) -> list[tuple[str, Any]]:
    """Everything one reader of the key's stream sees (what the SSE endpoint sends)."""
    events = []
    async for frame in faq_web.follow(settings, engine, key):
        if (parsed := parse(frame)) is not None:
            events.append(parsed)
    return events


def assembled(events: list[tuple[str, Any]]) -> str:
    """The text a browser shows after these events (start/reset clear it)."""
    text = ""
    for name, data in events:
        if name in ("start", "reset"):
            text = ""
        elif name == "delta":
            text += data["text"]
    return text


def rows(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.scalar(select(func.count()).select_from(Faq)) or 0


MESSAGES = [{"role": "user", "content": "hello"}]


# --- the client alone -----------------------------------------------------------------------


async def complete(
    settings: Settings, sleeps: Sleeps | None = None
) -> tuple[Any, list[str], list[str]]:
    deltas: list[str] = []
    resets: list[str] = []

    async def on_delta(text: str) -> None:
        deltas.append(text)

    async def on_reset(reason: str) -> None:
        resets.append(reason)
        deltas.append("<reset>")

    async with llm.make_http_client(settings) as http:
        client = llm.ChatClient(http, settings, sleep=sleeps if sleeps is not None else Sleeps())
        result = await client.complete(MESSAGES, on_delta=on_delta, on_reset=on_reset)
    return result, deltas, resets


async def test_streams_the_wire_format() -> None:
    with FakeLLM(chunk_chars=5, api_key="sk-test") as fake:
        settings = fake.settings(llm_temperature=0.1, llm_max_tokens=99)
        result, deltas, resets = await complete(settings)
    assert result.text == DEFAULT_REPLY and result.finish_reason == "stop"
    assert result.attempts == 1 and not resets
    assert "".join(deltas) == DEFAULT_REPLY and len(deltas) == -(-len(DEFAULT_REPLY) // 5)
    (call,) = fake.completions()
    assert call.headers["authorization"] == "Bearer sk-test"
    assert call.body == {
        "model": "fake-model-1",
        "messages": MESSAGES,
        "stream": True,
        "temperature": 0.1,
        "max_tokens": 99,
    }


async def test_429_honours_retry_after(fake_llm: FakeLLM) -> None:
    fake_llm.inject(status(429, retry_after=5))
    sleeps = Sleeps()
    result, _, resets = await complete(fake_llm.settings(), sleeps)
    assert result.text == DEFAULT_REPLY and result.attempts == 2 and not resets
    assert sleeps == [5.0]  # the server's hint, not the 1–2 s back-off
    assert [c.status for c in fake_llm.completions()] == [429, 200]


async def test_retry_after_is_capped(fake_llm: FakeLLM) -> None:
    fake_llm.inject(status(429, retry_after=3600))
    sleeps = Sleeps()
    await complete(fake_llm.settings(llm_max_backoff=7), sleeps)
    assert sleeps == [7.0]


async def test_5xx_and_timeouts_are_retried_then_given_up(fake_llm: FakeLLM) -> None:
    fake_llm.inject(status(500), delay(1.0), status(503, times=2))
    sleeps = Sleeps()
    settings = fake_llm.settings(llm_max_attempts=4, llm_timeout=0.2)
    with pytest.raises(llm.LLMUnavailable) as info:
        await complete(settings, sleeps)
    assert info.value.attempts == 4 and "503" in str(info.value)
    assert len(fake_llm.completions()) == 4 and len(sleeps) == 3
    assert all(1 <= s <= settings.llm_max_backoff for s in sleeps)


@pytest.mark.parametrize(("code", "api_key"), [(400, None), (401, "wrong"), (404, None)])
async def test_other_4xx_fail_at_once(fake_llm: FakeLLM, code: int, api_key: str | None) -> None:
    if api_key:
        fake_llm.api_key = "right"
    else:
        fake_llm.inject(status(code, message="model 'x' does not exist"))
    with pytest.raises(llm.LLMRejected) as info:
        await complete(fake_llm.settings(llm_api_key=api_key))
    assert info.value.status == code and f"HTTP {code}" in str(info.value)
    assert len(fake_llm.completions()) == 1


@pytest.mark.parametrize("fault", [cut(after=3), error_chunk(after=3)])
async def test_a_broken_stream_resets_and_starts_over(fake_llm: FakeLLM, fault: Any) -> None:
    fake_llm.inject(fault)
    result, deltas, resets = await complete(fake_llm.settings())
    assert result.text == DEFAULT_REPLY and result.attempts == 2
    assert len(resets) == 1
    before, after = "".join(deltas).split("<reset>")
    assert DEFAULT_REPLY.startswith(before) and before and after == DEFAULT_REPLY


async def test_unreachable_server_is_transient() -> None:
    with FakeLLM() as fake:
        settings = fake.settings(llm_max_attempts=2)
    with pytest.raises(llm.LLMUnavailable, match="ConnectError"):  # the fake is stopped
        await complete(settings)


# --- the job, the stream and the cache ------------------------------------------------------


async def test_one_generation_two_readers_cached_once(
    fake_llm: FakeLLM,
    engine: Engine,
    tmp_path: Path,
    redis_key: str,
    redis_url: str,
    pool: ArqRedis,
) -> None:
    """On SQLite and PostgreSQL: two requests make one job; both readers get the answer;
    one row is stored; asking again later costs no LLM call."""
    seed(engine)
    settings = make_settings(fake_llm, engine, tmp_path, redis_key, redis_url)
    key = key_for(settings)
    first = await faq_jobs.request_generation(pool, settings, key)
    second = await faq_jobs.request_generation(pool, settings, key)
    assert (first.state, first.position) == ("queued", 0)
    assert (second.state, second.position) == ("queued", 0)
    assert await pool.zcard(settings.llm_queue) == 1
    readers = [asyncio.create_task(read(settings, engine, key)) for _ in range(2)]
    worker = await run_burst(settings, redis_url)
    results = await asyncio.wait_for(asyncio.gather(*readers), 20)
    assert worker.jobs_complete == 1 and worker.jobs_failed == 0
    assert len(fake_llm.completions()) == 1
    for events in results:
        names = [name for name, _ in events]
        assert names[-1] == "done" and "start" in names and "delta" in names
        assert assembled(events) == DEFAULT_REPLY
        assert events[-1][1]["content"] == DEFAULT_REPLY
    with engine.connect() as conn:
        row = faqs.get_faq(conn, key)
    assert row is not None and row.content == DEFAULT_REPLY and row.finish_reason == "stop"
    assert row.prompt_hash == load_prompt(None).digest
    assert rows(engine) == 1
    # Queued again anyway (say, by a second site process): the job only re-announces it.
    await faq_jobs.request_generation(pool, settings, key)
    late = asyncio.create_task(read(settings, engine, key))
    worker = await run_burst(settings, redis_url)
    events = await asyncio.wait_for(late, 20)
    assert events[-1][0] == "done" and events[-1][1]["content"] == DEFAULT_REPLY
    assert len(fake_llm.completions()) == 1 and rows(engine) == 1


async def test_a_request_while_running_joins_the_generation(
    fake_llm: FakeLLM, settings: Settings, sqlite_engine: Engine, redis_url: str, pool: ArqRedis
) -> None:
    fake_llm.inject(hold(after=2))
    key = key_for(settings)
    await faq_jobs.request_generation(pool, settings, key)
    early = asyncio.create_task(read(settings, sqlite_engine, key))
    worker = asyncio.create_task(run_burst(settings, redis_url))
    assert await asyncio.to_thread(fake_llm.held.wait, 10)
    # Mid-generation: the job is running, a second request joins it, no second job.
    again = await faq_jobs.request_generation(pool, settings, key)
    assert again.state == "running"
    assert await pool.zcard(settings.llm_queue) == 1
    late = asyncio.create_task(read(settings, sqlite_engine, key))
    fake_llm.release()
    done = await asyncio.wait_for(worker, 20)
    assert done.jobs_complete == 1
    for events in await asyncio.wait_for(asyncio.gather(early, late), 20):
        assert events[-1][0] == "done" and assembled(events) == DEFAULT_REPLY
    assert len(fake_llm.completions()) == 1 and rows(sqlite_engine) == 1


@pytest.mark.parametrize(
    "faults",
    [[status(429, retry_after=5)], [status(500)], [status(502), status(503)]],
    ids=["429", "500", "502-503"],
)
async def test_job_retries_transient_failures(
    fake_llm: FakeLLM,
    settings: Settings,
    sqlite_engine: Engine,
    redis_url: str,
    pool: ArqRedis,
    faults: list[Any],
) -> None:
    fake_llm.inject(*faults)
    key = key_for(settings)
    await faq_jobs.request_generation(pool, settings, key)
    sleeps = Sleeps()
    worker = await run_burst(settings, redis_url, sleeps)
    assert worker.jobs_complete == 1
    assert len(sleeps) == len(faults)
    if faults[0].retry_after:
        assert sleeps == [5.0]
    events = await asyncio.wait_for(read(settings, sqlite_engine, key), 20)
    assert events[-1][0] == "done" and assembled(events) == DEFAULT_REPLY
    assert [n for n, _ in events].count("reset") == 0  # nothing was streamed before them
    with sqlite_engine.connect() as conn:
        assert faqs.get_faq(conn, key).content == DEFAULT_REPLY  # type: ignore[union-attr]


async def test_a_cut_stream_resets_readers_and_caches_only_the_whole(
    fake_llm: FakeLLM, settings: Settings, sqlite_engine: Engine, redis_url: str, pool: ArqRedis
) -> None:
    fake_llm.inject(cut(after=4))
    key = key_for(settings)
    await faq_jobs.request_generation(pool, settings, key)
    reader = asyncio.create_task(read(settings, sqlite_engine, key))
    worker = await run_burst(settings, redis_url)
    events = await asyncio.wait_for(reader, 20)
    assert worker.jobs_complete == 1
    names = [n for n, _ in events]
    assert names.count("reset") == 1 and names[-1] == "done"
    partial = assembled(events[: names.index("reset")])
    assert partial and DEFAULT_REPLY.startswith(partial) and partial != DEFAULT_REPLY
    assert assembled(events) == DEFAULT_REPLY
    with sqlite_engine.connect() as conn:
        assert faqs.get_faq(conn, key).content == DEFAULT_REPLY  # type: ignore[union-attr]


async def test_a_stream_cut_every_time_fails_and_stores_nothing(
    fake_llm: FakeLLM, settings: Settings, sqlite_engine: Engine, redis_url: str, pool: ArqRedis
) -> None:
    fake_llm.inject(cut(after=2, times=settings.llm_max_attempts))
    key = key_for(settings)
    await faq_jobs.request_generation(pool, settings, key)
    reader = asyncio.create_task(read(settings, sqlite_engine, key))
    worker = await run_burst(settings, redis_url)
    events = await asyncio.wait_for(reader, 20)
    assert worker.jobs_failed == 1 and worker.jobs_complete == 0
    assert events[-1][0] == "error" and "attempts" in events[-1][1]["message"]
    assert len(fake_llm.completions()) == settings.llm_max_attempts
    assert rows(sqlite_engine) == 0  # nothing half-cached
    # The failure is visible to the next reader, and a new request starts afresh.
    state = await faq_jobs.job_state(pool, settings, key)
    assert state.state == "failed" and "attempts" in (state.message or "")
    again = await faq_jobs.request_generation(pool, settings, key)
    assert again.state == "queued"
    await run_burst(settings, redis_url)
    events = await asyncio.wait_for(read(settings, sqlite_engine, key), 20)
    assert events[0][0] == "start" and events[-1][0] == "done"
    assert rows(sqlite_engine) == 1


async def test_a_refusal_is_reported_at_once(
    fake_llm: FakeLLM, settings: Settings, sqlite_engine: Engine, redis_url: str, pool: ArqRedis
) -> None:
    fake_llm.inject(status(400, message="This model's maximum context length is 8 tokens"))
    key = key_for(settings)
    await faq_jobs.request_generation(pool, settings, key)
    worker = await run_burst(settings, redis_url)
    assert worker.jobs_failed == 1
    events = await asyncio.wait_for(read(settings, sqlite_engine, key), 20)
    assert events[-1][0] == "error"
    assert "HTTP 400" in events[-1][1]["message"] and "context length" in events[-1][1]["message"]
    assert len(fake_llm.completions()) == 1 and rows(sqlite_engine) == 0


async def test_a_vanished_job_ends_the_readers(
    settings: Settings, sqlite_engine: Engine, pool: ArqRedis
) -> None:
    """No worker will ever run it (say, the job was lost with its Redis): readers are told,
    instead of waiting for ever."""
    key = key_for(settings)
    await faq_jobs.request_generation(pool, settings, key)
    events = []
    async with asyncio.timeout(20):
        async for frame in faq_web.follow(settings, sqlite_engine, key):
            if (parsed := parse(frame)) is None:
                continue
            events.append(parsed)
            if parsed[0] == "queued":  # waiting in the queue: now the job disappears
                job_id = key.job_id(settings.llm_queue)
                await pool.zrem(settings.llm_queue, job_id)
                await pool.delete(f"arq:job:{job_id}")
    assert events[0] == ("queued", {"position": 0})
    assert events[-1][0] == "error" and "request it again" in events[-1][1]["message"]


async def test_the_answer_is_per_version_language_and_model(
    fake_llm: FakeLLM, settings: Settings, sqlite_engine: Engine, redis_url: str, pool: ArqRedis
) -> None:
    for lang in ("en", "zh"):
        await faq_jobs.request_generation(pool, settings, key_for(settings, lang=lang))
    await run_burst(settings, redis_url)
    assert len(fake_llm.completions()) == 2
    prompts = sorted(c.body["messages"][1]["content"] for c in fake_llm.completions())
    assert sum("这篇论文试图解决什么问题？" in p for p in prompts) == 1  # one job each
    seed(sqlite_engine, version=3)  # a new version: its FAQ is a new one
    with sqlite_engine.connect() as conn:
        paper, key, row = faqs.find(conn, ARXIV_ID, "en", settings.llm_model)
    assert paper is not None and key == key_for(settings, version=3) and row is None
    other_model = settings.model_copy(update={"llm_model": "fake-model-2"})
    with sqlite_engine.connect() as conn:
        assert faqs.find(conn, ARXIV_ID, "en", other_model.llm_model)[2] is None
        assert faqs.get_faq(conn, key_for(settings, version=2, lang="zh")) is not None
    assert rows(sqlite_engine) == 2


def test_save_refuses_an_empty_answer(sqlite_engine: Engine) -> None:
    seed(sqlite_engine)
    with pytest.raises(ValueError), sqlite_engine.begin() as conn:
        faqs.save_faq(
            conn, FaqKey(ARXIV_ID, 2, "en", "m"), "  ", prompt_hash="x", finish_reason="stop"
        )
    assert rows(sqlite_engine) == 0


def test_worker_settings_are_the_llm_pools() -> None:
    from app.settings import get_settings

    worker_settings = llm.WorkerSettings  # what `arq workers.llm.WorkerSettings` reads
    assert worker_settings["queue_name"] == get_settings().llm_queue
    assert [f.__name__ for f in worker_settings["functions"]] == ["generate_faq"]
    assert worker_settings["keep_result"] == 0


def test_up_starts_the_llm_pool_only_when_configured(tmp_path: Path) -> None:
    from app.cli.runtime.children import children

    off = children("127.0.0.1", 8000, Settings(data_dir=tmp_path))
    assert "llm worker" not in [c.name for c in off]
    on = children("127.0.0.1", 8000, Settings(data_dir=tmp_path, llm_base_url="http://x/v1"))
    (llm_child,) = [c for c in on if c.name == "llm worker"]
    assert llm_child.argv[-3:] == ["worker", "--pool", "llm"]


def test_the_llm_pool_needs_an_endpoint(site_settings: Any) -> None:
    from typer.testing import CliRunner

    from app.cli import cli

    site_settings()
    result = CliRunner().invoke(cli, ["worker", "--pool", "llm"])
    assert result.exit_code == 1
    assert "PAPERSHELF_LLM_BASE_URL" in result.output


async def test_a_reader_resumes_after_its_last_event_id(
    settings: Settings, sqlite_engine: Engine, redis_url: str, pool: ArqRedis
) -> None:
    """What a reconnecting EventSource gets with Last-Event-ID: only what followed."""
    key = key_for(settings)
    await faq_jobs.request_generation(pool, settings, key)
    await run_burst(settings, redis_url)
    entries = await pool.xrange(key.stream_key(settings.llm_queue))
    assert len(entries) > 4
    seen = "".join(
        faq_jobs.entry_fields(fields)[1].get("text", "")
        for _, fields in entries[:4]
        if faq_jobs.entry_fields(fields)[0] == "delta"
    )
    resumed = [
        parsed
        async for frame in faq_web.follow(settings, sqlite_engine, key, entries[3][0].decode())
        if (parsed := parse(frame)) is not None
    ]
    assert "start" not in [n for n, _ in resumed] and resumed[-1][0] == "done"
    assert seen + assembled(resumed) == DEFAULT_REPLY
