"""The fetch pool's jobs through a real arq worker, a real Redis and the fake arXiv:
each fault gives the expected result, and nothing is ever half-written."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from arq import Worker, create_pool
from arq.connections import ArqRedis
from sqlalchemy import Engine, func, select

from app.db import runs
from app.db.models import Announcement, Paper, PaperCategory, PaperVersion
from app.jobs import ondemand
from app.jobs.connections import redis_settings
from app.jobs.fetch import harvest_key, ids_job_id
from app.jobs.queueing import scoped_job_id
from app.search.backend import search_papers
from app.settings import Settings
from tests.fakes.arxiv_server import (
    FakeArxiv,
    FakePaper,
    delay,
    empty,
    malformed,
    repeat_page,
    status,
)
from workers import fetch

pytestmark = pytest.mark.anyio
DAY = date(2026, 7, 1)


def paper(n: int, cats: tuple[str, ...] = ("cs.CL", "cs.LG"), versions: int = 1) -> FakePaper:
    base = datetime(2026, 6, 29, 12, tzinfo=UTC)
    return FakePaper(
        arxiv_id=f"2606.{n:05d}",
        title=f"Paper number {n} about quokka{n} tokenizers",
        abstract=f"We study tokenizers for the {n}th time. Results are strong.",
        authors=[f"Author {n}", "Second Author"],
        categories=list(cats),
        versions=[base - timedelta(days=30 * (versions - 1 - i)) for i in range(versions)],
    )


@pytest.fixture
def store_engine(engine: Engine) -> Engine:
    """Each job test runs on SQLite and on PostgreSQL (the `engine` fixture's two params)."""
    return engine


@pytest.fixture
def settings(fake_arxiv: FakeArxiv, store_engine: Engine, tmp_path: Path) -> Settings:
    fake_arxiv.feed_day = DAY
    return fake_arxiv.settings(
        database_url=store_engine.url.render_as_string(hide_password=False),
        data_dir=tmp_path,
        categories=["cs.CL"],
        fetch_queue=f"papershelf-test:fetch:{uuid.uuid4().hex}",
        fetch_retry_delay=0.05,
        fetch_pages_per_job=2,
        ondemand_delay=0.05,
    )


@pytest.fixture
async def pool(redis_url: str) -> AsyncIterator[ArqRedis]:
    redis = await create_pool(redis_settings(redis_url))
    yield redis
    await redis.aclose()


async def run_burst(settings: Settings, redis_url: str, *, keep_result: int = 5) -> Worker:
    """Run every queued job (including arq's own retries) with the real job functions.
    `keep_result=0` lets a job id run again at once (a day fetched twice in a row)."""

    async def startup(ctx: dict[str, Any]) -> None:
        ctx["settings"] = settings
        await fetch.startup(ctx)

    worker = Worker(
        functions=fetch.FUNCTIONS,
        queue_name=settings.fetch_queue,
        redis_settings=redis_settings(redis_url),
        on_startup=startup,
        on_shutdown=fetch.shutdown,
        burst=True,
        max_tries=fetch.MAX_TRIES,
        poll_delay=0.05,
        keep_result=keep_result,
        handle_signals=False,
    )
    try:
        await worker.main()
    finally:
        await worker.close()
    return worker


async def enqueue(pool: ArqRedis, settings: Settings, fn: str, *args: Any, job_id: str) -> Any:
    return await pool.enqueue_job(
        fn, *args, _job_id=scoped_job_id(settings, job_id), _queue_name=settings.fetch_queue
    )


def counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            m.__tablename__: conn.scalar(select(func.count()).select_from(m)) or 0
            for m in (Paper, PaperVersion, PaperCategory, Announcement)
        }


async def test_listing_job_stores_the_day_and_checks_it(
    fake_arxiv: FakeArxiv,
    settings: Settings,
    store_engine: Engine,
    pool: ArqRedis,
    redis_url: str,
) -> None:
    fake_arxiv.add_papers([paper(i) for i in range(1, 6)])
    fake_arxiv.add_papers([paper(9, cats=("cs.LG", "cs.CL"))])  # a cross-list into cs.CL
    assert await enqueue(pool, settings, "fetch_listing", "cs.CL", job_id="rss:cs.CL:a")
    # The same id again collapses into the queued job.
    assert await enqueue(pool, settings, "fetch_listing", "cs.CL", job_id="rss:cs.CL:a") is None
    worker = await run_burst(settings, redis_url)
    assert worker.jobs_complete == 1 and worker.jobs_failed == 0

    with store_engine.connect() as conn:
        kinds = dict(
            conn.execute(
                select(Announcement.arxiv_id, Announcement.kind).where(
                    Announcement.category == "cs.CL", Announcement.day == DAY
                )
            ).all()
        )
        check = runs.day_checks(conn, category="cs.CL")[0]
        last = runs.recent_runs(conn, limit=1)[0]
        hits = search_papers(conn, "quokka3").hits
    assert len(kinds) == 6 and kinds["2606.00009"] == "cross" and kinds["2606.00001"] == "new"
    assert (check["feed_count"], check["stored_count"], check["complete"]) == (6, 6, True)
    assert last["status"] == "ok" and last["inserted"] == 6
    assert [h.arxiv_id for h in hits] == ["2606.00003"]


async def test_503_with_retry_after_then_success(
    fake_arxiv: FakeArxiv,
    settings: Settings,
    store_engine: Engine,
    pool: ArqRedis,
    redis_url: str,
) -> None:
    fake_arxiv.add_papers([paper(1)])
    fake_arxiv.inject(status(503, retry_after=0.2, path="/rss"))
    await enqueue(pool, settings, "fetch_listing", "cs.CL", job_id="rss:503")
    worker = await run_burst(settings, redis_url)
    assert worker.jobs_complete == 1
    assert [r.status for r in fake_arxiv.requests_to("/rss")] == [503, 200]
    assert counts(store_engine)["papers"] == 1


async def test_malformed_feed_fails_the_attempt_writes_nothing_then_arq_retries(
    fake_arxiv: FakeArxiv,
    settings: Settings,
    store_engine: Engine,
    pool: ArqRedis,
    redis_url: str,
) -> None:
    fake_arxiv.add_papers([paper(1), paper(2)])
    fake_arxiv.inject(malformed(path="/rss", times=2))
    await enqueue(pool, settings, "fetch_listing", "cs.CL", job_id="rss:bad")
    worker = await run_burst(settings, redis_url)
    assert worker.jobs_complete == 1 and worker.jobs_retried == 2
    assert len(fake_arxiv.requests_to("/rss")) == 3  # no in-job retry of a malformed body
    with store_engine.connect() as conn:
        statuses = [r["status"] for r in reversed(runs.recent_runs(conn))]
        errors = [r["error"] for r in runs.recent_runs(conn) if r["error"]]
    assert statuses == ["failed", "failed", "ok"]
    assert all("DocumentError" in e for e in errors)
    assert counts(store_engine)["papers"] == 2


async def test_malformed_feed_every_time_gives_up_with_nothing_written(
    fake_arxiv: FakeArxiv,
    settings: Settings,
    store_engine: Engine,
    pool: ArqRedis,
    redis_url: str,
) -> None:
    fake_arxiv.add_papers([paper(1)])
    fake_arxiv.inject(malformed(path="/rss", times=fetch.MAX_TRIES))
    await enqueue(pool, settings, "fetch_listing", "cs.CL", job_id="rss:always-bad")
    worker = await run_burst(settings, redis_url)
    assert worker.jobs_failed == 1
    assert counts(store_engine) == {
        "papers": 0,
        "paper_versions": 0,
        "paper_categories": 0,
        "announcements": 0,
    }


async def test_empty_weekend_feed_writes_nothing(
    fake_arxiv: FakeArxiv,
    settings: Settings,
    store_engine: Engine,
    pool: ArqRedis,
    redis_url: str,
) -> None:
    fake_arxiv.add_papers([paper(1)])
    fake_arxiv.inject(empty(path="/rss", day=DAY + timedelta(days=3)))
    await enqueue(pool, settings, "fetch_listing", "cs.CL", job_id="rss:weekend")
    worker = await run_burst(settings, redis_url)
    assert worker.jobs_complete == 1
    assert counts(store_engine)["papers"] == 0


async def test_fetch_ids_through_the_api(
    fake_arxiv: FakeArxiv,
    settings: Settings,
    store_engine: Engine,
    pool: ArqRedis,
    redis_url: str,
) -> None:
    fake_arxiv.add_papers([paper(1, versions=3), paper(2)], announce=False)
    ids = ["2606.00001", "arXiv:2606.00002v1", "2606.00077"]
    await enqueue(pool, settings, "fetch_ids", ids, job_id=ids_job_id(ids))
    await run_burst(settings, redis_url)
    with store_engine.connect() as conn:
        versions = (
            conn.execute(select(PaperVersion.version).where(PaperVersion.arxiv_id == "2606.00001"))
            .scalars()
            .all()
        )
        stored = conn.execute(select(Paper.arxiv_id).order_by(Paper.arxiv_id)).scalars().all()
    assert stored == ["2606.00001", "2606.00002"]
    assert sorted(versions) == [1, 3]  # the API tells v1's and the latest version's times


def snapshot(engine: Engine) -> dict[str, list[tuple[str, ...]]]:
    """The store's content without our own bookkeeping timestamps."""
    out = {}
    with engine.connect() as conn:
        for model, cols in (
            (Paper, ("arxiv_id", "version", "title", "abstract", "authors", "categories")),
            (PaperVersion, ("arxiv_id", "version", "submitted_at")),
            (PaperCategory, ("category", "arxiv_id")),
        ):
            table = model.__table__
            rows = conn.execute(select(*(table.c[c] for c in cols))).all()
            out[table.name] = sorted(tuple(str(v) for v in r) for r in rows)
    return out


async def test_backfill_follows_tokens_and_survives_a_repeated_page(
    fake_arxiv: FakeArxiv,
    settings: Settings,
    store_engine: Engine,
    pool: ArqRedis,
    redis_url: str,
) -> None:
    fake_arxiv.add_papers([paper(i, versions=1 + i % 2) for i in range(1, 12)], announce=False)
    fake_arxiv.oai_page_size = 3
    fake_arxiv.inject(repeat_page())
    args = ("cs", "2026-01-01", "2026-12-31")
    await enqueue(pool, settings, "backfill", *args, job_id=harvest_key(*args))
    await run_burst(settings, redis_url)  # continuation jobs included (2 pages per job)
    with store_engine.connect() as conn:
        state = runs.get_harvest(conn, harvest_key(*args))
    assert state is not None and state.done and state.resumption_token is None
    assert counts(store_engine)["papers"] == 11
    assert counts(store_engine)["paper_versions"] == sum(1 + i % 2 for i in range(1, 12))


async def test_backfill_run_records_count_what_they_stored(
    fake_arxiv: FakeArxiv,
    settings: Settings,
    store_engine: Engine,
    pool: ArqRedis,
    redis_url: str,
) -> None:
    fake_arxiv.add_papers([paper(i) for i in range(1, 8)], announce=False)
    fake_arxiv.oai_page_size = 3
    args = ("cs", "2026-01-01", "2026-12-31")
    await enqueue(pool, settings, "backfill", *args, job_id=harvest_key(*args))
    await run_burst(settings, redis_url)  # 3 pages: one job of 2, its continuation of 1
    with store_engine.connect() as conn:
        rows = [r for r in runs.recent_runs(conn) if r["kind"] == "oai-backfill"]
    assert [r["status"] for r in rows] == ["ok", "ok"]
    assert sum(r["fetched"] for r in rows) == 7
    assert sum(r["inserted"] for r in rows) == 7
    assert sorted(r["inserted"] for r in rows) == [1, 6]


async def test_a_killed_attempts_running_row_is_abandoned_when_the_job_runs_again(
    fake_arxiv: FakeArxiv,
    settings: Settings,
    store_engine: Engine,
    pool: ArqRedis,
    redis_url: str,
) -> None:
    fake_arxiv.add_papers([paper(1)], announce=False)
    args = ("cs", "2026-01-01", "2026-12-31")
    job_id = scoped_job_id(settings, harvest_key(*args))
    # What a worker killed mid-job leaves behind: its attempt's row, still `running`.
    with store_engine.begin() as conn:
        killed = runs.start_run(conn, kind="oai-backfill", source="oai", job_id=job_id)
        other = runs.start_run(conn, kind="rss", source="rss", job_id="someone-else")
    await enqueue(pool, settings, "backfill", *args, job_id=harvest_key(*args))
    await run_burst(settings, redis_url)
    with store_engine.connect() as conn:
        dead, alive = runs.get_run(conn, killed), runs.get_run(conn, other)
        latest = runs.recent_runs(conn, limit=1)[0]
    assert dead is not None and (dead["status"], dead["error"]) == ("failed", runs.ABANDONED)
    assert alive is not None and alive["status"] == "running"  # may be a live job elsewhere
    assert (latest["job_id"], latest["status"], latest["inserted"]) == (job_id, "ok", 1)


async def test_worker_startup_abandons_rows_older_than_any_job(
    settings: Settings, store_engine: Engine, pool: ArqRedis
) -> None:
    long_ago = datetime.now(UTC) - timedelta(seconds=settings.fetch_job_timeout + 3600)
    with store_engine.begin() as conn:
        old = runs.start_run(conn, kind="rss", source="rss", job_id="x", now=long_ago)
        recent = runs.start_run(conn, kind="rss", source="rss", job_id="y")
    ctx: dict[str, Any] = {"redis": pool, "settings": settings}
    await fetch.startup(ctx)
    await fetch.shutdown(ctx)
    with store_engine.connect() as conn:
        assert runs.get_run(conn, old)["status"] == "failed"  # type: ignore[index]
        assert runs.get_run(conn, recent)["status"] == "running"  # type: ignore[index]


async def test_ondemand_look_ups_go_in_batches_of_100(
    fake_arxiv: FakeArxiv, settings: Settings, store_engine: Engine, redis_url: str
) -> None:
    fake_arxiv.add_papers([paper(n) for n in range(1, 151)], announce=False)
    roomy = settings.model_copy(
        update={"redis_url": redis_url, "ondemand_per_client_per_hour": 1000}
    )
    ids = [f"2606.{n:05d}" for n in range(1, 151)]
    asked = await ondemand.ask(roomy, ids, "192.0.2.1")
    assert sorted(asked.queued) == ids
    await run_burst(roomy, redis_url)
    sizes = sorted(
        len((r.param("id_list") or "").split(",")) for r in fake_arxiv.requests_to("/api")
    )
    assert sizes == [50, 100]
    assert counts(store_engine)["papers"] == 150
    with store_engine.connect() as conn:
        kinds = [(r["kind"], r["status"], r["inserted"]) for r in runs.recent_runs(conn)]
    assert sorted(kinds) == [("ondemand", "ok", 50), ("ondemand", "ok", 100)]


async def test_scheduled_fetches_go_before_ondemand_look_ups(
    fake_arxiv: FakeArxiv, settings: Settings, pool: ArqRedis, redis_url: str
) -> None:
    """A back-fill of three pages (a job of two, then its continuation) is under way when a
    look-up comes due: the look-up waits for the whole harvest, not just for the limiter."""
    fake_arxiv.add_papers([paper(n) for n in range(1, 8)], announce=False)
    fake_arxiv.oai_page_size = 3
    fake_arxiv.inject(delay(0.5, path="/oai"))  # the first page is slow: the look-up waits
    with_redis = settings.model_copy(update={"redis_url": redis_url})
    args = ("cs", "2026-01-01", "2026-12-31")
    await enqueue(pool, settings, "backfill", *args, job_id=harvest_key(*args))
    await ondemand.ask(with_redis, ["2606.00002"], "192.0.2.1")
    worker = await run_burst(with_redis, redis_url)
    order = [r.path[:4] for r in fake_arxiv.requests if r.path.startswith(("/oai", "/api"))]
    assert order == ["/oai", "/oai", "/oai", "/api"]
    assert worker.jobs_retried >= 1  # the look-up put itself back while the harvest ran


def test_budget_keys_group_ipv6_by_64() -> None:
    assert ondemand.budget_key("2001:db8:1:2:aaaa::1") == "2001:db8:1:2::/64"
    assert ondemand.budget_key("2001:db8:1:2:bbbb::9") == "2001:db8:1:2::/64"
    assert ondemand.budget_key("::ffff:192.0.2.1") == "192.0.2.1"
    assert ondemand.budget_key("192.0.2.1") == "192.0.2.1"
    assert ondemand.budget_key("testclient") == "testclient"


async def test_ids_asked_after_a_batch_was_taken_get_a_job_of_their_own(
    settings: Settings, pool: ArqRedis, redis_url: str
) -> None:
    with_redis = settings.model_copy(update={"redis_url": redis_url})
    await ondemand.ask(with_redis, ["2606.00001"], "192.0.2.1")
    assert await ondemand.take_batch(pool, with_redis) == ["2606.00001"]
    # A cancelled look-up puts its batch back; later asks join the next generation's job.
    await ondemand.put_back(pool, with_redis, ["2606.00001"])
    await ondemand.ask(with_redis, ["2606.00002"], "192.0.2.1")
    jobs = {j.job_id for j in await pool.queued_jobs(queue_name=settings.fetch_queue)}
    assert jobs == {scoped_job_id(settings, "ondemand:0"), scoped_job_id(settings, "ondemand:1")}
    assert await ondemand.take_batch(pool, with_redis) == ["2606.00001", "2606.00002"]
