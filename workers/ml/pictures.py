"""The ML pool's picture work: images in and PNGs out for the interactive jobs (the picture
API and /lab), and thumbnails — the PDF's first page as FSQ tokens where arXiv gives one, a
diffusion placeholder otherwise — for the back-fill jobs and `papershelf reindex
--thumbnails --inline`. ml.pictures does the model-facing work on arrays and images; here
the settings, the store, the PNG encoding and the PDFs (the deployment's arXiv client)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from functools import partial
from typing import TYPE_CHECKING, Any

import httpx
from PIL import Image
from sqlalchemy import Engine

from app.artifacts import thumbnails
from app.artifacts.base import batched
from app.settings import Settings
from workers.arxiv import ArxivClient, ArxivClientError, arxiv_client, make_http_client
from workers.ml.lifecycle import announce, run_on_pending, write_batch
from workers.ml.models import (
    check_thumbnail_settings,
    fetches_pdfs,
    load_picture_models,
    thumbnail_solver,
    thumbnail_versions,
)

if TYPE_CHECKING:
    import numpy as np

    from ml.diffusion.inference import LoadedDiffusion
    from ml.fsq.inference import LoadedTokenizer
    from ml.pictures import LabSetup, PictureModels
    from ml.summarizer import Summarizer

log = logging.getLogger(__name__)


def to_png(array: np.ndarray) -> bytes:
    """(H, W, C) uint8, C = 1 or 3 → PNG, grey and small images scaled up for display."""
    img = Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)
    return thumbnails.encode_png(thumbnails.for_display(img))


def open_images(images: Sequence[bytes]) -> list[Image.Image]:
    """Uploaded images fitted into the tokenizer's square; BadImage for one Pillow cannot
    read (the pool answers it with 422)."""
    return [thumbnails.fit_square(thumbnails.open_rgb(data)) for data in images]


def tokenize(tokenizer: LoadedTokenizer, images: Sequence[bytes]) -> dict[str, Any]:
    """Each image fitted into 64×64, its FSQ tokens and reconstruction (PNG)."""
    from ml import pictures

    return pictures.tokenize(tokenizer, open_images(images), to_png)


def decode(tokenizer: LoadedTokenizer, grids: Sequence[Sequence[Sequence[int]]]) -> dict[str, Any]:
    """Token grids → PNGs; a grid of the wrong shape or out-of-range tokens is BadTokens."""
    from ml import pictures

    for grid in grids:
        thumbnails.validate_tokens(grid, tokenizer.grid, tokenizer.codebook_size)
    return pictures.decode(tokenizer, grids, to_png)


def sample(
    diffusion: LoadedDiffusion, solver: str, nfe: int, seeds: Sequence[int]
) -> dict[str, Any]:
    """Samples for `seeds` (deterministic per seed) as PNGs, with the wall time."""
    from ml import pictures

    return pictures.sample(diffusion, solver, nfe, seeds, to_png)


def lab_setup(settings: Settings) -> LabSetup:
    from ml.pictures import LabSetup

    return LabSetup(
        fsq_path=settings.fsq_path_resolved,
        diffusion_path=settings.diffusion_path_resolved,
        summarizer_path=settings.summarizer_path_resolved,
        device=settings.summarizer_device,
        beams=settings.summarizer_beams,
        lab_diffusion_path=settings.lab_diffusion_path_resolved,
    )


def lab(
    models: PictureModels,
    settings: Settings,
    images: Sequence[bytes],
    paper: tuple[str, str] | None,
    summarizer: Summarizer | None,
) -> dict[str, Any]:
    """What /lab shows (ml.pictures.lab), its pictures as PNGs."""
    from ml import pictures

    return pictures.lab(
        models, lab_setup(settings), lambda: open_images(images), paper, to_png, summarizer
    )


def pdf_url(settings: Settings, pending: thumbnails.Pending) -> str | None:
    base = settings.thumbnail_pdf_url
    if not base:
        return None
    suffix = f"v{pending.version}" if pending.version else ""
    return f"{base.rstrip('/')}/{pending.arxiv_id}{suffix}"


async def fetch_pdfs(
    client: ArxivClient, settings: Settings, pending: Sequence[thumbnails.Pending]
) -> dict[str, bytes]:
    """The PDFs that could be downloaded (none when PDFs are off), one at a time through
    the client's limiter and retries; a failure only means a placeholder."""
    if not settings.thumbnail_pdf_url or not pending:
        return {}
    out: dict[str, bytes] = {}
    for p in pending:
        url = pdf_url(settings, p)
        assert url is not None
        try:
            out[p.arxiv_id] = await client.fetch_pdf(url)
        except (ArxivClientError, httpx.HTTPError) as exc:
            log.info("no PDF for %s (%s): a placeholder instead", p.arxiv_id, exc)
    return out


async def _fetch_pdfs_here(
    settings: Settings, pending: Sequence[thumbnails.Pending]
) -> dict[str, bytes]:
    """`fetch_pdfs` without Redis: the client's limiter keeps the rules in this process."""
    async with make_http_client(settings) as http:
        return await fetch_pdfs(arxiv_client(http, None, settings), settings, pending)


def make_thumbnails(
    models: PictureModels,
    settings: Settings,
    batch: Sequence[thumbnails.Pending],
    pdfs: dict[str, bytes],
) -> list[thumbnails.Written]:
    """Thumbnails for a batch: from the PDF where one was downloaded and a tokenizer is
    loaded, else a placeholder where a plots diffusion model is; papers with neither are
    left (a model trained on anything else never draws a card's picture)."""
    from ml import pictures

    out: list[thumbnails.Written] = []
    placeholders: list[thumbnails.Pending] = []
    pages: list[tuple[thumbnails.Pending, Image.Image]] = []
    for p in batch:
        if models.tokenizer is not None and p.arxiv_id in pdfs:
            try:
                page = pictures.render_first_page(pdfs[p.arxiv_id])
                pages.append((p, thumbnails.fit_square(thumbnails.page_top(page))))
                continue
            except ValueError as exc:
                log.info("cannot render the PDF of %s (%s): a placeholder instead", p.arxiv_id, exc)
        placeholders.append(p)
    if pages and (tok := models.tokenizer) is not None:
        made = pictures.tokenize_pages(tok, [page for _p, page in pages])
        for (p, _page), (grid, img) in zip(pages, made, strict=True):
            out.append(
                thumbnails.Written.from_tokens(
                    p.arxiv_id, p.version, tok.version, grid, tok.levels, to_png(img)
                )
            )
    if placeholders and (diff := models.placeholder) is not None:
        solver = thumbnail_solver(models, settings)
        nfe = settings.thumbnail_nfe
        tried = datetime.now(UTC) if fetches_pdfs(models, settings) else None
        sampled = pictures.placeholders(diff, [p.arxiv_id for p in placeholders], solver, nfe)
        for p, (seed, img) in zip(placeholders, sampled, strict=True):
            out.append(
                thumbnails.Written(
                    p.arxiv_id,
                    "generated",
                    diff.sampler_version(solver, nfe),
                    to_png(img),
                    solver=solver,
                    nfe=nfe,
                    seed=seed,
                    pdf_tried_at=tried,
                )
            )
    return out


def thumbnails_inline(
    settings: Settings,
    engine: Engine,
    *,
    models: PictureModels | None = None,
    limit: int | None = None,
    batch_size: int = 16,
    on_batch: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """`reindex --thumbnails --inline`: every paper lacking a current thumbnail, here."""
    models = models or load_picture_models(settings)
    if (reason := _why_no_thumbnails(models)) is not None:
        raise RuntimeError(reason)
    check_thumbnail_settings(models, settings)
    current = thumbnail_versions(models, settings)
    pending = written = 0
    with engine.connect() as reader:
        ids = list(thumbnails.pending_ids(reader, current, limit=limit))
    for chunk in batched(ids, batch_size):
        with engine.connect() as conn:
            batch = thumbnails.pending_for_ids(conn, chunk, current)
        pdfs = (
            asyncio.run(_fetch_pdfs_here(settings, batch)) if fetches_pdfs(models, settings) else {}
        )
        rows = make_thumbnails(models, settings, batch, pdfs)
        written += write_batch(engine, thumbnails.upsert, rows)
        pending += len(batch)
        if on_batch:
            on_batch(len(chunk))
    return {
        "fsq": current.fsq,
        "diffusion": current.diffusion,
        "pending": pending,
        "written": written,
    }


async def _thumbnails(ctx: dict[str, Any], pending: list[thumbnails.Pending]) -> dict[str, Any]:
    settings: Settings = ctx["settings"]
    models: PictureModels = ctx["pictures"]
    loop = asyncio.get_running_loop()
    await announce(ctx)
    # PDFs only where a tokenizer can use them; they come from arXiv, through the
    # deployment's one client (its limiter: spacing, one connection; its retries).
    fetch = fetches_pdfs(models, settings)
    written = 0
    for batch in batched(pending, max(1, settings.ml_batch_size)):
        pdfs = await fetch_pdfs(ctx["arxiv"], settings, batch) if fetch else {}
        rows = await loop.run_in_executor(
            ctx["executor"], partial(make_thumbnails, models, settings, batch, pdfs)
        )
        written += await asyncio.to_thread(write_batch, ctx["engine"], thumbnails.upsert, rows)
    versions = thumbnail_versions(models, settings)
    return {
        "fsq": versions.fsq,
        "diffusion": versions.diffusion,
        "pending": len(pending),
        "written": written,
    }


def _why_no_thumbnails(models: PictureModels) -> str | None:
    """None when a thumbnail can be made (a tokenizer, or a plots diffusion model)."""
    if models.tokenizer is not None or models.placeholder is not None:
        return None
    return "; ".join(models.missing.values())


def _no_pictures(ctx: dict[str, Any]) -> dict[str, Any] | None:
    reason = _why_no_thumbnails(ctx["pictures"])
    if reason is None:
        return None
    log.warning("job %s skipped: %s", ctx.get("job_id"), reason)
    return {"skipped": reason}


async def thumbnails_for_listing(ctx: dict[str, Any], day: str, category: str) -> dict[str, Any]:
    """Thumbnails for the papers of `category`'s list of `day` that lack a current one."""
    if (skipped := _no_pictures(ctx)) is not None:
        return {"day": day, "category": category, **skipped}
    versions = thumbnail_versions(ctx["pictures"], ctx["settings"])
    args = (date.fromisoformat(day), category, versions)
    result = await run_on_pending(ctx, thumbnails.pending_for_day, args, _thumbnails)
    return {"day": day, "category": category, **result}


async def thumbnails_for_ids(ctx: dict[str, Any], ids: list[str]) -> dict[str, Any]:
    """Thumbnails for the stored papers among `ids` that lack a current one."""
    if (skipped := _no_pictures(ctx)) is not None:
        return {"ids": len(ids), **skipped}
    versions = thumbnail_versions(ctx["pictures"], ctx["settings"])
    result = await run_on_pending(ctx, thumbnails.pending_for_ids, (ids, versions), _thumbnails)
    return {"ids": len(ids), **result}


async def _interactive(
    ctx: dict[str, Any], needs: str | None, fn: Callable[..., dict[str, Any]], *args: Any
) -> dict[str, Any]:
    """Run `fn(model, *args)` on the inference thread for a waiting web request. Input the
    model cannot take is {"error", "status": 422}; a missing model {"status": 503}; anything
    else raises a plain RuntimeError (safe to unpickle in a torch-free process)."""
    from ml.pictures import InputError

    models: PictureModels = ctx["pictures"]
    await announce(ctx)
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
    except (InputError, thumbnails.BadImage, thumbnails.BadTokens) as exc:
        return {"error": str(exc), "status": 422}
    except Exception as exc:
        log.exception("job %s failed", ctx.get("job_id"))
        raise RuntimeError(f"{type(exc).__name__}: {exc}") from None


async def tokenize_images(ctx: dict[str, Any], images: list[bytes]) -> dict[str, Any]:
    """Images (PNG/JPEG… bytes) → FSQ tokens and reconstructions (PNG)."""
    return await _interactive(ctx, "tokenizer", tokenize, images)


async def decode_tokens(ctx: dict[str, Any], grids: list[list[list[int]]]) -> dict[str, Any]:
    """FSQ token grids → PNGs."""
    return await _interactive(ctx, "tokenizer", decode, grids)


async def sample_images(
    ctx: dict[str, Any], solver: str, nfe: int, seeds: list[int]
) -> dict[str, Any]:
    """Diffusion samples for `seeds` with `solver` at `nfe` network evaluations, timed."""
    return await _interactive(ctx, "diffusion", sample, solver, nfe, seeds)


async def lab_compare(
    ctx: dict[str, Any], images: list[bytes], paper: list[str] | None
) -> dict[str, Any]:
    """What /lab shows: reconstructions per codebook size, the solver grid, CE vs EMO."""
    title_abstract = (paper[0], paper[1]) if paper else None

    def run(models: PictureModels) -> dict[str, Any]:
        return lab(models, ctx["settings"], images, title_abstract, ctx.get("summarizer"))

    return await _interactive(ctx, None, run)
