"""`JobRequest`: a job to queue on a pool by function name, and the two ways to queue one
(`submit` through an open pool; `enqueue`, or `open_queue` for several, from outside any
worker)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from arq.connections import ArqRedis
from arq.jobs import Job

from app.jobs.connections import QUICK_TIMEOUT_S, REDIS_ERRORS, QueueUnavailable, open_pool
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


Send = Callable[[JobRequest], Awaitable[bool]]


@asynccontextmanager
async def open_queue(settings: Settings, *, quick: bool = False) -> AsyncIterator[Send]:
    """One Redis connection for several jobs, from outside any worker: yields
    `send(request)`, which queues a request on its pool (False when the same job is already
    queued). `quick` is for web requests, which must not hang on a dead Redis (see
    `open_pool`). Raises QueueUnavailable instead of a driver error."""
    timeout = QUICK_TIMEOUT_S if quick else None
    async with open_pool(settings, quick=quick) as pool:

        async def send(request: JobRequest) -> bool:
            try:
                job = await asyncio.wait_for(submit(pool, settings, request), timeout)
            except REDIS_ERRORS as exc:
                raise QueueUnavailable(f"Redis is unreachable ({type(exc).__name__})") from exc
            return job is not None

        yield send


async def enqueue(settings: Settings, request: JobRequest, *, quick: bool = False) -> bool:
    """Queue one `request` (see `open_queue`); False when the same job is already queued."""
    async with open_queue(settings, quick=quick) as send:
        return await send(request)
