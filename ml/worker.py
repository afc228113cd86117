"""The ML pool: `papershelf worker --pool ml` (or `arq ml.worker.WorkerSettings`) writes
TL;DRs into `summaries` and thumbnails into `thumbnails`, and answers the picture API's
jobs, on its own queue (PAPERSHELF_ML_QUEUE).

The models load once, at start-up: the summarizer from PAPERSHELF_SUMMARIZER_PATH, the FSQ
tokenizer and the diffusion model from PAPERSHELF_FSQ_PATH and PAPERSHELF_DIFFUSION_PATH
(ml.pictures), onto PAPERSHELF_SUMMARIZER_DEVICE. Any one of them is enough to start; a job
whose model is missing says so (the TL;DR jobs skip, the picture jobs answer with the
reason); with none the worker does not start. Inference runs on one dedicated thread (a
single-thread executor), PAPERSHELF_ML_BATCH_SIZE papers per call, so the event loop keeps
the heartbeat and the health key going while the model works. Each batch is written in one
transaction (idempotent upserts, app.summaries) before the next starts: a killed worker
loses at most one batch, and a re-run skips what is written.

Jobs, queued by name through workers.summaries (which also explains the priorities):
- `summarize_listing(day, category)`: the day's list (new, cross-lists, replacements);
- `summarize_ids(ids)`: papers by id (the back-fill of `papershelf reindex --summaries`).
Both summarise only papers without a current TL;DR (see app.summaries), so at-least-once
delivery and repeated requests cost a query, not inference.

Picture jobs (queued through workers.pictures):
- `thumbnails_for_listing(day, category)`, `thumbnails_for_ids(ids)`: thumbnails for papers
  lacking a current one (app.thumbnails), like the TL;DR jobs;
- `tokenize_images(images)`, `decode_tokens(grids)`, `sample_images(solver, nfe, seeds)`,
  `lab_compare(images, paper)`: interactive, awaited by the web. They return a dict; bad
  input comes back as {"error", "status": 422}, never as an exception the web would have to
  unpickle (an exception from torch would import torch there).

This module, ml.pictures and the model packages are the only ones that may import torch
(lazily, where a model loads).
"""

from __future__ import annotations

import asyncio
import json
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

from app import summaries, thumbnails
from app.db.engine import get_engine
from app.settings import Settings, get_settings
from ml import pictures
from ml.summarizer import Summarizer
from workers import pictures as picture_jobs
from workers.fetch import redis_settings
from workers.politeness import RedisRateLimiter
from workers.summaries import MODEL_KEY_TTL, model_key

log = logging.getLogger("papershelf.ml")

MAX_TRIES = 3
T = TypeVar("T")


class SummarizerMissing(RuntimeError):
    """No checkpoint where the settings point."""


class NoModel(RuntimeError):
    """No checkpoint at all: neither the summarizer nor a picture model."""


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


def _load_summarizer_or_none(
    loader: Callable[[Settings], Summarizer], settings: Settings
) -> tuple[Summarizer | None, str | None]:
    try:
        return loader(settings), None
    except SummarizerMissing as exc:
        return None, str(exc)


async def startup(ctx: dict[str, Any]) -> None:
    settings = ctx.get("settings") or get_settings()  # tests pass their own
    ctx["settings"] = settings
    loader: Callable[[Settings], Summarizer] = ctx.get("load_summarizer") or load_summarizer
    load_pictures: Callable[[Settings], pictures.PictureModels] = (
        ctx.get("load_pictures") or pictures.load_models
    )
    # One thread owns the models: batches never overlap, and the event loop stays free.
    ctx["executor"] = executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="summarizer")
    loop = asyncio.get_running_loop()
    ctx["summarizer"], ctx["summarizer_missing"] = await loop.run_in_executor(
        executor, _load_summarizer_or_none, loader, settings
    )
    ctx["pictures"] = models = await loop.run_in_executor(executor, load_pictures, settings)
    if ctx["summarizer"] is None and not models.any:
        reasons = [ctx["summarizer_missing"], *models.missing.values()]
        raise NoModel("the ML pool has no model to run: " + "; ".join(reasons))
    pictures.check_thumbnail_settings(models, settings)
    ctx["engine"] = get_engine(settings)
    await _announce(ctx)
    if ctx["summarizer"] is not None:
        log.info(
            "summarizer %s loaded from %s (device %s)",
            ctx["summarizer"].version,
            settings.summarizer_path_resolved,
            settings.summarizer_device,
        )
    else:
        log.info("no summarizer: %s", ctx["summarizer_missing"])
    log.info("picture models: %s", models.announcement(settings))


async def shutdown(ctx: dict[str, Any]) -> None:
    if executor := ctx.get("executor"):
        executor.shutdown(wait=False, cancel_futures=True)


async def _announce(ctx: dict[str, Any]) -> None:
    """Tell queuers that an ML pool runs, and which models (workers.summaries and
    workers.pictures read it)."""
    settings: Settings = ctx["settings"]
    if ctx.get("summarizer") is not None:
        await ctx["redis"].set(
            model_key(settings), ctx["summarizer"].version, ex=int(MODEL_KEY_TTL.total_seconds())
        )
    models: pictures.PictureModels | None = ctx.get("pictures")
    if models is not None:
        await ctx["redis"].set(
            picture_jobs.pictures_key(settings),
            json.dumps(models.announcement(settings)),
            ex=int(picture_jobs.ANNOUNCE_TTL.total_seconds()),
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


def _no_summarizer(ctx: dict[str, Any]) -> dict[str, Any] | None:
    """A TL;DR job on a pool without a summarizer is done at once: nothing to write."""
    if ctx.get("summarizer") is not None:
        return None
    log.warning("job %s skipped: %s", ctx.get("job_id"), ctx.get("summarizer_missing"))
    return {"skipped": ctx.get("summarizer_missing") or "no summarizer"}


async def summarize_listing(ctx: dict[str, Any], day: str, category: str) -> dict[str, Any]:
    """TL;DRs for the papers of `category`'s list of `day` that lack a current one."""
    if (skipped := _no_summarizer(ctx)) is not None:
        return {"day": day, "category": category, **skipped}
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
    if (skipped := _no_summarizer(ctx)) is not None:
        return {"ids": len(ids), **skipped}
    engine, version = ctx["engine"], ctx["summarizer"].version
    try:
        pending = await asyncio.to_thread(_read, engine, summaries.pending_for_ids, ids, version)
        result = await _summarize(ctx, pending)
    except sqlalchemy.exc.OperationalError as exc:
        _retry_locked(ctx, exc)
        raise
    return {"ids": len(ids), **result}


# --- picture jobs ----------------------------------------------------------------------------


async def _thumbnails(ctx: dict[str, Any], pending: list[thumbnails.Pending]) -> dict[str, Any]:
    settings: Settings = ctx["settings"]
    models: pictures.PictureModels = ctx["pictures"]
    loop = asyncio.get_running_loop()
    await _announce(ctx)
    # PDFs only where a tokenizer can use them; they come from arXiv, through the
    # deployment's one limiter (spacing, one connection).
    fetch = models.fetches_pdfs(settings)
    slot = RedisRateLimiter.from_settings(ctx["redis"], settings).slot if fetch else None
    written = 0
    for batch in summaries.batched(pending, max(1, settings.ml_batch_size)):
        pdfs = await pictures.fetch_pdfs(settings, batch, slot) if fetch else {}
        rows = await loop.run_in_executor(
            ctx["executor"], partial(pictures.make_thumbnails, models, settings, batch, pdfs)
        )
        written += await asyncio.to_thread(_write_thumbnails, ctx["engine"], rows)
    versions = models.versions(settings)
    return {
        "fsq": versions.fsq,
        "diffusion": versions.diffusion,
        "pending": len(pending),
        "written": written,
    }


def _write_thumbnails(engine: Engine, rows: Sequence[thumbnails.Written]) -> int:
    with engine.begin() as conn:  # one transaction per batch
        return thumbnails.upsert(conn, rows)


def _no_pictures(ctx: dict[str, Any]) -> dict[str, Any] | None:
    models: pictures.PictureModels = ctx["pictures"]
    if models.any:
        return None
    reason = "; ".join(models.missing.values())
    log.warning("job %s skipped: %s", ctx.get("job_id"), reason)
    return {"skipped": reason}


async def thumbnails_for_listing(ctx: dict[str, Any], day: str, category: str) -> dict[str, Any]:
    """Thumbnails for the papers of `category`'s list of `day` that lack a current one."""
    if (skipped := _no_pictures(ctx)) is not None:
        return {"day": day, "category": category, **skipped}
    versions = ctx["pictures"].versions(ctx["settings"])
    try:
        pending = await asyncio.to_thread(
            _read,
            ctx["engine"],
            thumbnails.pending_for_day,
            date.fromisoformat(day),
            category,
            versions,
        )
        result = await _thumbnails(ctx, pending)
    except sqlalchemy.exc.OperationalError as exc:
        _retry_locked(ctx, exc)
        raise
    return {"day": day, "category": category, **result}


async def thumbnails_for_ids(ctx: dict[str, Any], ids: list[str]) -> dict[str, Any]:
    """Thumbnails for the stored papers among `ids` that lack a current one."""
    if (skipped := _no_pictures(ctx)) is not None:
        return {"ids": len(ids), **skipped}
    versions = ctx["pictures"].versions(ctx["settings"])
    try:
        pending = await asyncio.to_thread(
            _read, ctx["engine"], thumbnails.pending_for_ids, ids, versions
        )
        result = await _thumbnails(ctx, pending)
    except sqlalchemy.exc.OperationalError as exc:
        _retry_locked(ctx, exc)
        raise
    return {"ids": len(ids), **result}


async def _interactive(
    ctx: dict[str, Any], needs: str | None, fn: Callable[..., dict[str, Any]], *args: Any
) -> dict[str, Any]:
    """Run `fn(model, *args)` on the inference thread for a waiting web request. Input the
    model cannot take is {"error", "status": 422}; a missing model {"status": 503}; anything
    else raises a plain RuntimeError (safe to unpickle in a torch-free process)."""
    models: pictures.PictureModels = ctx["pictures"]
    await _announce(ctx)
    model: Any = models
    if needs is not None:
        model = getattr(models, needs)
        if model is None:
            key = "fsq" if needs == "tokenizer" else "diffusion"
            return {"error": models.missing.get(key, f"no {key} model"), "status": 503}
    try:
        return await asyncio.get_running_loop().run_in_executor(
            ctx["executor"], partial(fn, model, *args)
        )
    except pictures.InputError as exc:
        return {"error": str(exc), "status": 422}
    except Exception as exc:
        log.exception("job %s failed", ctx.get("job_id"))
        raise RuntimeError(f"{type(exc).__name__}: {exc}") from None


async def tokenize_images(ctx: dict[str, Any], images: list[bytes]) -> dict[str, Any]:
    """Images (PNG/JPEG… bytes) → FSQ tokens and reconstructions (PNG)."""
    return await _interactive(ctx, "tokenizer", pictures.tokenize, images)


async def decode_tokens(ctx: dict[str, Any], grids: list[list[list[int]]]) -> dict[str, Any]:
    """FSQ token grids → PNGs."""
    return await _interactive(ctx, "tokenizer", pictures.decode, grids)


async def sample_images(
    ctx: dict[str, Any], solver: str, nfe: int, seeds: list[int]
) -> dict[str, Any]:
    """Diffusion samples for `seeds` with `solver` at `nfe` network evaluations, timed."""
    return await _interactive(ctx, "diffusion", pictures.sample, solver, nfe, seeds)


async def lab_compare(
    ctx: dict[str, Any], images: list[bytes], paper: list[str] | None
) -> dict[str, Any]:
    """What /lab shows: reconstructions per codebook size, the solver grid, CE vs EMO."""
    title_abstract = (paper[0], paper[1]) if paper else None

    def run(models: pictures.PictureModels) -> dict[str, Any]:
        return pictures.lab(models, ctx["settings"], images, title_abstract, ctx.get("summarizer"))

    return await _interactive(ctx, None, run)


class WorkerSettings:
    """`papershelf worker --pool ml` (or `arq ml.worker.WorkerSettings`)."""

    functions: ClassVar = [
        summarize_listing,
        summarize_ids,
        thumbnails_for_listing,
        thumbnails_for_ids,
        tokenize_images,
        decode_tokens,
        sample_images,
        lab_compare,
    ]
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
