"""The ML pool: `papershelf worker --pool ml` (or `arq workers.ml.WorkerSettings`) writes
TL;DRs into `summaries` and thumbnails into `thumbnails`, and answers the picture API's
jobs, on its own queue (PAPERSHELF_ML_QUEUE).

The models load once, at start-up: the summarizer from PAPERSHELF_SUMMARIZER_PATH, the FSQ
tokenizer and the diffusion model from PAPERSHELF_FSQ_PATH and PAPERSHELF_DIFFUSION_PATH
(ml.pictures), onto PAPERSHELF_SUMMARIZER_DEVICE. Any one of them is enough to
start; a job whose model is missing says so (the TL;DR jobs skip, the picture jobs answer
with the reason); with none the worker does not start. Inference runs on one dedicated
thread (a single-thread executor), PAPERSHELF_ML_BATCH_SIZE papers per call, so the event
loop keeps the heartbeat and the health key going while the model works. Each batch is
written in one transaction (idempotent upserts, app.artifacts) before the next starts: a
killed worker loses at most one batch, and a re-run skips what is written.

Jobs, queued by name through app.jobs.summaries (which also explains the priorities):
- `summarize_listing(day, category)`: the day's list (new, cross-lists, replacements);
- `summarize_ids(ids)`: papers by id (the back-fill of `papershelf reindex --summaries`).
Both summarise only papers without a current TL;DR (see app.artifacts.summaries), so
at-least-once delivery and repeated requests cost a query, not inference.

Picture jobs (queued through app.jobs.pictures):
- `thumbnails_for_listing(day, category)`, `thumbnails_for_ids(ids)`: thumbnails for papers
  lacking a current one (app.artifacts.thumbnails), like the TL;DR jobs;
- `tokenize_images(images)`, `decode_tokens(grids)`, `sample_images(solver, nfe, seeds)`,
  `lab_compare(images, paper)`: interactive, awaited by the web. They return a dict; bad
  input comes back as {"error", "status": 422}, never as an exception the web would have to
  unpickle (an exception from torch would import torch there).

A database error (SQLite's lock, a PostgreSQL restart) has arq run the job again later
(workers.pool.retry_job); what is written stays written.

The models' code (`ml`, and with it torch and numpy) is imported inside the functions that
run once the pool has started (or in `summarize_inline` / `thumbnails_inline`, the inline
back-fills of `papershelf reindex`), so importing this module costs no torch. ml.pictures
does the model-facing picture work on arrays and images; here the settings, the store, the
PNG encoding (app.artifacts.thumbnails) and the PDFs (the deployment's arXiv client) come in.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import httpx
import sqlalchemy.exc
from PIL import Image
from sqlalchemy import Engine

from app.artifacts import summaries, thumbnails
from app.artifacts.base import batched
from app.db.engine import get_engine
from app.jobs import pictures as picture_jobs
from app.jobs.connections import redis_settings
from app.jobs.pictures import SOLVERS
from app.jobs.summaries import MODEL_KEY_TTL, model_key
from app.settings import Settings, get_settings
from workers import pool
from workers.arxiv import ArxivClient, ArxivClientError, arxiv_client, make_http_client
from workers.pool import retry_job

if TYPE_CHECKING:
    import numpy as np

    from ml.diffusion.inference import LoadedDiffusion
    from ml.fsq.inference import LoadedTokenizer
    from ml.pictures import LabSetup, PictureModels
    from ml.summarizer import Summarizer

log = logging.getLogger(__name__)

MAX_TRIES = 3
DATABASE_RETRY_S = 30  # the first re-run's delay after a database error (doubles per try)
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
        for chunk in batched(ids, size):
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
    load_pictures: Callable[[Settings], PictureModels] = (
        ctx.get("load_pictures") or load_picture_models
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
    check_thumbnail_settings(models, settings)
    ctx["engine"] = get_engine(settings)
    # One client for the PDFs, behind the deployment's arXiv limiter and retry policy.
    ctx["http"] = make_http_client(settings)
    ctx["arxiv"] = arxiv_client(ctx["http"], ctx["redis"], settings)
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
    log.info("picture models: %s", announcement(models, settings))


async def shutdown(ctx: dict[str, Any]) -> None:
    if executor := ctx.get("executor"):
        executor.shutdown(wait=False, cancel_futures=True)
    if http := ctx.get("http"):
        await http.aclose()


async def _announce(ctx: dict[str, Any]) -> None:
    """Tell queuers that an ML pool runs, and which models (app.jobs.summaries and
    app.jobs.pictures read it)."""
    settings: Settings = ctx["settings"]
    if ctx.get("summarizer") is not None:
        await ctx["redis"].set(
            model_key(settings), ctx["summarizer"].version, ex=int(MODEL_KEY_TTL.total_seconds())
        )
    models: PictureModels | None = ctx.get("pictures")
    if models is not None:
        await ctx["redis"].set(
            picture_jobs.pictures_key(settings),
            json.dumps(announcement(models, settings)),
            ex=int(picture_jobs.ANNOUNCE_TTL.total_seconds()),
        )


async def _summarize(ctx: dict[str, Any], pending: list[summaries.Pending]) -> dict[str, Any]:
    settings: Settings = ctx["settings"]
    summarizer: Summarizer = ctx["summarizer"]
    loop = asyncio.get_running_loop()
    await _announce(ctx)
    written = 0
    for batch in batched(pending, max(1, settings.ml_batch_size)):
        rows = await loop.run_in_executor(
            ctx["executor"], partial(summarize_batch, summarizer, batch, settings)
        )
        written += await asyncio.to_thread(write, ctx["engine"], rows)
    return {"model": summarizer.version, "pending": len(pending), "written": written}


def _retry_later(ctx: dict[str, Any], exc: sqlalchemy.exc.OperationalError) -> None:
    """A busy database (SQLite's lock, a PostgreSQL restart) is worth another try later
    (arq's Retry: 30 s, then 60 s); what is written stays written."""
    retry_job(ctx, exc, max_tries=MAX_TRIES, first_delay=DATABASE_RETRY_S)


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
        _retry_later(ctx, exc)
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
        _retry_later(ctx, exc)
        raise
    return {"ids": len(ids), **result}


# --- pictures: what the settings ask of the picture models (ml.pictures) --------------------


def load_picture_models(settings: Settings) -> PictureModels:
    """The picture checkpoints the settings name, onto the pool's one device."""
    from ml import pictures

    return pictures.load_models(
        settings.fsq_path_resolved, settings.diffusion_path_resolved, settings.summarizer_device
    )


def fetches_pdfs(models: PictureModels, settings: Settings) -> bool:
    """Whether thumbnails come from PDFs: a URL is set and a tokenizer is loaded."""
    return bool(settings.thumbnail_pdf_url) and models.tokenizer is not None


def thumbnail_solver(models: PictureModels, settings: Settings) -> str:
    """The configured solver, or the fallback when the checkpoint has no AMED predictor for
    the configured NFE."""
    return models.thumbnail_solver(settings.thumbnail_solver, settings.thumbnail_nfe)


def thumbnail_versions(models: PictureModels, settings: Settings) -> thumbnails.Models:
    solver = thumbnail_solver(models, settings)
    return thumbnails.Models(
        fsq=models.tokenizer.version if models.tokenizer else None,
        diffusion=(
            models.diffusion.sampler_version(solver, settings.thumbnail_nfe)
            if models.diffusion
            else None
        ),
        solver=solver,
        nfe=settings.thumbnail_nfe,
        pdf_retry_before=(
            datetime.now(UTC) - timedelta(days=settings.thumbnail_pdf_retry_days)
            if fetches_pdfs(models, settings)
            else None
        ),
    )


def announcement(models: PictureModels, settings: Settings) -> dict[str, Any]:
    """What the pool tells the web and the CLI (app.jobs.pictures reads it), including the
    versions a current thumbnail must carry (`reindex --thumbnails` counts with them)."""
    v = thumbnail_versions(models, settings)
    current = {
        "fsq": v.fsq,
        "diffusion": v.diffusion,
        "solver": v.solver,
        "nfe": v.nfe,
        # The CLI derives `pdf_retry_before` from this at the time it counts.
        "pdf_retry_days": (
            settings.thumbnail_pdf_retry_days if fetches_pdfs(models, settings) else None
        ),
    }
    return {**models.describe(), "thumbnails": current, "missing": dict(models.missing)}


def check_thumbnail_settings(models: PictureModels, settings: Settings) -> None:
    """Refuse settings no model can follow (at start-up, not per job); warn when the
    configured AMED solver lacks its predictor (placeholders use iPNDM meanwhile)."""
    from ml.diffusion.samplers import SOLVERS as MODEL_SOLVERS

    # The web validates requests with the contract's list: it must be the samplers' own.
    if tuple(MODEL_SOLVERS) != tuple(SOLVERS):
        raise RuntimeError(
            f"the samplers' solvers ({', '.join(MODEL_SOLVERS)}) differ from app.jobs.pictures"
            f".SOLVERS ({', '.join(SOLVERS)})"
        )
    if settings.thumbnail_solver not in SOLVERS:
        raise RuntimeError(
            f"PAPERSHELF_THUMBNAIL_SOLVER={settings.thumbnail_solver!r} is not a solver "
            f"({', '.join(SOLVERS)})"
        )
    if not 1 <= settings.thumbnail_nfe <= 50:
        raise RuntimeError(f"PAPERSHELF_THUMBNAIL_NFE={settings.thumbnail_nfe} is not in 1–50")
    if models.diffusion is None:
        return
    if (solver := thumbnail_solver(models, settings)) != settings.thumbnail_solver:
        log.warning(
            "no %s predictor for NFE %d in %s (run `papershelf ml train-amed --solver %s --nfe "
            "%d`): placeholders use %s meanwhile",
            settings.thumbnail_solver,
            settings.thumbnail_nfe,
            settings.diffusion_path_resolved,
            settings.thumbnail_solver,
            settings.thumbnail_nfe,
            solver,
        )


# --- images in, PNGs out --------------------------------------------------------------------


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


# --- thumbnails: PDFs from arXiv, pictures made and stored ---------------------------------


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
    loaded, else a placeholder where a diffusion model is; papers with neither are left."""
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
    if placeholders and (diff := models.diffusion) is not None:
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


def write_thumbnails(engine: Engine, rows: Sequence[thumbnails.Written]) -> int:
    with engine.begin() as conn:  # one transaction per batch
        return thumbnails.upsert(conn, rows)


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
    if not models.any:
        raise RuntimeError("; ".join(models.missing.values()))
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
        written += write_thumbnails(engine, rows)
        pending += len(batch)
        if on_batch:
            on_batch(len(chunk))
    return {
        "fsq": current.fsq,
        "diffusion": current.diffusion,
        "pending": pending,
        "written": written,
    }


# --- picture jobs ----------------------------------------------------------------------------


async def _thumbnails(ctx: dict[str, Any], pending: list[thumbnails.Pending]) -> dict[str, Any]:
    settings: Settings = ctx["settings"]
    models: PictureModels = ctx["pictures"]
    loop = asyncio.get_running_loop()
    await _announce(ctx)
    # PDFs only where a tokenizer can use them; they come from arXiv, through the
    # deployment's one client (its limiter: spacing, one connection; its retries).
    fetch = fetches_pdfs(models, settings)
    written = 0
    for batch in batched(pending, max(1, settings.ml_batch_size)):
        pdfs = await fetch_pdfs(ctx["arxiv"], settings, batch) if fetch else {}
        rows = await loop.run_in_executor(
            ctx["executor"], partial(make_thumbnails, models, settings, batch, pdfs)
        )
        written += await asyncio.to_thread(write_thumbnails, ctx["engine"], rows)
    versions = thumbnail_versions(models, settings)
    return {
        "fsq": versions.fsq,
        "diffusion": versions.diffusion,
        "pending": len(pending),
        "written": written,
    }


def _no_pictures(ctx: dict[str, Any]) -> dict[str, Any] | None:
    models: PictureModels = ctx["pictures"]
    if models.any:
        return None
    reason = "; ".join(models.missing.values())
    log.warning("job %s skipped: %s", ctx.get("job_id"), reason)
    return {"skipped": reason}


async def thumbnails_for_listing(ctx: dict[str, Any], day: str, category: str) -> dict[str, Any]:
    """Thumbnails for the papers of `category`'s list of `day` that lack a current one."""
    if (skipped := _no_pictures(ctx)) is not None:
        return {"day": day, "category": category, **skipped}
    versions = thumbnail_versions(ctx["pictures"], ctx["settings"])
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
        _retry_later(ctx, exc)
        raise
    return {"day": day, "category": category, **result}


async def thumbnails_for_ids(ctx: dict[str, Any], ids: list[str]) -> dict[str, Any]:
    """Thumbnails for the stored papers among `ids` that lack a current one."""
    if (skipped := _no_pictures(ctx)) is not None:
        return {"ids": len(ids), **skipped}
    versions = thumbnail_versions(ctx["pictures"], ctx["settings"])
    try:
        pending = await asyncio.to_thread(
            _read, ctx["engine"], thumbnails.pending_for_ids, ids, versions
        )
        result = await _thumbnails(ctx, pending)
    except sqlalchemy.exc.OperationalError as exc:
        _retry_later(ctx, exc)
        raise
    return {"ids": len(ids), **result}


async def _interactive(
    ctx: dict[str, Any], needs: str | None, fn: Callable[..., dict[str, Any]], *args: Any
) -> dict[str, Any]:
    """Run `fn(model, *args)` on the inference thread for a waiting web request. Input the
    model cannot take is {"error", "status": 422}; a missing model {"status": 503}; anything
    else raises a plain RuntimeError (safe to unpickle in a torch-free process)."""
    from ml.pictures import InputError

    models: PictureModels = ctx["pictures"]
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


class WorkerSettings:
    """`papershelf worker --pool ml` (or `arq workers.ml.WorkerSettings`)."""

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
    # so a day's list queued during a back-fill job is the next one (app.jobs.summaries).
    max_jobs = 1
    max_tries = MAX_TRIES
    job_timeout = get_settings().ml_job_timeout
    keep_result = 60  # short: a kept result blocks its job id from running again
    health_check_interval = pool.HEALTH_CHECK_INTERVAL
    health_check_key = pool.health_check_key(queue_name)
    job_completion_wait = pool.JOB_COMPLETION_WAIT  # on SIGTERM, a running job ends its batch
    redis_settings = redis_settings(get_settings().redis_url)
