"""The ML pool's life: start-up (the models onto one inference thread, the store, the
deployment's arXiv client), the announcement queuers read, shutdown, and what every job
shares (a busy database is retried later; reads off the event loop)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy.exc
from sqlalchemy import Connection, Engine

from app.db.engine import get_engine
from app.jobs import pictures as picture_jobs
from app.jobs.embeddings import EMBEDDER_KEY_TTL, embedder_key
from app.jobs.summaries import MODEL_KEY_TTL, model_key
from app.settings import Settings, get_settings
from workers.arxiv import arxiv_client, make_http_client
from workers.ml.models import (
    EmbedderMissing,
    NoModel,
    SummarizerMissing,
    announcement,
    check_thumbnail_settings,
    load_embedder,
    load_picture_models,
    load_summarizer,
)
from workers.pool import retry_job

if TYPE_CHECKING:
    from ml.embeddings import Embedder
    from ml.pictures import PictureModels
    from ml.summarizer import Summarizer

log = logging.getLogger(__name__)

MAX_TRIES = 3
DATABASE_RETRY_S = 30  # the first re-run's delay after a database error (doubles per try)
T = TypeVar("T")
P = TypeVar("P")  # a pending paper
W = TypeVar("W")  # a written row


def _load_summarizer_or_none(
    loader: Callable[[Settings], Summarizer], settings: Settings
) -> tuple[Summarizer | None, str | None]:
    try:
        return loader(settings), None
    except SummarizerMissing as exc:
        return None, str(exc)


def _load_embedder_or_none(
    loader: Callable[[Settings], Embedder], settings: Settings
) -> tuple[Embedder | None, str | None]:
    try:
        return loader(settings), None
    except EmbedderMissing as exc:
        return None, str(exc)
    except (ImportError, OSError) as exc:
        # A partial install or an unwritable model cache: the pool still runs its other
        # models, and the embedding jobs skip with the reason.
        log.warning("the embedder did not load", exc_info=True)
        return None, f"no embedder: {type(exc).__name__}: {exc}"


async def startup(ctx: dict[str, Any]) -> None:
    settings = ctx.get("settings") or get_settings()  # tests pass their own
    ctx["settings"] = settings
    loader: Callable[[Settings], Summarizer] = ctx.get("load_summarizer") or load_summarizer
    load_embed: Callable[[Settings], Embedder] = ctx.get("load_embedder") or load_embedder
    load_pictures: Callable[[Settings], PictureModels] = (
        ctx.get("load_pictures") or load_picture_models
    )
    # One thread owns the models: batches never overlap, and the event loop stays free.
    ctx["executor"] = executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="summarizer")
    loop = asyncio.get_running_loop()
    ctx["summarizer"], ctx["summarizer_missing"] = await loop.run_in_executor(
        executor, _load_summarizer_or_none, loader, settings
    )
    ctx["embedder"], ctx["embedder_missing"] = await loop.run_in_executor(
        executor, _load_embedder_or_none, load_embed, settings
    )
    ctx["pictures"] = models = await loop.run_in_executor(executor, load_pictures, settings)
    if ctx["summarizer"] is None and ctx["embedder"] is None and not models.any:
        reasons = [ctx["summarizer_missing"], ctx["embedder_missing"], *models.missing.values()]
        raise NoModel("the ML pool has no model to run: " + "; ".join(reasons))
    check_thumbnail_settings(models, settings)
    ctx["engine"] = get_engine(settings)
    # One client for the PDFs, behind the deployment's arXiv limiter and retry policy.
    ctx["http"] = make_http_client(settings)
    ctx["arxiv"] = arxiv_client(ctx["http"], ctx["redis"], settings)
    await announce(ctx)
    if ctx["summarizer"] is not None:
        log.info(
            "summarizer %s loaded from %s (device %s)",
            ctx["summarizer"].version,
            settings.summarizer_path_resolved,
            settings.summarizer_device,
        )
    else:
        log.info("no summarizer: %s", ctx["summarizer_missing"])
    if ctx["embedder"] is not None:
        log.info(
            "embedder %s loaded (backend %s)", ctx["embedder"].version, ctx["embedder"].backend
        )
    else:
        log.info("%s", ctx["embedder_missing"])
    log.info("picture models: %s", announcement(models, settings))


async def shutdown(ctx: dict[str, Any]) -> None:
    if executor := ctx.get("executor"):
        executor.shutdown(wait=False, cancel_futures=True)
    if http := ctx.get("http"):
        await http.aclose()


async def announce(ctx: dict[str, Any]) -> None:
    """Tell queuers that an ML pool runs, and which models (app.jobs.summaries,
    app.jobs.embeddings and app.jobs.pictures read it)."""
    settings: Settings = ctx["settings"]
    if ctx.get("summarizer") is not None:
        await ctx["redis"].set(
            model_key(settings), ctx["summarizer"].version, ex=int(MODEL_KEY_TTL.total_seconds())
        )
    if ctx.get("embedder") is not None:
        await ctx["redis"].set(
            embedder_key(settings),
            ctx["embedder"].version,
            ex=int(EMBEDDER_KEY_TTL.total_seconds()),
        )
    models: PictureModels | None = ctx.get("pictures")
    if models is not None:
        await ctx["redis"].set(
            picture_jobs.pictures_key(settings),
            json.dumps(announcement(models, settings)),
            ex=int(picture_jobs.ANNOUNCE_TTL.total_seconds()),
        )


def _retry_later(ctx: dict[str, Any], exc: sqlalchemy.exc.OperationalError) -> None:
    """A busy database (SQLite's lock, a PostgreSQL restart) is worth another try later
    (arq's Retry: 30 s, then 60 s); what is written stays written."""
    retry_job(ctx, exc, max_tries=MAX_TRIES, first_delay=DATABASE_RETRY_S)


def _read(engine: Engine, fn: Callable[..., T], *args: Any) -> T:
    with engine.connect() as conn:
        return fn(conn, *args)


async def run_on_pending(
    ctx: dict[str, Any],
    select: Callable[..., list[P]],
    args: tuple[Any, ...],
    work: Callable[[dict[str, Any], list[P]], Awaitable[dict[str, Any]]],
) -> dict[str, Any]:
    """A job's body: read the papers that lack the artifact (`select(conn, *args)`, off the
    event loop), then `work` on them. A busy database at either step has arq run the job
    again later; what is written stays written."""
    try:
        pending = await asyncio.to_thread(_read, ctx["engine"], select, *args)
        return await work(ctx, pending)
    except sqlalchemy.exc.OperationalError as exc:
        _retry_later(ctx, exc)
        raise


def write_batch(
    engine: Engine, upsert: Callable[[Connection, Sequence[W]], int], rows: Sequence[W]
) -> int:
    """One batch of an artifact's rows, in one transaction."""
    with engine.begin() as conn:
        return upsert(conn, rows)
