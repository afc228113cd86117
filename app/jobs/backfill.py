"""Back-fills through the ML pool (`papershelf reindex --summaries` / `--embeddings` /
`--thumbnails`): count the papers that lack a current TL;DR, embedding or thumbnail and
queue `ids_request` jobs for them, newest papers first, ranked so that the pool runs them
in that order.

The result comes back as data (no printing): the caller words it. Redis errors surface as
`QueueUnavailable`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from arq import create_pool
from arq.connections import ArqRedis
from sqlalchemy import Engine

from app.artifacts import embeddings as vectors
from app.artifacts import summaries as tldrs
from app.artifacts import thumbnails as thumbs
from app.artifacts.base import batched
from app.jobs import embeddings as embedding_jobs
from app.jobs import pictures
from app.jobs import summaries as ml_jobs
from app.jobs.connections import NO_REDIS, REDIS_ERRORS, QueueUnavailable, redis_settings
from app.jobs.queueing import JobRequest, submit
from app.settings import Settings

# An `ids_request` builder: the ids of one job, its rank in the back-fill, the back-fill's start.
IdsRequest = Callable[..., JobRequest]


@dataclass(frozen=True, slots=True)
class Queued:
    queued: int
    already: int  # the same job was already in the queue


@dataclass(frozen=True, slots=True)
class SummaryBackfill:
    model: str | None  # the model a running ML worker announced, if any
    enabled: bool  # whether the jobs have a taker (`ml_jobs.ml_pool_enabled`)
    counts: tldrs.PendingCounts
    per_job: int
    queued: Queued


@dataclass(frozen=True, slots=True)
class EmbeddingBackfill:
    model: str | None  # the embedder a running ML worker announced, if any
    enabled: bool  # whether the jobs have a taker (`embedding_jobs.embeddings_enabled`)
    pending: int
    per_job: int
    queued: Queued


@dataclass(frozen=True, slots=True)
class ThumbnailBackfill:
    announced: bool  # whether an ML worker announced its picture models
    enabled: bool  # whether the jobs have a taker (`pictures.thumbnails_enabled`)
    pending: int
    per_job: int
    queued: Queued


async def queue_ids(
    redis: ArqRedis,
    settings: Settings,
    ids: Iterable[str],
    per_job: int,
    ids_request: IdsRequest,
) -> Queued:
    """Queue jobs of `per_job` ids, in the order given, ranked from one start time."""
    queued = already = 0
    start = datetime.now(UTC)
    for rank, chunk in enumerate(batched(ids, per_job)):
        request = ids_request(chunk, rank=rank, start=start)
        if await submit(redis, settings, request) is None:
            already += 1
        else:
            queued += 1
    return Queued(queued, already)


async def _open(settings: Settings) -> ArqRedis:
    if not settings.redis_url:
        raise QueueUnavailable(NO_REDIS)
    return await create_pool(redis_settings(settings.redis_url))


async def backfill_summaries(
    settings: Settings, engine: Engine, *, limit: int | None = None
) -> SummaryBackfill:
    """Queue `summarize_ids` jobs for the papers lacking a current TL;DR, newest first."""
    per_job = ml_jobs.ids_per_job(settings)
    try:
        redis = await _open(settings)
        try:
            # The model a running ML worker announced; without one, TL;DRs of any model
            # count as current here (the jobs re-check against the real model anyway).
            model = await ml_jobs.announced_model(redis, settings)
            enabled = await ml_jobs.ml_pool_enabled(redis, settings)
            with engine.connect() as conn:
                counts = tldrs.pending_counts(conn, model)
            with engine.connect() as conn:
                ids = tldrs.pending_ids(conn, model, limit=limit)
                queued = await queue_ids(redis, settings, ids, per_job, ml_jobs.ids_request)
        finally:
            await redis.aclose()
    except REDIS_ERRORS as exc:
        raise QueueUnavailable(f"Redis is unreachable ({exc})") from exc
    return SummaryBackfill(model, enabled, counts, per_job, queued)


async def backfill_embeddings(
    settings: Settings, engine: Engine, *, limit: int | None = None
) -> EmbeddingBackfill:
    """Queue `embed_ids` jobs for the papers lacking a current embedding, newest first."""
    per_job = embedding_jobs.ids_per_job(settings)
    try:
        redis = await _open(settings)
        try:
            # Without an announced embedder, embeddings of any model count as current here
            # (the jobs re-check against the real embedder anyway).
            model = await embedding_jobs.announced_embedder(redis, settings)
            enabled = await embedding_jobs.embeddings_enabled(redis, settings)
            with engine.connect() as conn:
                pending = vectors.pending_count(conn, model)
            with engine.connect() as conn:
                ids = vectors.pending_ids(conn, model, limit=limit)
                queued = await queue_ids(redis, settings, ids, per_job, embedding_jobs.ids_request)
        finally:
            await redis.aclose()
    except REDIS_ERRORS as exc:
        raise QueueUnavailable(f"Redis is unreachable ({exc})") from exc
    return EmbeddingBackfill(model, enabled, pending, per_job, queued)


def announced_thumbnail_models(found: dict[str, Any] | None, settings: Settings) -> thumbs.Models:
    """The versions an ML worker writes thumbnails with, from what it announced (its solver
    may fall back to iPNDM); without an announcement any thumbnail counts as current."""
    current: dict[str, Any] = (found or {}).get("thumbnails") or {}
    return thumbs.Models(
        fsq=current.get("fsq"),
        diffusion=current.get("diffusion"),
        solver=current.get("solver", settings.thumbnail_solver),
        nfe=current.get("nfe", settings.thumbnail_nfe),
        pdf_retry_before=(
            datetime.now(UTC) - timedelta(days=days)
            if (days := current.get("pdf_retry_days"))
            else None
        ),
    )


async def backfill_thumbnails(
    settings: Settings, engine: Engine, *, limit: int | None = None
) -> ThumbnailBackfill:
    """Queue `thumbnails_for_ids` jobs for the papers lacking a current thumbnail, newest
    first."""
    try:
        redis = await _open(settings)
        try:
            # The jobs re-check against the real models anyway.
            found = await pictures.announced(redis, settings)
            enabled = await pictures.thumbnails_enabled(redis, settings)
            models = announced_thumbnail_models(found, settings)
            with engine.connect() as conn:
                pending = thumbs.pending_count(conn, models)
            with engine.connect() as conn:
                ids = thumbs.pending_ids(conn, models, limit=limit)
                queued = await queue_ids(
                    redis, settings, ids, pictures.IDS_PER_JOB, pictures.ids_request
                )
        finally:
            await redis.aclose()
    except REDIS_ERRORS as exc:
        raise QueueUnavailable(f"Redis is unreachable ({exc})") from exc
    return ThumbnailBackfill(bool(found), enabled, pending, pictures.IDS_PER_JOB, queued)
