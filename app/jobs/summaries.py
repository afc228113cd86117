"""Queueing TL;DR jobs for the ML pool (workers/ml/) by function name, from the fetch pool
and the CLI, so nothing but that pool imports the model code or torch.

Priorities: the ML worker takes jobs in arq's order, lowest score first, where a job's score
is the time it becomes due. A day's list (`listing_request`, queued by `fetch_listing`) is
queued as due a year ago, so it comes before every back-catalogue job queued within the
last year; back-catalogue jobs (`ids_request`, queued by `papershelf reindex --summaries`,
newest papers first) are due at the back-fill's start plus their rank in milliseconds, so
they keep that order. The ML worker runs one job at a time and reads the queue afresh before
each, so a list announced during a long back-fill is the next job it starts.

Enqueue policy: `ml_pool_enabled` — jobs are queued only where an ML worker can take them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

from arq.connections import ArqRedis

from app.artifacts.summaries import checkpoint_present
from app.jobs.queueing import JobRequest
from app.settings import Settings

LISTING_FUNCTION = "summarize_listing"
IDS_FUNCTION = "summarize_ids"
# A day's list jumps ahead of back-catalogue jobs queued up to this long before it.
HEAD_START = timedelta(days=365)
# Unclaimed jobs (no ML worker ran) expire: a day's list soon, a back-fill job later.
LISTING_EXPIRES = timedelta(days=2)
BACKLOG_EXPIRES = timedelta(days=30)
# Executor batches per back-fill job: each job stays well inside PAPERSHELF_ML_JOB_TIMEOUT.
BATCHES_PER_JOB = 8
# The model an ML worker runs, announced in Redis at start-up and refreshed by every job.
MODEL_KEY_TTL = timedelta(days=7)


def model_key(settings: Settings) -> str:
    return f"{settings.ml_queue}:model-version"


def ids_per_job(settings: Settings) -> int:
    return max(1, settings.ml_batch_size) * BATCHES_PER_JOB


def day_list_request(
    function: str, prefix: str, day: date, category: str, stored: int, now: datetime | None
) -> JobRequest:
    """An ML-pool job for a day's list, ahead of the back catalogue. The stored count is part
    of the id: a re-fetch that adds papers to the day gets a job of its own, a repeat
    collapses."""
    now = now or datetime.now(UTC)
    return JobRequest(
        function,
        (day.isoformat(), category),
        f"{prefix}:{category}:{day.isoformat()}:{stored}",
        pool="ml",
        options={"_defer_until": now - HEAD_START, "_expires": LISTING_EXPIRES},
    )


def backlog_request(
    function: str, prefix: str, ids: Sequence[str], rank: int, start: datetime | None
) -> JobRequest:
    """An ML-pool job for papers by id (order kept), as back catalogue: due at `start` (the
    back-fill's) plus `rank` ms, so a back-fill runs in the order it was queued."""
    keys = list(dict.fromkeys(ids))
    digest = hashlib.sha1(",".join(sorted(keys)).encode()).hexdigest()[:16]
    start = start or datetime.now(UTC)
    options = {"_defer_until": start + timedelta(milliseconds=rank), "_expires": BACKLOG_EXPIRES}
    return JobRequest(function, (keys,), f"{prefix}:ids:{digest}", pool="ml", options=options)


def listing_request(
    day: date, category: str, *, stored: int, now: datetime | None = None
) -> JobRequest:
    """TL;DRs for a day's list, ahead of the back catalogue."""
    return day_list_request(LISTING_FUNCTION, "summ", day, category, stored, now)


def ids_request(ids: Sequence[str], *, rank: int = 0, start: datetime | None = None) -> JobRequest:
    """TL;DRs for papers by id, as back catalogue in the order queued."""
    return backlog_request(IDS_FUNCTION, "summ", ids, rank, start)


async def announced_model(redis: ArqRedis, settings: Settings) -> str | None:
    """The model version a running ML worker announced, if any did lately."""
    value = await redis.get(model_key(settings))
    return value.decode() if isinstance(value, bytes) else value


async def ml_pool_enabled(redis: ArqRedis, settings: Settings) -> bool:
    """Whether TL;DR jobs have a taker: a summarizer checkpoint on this machine (as with
    `papershelf up`, which then starts the ML worker) or an ML worker that announced its
    model in Redis (one on another machine). Without either they would only wait and expire."""
    if checkpoint_present(settings.summarizer_path_resolved):
        return True
    return bool(await redis.exists(model_key(settings)))
