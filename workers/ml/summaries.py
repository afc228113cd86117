"""The ML pool's TL;DR jobs, and the synchronous core they share with `papershelf reindex
--summaries --inline`: one model call per batch, each batch written in one transaction."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import date
from functools import partial
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine

from app.artifacts import summaries
from app.artifacts.base import batched
from app.settings import Settings
from workers.ml.lifecycle import announce, run_on_pending, write_batch
from workers.ml.models import load_summarizer

if TYPE_CHECKING:
    from ml.summarizer import Summarizer

log = logging.getLogger(__name__)


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
        for chunk in batched(ids, size):
            with engine.connect() as conn:
                batch = summaries.pending_for_ids(conn, chunk, summarizer.version)
            pending += len(batch)
            written += write_batch(
                engine, summaries.upsert, summarize_batch(summarizer, batch, settings)
            )
            if on_batch:
                on_batch(len(chunk))
    return {"model": summarizer.version, "pending": pending, "written": written}


async def _summarize(ctx: dict[str, Any], pending: list[summaries.Pending]) -> dict[str, Any]:
    settings: Settings = ctx["settings"]
    summarizer: Summarizer = ctx["summarizer"]
    loop = asyncio.get_running_loop()
    await announce(ctx)
    written = 0
    for batch in batched(pending, max(1, settings.ml_batch_size)):
        rows = await loop.run_in_executor(
            ctx["executor"], partial(summarize_batch, summarizer, batch, settings)
        )
        written += await asyncio.to_thread(write_batch, ctx["engine"], summaries.upsert, rows)
    return {"model": summarizer.version, "pending": len(pending), "written": written}


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
    args = (date.fromisoformat(day), category, ctx["summarizer"].version)
    result = await run_on_pending(ctx, summaries.pending_for_day, args, _summarize)
    return {"day": day, "category": category, **result}


async def summarize_ids(ctx: dict[str, Any], ids: list[str]) -> dict[str, Any]:
    """TL;DRs for the stored papers among `ids` that lack a current one."""
    if (skipped := _no_summarizer(ctx)) is not None:
        return {"ids": len(ids), **skipped}
    args = (ids, ctx["summarizer"].version)
    result = await run_on_pending(ctx, summaries.pending_for_ids, args, _summarize)
    return {"ids": len(ids), **result}
