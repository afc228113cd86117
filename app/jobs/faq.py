"""FAQ generations on the LLM pool (`workers/llm.py`), queued by function name: one job per
cached answer's key (concurrent requests share it), where it stands, and the Redis stream
the job writes its progress to.

Job state is read through arq's `Job` API; the queue position is the job's rank in the
queue's sorted set (arq ranks queued jobs by when they are due).

Priorities: arq takes the due job with the lowest score (its due time) first. A reader's
request is queued as due `READER_HEAD_START` ago, ahead of everything else; the answers a
fetched day asks to be written again for new versions (`queue_regenerations`) as due
`DAY_HEAD_START` ago, behind readers but ahead of any job queued as due now. Within a tier
jobs keep the order they were queued in. A reader asking for an answer already queued for
the day moves its job up to the readers' tier.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal, cast

from arq.connections import ArqRedis
from arq.constants import job_key_prefix
from arq.jobs import Job, JobStatus
from redis.exceptions import ResponseError

from app.artifacts.faqs import JOB_FUNCTION, FaqKey
from app.jobs.connections import QUICK_TIMEOUT_S, REDIS_ERRORS, QueueUnavailable
from app.settings import Settings

# Deletes a key's stream when no job exists for it: what is there is from a finished or
# dead run, and a reader of the run about to be queued must not replay its end.
_CLEAR_STALE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return redis.call('DEL', KEYS[2]) end
return 0
"""

# Takes one from a day's regeneration budget (KEYS[1]: the day's counter) when any is left:
# ARGV[1] the cap, ARGV[2] the counter's lifetime in seconds. Atomic, so the fetches of
# several categories of one day share the cap.
_TAKE_ONE = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
if used >= tonumber(ARGV[1]) then return 0 end
redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
"""

READER_HEAD_START = timedelta(days=730)
DAY_HEAD_START = timedelta(days=365)
# A queued job no worker took expires: a reader's after a day (arq's default for a job due
# now), a day's regeneration after two (the next day's list has its own).
READER_EXPIRES = timedelta(days=1)
DAY_EXPIRES = timedelta(days=2)
# How long a day's regeneration count is kept (re-fetches of the day within it share it).
BUDGET_TTL = timedelta(days=7)

# What a request to the LLM queue raises when Redis is missing, dead or too slow.
UNAVAILABLE = (QueueUnavailable, *REDIS_ERRORS)

# A stream entry: (entry id, {field: value}) as redis-py returns it.
Entry = tuple[Any, dict[Any, Any]]


@dataclass(frozen=True, slots=True)
class JobState:
    state: Literal["queued", "running", "failed", "none"]
    position: int | None = None
    message: str | None = None  # why the last run failed
    has_stream: bool = False


def entry_fields(raw: dict[Any, Any]) -> tuple[str, dict[str, Any]]:
    """A stream entry's event name and its JSON data (an empty dict when garbled)."""

    def text(value: Any) -> str:
        return value.decode() if isinstance(value, bytes) else str(value)

    fields = {text(k): text(v) for k, v in raw.items()}
    try:
        data = json.loads(fields.get("data") or "{}")
    except ValueError:
        data = {}
    return fields.get("event", ""), data if isinstance(data, dict) else {}


async def job_state(pool: ArqRedis, settings: Settings, key: FaqKey) -> JobState:
    """Where a key's generation stands: queued (with the jobs ahead of it, running ones
    too), running, failed (its stream ended in an error) or none."""
    job_id = key.job_id(settings.llm_queue)
    job = Job(job_id, pool, _queue_name=settings.llm_queue)
    status = await asyncio.wait_for(job.status(), QUICK_TIMEOUT_S)
    async with pool.pipeline(transaction=False) as pipe:
        pipe.zrank(settings.llm_queue, job_id)
        pipe.xrevrange(key.stream_key(settings.llm_queue), count=1)
        rank, last = await asyncio.wait_for(pipe.execute(), QUICK_TIMEOUT_S)
    has_stream = bool(last)
    if status is JobStatus.in_progress:
        return JobState("running", has_stream=has_stream)
    if status in (JobStatus.queued, JobStatus.deferred):
        return JobState("queued", rank, has_stream=has_stream)
    if last:
        event, data = entry_fields(last[0][1])
        if event == "error":
            return JobState("failed", message=str(data.get("message", "")), has_stream=True)
    return JobState("none", has_stream=has_stream)


async def _enqueue(
    pool: ArqRedis, settings: Settings, key: FaqKey, head_start: timedelta, expires: timedelta
) -> bool:
    """Queue the key's job as due `head_start` ago; False when it is queued or running."""
    job_id = key.job_id(settings.llm_queue)
    stream = key.stream_key(settings.llm_queue)
    # redis-py types its commands for the sync and async clients at once; ours awaits.
    clear = cast("Awaitable[Any]", pool.eval(_CLEAR_STALE, 2, job_key_prefix + job_id, stream))
    await asyncio.wait_for(clear, QUICK_TIMEOUT_S)
    job = await asyncio.wait_for(
        pool.enqueue_job(
            JOB_FUNCTION,
            key.arxiv_id,
            key.lang,
            _job_id=job_id,
            _queue_name=settings.llm_queue,
            _defer_until=datetime.now(UTC) - head_start,
            _expires=expires,
        ),
        QUICK_TIMEOUT_S,
    )
    return job is not None


async def _move_up(pool: ArqRedis, settings: Settings, key: FaqKey) -> None:
    """A queued job a reader now waits for moves up to the readers' tier (never down)."""
    score = (datetime.now(UTC) - READER_HEAD_START).timestamp() * 1000
    job_id = key.job_id(settings.llm_queue)
    # A Redis before 6.2 has no LT: there the job keeps its place.
    with contextlib.suppress(ResponseError):
        await asyncio.wait_for(
            pool.zadd(settings.llm_queue, {job_id: score}, xx=True, lt=True), QUICK_TIMEOUT_S
        )


async def request_generation(pool: ArqRedis, settings: Settings, key: FaqKey) -> JobState:
    """Queue the key's job, ahead of every job but other readers', unless one is queued or
    running (its id is the key's; a queued one is moved up)."""
    if not await _enqueue(pool, settings, key, READER_HEAD_START, READER_EXPIRES):
        await _move_up(pool, settings, key)
    state = await job_state(pool, settings, key)
    if state.state in ("failed", "none"):
        # Finished between the two calls (a worker was quick): the row is there now.
        return JobState("running")
    return state


@dataclass(frozen=True, slots=True)
class Regenerations:
    queued: int  # jobs queued now
    joined: int  # already queued or running (a reader asked first)
    cut: int  # left out: the day's cap was reached


def budget_key(settings: Settings, day: date) -> str:
    return f"{settings.llm_queue}:faq-regenerations:{day.isoformat()}"


async def queue_regenerations(
    pool: ArqRedis, settings: Settings, day: date, keys: Sequence[FaqKey]
) -> Regenerations:
    """Queue the answers a fetched day asks to be written again (new versions of papers
    whose older version had one), in order, behind readers' requests and ahead of anything
    queued as due now; at most `settings.faq_regenerate_per_day` jobs per announcement day,
    every category and re-fetch of the day together. A job already queued or running for
    a key counts for nothing."""
    queued = joined = cut = 0
    budget = budget_key(settings, day)
    ttl = int(BUDGET_TTL.total_seconds())
    for key in keys:
        if await pool.exists(job_key_prefix + key.job_id(settings.llm_queue)):
            joined += 1
            continue
        take = cast(
            "Awaitable[Any]",
            pool.eval(_TAKE_ONE, 1, budget, str(settings.faq_regenerate_per_day), str(ttl)),
        )
        if not int(await take):
            cut += 1
        elif await _enqueue(pool, settings, key, DAY_HEAD_START, DAY_EXPIRES):
            queued += 1
        else:  # queued by a reader in between
            joined += 1
            await pool.decr(budget)  # given back: no new work was queued
    return Regenerations(queued, joined, cut)


async def read_events(
    pool: ArqRedis, settings: Settings, key: FaqKey, after: str, *, block_ms: int | None = None
) -> list[Entry]:
    """The key's stream entries after id `after` (at most 1000), waiting up to `block_ms`
    for the first when there are none yet."""
    stream = key.stream_key(settings.llm_queue)
    reply = await pool.xread({stream: after}, count=1000, block=block_ms)
    return list(reply[0][1]) if reply else []
