"""FAQ generations on the LLM pool (`workers/llm.py`), queued by function name: one job per
cached answer's key (concurrent requests share it), where it stands, and the Redis stream
the job writes its progress to.

Job state is read through arq's `Job` API; the queue position is the job's rank in the
queue's sorted set (arq ranks queued jobs by when they are due).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, Literal, cast

from arq.connections import ArqRedis
from arq.constants import job_key_prefix
from arq.jobs import Job, JobStatus

from app.artifacts.faqs import JOB_FUNCTION, FaqKey
from app.jobs.connections import QUICK_TIMEOUT_S, REDIS_ERRORS, QueueUnavailable
from app.settings import Settings

# Deletes a key's stream when no job exists for it: what is there is from a finished or
# dead run, and a reader of the run about to be queued must not replay its end.
_CLEAR_STALE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return redis.call('DEL', KEYS[2]) end
return 0
"""

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


async def request_generation(pool: ArqRedis, settings: Settings, key: FaqKey) -> JobState:
    """Queue the key's job unless one is queued or running (its id is the key's)."""
    job_id = key.job_id(settings.llm_queue)
    stream = key.stream_key(settings.llm_queue)
    # redis-py types its commands for the sync and async clients at once; ours awaits.
    clear = cast("Awaitable[Any]", pool.eval(_CLEAR_STALE, 2, job_key_prefix + job_id, stream))
    await asyncio.wait_for(clear, QUICK_TIMEOUT_S)
    await asyncio.wait_for(
        pool.enqueue_job(
            JOB_FUNCTION, key.arxiv_id, key.lang, _job_id=job_id, _queue_name=settings.llm_queue
        ),
        QUICK_TIMEOUT_S,
    )
    state = await job_state(pool, settings, key)
    if state.state in ("failed", "none"):
        # Finished between the two calls (a worker was quick): the row is there now.
        return JobState("running")
    return state


async def read_events(
    pool: ArqRedis, settings: Settings, key: FaqKey, after: str, *, block_ms: int | None = None
) -> list[Entry]:
    """The key's stream entries after id `after` (at most 1000), waiting up to `block_ms`
    for the first when there are none yet."""
    stream = key.stream_key(settings.llm_queue)
    reply = await pool.xread({stream: after}, count=1000, block=block_ms)
    return list(reply[0][1]) if reply else []
