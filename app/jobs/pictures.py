"""Queueing picture jobs for the ML pool (workers/ml/) by function name, and calling its
interactive jobs from the web, so nothing but that pool imports torch.

Two kinds of job:
- thumbnails, as back catalogue or for a day's list, with the TL;DRs' priorities
  (app.jobs.summaries explains them): `listing_request` (queued by the fetch pool after a
  day's list is stored) and `ids_request` (`papershelf reindex --thumbnails`);
- interactive ones the API and /lab wait for (`call`): tokenize, decode, sample, lab. They
  are queued as due before everything else (the pool takes them next, after the job it is
  running) and expire if no worker took them within the caller's timeout.

The pool announces which picture models it loaded under `pictures_key` (JSON, refreshed by
every job); `call` refuses at once (PoolUnavailable) when no live ML worker (arq's health
key) is there or when the announced models lack what the job needs.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, get_args

from arq.connections import ArqRedis
from arq.jobs import Job, JobStatus

from app.artifacts.summaries import checkpoint_present
from app.jobs import connections
from app.jobs.connections import NO_REDIS, QUICK_TIMEOUT_S, REDIS_ERRORS, QueueUnavailable
from app.jobs.queueing import JobRequest
from app.jobs.summaries import HEAD_START, backlog_request, day_list_request
from app.settings import Settings

LISTING_FUNCTION = "thumbnails_for_listing"
IDS_FUNCTION = "thumbnails_for_ids"
TOKENIZE_FUNCTION = "tokenize_images"
DECODE_FUNCTION = "decode_tokens"
SAMPLE_FUNCTION = "sample_images"
LAB_FUNCTION = "lab_compare"
# Thumbnails per back-fill job (a placeholder costs NFE network calls; a PDF a download).
IDS_PER_JOB = 64
ANNOUNCE_TTL = timedelta(days=7)
# Interactive jobs are due this long before "now": ahead of a day's list (HEAD_START).
INTERACTIVE_AHEAD = HEAD_START * 2
# The diffusion solvers the ML pool accepts (`SAMPLE_FUNCTION`, `LAB_FUNCTION`): the pool's
# samplers check theirs against this list, the web validates requests with it.
Solver = Literal["ddim", "heun", "dpm2m", "dpm3m", "ipndm", "amed", "amed_plugin"]
SOLVERS: tuple[Solver, ...] = get_args(Solver)


def pictures_key(settings: Settings) -> str:
    return f"{settings.ml_queue}:pictures"


def listing_request(
    day: date, category: str, *, stored: int, now: datetime | None = None
) -> JobRequest:
    """Thumbnails for a day's list, ahead of the back catalogue (like its TL;DRs)."""
    return day_list_request(LISTING_FUNCTION, "thumb", day, category, stored, now)


def ids_request(ids: Sequence[str], *, rank: int = 0, start: datetime | None = None) -> JobRequest:
    """Thumbnails for papers by id, as back catalogue in the order queued."""
    return backlog_request(IDS_FUNCTION, "thumb", ids, rank, start)


def models_present(settings: Settings) -> bool:
    """Whether a picture checkpoint (tokenizer or diffusion model) is on this machine."""
    return checkpoint_present(settings.fsq_path_resolved) or checkpoint_present(
        settings.diffusion_path_resolved
    )


def draws_placeholders(path: Path) -> bool:
    """Whether the diffusion checkpoint at `path` learned the plots, the only data set whose
    samples may be paper thumbnails: its config's `meta.dataset`, else (older checkpoints)
    its version `diffusion-plots-…`. The ML pool reads it the same way
    (ml.diffusion.checkpoint.dataset_from); this copy costs the web no torch."""
    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(config, dict):
        return False
    meta = config.get("meta")
    dataset = meta.get("dataset") if isinstance(meta, dict) else None
    if isinstance(dataset, str):
        return dataset == "plots"
    version = config.get("version")
    return (
        isinstance(version, str) and re.fullmatch(r"diffusion-plots-[0-9a-f]+", version) is not None
    )


def thumbnail_models_present(settings: Settings) -> bool:
    """Whether this machine has a model that makes thumbnails: a tokenizer, or a diffusion
    model trained on the plots."""
    diffusion = settings.diffusion_path_resolved
    return checkpoint_present(settings.fsq_path_resolved) or (
        checkpoint_present(diffusion) and draws_placeholders(diffusion)
    )


async def announced(redis: ArqRedis, settings: Settings) -> dict[str, Any] | None:
    """What the ML pool said it loaded ({"fsq": {...} | null, "diffusion": {...} | null}),
    if a worker did lately."""
    raw = await redis.get(pictures_key(settings))
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


async def thumbnails_enabled(redis: ArqRedis, settings: Settings) -> bool:
    """Whether thumbnail jobs have a taker: a picture checkpoint here, or an ML worker that
    announced a tokenizer or a diffusion model that draws placeholders."""
    if thumbnail_models_present(settings):
        return True
    found = await announced(redis, settings)
    if not found:
        return False
    diffusion = found.get("diffusion")
    # A diffusion model that learned anything but the plots draws no thumbnails (a worker
    # from before the flag existed counts as drawing them).
    draws = isinstance(diffusion, dict) and diffusion.get("placeholders", True)
    return bool(found.get("fsq") or draws)


async def pool_alive(redis: ArqRedis, settings: Settings) -> bool:
    """An ML worker's health key (arq refreshes it every few seconds while it runs)."""
    async for _key in redis.scan_iter(match=f"{settings.ml_queue}:health*", count=1000):
        return True
    return False


# --- interactive calls ----------------------------------------------------------------------


class PoolUnavailable(QueueUnavailable):
    """No Redis, no running ML worker, or none with the model the call needs."""


class PoolTimeout(RuntimeError):
    """The ML pool did not answer in time (busy, or it died mid-job)."""


class PoolFailed(RuntimeError):
    """The job raised (a bug or a broken checkpoint, not the caller's input)."""


def quick_pool(settings: Settings) -> AbstractAsyncContextManager[ArqRedis]:
    """An arq pool for one web request that never hangs on a dead Redis."""
    return connections.quick_pool(
        settings, error=PoolUnavailable, no_redis=f"{NO_REDIS}, so no ML pool"
    )


async def pool_state(redis: ArqRedis, settings: Settings) -> dict[str, Any] | None:
    """The announced models when a live ML worker is there, else None."""
    if not await pool_alive(redis, settings):
        return None
    return await announced(redis, settings) or {}


def missing_reason(state: dict[str, Any] | None, needs: Sequence[str]) -> str | None:
    if state is None:
        return (
            "no ML worker is running: start `papershelf worker --pool ml` (it needs the ML "
            "extra and a checkpoint)"
        )
    names = {"fsq": "FSQ tokenizer", "diffusion": "diffusion model"}
    lacking = [n for n in needs if not state.get(n)]
    if lacking:
        commands = {"fsq": "train-fsq", "diffusion": "train-diffusion"}
        what = " and ".join(names[n] for n in lacking)
        how = ", ".join(f"`papershelf ml {commands[n]}`" for n in lacking)
        return f"the ML worker runs without the {what}: run {how} and restart it"
    return None


async def call(
    settings: Settings,
    function: str,
    *args: Any,
    needs: Sequence[str] = (),
    timeout: float = 60.0,
) -> dict[str, Any]:
    """Run an interactive job on the ML pool and wait for its result (a dict).
    Raises PoolUnavailable (no worker or model: say so at once), PoolTimeout, PoolFailed."""
    async with quick_pool(settings) as redis:
        try:
            state = await asyncio.wait_for(pool_state(redis, settings), QUICK_TIMEOUT_S)
            if why := missing_reason(state, needs):
                raise PoolUnavailable(why)
            now = datetime.now(UTC)
            job = await asyncio.wait_for(
                redis.enqueue_job(
                    function,
                    *args,
                    _job_id=f"ml:{function}:{uuid.uuid4().hex}",
                    _queue_name=settings.ml_queue,
                    _defer_until=now - INTERACTIVE_AHEAD,
                    _expires=timedelta(seconds=timeout),
                ),
                QUICK_TIMEOUT_S,
            )
        except REDIS_ERRORS as exc:
            raise PoolUnavailable(f"Redis is unreachable ({type(exc).__name__})") from exc
        assert job is not None  # a fresh uuid job id is never a duplicate
        return await _result(job, timeout)


async def _result(job: Job, timeout: float) -> dict[str, Any]:
    try:
        result = await job.result(timeout=timeout, poll_delay=0.05)
    except TimeoutError as exc:
        try:
            status: JobStatus | None = await job.status()
        except REDIS_ERRORS:
            status = None
        where = (
            "in an unknown state"
            if status is None
            else {
                JobStatus.queued: "still queued: the pool is busy with a longer job",
                JobStatus.deferred: "still queued: the pool is busy with a longer job",
                JobStatus.in_progress: "still running",
                JobStatus.not_found: "gone: it expired before a worker took it",
            }.get(status, "in an unknown state")
        )
        raise PoolTimeout(
            f"the ML pool did not answer within {timeout:g} s (the job is {where})"
        ) from exc
    except REDIS_ERRORS as exc:
        raise PoolUnavailable(f"Redis is unreachable ({type(exc).__name__})") from exc
    except Exception as exc:  # the job raised; its exception came back through arq
        raise PoolFailed(f"the ML job failed: {type(exc).__name__}: {exc}") from exc
    if not isinstance(result, dict):
        raise PoolFailed(f"the ML job returned {type(result).__name__}, not a result")
    return result
