"""`JobRequest`: a job to queue on a pool by function name, and the two ways to queue one
(`submit` through an open pool, `enqueue` from outside any worker)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from arq import create_pool
from arq.connections import ArqRedis
from arq.jobs import Job

from app.jobs.connections import (
    NO_REDIS,
    QUICK_TIMEOUT_S,
    REDIS_ERRORS,
    QueueUnavailable,
    quick_redis_settings,
    redis_settings,
)
from app.settings import Settings

Pool = Literal["fetch", "ml"]


def queue_name(settings: Settings, pool: Pool = "fetch") -> str:
    return settings.ml_queue if pool == "ml" else settings.fetch_queue


def scoped_job_id(settings: Settings, job_id: str, pool: Pool = "fetch") -> str:
    """arq job ids are global in a Redis database; prefixing the queue keeps deployments (and
    test runs) that share one Redis from swallowing each other's jobs."""
    return f"{queue_name(settings, pool)}:{job_id}"


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


async def enqueue(settings: Settings, request: JobRequest, *, quick: bool = False) -> bool:
    """Queue `request` on its pool; False when the same job is already queued.
    `quick` is for web requests, which must not hang on a dead Redis: no reconnect attempts,
    short timeouts. Raises QueueUnavailable instead of a driver error."""
    if not settings.redis_url:
        raise QueueUnavailable(NO_REDIS)
    rs = quick_redis_settings(settings.redis_url) if quick else redis_settings(settings.redis_url)
    try:
        pool = await asyncio.wait_for(create_pool(rs), QUICK_TIMEOUT_S + 1 if quick else None)
        try:
            job = await asyncio.wait_for(
                submit(pool, settings, request), QUICK_TIMEOUT_S if quick else None
            )
        finally:
            await pool.aclose()
    except REDIS_ERRORS as exc:
        raise QueueUnavailable(f"Redis is unreachable ({type(exc).__name__})") from exc
    return job is not None
