"""The fetch pool: arq jobs that keep the store up to date from arXiv.

Every job is idempotent (upserts) and deduplicated by a deterministic `_job_id`. Each
page from upstream is written in one transaction together with its bookkeeping, so a
killed worker leaves either the whole page or nothing, and a restarted back-fill resumes
from the last committed resumption token. Transient upstream failures are retried inside
the job (workers.arxiv's client); a malformed response or an exhausted upstream fails the
attempt, and arq retries the job later with a growing delay, up to `max_tries`
(workers.pool.retry_job).

`papershelf worker --pool fetch` (or `arq workers.fetch.WorkerSettings`) runs it with
`worker_settings(settings)`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import Any, TypeVar

import redis.exceptions
from arq import Retry, cron
from arq.connections import ArqRedis
from arq.worker import func
from sqlalchemy import Connection, Engine

from app import alerts
from app.artifacts import faqs
from app.db import runs, store
from app.ingest.ids import parse_arxiv_id
from app.ingest.records import DocumentError, ParsedPage, UpstreamError
from app.jobs import alerts as alert_jobs
from app.jobs import embeddings, ondemand, pictures, summaries
from app.jobs import faq as faq_jobs
from app.jobs.fetch import harvest_key, oai_set
from app.jobs.queueing import JobRequest, scoped_job_id, submit
from app.schedule import announcement_at, latest_listing_day, parse_holidays, poll_due
from app.search import fulltext
from app.settings import Settings, get_settings
from workers import webhooks
from workers.arxiv import UpstreamHTTPError, UpstreamUnavailable, arxiv_client, make_http_client
from workers.pool import pool_settings, retry_job, start_context

log = logging.getLogger(__name__)

MAX_TRIES = 5
ARQ_CLAIM_GRACE_S = 10  # arq's in-progress claim outlives the job timeout by this much
CLOCK_SLACK_S = 60
# Failures worth another try later: arXiv down, a body it garbled, an expired token.
RETRYABLE = (UpstreamUnavailable, DocumentError, UpstreamError, UpstreamHTTPError)
T = TypeVar("T")


async def startup(ctx: dict[str, Any]) -> None:
    settings = start_context(ctx)
    ctx["http"] = make_http_client(settings)
    ctx["arxiv"] = arxiv_client(ctx["http"], ctx["redis"], settings)
    abandoned = await _db(_abandon_stale, ctx["engine"], settings)
    if abandoned:
        log.warning("marked %d fetch run(s) abandoned: their jobs died mid-run", abandoned)


async def shutdown(ctx: dict[str, Any]) -> None:
    if http := ctx.get("http"):
        await http.aclose()


async def _db(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Database work is synchronous: keep it off the event loop (and the heartbeat)."""
    return await asyncio.get_running_loop().run_in_executor(None, partial(fn, *args, **kwargs))


def _retry_or_raise(ctx: dict[str, Any], exc: BaseException) -> None:
    if isinstance(exc, RETRYABLE):
        retry_job(ctx, exc, max_tries=MAX_TRIES, first_delay=ctx["settings"].fetch_retry_delay)


def _stale_before(settings: Settings) -> datetime:
    """Runs started before this cannot be live: arq cancels a job at its timeout and gives up
    its claim ARQ_CLAIM_GRACE_S later; CLOCK_SLACK_S absorbs clock skew between machines."""
    after = settings.fetch_job_timeout + ARQ_CLAIM_GRACE_S + CLOCK_SLACK_S
    return datetime.now(UTC) - timedelta(seconds=after)


def _abandon_stale(engine: Engine, settings: Settings, job_id: str | None = None) -> int:
    with engine.begin() as conn:
        return runs.abandon_stale_runs(conn, started_before=_stale_before(settings), job_id=job_id)


def _begin_run(engine: Engine, settings: Settings, **kw: Any) -> int:
    """Record a run's start. A killed job's row would say `running` forever: rows that no
    live job can own (an earlier attempt of this very job, or rows older than any job may
    run) are marked abandoned first, in the same transaction. Worker start-up does the
    same for jobs that never run again (out of tries, cancelled at their timeout)."""
    with engine.begin() as conn:
        runs.abandon_stale_runs(
            conn, started_before=_stale_before(settings), job_id=kw.get("job_id")
        )
        return runs.start_run(conn, **kw)


def _follow_search_index(settings: Settings, engine: Engine) -> None:
    """Index what was just stored, so the first search after a fetch finds it without
    paying for it. Never fails the fetch: a search catches the index up by itself."""
    try:
        fulltext.sync(settings, engine, wait=False)
    except Exception:
        log.exception("search index: sync after a fetch failed; searches will catch up")


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
        _begin_run,
        engine,
        settings,
        kind="rss",
        source=source,
        category=category,
        job_id=ctx.get("job_id"),
    )
    try:
        page = await ctx["arxiv"].rss([category])
    except Exception as exc:
        await _db(_fail_run, engine, run_id, f"{type(exc).__name__}: {exc}")
        _retry_or_raise(ctx, exc)
        raise
    result = await _db(_write_listing, engine, run_id, category, page)
    await _db(_follow_search_index, settings, engine)
    if page.day and result["stored_count"]:
        # Embeddings first: they are cheap, and [Related] and "for you" read them.
        for key, what, enabled, request_for in (
            (
                "embeddings_queued",
                "embeddings",
                embeddings.embeddings_enabled,
                embeddings.listing_request,
            ),
            ("summaries_queued", "TL;DRs", summaries.ml_pool_enabled, summaries.listing_request),
            (
                "thumbnails_queued",
                "thumbnails",
                pictures.thumbnails_enabled,
                pictures.listing_request,
            ),
        ):
            result[key] = await _queue_day_job(
                ctx, what, enabled, request_for, page.day, category, result
            )
        result["alerts_queued"] = await _queue_alert_matching(ctx, category, page.day)
        result["faqs_queued"] = await _queue_faq_regenerations(ctx, category, page.day)
    return result


def _faq_keys(engine: Engine, settings: Settings, category: str, day: date) -> list[faqs.FaqKey]:
    with engine.connect() as conn:
        return faqs.regeneration_keys(conn, day, category, settings.llm_model)


async def _queue_faq_regenerations(ctx: dict[str, Any], category: str, day: date) -> int:
    """Ask the LLM pool to write the FAQ again for the day's new versions of papers whose
    older version had one (a reader asked for it once), once per such language, behind
    readers' requests and at most `faq_regenerate_per_day` a day (app.jobs.faq). Logged,
    not retried, when Redis is gone: a reader's request still writes it."""
    settings: Settings = ctx["settings"]
    if not settings.llm_base_url or settings.faq_regenerate_per_day <= 0:
        return 0
    keys = await _db(_faq_keys, ctx["engine"], settings, category, day)
    if not keys:
        return 0
    try:
        done = await faq_jobs.queue_regenerations(ctx["redis"], settings, day, keys)
    except (redis.exceptions.RedisError, OSError) as exc:
        log.warning("could not queue the FAQs of %s %s again: %s", category, day, exc)
        return 0
    if done.cut:
        log.warning(
            "FAQs of %s %s for new versions: the cap of %d a day "
            "(PAPERSHELF_FAQ_REGENERATE_PER_DAY) left %d of %d unqueued; readers can ask for them",
            category,
            day,
            settings.faq_regenerate_per_day,
            done.cut,
            len(keys),
        )
    return done.queued


async def _queue_alert_matching(ctx: dict[str, Any], category: str, day: date) -> bool:
    """Match the stored day against the saved-search alerts, in a job of its own (a slow
    webhook never holds up the fetch). Logged, not retried, when Redis is gone: the next
    fetch of the day queues it again, and a day fires once (app.alerts)."""
    if not await _db(_any_alerts, ctx["engine"]):
        return False
    try:
        request = alert_jobs.match_request(category, day)
        return await submit(ctx["redis"], ctx["settings"], request) is not None
    except (redis.exceptions.RedisError, OSError) as exc:
        log.warning("could not queue the alert matching of %s %s: %s", category, day, exc)
        return False


def _any_alerts(engine: Engine) -> bool:
    with engine.connect() as conn:
        return alerts.any_alerts(conn)


def _record_matches(engine: Engine, category: str, day: date) -> list[int]:
    with engine.begin() as conn:
        return alerts.record_matches(conn, category, day)


async def match_alerts(ctx: dict[str, Any], category: str, day: str) -> dict[str, Any]:
    """Record every alert's new matches in a fetched (category, day), then queue one
    delivery job per unsent delivery."""
    pending = await _db(_record_matches, ctx["engine"], category, date.fromisoformat(day))
    for delivery_id in pending:
        await submit(ctx["redis"], ctx["settings"], alert_jobs.delivery_request(delivery_id))
    return {"category": category, "day": day, "deliveries": pending}


def _claim_retries(engine: Engine) -> list[tuple[int, int]]:
    with engine.begin() as conn:
        return alerts.claim_due_retries(conn)


def _reschedule(engine: Engine, delivery_ids: list[int]) -> None:
    with engine.begin() as conn:
        alerts.reschedule(conn, delivery_ids, datetime.now(UTC))


async def queue_deliveries(ctx: dict[str, Any], reopened: list[tuple[int, int]]) -> list[int]:
    """Queue one round of each reopened delivery; those Redis would not take go back to
    failed, due now, for the next retry tick. Returns the ids queued."""

    async def send(request: JobRequest) -> object:
        return await submit(ctx["redis"], ctx["settings"], request)

    queued, left = await alert_jobs.queue_rounds(send, reopened)
    if left:
        log.warning("could not queue alert deliveries %s: Redis refused", left)
        await _db(_reschedule, ctx["engine"], left)
    return queued


async def retry_alert_deliveries(ctx: dict[str, Any]) -> dict[str, Any]:
    """Every 5 minutes: queue the failed alert deliveries that are due again."""
    engine: Engine = ctx["engine"]
    if not await _db(_any_alerts, engine):
        return {"queued": []}
    return {"queued": await queue_deliveries(ctx, await _db(_claim_retries, engine))}


def _load_delivery(
    engine: Engine, delivery_id: int, sent_at: datetime, site_url: str | None
) -> tuple[alerts.Delivery, bytes] | None:
    with engine.connect() as conn:
        delivery = alerts.get_delivery(conn, delivery_id)
        if delivery is None or delivery.status != "pending":
            return None
        return delivery, alerts.payload(conn, delivery, sent_at=sent_at, site_url=site_url)


def _mark_delivery(engine: Engine, delivery_id: int, **kw: Any) -> None:
    with engine.begin() as conn:
        alerts.mark_attempt(conn, delivery_id, **kw)


async def deliver_alert(ctx: dict[str, Any], delivery_id: int) -> dict[str, Any]:
    """POST one delivery, signed, with the upstream retry policy; a delivered (or failed)
    one is never sent again. A webhook host that became unsafe fails the delivery."""
    settings: Settings = ctx["settings"]
    engine: Engine = ctx["engine"]
    sent_at = datetime.now(UTC)
    loaded = await _db(_load_delivery, engine, delivery_id, sent_at, settings.public_url)
    if loaded is None:
        return {"delivery": delivery_id, "status": "already-done"}
    delivery, body = loaded
    try:
        destination = await webhooks.check_destination(delivery.alert.webhook_url, settings)
        async with webhooks.make_webhook_client(settings) as http:
            sent = await webhooks.post_signed(
                http, destination, body, secret=delivery.secret, sent_at=sent_at, settings=settings
            )
    except (ValueError, webhooks.DeliveryFailed) as exc:
        attempts = exc.attempts if isinstance(exc, webhooks.DeliveryFailed) else 0
        await _db(_mark_delivery, engine, delivery_id, ok=False, attempts=attempts, error=str(exc))
        log.warning("alert delivery %d failed: %s", delivery_id, exc)
        return {"delivery": delivery_id, "status": "failed", "error": str(exc)}
    await _db(_mark_delivery, engine, delivery_id, ok=True, attempts=sent.attempts)
    return {"delivery": delivery_id, "status": "delivered", "attempts": sent.attempts}


async def _queue_day_job(
    ctx: dict[str, Any],
    what: str,
    enabled: Callable[[ArqRedis, Settings], Awaitable[bool]],
    request_for: Callable[..., JobRequest],
    day: date,
    category: str,
    result: dict[str, Any],
) -> bool:
    """Ask the ML pool for one artifact of the day's papers (by function name: no ML code is
    imported here), when a worker can take the job. The list is stored already, so a failure
    here is logged, not retried: its `papershelf reindex` back-fill catches up."""
    settings: Settings = ctx["settings"]
    try:
        if not await enabled(ctx["redis"], settings):
            return False
        request = request_for(day, category, stored=result["stored_count"])
        return await submit(ctx["redis"], settings, request) is not None
    except (redis.exceptions.RedisError, OSError) as exc:
        log.warning("could not queue the %s of %s %s: %s", what, category, day, exc)
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
        _begin_run,
        engine,
        settings,
        kind="ids",
        source=settings.arxiv_api_url,
        job_id=ctx.get("job_id"),
    )
    try:
        page = await ctx["arxiv"].query_ids(keys)
    except Exception as exc:
        await _db(_fail_run, engine, run_id, f"{type(exc).__name__}: {exc}")
        _retry_or_raise(ctx, exc)
        raise
    result = await _db(_write_papers, engine, run_id, page)
    await _db(_follow_search_index, settings, engine)
    result["missing"] = sorted(set(keys) - {p.arxiv_id for p in page.papers})
    return result


async def fetch_ondemand(ctx: dict[str, Any]) -> dict[str, Any]:
    """Look up the ids readers asked for (`app.jobs.ondemand`): one batch, in one request.
    Scheduled fetches go first: while any other fetch job is due or running, this job puts
    itself back on the queue for later. A failed look-up is not retried (a reader's next
    visit asks again); the next batch, if any, is a job of its own."""
    settings: Settings = ctx["settings"]
    engine: Engine = ctx["engine"]
    redis = ctx["redis"]
    if await ondemand.scheduled_work_due(redis, settings):
        raise Retry(defer=settings.ondemand_delay)
    ids = await ondemand.take_batch(redis, settings)
    if not ids:
        return {"fetched": 0}
    run_id = await _db(
        _begin_run,
        engine,
        settings,
        kind="ondemand",
        source=settings.arxiv_api_url,
        job_id=ctx.get("job_id"),
    )
    try:
        page = await ctx["arxiv"].query_ids(ids)
    except asyncio.CancelledError:  # shutdown: the batch waits for the job's next run
        await asyncio.shield(ondemand.put_back(redis, settings, ids))
        raise
    except Exception as exc:
        await _db(_fail_run, engine, run_id, f"{type(exc).__name__}: {exc}")
        await ondemand.forget(redis, settings, ids)
        log.warning("on-demand look-up of %d id(s) failed: %s", len(ids), exc)
        return {"asked": ids, "error": f"{type(exc).__name__}: {exc}"}
    result = await _db(_write_papers, engine, run_id, page)
    await _db(_follow_search_index, settings, engine)
    found = {p.arxiv_id for p in page.papers}
    await ondemand.answered(redis, settings, found, set(ids) - found)
    result["asked"] = ids
    result["missing"] = sorted(set(ids) - found)
    result["next"] = await ondemand.next_drain(redis, settings)
    return result


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


def _write_harvest_page(
    engine: Engine, run_id: int, state: runs.HarvestState, page: ParsedPage
) -> None:
    """One OAI page, the token that follows it and the page's counts in the run record,
    committed together: a crash between pages resumes from exactly here, and the killed
    run's row still tells what it stored."""
    with engine.begin() as conn:
        counts = store.upsert_papers(conn, page.papers)
        runs.add_to_run(
            conn,
            run_id,
            fetched=len(page.papers),
            inserted=counts.inserted,
            updated=counts.updated,
            unchanged=counts.unchanged,
            announcements=counts.announcements,
        )
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
        settings,
        kind="oai-backfill",
        source=settings.arxiv_oai_url,
        category=set_spec,
        job_id=ctx.get("job_id"),
    )
    pages = 0
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
            await _db(_write_harvest_page, engine, run_id, state, page)
            await _db(_follow_search_index, settings, engine)
            pages += 1
    except Exception as exc:
        await _db(_fail_run, engine, run_id, f"{type(exc).__name__}: {exc}")
        _retry_or_raise(ctx, exc)
        raise

    def finish() -> None:
        with engine.begin() as conn:
            runs.finish_run(conn, run_id, status="ok")  # the counts are in, page by page

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


# An on-demand look-up puts itself back while scheduled work runs (arq counts that as a try),
# and keeps no result, so the next generation's job id is never blocked by a finished one.
ONDEMAND_MAX_TRIES = 10_000
FUNCTIONS: list[Any] = [
    fetch_listing,
    fetch_ids,
    backfill,
    func(fetch_ondemand, name=ondemand.FUNCTION, keep_result=0, max_tries=ONDEMAND_MAX_TRIES),
    func(match_alerts, name=alert_jobs.MATCH_FUNCTION),
    # One round per job (its in-job retries); a failed round is recorded with when it is due
    # again, and `retry_alert_deliveries` queues the next one.
    func(deliver_alert, name=alert_jobs.DELIVER_FUNCTION, max_tries=1),
]
# Every 5 minutes; arq gives each cron run a unique job id, so several workers scheduling the
# same tick run it once.
CRON_JOBS = [
    cron(poll_announcements, minute=set(range(0, 60, 5)), run_at_startup=True),
    cron(harvest_recent, hour={4}, minute={30}),  # 23:30/00:30 US-Eastern
    cron(retry_alert_deliveries, minute=set(range(2, 60, 5))),
]


def worker_settings(settings: Settings) -> dict[str, Any]:
    """The arq settings of `papershelf worker --pool fetch`."""
    return pool_settings(
        settings,
        queue_name=settings.fetch_queue,
        functions=FUNCTIONS,
        cron_jobs=CRON_JOBS,
        on_startup=startup,
        on_shutdown=shutdown,
        max_tries=MAX_TRIES,
        job_timeout=settings.fetch_job_timeout,
        keep_result=60,  # short: a kept result blocks its job id from running again
        max_jobs=4,
    )


def __getattr__(name: str) -> Any:
    """`arq workers.fetch.WorkerSettings`: the settings, read from the environment when arq
    asks for them rather than at import."""
    if name == "WorkerSettings":
        return worker_settings(get_settings())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
