"""What every arq pool (fetch, llm, ml) shares: how its worker settings are built, the
worker class that rides out a Redis restart, and re-queueing a failed job for later.

A pool module defines its jobs, `startup` (from `start_context`), `shutdown` and
`worker_settings(settings)`, built with `pool_settings` when the worker starts: nothing reads
the environment at import.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable, Sequence
from signal import Signals
from typing import Any

import redis.exceptions
from arq import Retry, Worker
from arq.cron import CronJob

from app.db.engine import get_engine
from app.jobs.connections import redis_settings
from app.settings import Settings, get_settings
from workers.stopping import interrupt_sleeps

log = logging.getLogger(__name__)

HEALTH_CHECK_INTERVAL = 10  # seconds between health-key refreshes
# On SIGTERM/SIGINT a job at work (a request, a page being written) gets this long to finish
# before arq cancels it; a job that is only waiting is cancelled at once (workers.stopping).
# A cancelled job stays queued and runs again; each page is one transaction, so nothing is
# half-written. Short, so that `papershelf up` stops within its 5 s bound.
JOB_COMPLETION_WAIT = 2
MAX_RETRY_DELAY = 3600  # the longest a failed job waits for its next try


def health_check_key(queue_name: str) -> str:
    """One health key per replica, so `papershelf status` can list live workers (the queuers
    look for `<queue>:health*`)."""
    return f"{queue_name}:health:{socket.gethostname()}:{os.getpid()}"


def start_context(ctx: dict[str, Any]) -> Settings:
    """Put the settings (the environment's, unless a test put its own) and the store's engine
    into a worker's context; every pool's `startup` begins here."""
    settings: Settings = ctx.get("settings") or get_settings()
    ctx["settings"] = settings
    ctx["engine"] = get_engine(settings)
    return settings


def pool_settings(
    settings: Settings,
    *,
    queue_name: str,
    functions: Sequence[Callable[..., Any]],
    on_startup: Callable[[dict[str, Any]], Any],
    on_shutdown: Callable[[dict[str, Any]], Any],
    max_tries: int,
    job_timeout: float,
    keep_result: float,
    max_jobs: int,
    cron_jobs: Sequence[CronJob] = (),
    job_completion_wait: int = JOB_COMPLETION_WAIT,
) -> dict[str, Any]:
    """A pool's arq worker settings (arq takes a dict where it takes a settings class)."""
    return {
        "functions": list(functions),
        "cron_jobs": list(cron_jobs),
        "queue_name": queue_name,
        "on_startup": on_startup,
        "on_shutdown": on_shutdown,
        "max_tries": max_tries,
        "job_timeout": job_timeout,
        "keep_result": keep_result,
        "max_jobs": max_jobs,
        "health_check_interval": HEALTH_CHECK_INTERVAL,
        "health_check_key": health_check_key(queue_name),
        "job_completion_wait": job_completion_wait,
        "redis_settings": redis_settings(settings.redis_url),
    }


def retry_job(
    ctx: dict[str, Any],
    exc: BaseException,
    *,
    max_tries: int,
    first_delay: float,
    max_delay: float = MAX_RETRY_DELAY,
) -> None:
    """Have arq run this job again later (its `Retry`: the job goes back on the queue, with
    `first_delay` doubling per try up to `max_delay`), unless this try was its last; then
    this returns and the caller re-raises `exc`."""
    tries = ctx.get("job_try", 1)
    if tries >= max_tries:
        return
    delay = min(first_delay * 2 ** (tries - 1), max_delay)
    log.warning(
        "job %s attempt %d failed (%s); retrying in %d s", ctx.get("job_id"), tries, exc, delay
    )
    raise Retry(defer=delay) from exc


class ResilientWorker(Worker):
    """An arq worker that rides out a Redis restart: arq claims jobs with a WATCH pipeline,
    which redis-py does not retry, so a dropped connection would end the poll loop. Here a
    failed poll is logged and retried after a pause.

    On SIGTERM/SIGINT it first cancels the jobs that are only waiting (back-offs, the arXiv
    limiter: workers.stopping), then shuts down as arq does (`job_completion_wait`, then
    cancel; cancelled jobs are re-queued)."""

    def handle_sig_wait_for_completion(self, signum: Signals) -> None:
        interrupt_sleeps(self.loop)
        super().handle_sig_wait_for_completion(signum)

    def handle_sig(self, signum: Signals) -> None:
        # Also called by `close()` (with SIGUSR1) on a worker that leaves signals alone: only
        # a real stop signal marks the loop as stopping.
        if signum in (Signals.SIGINT, Signals.SIGTERM):
            interrupt_sleeps(self.loop)
        super().handle_sig(signum)

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        # A poll that read the queue just before a stop signal must not start what it read:
        # the job the signal cancelled is back on the queue by then and would run again here.
        for job_id in job_ids:
            if not self.allow_pick_jobs:
                return
            await super().start_jobs([job_id])

    async def _poll_iteration(self) -> None:
        try:
            await super()._poll_iteration()
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as exc:
            log.warning("Redis unavailable (%s); polling again in 2 s", exc)
            await asyncio.sleep(2)
