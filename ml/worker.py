"""The ML pool: `papershelf worker --pool ml` (or `arq ml.worker.WorkerSettings`) writes
TL;DRs into `summaries`, on its own queue (PAPERSHELF_ML_QUEUE).

The summarizer loads once, at start-up, from PAPERSHELF_SUMMARIZER_PATH onto
PAPERSHELF_SUMMARIZER_DEVICE; without a checkpoint the worker does not start (the CLI says
to run `papershelf ml train-summarizer`). Inference runs on one dedicated thread (a
single-thread executor), PAPERSHELF_ML_BATCH_SIZE papers per call, so the event loop keeps
the heartbeat and the health key going while the model works. Each batch is written in one
transaction (idempotent upserts, app.summaries) before the next starts: a killed worker
loses at most one batch, and a re-run skips what is written.

Jobs, queued by name through workers.summaries (which also explains the priorities):
- `summarize_listing(day, category)`: the day's list (new, cross-lists, replacements);
- `summarize_ids(ids)`: papers by id (the back-fill of `papershelf reindex --summaries`).
Both summarise only papers without a current TL;DR (see app.summaries), so at-least-once
delivery and repeated requests cost a query, not inference.

This module and ml.summarizer are the only ones that may import torch (lazily, in `load`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from functools import partial
from typing import Any, ClassVar, TypeVar

import sqlalchemy.exc
from arq import Retry
from sqlalchemy import Engine

from app import summaries
from app.db.engine import get_engine
from app.settings import Settings, get_settings
from ml.summarizer import Summarizer
from workers.fetch import redis_settings
from workers.summaries import MODEL_KEY_TTL, model_key

log = logging.getLogger("papershelf.ml")

MAX_TRIES = 3
T = TypeVar("T")


class SummarizerMissing(RuntimeError):
    """No checkpoint where the settings point."""


def load_summarizer(settings: Settings) -> Summarizer:
    """The real model (torch is imported in here). Tests put their own loader in the
    worker's ctx as `load_summarizer` instead."""
    if not summaries.checkpoint_present(settings.summarizer_path_resolved):
        raise SummarizerMissing(summaries.missing_checkpoint(settings.summarizer_path_resolved))
    from ml import summarizer

    return summarizer.load(settings.summarizer_path_resolved, settings.summarizer_device)


# --- the synchronous core, shared by the jobs and `reindex --summaries --inline` -----------


def summarize_batch(
    summarizer: Summarizer, batch: Sequence[summaries.Pending], settings: Settings
) -> list[summaries.Written]:
    """One model call for a batch; empty outputs are dropped (the card stays without)."""
    texts = summarizer.summarize(
        [(p.title, p.abstract) for p in batch],
        beams=settings.summarizer_beams,
        batch_size=max(1, settings.ml_batch_size),
    )
    if len(texts) != len(batch):
        raise RuntimeError(f"the summarizer returned {len(texts)} TL;DRs for {len(batch)} papers")
    return [
        summaries.Written(p.arxiv_id, p.version, summarizer.version, " ".join(text.split()))
        for p, text in zip(batch, texts, strict=True)
        if text.strip()
    ]


def write(engine: Engine, rows: Sequence[summaries.Written]) -> int:
    with engine.begin() as conn:  # one transaction per batch
        return summaries.upsert(conn, rows)


def summarize_inline(
    settings: Settings,
    engine: Engine,
    *,
    limit: int | None = None,
    summarizer: Summarizer | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Summarise every paper lacking a current TL;DR here, newest first, without Redis."""
    summarizer = summarizer or load_summarizer(settings)
    size = max(1, settings.ml_batch_size)
    pending = written = 0
    with engine.connect() as reader:
        ids = summaries.pending_ids(reader, summarizer.version, limit=limit)
        for chunk in summaries.batched(ids, size):
            with engine.connect() as conn:
                batch = summaries.pending_for_ids(conn, chunk, summarizer.version)
            pending += len(batch)
            written += write(engine, summarize_batch(summarizer, batch, settings))
            if on_batch:
                on_batch(len(chunk))
    return {"model": summarizer.version, "pending": pending, "written": written}


# --- the arq pool ----------------------------------------------------------------------------


async def startup(ctx: dict[str, Any]) -> None:
    settings = ctx.get("settings") or get_settings()  # tests pass their own
    ctx["settings"] = settings
    loader: Callable[[Settings], Summarizer] = ctx.get("load_summarizer") or load_summarizer
    # One thread owns the model: batches never overlap, and the event loop stays free.
    ctx["executor"] = executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="summarizer")
    ctx["summarizer"] = await asyncio.get_running_loop().run_in_executor(executor, loader, settings)
    ctx["engine"] = get_engine(settings)
    await _announce(ctx)
    log.info(
        "summarizer %s loaded from %s (device %s)",
        ctx["summarizer"].version,
        settings.summarizer_path_resolved,
        settings.summarizer_device,
    )


async def shutdown(ctx: dict[str, Any]) -> None:
    if executor := ctx.get("executor"):
        executor.shutdown(wait=False, cancel_futures=True)


async def _announce(ctx: dict[str, Any]) -> None:
    """Tell queuers that an ML pool runs, and which model (workers.summaries reads it)."""
    await ctx["redis"].set(
        model_key(ctx["settings"]),
        ctx["summarizer"].version,
        ex=int(MODEL_KEY_TTL.total_seconds()),
    )


async def _summarize(ctx: dict[str, Any], pending: list[summaries.Pending]) -> dict[str, Any]:
    settings: Settings = ctx["settings"]
    summarizer: Summarizer = ctx["summarizer"]
    loop = asyncio.get_running_loop()
    await _announce(ctx)
    written = 0
    for batch in summaries.batched(pending, max(1, settings.ml_batch_size)):
        rows = await loop.run_in_executor(
            ctx["executor"], partial(summarize_batch, summarizer, batch, settings)
        )
        written += await asyncio.to_thread(write, ctx["engine"], rows)
    return {"model": summarizer.version, "pending": len(pending), "written": written}


def _retry_locked(ctx: dict[str, Any], exc: sqlalchemy.exc.OperationalError) -> None:
    """A busy database (SQLite's lock, a PostgreSQL restart) is worth another try; what is
    written stays written."""
    tries = ctx.get("job_try", 1)
    if tries < MAX_TRIES:
        log.warning("job %s: database error (%s); retrying", ctx.get("job_id"), exc)
        raise Retry(defer=30 * tries) from exc


def _read(engine: Engine, fn: Callable[..., T], *args: Any) -> T:
    with engine.connect() as conn:
        return fn(conn, *args)


async def summarize_listing(ctx: dict[str, Any], day: str, category: str) -> dict[str, Any]:
    """TL;DRs for the papers of `category`'s list of `day` that lack a current one."""
    engine, version = ctx["engine"], ctx["summarizer"].version
    try:
        pending = await asyncio.to_thread(
            _read, engine, summaries.pending_for_day, date.fromisoformat(day), category, version
        )
        result = await _summarize(ctx, pending)
    except sqlalchemy.exc.OperationalError as exc:
        _retry_locked(ctx, exc)
        raise
    return {"day": day, "category": category, **result}


async def summarize_ids(ctx: dict[str, Any], ids: list[str]) -> dict[str, Any]:
    """TL;DRs for the stored papers among `ids` that lack a current one."""
    engine, version = ctx["engine"], ctx["summarizer"].version
    try:
        pending = await asyncio.to_thread(_read, engine, summaries.pending_for_ids, ids, version)
        result = await _summarize(ctx, pending)
    except sqlalchemy.exc.OperationalError as exc:
        _retry_locked(ctx, exc)
        raise
    return {"ids": len(ids), **result}


class WorkerSettings:
    """`papershelf worker --pool ml` (or `arq ml.worker.WorkerSettings`)."""

    functions: ClassVar = [summarize_listing, summarize_ids]
    queue_name = get_settings().ml_queue
    on_startup = startup
    on_shutdown = shutdown
    # One model, one inference thread: a second job at once would only queue behind it. arq
    # starts at most max_jobs per poll and reads the queue again after each, in score order,
    # so a day's list queued during a back-fill job is the next one (workers.summaries).
    max_jobs = 1
    max_tries = MAX_TRIES
    job_timeout = get_settings().ml_job_timeout
    keep_result = 60  # short: a kept result blocks its job id from running again
    health_check_interval = 10
    health_check_key = f"{queue_name}:health:{socket.gethostname()}:{os.getpid()}"
    job_completion_wait = 30  # on SIGTERM, let a running job finish its batch (bounded)
    redis_settings = redis_settings(get_settings().redis_url)
