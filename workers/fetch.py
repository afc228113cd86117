"""The fetch pool: arq jobs that keep the store up to date from arXiv.

Every job is idempotent (upserts) and deduplicated by a deterministic `_job_id`. Each
page from upstream is written in one transaction together with its bookkeeping, so a
killed worker leaves either the whole page or nothing, and a restarted back-fill resumes
from the last committed resumption token. Transient upstream failures are retried inside
the job (tenacity, in workers.arxiv); a malformed response or an exhausted upstream fails
the attempt, and arq retries the job later with a growing delay, up to `max_tries`.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import Any, ClassVar, Literal, TypeVar

import redis.backoff
import redis.exceptions
from arq import Retry, Worker, create_pool, cron
from arq.connections import ArqRedis, RedisSettings
from arq.jobs import Job
from redis.asyncio.retry import Retry as AsyncRetry
from sqlalchemy import Connection, Engine

from app.db import runs, store
from app.db.engine import get_engine
from app.ingest.ids import parse_arxiv_id
from app.ingest.records import DocumentError, ParsedPage, UpstreamError
from app.schedule import announcement_at, latest_listing_day, parse_holidays, poll_due
from app.settings import Settings, get_settings
from app.taxonomy import get_taxonomy
from workers.arxiv import ArxivClient, UpstreamHTTPError, UpstreamUnavailable, make_http_client
from workers.politeness import RedisRateLimiter

log = logging.getLogger("papershelf.fetch")

MAX_TRIES = 5
QUICK_TIMEOUT_S = 3
# Failures worth another try later: arXiv down, a body it garbled, an expired token.
RETRYABLE = (UpstreamUnavailable, DocumentError, UpstreamError, UpstreamHTTPError)
T = TypeVar("T")


def quick_redis_settings(url: str | None) -> RedisSettings:
    """For web requests, which must not hang on a dead Redis: no reconnect attempts, short
    timeouts (callers turn the error into QueueUnavailable)."""
    return replace(
        redis_settings(url),
        conn_timeout=QUICK_TIMEOUT_S,
        conn_retries=0,
        retry=None,
        retry_on_timeout=False,
        retry_on_error=None,
    )


def redis_settings(url: str | None) -> RedisSettings:
    rs = RedisSettings.from_dsn(url or "redis://127.0.0.1:6379/0")
    # Ride out a Redis restart instead of dying: connecting is retried for about a minute,
    # and every command retries on connection errors with back-off.
    rs.conn_retries = 30
    rs.conn_retry_delay = 2
    rs.retry_on_timeout = True
    rs.retry_on_error = [redis.exceptions.ConnectionError, redis.exceptions.TimeoutError]
    rs.retry = AsyncRetry(redis.backoff.ExponentialBackoff(cap=5.0, base=0.2), 20)
    return rs


async def startup(ctx: dict[str, Any]) -> None:
    settings = ctx.get("settings") or get_settings()  # tests pass their own
    ctx["settings"] = settings
    ctx["engine"] = get_engine(settings)
    ctx["http"] = make_http_client(settings)
    limiter = RedisRateLimiter(
        ctx["redis"],
        min_interval=settings.arxiv_min_interval,
        max_connections=settings.arxiv_max_connections,
        lease_ttl=settings.arxiv_lease_ttl,
    )
    ctx["arxiv"] = ArxivClient(ctx["http"], limiter, settings)


async def shutdown(ctx: dict[str, Any]) -> None:
    if http := ctx.get("http"):
        await http.aclose()


async def _db(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Database work is synchronous: keep it off the event loop (and the heartbeat)."""
    return await asyncio.get_running_loop().run_in_executor(None, partial(fn, *args, **kwargs))


def _retry_or_raise(ctx: dict[str, Any], exc: BaseException) -> None:
    tries = ctx.get("job_try", 1)
    if isinstance(exc, RETRYABLE) and tries < MAX_TRIES:
        delay = min(ctx["settings"].fetch_retry_delay * 2 ** (tries - 1), 3600)
        log.warning(
            "job %s attempt %d failed (%s); retrying in %d s", ctx.get("job_id"), tries, exc, delay
        )
        raise Retry(defer=delay) from exc


def _begin_run(engine: Engine, **kw: Any) -> int:
    with engine.begin() as conn:
        return runs.start_run(conn, **kw)


def _fail_run(engine: Engine, run_id: int, error: str) -> None:
    with engine.begin() as conn:
        runs.finish_run(conn, run_id, status="failed", error=error[:2000])


def _write_listing(engine: Engine, run_id: int, category: str, page: ParsedPage) -> dict[str, Any]:
    """The feed's papers, its day check and the run record, in one transaction."""
    with engine.begin() as conn:
        counts = store.upsert_papers(conn, page.papers)
        feed_count = sum(1 for p in page.papers for a in p.announcements if a.category == category)
        stored = runs.stored_count(conn, category, page.day) if page.day else 0
        if page.day:
            runs.record_day_check(
                conn, category=category, day=page.day, feed_count=feed_count, stored_count=stored
            )
        _finish_ok(conn, run_id, page, counts)
    return {
        "day": page.day.isoformat() if page.day else None,
        "fetched": len(page.papers),
        "inserted": counts.inserted,
        "updated": counts.updated,
        "feed_count": feed_count,
        "stored_count": stored,
        "skipped": [str(e) for e in page.errors],
    }


async def fetch_listing(ctx: dict[str, Any], category: str) -> dict[str, Any]:
    """Today's announcements for a category from the rss.arxiv.org feed."""
    settings: Settings = ctx["settings"]
    engine: Engine = ctx["engine"]
    source = f"{settings.arxiv_rss_url}/rss/{category}"
    run_id = await _db(
        _begin_run, engine, kind="rss", source=source, category=category, job_id=ctx.get("job_id")
    )
    try:
        page = await ctx["arxiv"].rss([category])
    except Exception as exc:
        await _db(_fail_run, engine, run_id, f"{type(exc).__name__}: {exc}")
        _retry_or_raise(ctx, exc)
        raise
    result = await _db(_write_listing, engine, run_id, category, page)
    if page.day and result["stored_count"]:
        result["summaries_queued"] = await _queue_summaries(ctx, page.day, category, result)
        result["thumbnails_queued"] = await _queue_thumbnails(ctx, page.day, category, result)
    return result


async def _queue_summaries(
    ctx: dict[str, Any], day: date, category: str, result: dict[str, Any]
) -> bool:
    """Ask the ML pool for the day's TL;DRs (by function name: no ML code is imported here).
    The list is stored already, so a failure here is logged, not retried: `papershelf
    reindex --summaries` catches up."""
    # Imported here: workers.summaries builds on this module's JobRequest.
    from workers import summaries

    settings: Settings = ctx["settings"]
    try:
        if not await summaries.ml_pool_enabled(ctx["redis"], settings):
            return False
        request = summaries.listing_request(day, category, stored=result["stored_count"])
        return await submit(ctx["redis"], settings, request) is not None
    except (redis.exceptions.RedisError, OSError) as exc:
        log.warning("could not queue the TL;DRs of %s %s: %s", category, day, exc)
        return False


async def _queue_thumbnails(
    ctx: dict[str, Any], day: date, category: str, result: dict[str, Any]
) -> bool:
    """Ask the ML pool for the day's thumbnails, as for its TL;DRs (`papershelf reindex
    --thumbnails` catches up on a failure)."""
    from workers import pictures

    settings: Settings = ctx["settings"]
    try:
        if not await pictures.thumbnails_enabled(ctx["redis"], settings):
            return False
        request = pictures.listing_request(day, category, stored=result["stored_count"])
        return await submit(ctx["redis"], settings, request) is not None
    except (redis.exceptions.RedisError, OSError) as exc:
        log.warning("could not queue the thumbnails of %s %s: %s", category, day, exc)
        return False


def _finish_ok(conn: Connection, run_id: int, page: ParsedPage, counts: store.UpsertCounts) -> None:
    runs.finish_run(
        conn,
        run_id,
        status="ok",
        fetched=len(page.papers),
        inserted=counts.inserted,
        updated=counts.updated,
        unchanged=counts.unchanged,
        announcements=counts.announcements,
    )


def _write_papers(engine: Engine, run_id: int, page: ParsedPage) -> dict[str, Any]:
    with engine.begin() as conn:
        counts = store.upsert_papers(conn, page.papers)
        _finish_ok(conn, run_id, page, counts)
    return {"fetched": len(page.papers), "inserted": counts.inserted, "updated": counts.updated}


async def fetch_ids(ctx: dict[str, Any], ids: list[str]) -> dict[str, Any]:
    """Fetch (or complete) papers by id through the query API."""
    settings: Settings = ctx["settings"]
    engine: Engine = ctx["engine"]
    keys = sorted({parse_arxiv_id(i)[0] for i in ids})
    run_id = await _db(
        _begin_run, engine, kind="ids", source=settings.arxiv_api_url, job_id=ctx.get("job_id")
    )
    try:
        page = await ctx["arxiv"].query_ids(keys)
    except Exception as exc:
        await _db(_fail_run, engine, run_id, f"{type(exc).__name__}: {exc}")
        _retry_or_raise(ctx, exc)
        raise
    result = await _db(_write_papers, engine, run_id, page)
    result["missing"] = sorted(set(keys) - {p.arxiv_id for p in page.papers})
    return result


def harvest_key(set_spec: str, date_from: str, date_until: str) -> str:
    return runs.harvest_key(set_spec, date.fromisoformat(date_from), date.fromisoformat(date_until))


def _load_state(
    engine: Engine, key: str, set_spec: str, d_from: date, d_until: date
) -> runs.HarvestState:
    with engine.begin() as conn:
        state = runs.get_harvest(conn, key)
        if state is None:
            state = runs.save_harvest(
                conn,
                runs.HarvestState(key=key, set_spec=set_spec, date_from=d_from, date_until=d_until),
            )
        return state


def _write_harvest_page(engine: Engine, state: runs.HarvestState, page: ParsedPage) -> None:
    """One OAI page and the token that follows it, committed together: a crash between
    pages resumes from exactly here."""
    with engine.begin() as conn:
        store.upsert_papers(conn, page.papers)
        state.resumption_token = page.resumption_token
        state.cursor = page.start
        state.complete_list_size = page.total
        state.harvested += len(page.papers)
        state.done = page.resumption_token is None
        runs.save_harvest(conn, state)


async def backfill(
    ctx: dict[str, Any], set_spec: str, date_from: str, date_until: str
) -> dict[str, Any]:
    """Harvest a set over a date range through OAI-PMH, restartable after a crash."""
    engine: Engine = ctx["engine"]
    settings: Settings = ctx["settings"]
    d_from, d_until = date.fromisoformat(date_from), date.fromisoformat(date_until)
    key = harvest_key(set_spec, date_from, date_until)
    state = await _db(_load_state, engine, key, set_spec, d_from, d_until)
    if state.done:
        return {"key": key, "harvested": state.harvested, "done": True}
    run_id = await _db(
        _begin_run,
        engine,
        kind="oai-backfill",
        source=settings.arxiv_oai_url,
        category=set_spec,
        job_id=ctx.get("job_id"),
    )
    pages = fetched = 0
    try:
        while not state.done and pages < settings.fetch_pages_per_job:
            try:
                page = await ctx["arxiv"].list_records(
                    set_spec=set_spec, from_=d_from, until=d_until, token=state.resumption_token
                )
            except UpstreamError as exc:
                if exc.code != "badResumptionToken" or state.resumption_token is None:
                    raise
                # Tokens expire daily; upserts are idempotent, so starting over is safe.
                log.warning("harvest %s: %s; restarting the list", key, exc)
                state.resumption_token = None
                continue
            await _db(_write_harvest_page, engine, state, page)
            pages += 1
            fetched += len(page.papers)
    except Exception as exc:
        await _db(_fail_run, engine, run_id, f"{type(exc).__name__}: {exc}")
        _retry_or_raise(ctx, exc)
        raise

    def finish() -> None:
        with engine.begin() as conn:
            runs.finish_run(conn, run_id, status="ok", fetched=fetched)

    await _db(finish)
    if not state.done:
        # Continue in a fresh job: each stays well inside the job timeout, so a worker
        # killed mid-harvest loses at most one job's time before another resumes it.
        await ctx["redis"].enqueue_job(
            "backfill",
            set_spec,
            date_from,
            date_until,
            _job_id=scoped_job_id(settings, f"{key}:after:{state.harvested}"),
            _queue_name=settings.fetch_queue,
        )
    return {"key": key, "pages": pages, "harvested": state.harvested, "done": state.done}


def oai_set(category: str) -> str:
    """The OAI-PMH set of a category: `cs.AI` → `cs:cs:AI`, `hep-th` → `physics:hep-th`."""
    tax = get_taxonomy()
    cat = tax.category(tax.canonical(category) or category)
    if cat is None:
        raise ValueError(f"unknown category {category!r}")
    group = cat.group.removeprefix("grp_")
    if "." in cat.id:
        archive, sub = cat.id.split(".", 1)
        return f"{group}:{archive}:{sub}"
    return f"{group}:{cat.id}"


def _arrived(engine: Engine, category: str, day: date) -> tuple[bool, bool]:
    """Whether the day's list is stored, and whether its feed was fetched since it was
    announced (an empty weekend feed counts: polling it again would change nothing)."""
    announced = announcement_at(day)
    with engine.connect() as conn:
        tried = any(
            r["category"] == category and r["status"] == "ok" and r["started_at"] >= announced
            for r in runs.recent_runs(conn, limit=200)
        )
        return runs.stored_count(conn, category, day) > 0, tried


async def poll_announcements(ctx: dict[str, Any]) -> dict[str, Any]:
    """Cron: after each announcement, poll every followed category until its list arrived."""
    settings: Settings = ctx["settings"]
    holidays = parse_holidays(settings.arxiv_holidays)
    now = datetime.now(UTC)
    day = latest_listing_day(now, holidays)
    enqueued = []
    for category in settings.categories:
        arrived, checked = await _db(_arrived, ctx["engine"], category, day)
        # Outside the polling window a list that was never fetched is still fetched once
        # (a fresh install, or a worker that was down through the announcement).
        if arrived or not (poll_due(now, day, holidays, arrived=False) or not checked):
            continue
        slot = int(now.timestamp() // 600)  # one poll per category per 10 minutes at most
        job = await ctx["redis"].enqueue_job(
            "fetch_listing",
            category,
            _job_id=scoped_job_id(settings, f"rss:{category}:{day}:{slot}"),
            _queue_name=settings.fetch_queue,
        )
        if job is not None:
            enqueued.append(category)
    return {"day": day.isoformat(), "enqueued": enqueued}


async def harvest_recent(ctx: dict[str, Any]) -> dict[str, Any]:
    """Cron, daily: an incremental OAI-PMH harvest of the last few days per followed archive
    (catches replacements and anything the feeds missed)."""
    settings: Settings = ctx["settings"]
    today = datetime.now(UTC).date()
    d_from, d_until = (today - timedelta(days=3)).isoformat(), today.isoformat()
    sets = sorted({oai_set(c) for c in settings.categories})
    for set_spec in sets:
        await ctx["redis"].enqueue_job(
            "backfill",
            set_spec,
            d_from,
            d_until,
            _job_id=scoped_job_id(settings, harvest_key(set_spec, d_from, d_until)),
            _queue_name=settings.fetch_queue,
        )
    return {"sets": sets, "from": d_from, "until": d_until}


Pool = Literal["fetch", "ml"]


def queue_name(settings: Settings, pool: Pool = "fetch") -> str:
    return settings.ml_queue if pool == "ml" else settings.fetch_queue


def scoped_job_id(settings: Settings, job_id: str, pool: Pool = "fetch") -> str:
    """arq job ids are global in a Redis database; prefixing the queue keeps deployments (and
    test runs) that share one Redis from swallowing each other's jobs."""
    return f"{queue_name(settings, pool)}:{job_id}"


class ResilientWorker(Worker):
    """An arq worker that rides out a Redis restart: arq claims jobs with a WATCH pipeline,
    which redis-py does not retry, so a dropped connection would end the poll loop. Here a
    failed poll is logged and retried after a pause; signals and shutdown stay arq's own."""

    async def _poll_iteration(self) -> None:
        try:
            await super()._poll_iteration()
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as exc:
            log.warning("Redis unavailable (%s); polling again in 2 s", exc)
            await asyncio.sleep(2)


def ids_job_id(ids: list[str]) -> str:
    digest = hashlib.sha1(",".join(sorted(ids)).encode()).hexdigest()[:16]
    return f"ids:{digest}"


@dataclass(frozen=True, slots=True)
class JobRequest:
    """A job to queue by function name (so the queuer never imports the pool's code), from
    outside a worker (CLI, admin API, a page) or from another pool's job."""

    function: str
    args: tuple[Any, ...]
    job_id: str  # before `scoped_job_id`
    pool: Pool = "fetch"
    # More `enqueue_job` keywords (`_defer_until`, `_expires`): the ML pool's priorities.
    options: Mapping[str, Any] = field(default_factory=dict)


async def submit(redis: ArqRedis, settings: Settings, request: JobRequest) -> Job | None:
    """Queue `request` through an open arq pool; None when the same job is already queued."""
    return await redis.enqueue_job(
        request.function,
        *request.args,
        _job_id=scoped_job_id(settings, request.job_id, request.pool),
        _queue_name=queue_name(settings, request.pool),
        **request.options,
    )


def listing_request(category: str) -> JobRequest:
    # One id per minute: a manual re-fetch collapses with itself, not with yesterday's.
    return JobRequest(
        "fetch_listing", (category,), f"rss:{category}:manual:{int(time.time() // 60)}"
    )


def ids_request(ids: list[str]) -> JobRequest:
    keys = sorted(set(ids))
    return JobRequest("fetch_ids", (keys,), ids_job_id(keys))


def backfill_request(set_spec: str, date_from: date, date_until: date) -> JobRequest:
    args = (set_spec, date_from.isoformat(), date_until.isoformat())
    return JobRequest("backfill", args, harvest_key(*args))


class QueueUnavailable(RuntimeError):
    """No Redis is configured, or it did not answer."""


async def enqueue(settings: Settings, request: JobRequest, *, quick: bool = False) -> bool:
    """Queue `request` on its pool; False when the same job is already queued.
    `quick` is for web requests, which must not hang on a dead Redis: no reconnect attempts,
    short timeouts. Raises QueueUnavailable instead of a driver error."""
    if not settings.redis_url:
        raise QueueUnavailable("no Redis is configured (PAPERSHELF_REDIS_URL)")
    rs = quick_redis_settings(settings.redis_url) if quick else redis_settings(settings.redis_url)
    try:
        pool = await asyncio.wait_for(create_pool(rs), QUICK_TIMEOUT_S + 1 if quick else None)
        try:
            job = await asyncio.wait_for(
                submit(pool, settings, request), QUICK_TIMEOUT_S if quick else None
            )
        finally:
            await pool.aclose()
    except (redis.exceptions.RedisError, OSError, TimeoutError) as exc:
        raise QueueUnavailable(f"Redis is unreachable ({type(exc).__name__})") from exc
    return job is not None


class WorkerSettings:
    """`papershelf worker --pool fetch` (or `arq workers.fetch.WorkerSettings`)."""

    functions: ClassVar = [fetch_listing, fetch_ids, backfill]
    # Every 5 minutes; arq gives each cron run a unique job id, so several workers
    # scheduling the same tick run it once.
    cron_jobs: ClassVar = [
        cron(poll_announcements, minute=set(range(0, 60, 5)), run_at_startup=True),
        cron(harvest_recent, hour={4}, minute={30}),  # 23:30/00:30 US-Eastern
    ]
    queue_name = get_settings().fetch_queue
    on_startup = startup
    on_shutdown = shutdown
    max_tries = MAX_TRIES
    job_timeout = get_settings().fetch_job_timeout
    keep_result = 60  # short: a kept result blocks its job id from running again
    max_jobs = 4
    health_check_interval = 10
    # One health key per replica, so `papershelf status` can list live workers.
    health_check_key = f"{queue_name}:health:{socket.gethostname()}:{os.getpid()}"
    job_completion_wait = 30  # on SIGTERM, let a running job finish (bounded)
    redis_settings = redis_settings(get_settings().redis_url)
