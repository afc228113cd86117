"""The ML pool's embedding jobs, and the synchronous core they share with `papershelf reindex
--embeddings --inline`: one embedder call per batch of PAPERSHELF_EMBEDDINGS_BATCH_SIZE
papers, each batch written in one transaction (app.artifacts.embeddings.upsert)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import date
from functools import partial
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine

from app.artifacts import embeddings
from app.artifacts.base import batched
from app.settings import Settings
from app.vectors import rebuild_if_due
from workers.ml.lifecycle import announce, run_on_pending, write_batch
from workers.ml.models import load_embedder

if TYPE_CHECKING:
    from ml.embeddings import Embedder

log = logging.getLogger(__name__)


def embed_batch(
    embedder: Embedder, batch: Sequence[embeddings.Pending]
) -> list[embeddings.Written]:
    """One embedder call for a batch: a unit vector per paper, recorded against the paper
    version it was read at and the embedder's version."""
    vectors = embedder.embed([(p.title, p.abstract) for p in batch])
    if len(vectors) != len(batch):
        raise RuntimeError(f"the embedder returned {len(vectors)} vectors for {len(batch)} papers")
    return [
        embeddings.Written(p.arxiv_id, p.version, embedder.version, vector)
        for p, vector in zip(batch, vectors, strict=True)
    ]


def embed_inline(
    settings: Settings,
    engine: Engine,
    *,
    limit: int | None = None,
    embedder: Embedder | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Embed every paper lacking a current embedding here, newest first, without Redis."""
    embedder = embedder or load_embedder(settings)
    pending = written = 0
    with engine.connect() as reader:
        ids = embeddings.pending_ids(reader, embedder.version, limit=limit)
        for chunk in batched(ids, settings.embeddings_batch_size):
            with engine.connect() as conn:
                batch = embeddings.pending_for_ids(conn, chunk, embedder.version)
            pending += len(batch)
            written += write_batch(engine, embeddings.upsert, embed_batch(embedder, batch))
            if on_batch:
                on_batch(len(chunk))
    return {
        "model": embedder.version,
        "backend": embedder.backend,
        "pending": pending,
        "written": written,
        "vectors": rebuild_if_due(settings, engine) if written else None,
    }


async def _embed(ctx: dict[str, Any], pending: list[embeddings.Pending]) -> dict[str, Any]:
    settings: Settings = ctx["settings"]
    embedder: Embedder = ctx["embedder"]
    loop = asyncio.get_running_loop()
    await announce(ctx)
    written = 0
    for batch in batched(pending, settings.embeddings_batch_size):
        # The pool's one inference thread: never beside a TL;DR or picture batch.
        rows = await loop.run_in_executor(ctx["executor"], partial(embed_batch, embedder, batch))
        written += await asyncio.to_thread(write_batch, ctx["engine"], embeddings.upsert, rows)
    rebuilt = None
    if written:
        # Fold a large delta into a new index build (rare: see app.vectors.needs_rebuild),
        # on the inference thread so it never competes with a model batch for the CPU.
        rebuilt = await loop.run_in_executor(
            ctx["executor"], partial(rebuild_if_due, settings, ctx["engine"])
        )
    return {
        "model": embedder.version,
        "pending": len(pending),
        "written": written,
        "vectors_rebuilt": rebuilt is not None,
    }


def _no_embedder(ctx: dict[str, Any]) -> dict[str, Any] | None:
    """An embedding job on a pool without an embedder is done at once: nothing to write."""
    if ctx.get("embedder") is not None:
        return None
    log.warning("job %s skipped: %s", ctx.get("job_id"), ctx.get("embedder_missing"))
    return {"skipped": ctx.get("embedder_missing") or "no embedder"}


async def embed_listing(ctx: dict[str, Any], day: str, category: str) -> dict[str, Any]:
    """Embeddings for the papers of `category`'s list of `day` that lack a current one."""
    if (skipped := _no_embedder(ctx)) is not None:
        return {"day": day, "category": category, **skipped}
    args = (date.fromisoformat(day), category, ctx["embedder"].version)
    result = await run_on_pending(ctx, embeddings.pending_for_day, args, _embed)
    return {"day": day, "category": category, **result}


async def embed_ids(ctx: dict[str, Any], ids: list[str]) -> dict[str, Any]:
    """Embeddings for the stored papers among `ids` that lack a current one."""
    if (skipped := _no_embedder(ctx)) is not None:
        return {"ids": len(ids), **skipped}
    args = (ids, ctx["embedder"].version)
    result = await run_on_pending(ctx, embeddings.pending_for_ids, args, _embed)
    return {"ids": len(ids), **result}
