"""The ML pool's picture work: the FSQ tokenizer and the diffusion model, loaded once, and
what the jobs in ml/worker.py do with them (on the pool's one inference thread).

- `tokenize`: image bytes → FSQ token grid + the reconstruction as PNG;
- `decode`: token grids → PNGs;
- `sample`: seeds → PNGs with a solver at an NFE, timed;
- `make_thumbnails`: per paper, the first page of its PDF (when PDFs are fetched:
  PAPERSHELF_THUMBNAIL_PDF_URL) tokenized and decoded, else a placeholder sampled with the
  configured solver and NFE from `seed_for_paper(id)` (the same picture on every run);
- `lab`: reconstructions at every FSQ codebook size found, one noise sampled by every
  solver at NFE 3/5/9 with timings, and the CE and EMO summarizers on one paper.

Either model may be missing: what needs it reports that instead of failing. Storage is
app.thumbnails (torch-free); PDFs are downloaded through the deployment's arXiv limiter.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np
from PIL import Image

from app import thumbnails
from app.settings import Settings
from app.summaries import batched, checkpoint_present

if TYPE_CHECKING:
    from ml.diffusion.inference import LoadedDiffusion
    from ml.fsq.inference import LoadedTokenizer
    from ml.summarizer import Summarizer

log = logging.getLogger("papershelf.ml.pictures")

LAB_NFES = (3, 5, 9)
LAB_SEEDS = (0, 1)  # two samples per cell: small, quick, still shows the noise is shared
MAX_PDF_BYTES = 40_000_000
PDF_RENDER_SCALE = 0.5  # 36 dpi: plenty for a 64-pixel thumbnail
ALL_SOLVERS = ("ddim", "heun", "dpm2m", "dpm3m", "ipndm", "amed", "amed_plugin")
FALLBACK_SOLVER = "ipndm"


class InputError(ValueError):
    """The caller's input does not fit the model (answered as 422, not a failure)."""


def fsq_missing(path: Path) -> str:
    return f"no FSQ tokenizer checkpoint at {path}: run `papershelf ml train-fsq` first"


def diffusion_missing(path: Path) -> str:
    return f"no diffusion checkpoint at {path}: run `papershelf ml train-diffusion` first"


@dataclass
class PictureModels:
    """The picture models the pool runs; a missing one is None with the reason in `missing`."""

    tokenizer: LoadedTokenizer | None = None
    diffusion: LoadedDiffusion | None = None
    missing: dict[str, str] = field(default_factory=dict)
    # The lab's extra checkpoints (other codebook sizes, the other summarizer), loaded once.
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def any(self) -> bool:
        return self.tokenizer is not None or self.diffusion is not None

    def versions(self, settings: Settings) -> thumbnails.Models:
        solver = self.thumbnail_solver(settings)
        return thumbnails.Models(
            fsq=self.tokenizer.version if self.tokenizer else None,
            diffusion=(
                self.diffusion.sampler_version(solver, settings.thumbnail_nfe)
                if self.diffusion
                else None
            ),
            solver=solver,
            nfe=settings.thumbnail_nfe,
            pdf_retry_before=(
                datetime.now(UTC) - timedelta(days=settings.thumbnail_pdf_retry_days)
                if self.fetches_pdfs(settings)
                else None
            ),
        )

    def fetches_pdfs(self, settings: Settings) -> bool:
        """Whether thumbnails come from PDFs: a URL is set and a tokenizer is loaded."""
        return bool(settings.thumbnail_pdf_url) and self.tokenizer is not None

    def thumbnail_solver(self, settings: Settings) -> str:
        """The configured solver, or iPNDM (what AMED-Plugin builds on) when the checkpoint
        has no AMED predictor for the configured NFE."""
        wanted = settings.thumbnail_solver
        if self.diffusion is None or wanted in self.diffusion.solvers_available(
            settings.thumbnail_nfe
        ):
            return wanted
        return FALLBACK_SOLVER

    def announcement(self, settings: Settings) -> dict[str, Any]:
        """What the pool tells the web and the CLI (workers.pictures reads it), including the
        versions a current thumbnail must carry (`reindex --thumbnails` counts with them)."""
        fsq = diffusion = None
        if (t := self.tokenizer) is not None:
            fsq = {
                "version": t.version,
                "levels": list(t.levels),
                "grid": list(t.grid),
                "codebook_size": int(t.codebook_size),
            }
        if (d := self.diffusion) is not None:
            diffusion = {
                "version": d.version,
                "shape": list(d.shape),
                "solvers": list(d.solvers_available()),
                "amed_nfes": d.predictor_nfes(),
            }
        v = self.versions(settings)
        current = {
            "fsq": v.fsq,
            "diffusion": v.diffusion,
            "solver": v.solver,
            "nfe": v.nfe,
            # The CLI derives `pdf_retry_before` from this at the time it counts.
            "pdf_retry_days": (
                settings.thumbnail_pdf_retry_days if self.fetches_pdfs(settings) else None
            ),
        }
        return {
            "fsq": fsq,
            "diffusion": diffusion,
            "thumbnails": current,
            "missing": dict(self.missing),
        }


def load_models(settings: Settings) -> PictureModels:
    """Load whichever picture checkpoints exist (torch is imported in here)."""
    models = PictureModels()
    device = settings.summarizer_device  # the pool's one device setting
    if checkpoint_present(settings.fsq_path_resolved):
        from ml.fsq.inference import LoadedTokenizer

        models.tokenizer = LoadedTokenizer.load(settings.fsq_path_resolved, device)
    else:
        models.missing["fsq"] = fsq_missing(settings.fsq_path_resolved)
    if checkpoint_present(settings.diffusion_path_resolved):
        from ml.diffusion.inference import LoadedDiffusion

        models.diffusion = LoadedDiffusion.load(settings.diffusion_path_resolved, device)
    else:
        models.missing["diffusion"] = diffusion_missing(settings.diffusion_path_resolved)
    return models


# --- images ⇄ arrays ------------------------------------------------------------------------


def to_png(array: np.ndarray) -> bytes:
    """(H, W, C) uint8, C = 1 or 3 → PNG, grey and small images scaled up for display."""
    img = Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)
    return thumbnails.encode_png(thumbnails.for_display(img))


def as_input(img: Image.Image) -> np.ndarray:
    """(64, 64, 3) uint8: the tokenizer's input."""
    return np.asarray(thumbnails.fit_square(img), dtype=np.uint8)


# --- the interactive jobs' work -------------------------------------------------------------


def tokenize(tokenizer: LoadedTokenizer, images: Sequence[bytes]) -> dict[str, Any]:
    """Each image fitted into 64×64, its FSQ tokens and reconstruction (PNG)."""
    try:
        batch = np.stack([as_input(thumbnails.open_rgb(data)) for data in images])
    except thumbnails.BadImage as exc:
        raise InputError(str(exc)) from None
    tokens = tokenizer.encode(batch)
    recon = tokenizer.decode(tokens)
    items = []
    for original, grid, out in zip(batch, tokens, recon, strict=True):
        mse = pixel_mse(original, out)
        items.append(
            {
                "tokens": grid.astype(int).tolist(),
                "input_png": to_png(original),
                "reconstruction_png": to_png(out),
                "mse": mse,
                "psnr": psnr(mse),
            }
        )
    return {**_tokenizer_fields(tokenizer), "items": items}


def pixel_mse(a: np.ndarray, b: np.ndarray) -> float:
    """MSE with pixels in [0, 1], as `papershelf ml eval-fsq` reports it."""
    return float(np.mean((a.astype(np.float64) / 255.0 - b.astype(np.float64) / 255.0) ** 2))


def psnr(mse: float) -> float | None:
    return None if mse <= 0 else 10 * math.log10(1.0 / mse)


def _tokenizer_fields(tokenizer: LoadedTokenizer) -> dict[str, Any]:
    return {
        "model": tokenizer.version,
        "levels": list(tokenizer.levels),
        "grid": list(tokenizer.grid),
        "codebook_size": int(tokenizer.codebook_size),
    }


def decode(tokenizer: LoadedTokenizer, grids: Sequence[Sequence[Sequence[int]]]) -> dict[str, Any]:
    """Token grids → PNGs; a grid of the wrong shape or out-of-range tokens is InputError."""
    for grid in grids:
        try:
            thumbnails.validate_tokens(grid, tokenizer.grid, tokenizer.codebook_size)
        except thumbnails.BadTokens as exc:
            raise InputError(str(exc)) from None
    images = tokenizer.decode(np.asarray(grids, dtype=np.int64))
    return {**_tokenizer_fields(tokenizer), "pngs": [to_png(img) for img in images]}


def sample(
    diffusion: LoadedDiffusion, solver: str, nfe: int, seeds: Sequence[int]
) -> dict[str, Any]:
    """Samples for `seeds` (deterministic per seed), with the wall time."""
    if solver not in diffusion.solvers_available(nfe):
        raise InputError(
            f"solver {solver!r} is not available at NFE {nfe} (available: "
            f"{', '.join(diffusion.solvers_available(nfe))}; an AMED solver needs a predictor "
            "trained for that NFE: `papershelf ml train-amed`)"
        )
    start = time.perf_counter()
    try:
        images = diffusion.sample(list(seeds), solver, nfe)
    except ValueError as exc:  # an NFE the solver cannot hit, a missing predictor
        raise InputError(str(exc)) from None
    seconds = time.perf_counter() - start
    return {
        "model": diffusion.version,
        "solver": solver,
        "nfe": nfe,
        "seeds": list(seeds),
        "shape": list(diffusion.shape),
        "seconds": seconds,
        "pngs": [to_png(img) for img in images],
    }


# --- thumbnails -----------------------------------------------------------------------------


def render_first_page(pdf: bytes) -> Image.Image:
    """The PDF's first page as an RGB image (pypdfium2; raises ValueError when unreadable)."""
    import pypdfium2 as pdfium

    try:
        doc = pdfium.PdfDocument(pdf)
    except pdfium.PdfiumError as exc:
        raise ValueError(f"not a readable PDF: {exc}") from None
    try:
        if len(doc) == 0:
            raise ValueError("the PDF has no pages")
        page = doc[0]
        try:
            return page.render(scale=PDF_RENDER_SCALE).to_pil().convert("RGB")
        finally:
            page.close()
    finally:
        doc.close()


def pdf_url(settings: Settings, pending: thumbnails.Pending) -> str | None:
    base = settings.thumbnail_pdf_url
    if not base:
        return None
    suffix = f"v{pending.version}" if pending.version else ""
    return f"{base.rstrip('/')}/{pending.arxiv_id}{suffix}"


async def fetch_pdfs(
    settings: Settings,
    pending: Sequence[thumbnails.Pending],
    slot: Callable[[], Any] | None = None,
) -> dict[str, bytes]:
    """The PDFs that could be downloaded (none when PDFs are off). `slot` is the arXiv
    limiter's (one request at a time, spaced); a failure only means a placeholder."""
    if not settings.thumbnail_pdf_url or not pending:
        return {}
    headers = {"User-Agent": f"papershelf (mailto:{settings.arxiv_contact})"}
    out: dict[str, bytes] = {}
    async with httpx.AsyncClient(
        timeout=settings.arxiv_timeout, headers=headers, follow_redirects=True
    ) as client:
        for p in pending:
            url = pdf_url(settings, p)
            assert url is not None
            try:
                if slot is not None:
                    async with slot():
                        data = await _download(client, url)
                else:
                    data = await _download(client, url)
                    await asyncio.sleep(settings.arxiv_min_interval)
            except (httpx.HTTPError, ValueError) as exc:
                log.info("no PDF for %s (%s): a placeholder instead", p.arxiv_id, exc)
                continue
            out[p.arxiv_id] = data
    return out


async def _download(client: httpx.AsyncClient, url: str) -> bytes:
    async with client.stream("GET", url) as response:
        response.raise_for_status()
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > MAX_PDF_BYTES:
                raise ValueError(f"larger than {MAX_PDF_BYTES} bytes")
            chunks.append(chunk)
    data = b"".join(chunks)
    if not data.startswith(b"%PDF"):
        raise ValueError("not a PDF")
    return data


def make_thumbnails(
    models: PictureModels,
    settings: Settings,
    batch: Sequence[thumbnails.Pending],
    pdfs: dict[str, bytes],
) -> list[thumbnails.Written]:
    """Thumbnails for a batch: from the PDF where one was downloaded and a tokenizer is
    loaded, else a placeholder where a diffusion model is; papers with neither are left."""
    from ml.diffusion.inference import seed_for_paper

    out: list[thumbnails.Written] = []
    placeholders: list[thumbnails.Pending] = []
    pages: list[tuple[thumbnails.Pending, np.ndarray]] = []
    for p in batch:
        if models.tokenizer is not None and p.arxiv_id in pdfs:
            try:
                pages.append(
                    (p, as_input(thumbnails.page_top(render_first_page(pdfs[p.arxiv_id]))))
                )
                continue
            except ValueError as exc:
                log.info("cannot render the PDF of %s (%s): a placeholder instead", p.arxiv_id, exc)
        placeholders.append(p)
    if pages and (tok := models.tokenizer) is not None:
        tokens = tok.encode(np.stack([page for _p, page in pages]))
        recon = tok.decode(tokens)
        for (p, _page), grid, img in zip(pages, tokens, recon, strict=True):
            out.append(
                thumbnails.Written.from_tokens(
                    p.arxiv_id, p.version, tok.version, grid.tolist(), tok.levels, to_png(img)
                )
            )
    if placeholders and (diff := models.diffusion) is not None:
        solver = models.thumbnail_solver(settings)
        tried = datetime.now(UTC) if models.fetches_pdfs(settings) else None
        seeds = [seed_for_paper(p.arxiv_id) for p in placeholders]
        images = diff.sample(seeds, solver, settings.thumbnail_nfe)
        for p, seed, img in zip(placeholders, seeds, images, strict=True):
            out.append(
                thumbnails.Written(
                    p.arxiv_id,
                    "generated",
                    diff.sampler_version(solver, settings.thumbnail_nfe),
                    to_png(img),
                    solver=solver,
                    nfe=settings.thumbnail_nfe,
                    seed=seed,
                    pdf_tried_at=tried,
                )
            )
    return out


def check_thumbnail_settings(models: PictureModels, settings: Settings) -> None:
    """Refuse settings no model can follow (at start-up, not per job); warn when the
    configured AMED solver lacks its predictor (placeholders use iPNDM meanwhile)."""
    from ml.diffusion.samplers import SOLVERS

    if settings.thumbnail_solver not in SOLVERS:
        raise RuntimeError(
            f"PAPERSHELF_THUMBNAIL_SOLVER={settings.thumbnail_solver!r} is not a solver "
            f"({', '.join(SOLVERS)})"
        )
    if not 1 <= settings.thumbnail_nfe <= 50:
        raise RuntimeError(f"PAPERSHELF_THUMBNAIL_NFE={settings.thumbnail_nfe} is not in 1–50")
    if models.diffusion is None:
        return
    if (solver := models.thumbnail_solver(settings)) != settings.thumbnail_solver:
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


def thumbnails_inline(
    settings: Settings,
    engine: Any,
    *,
    models: PictureModels | None = None,
    limit: int | None = None,
    batch_size: int = 16,
    on_batch: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """`reindex --thumbnails --inline`: every paper lacking a current thumbnail, here."""
    models = models or load_models(settings)
    if not models.any:
        raise RuntimeError("; ".join(models.missing.values()))
    check_thumbnail_settings(models, settings)
    versions = models.versions(settings)
    pending = written = 0
    with engine.connect() as reader:
        ids = list(thumbnails.pending_ids(reader, versions, limit=limit))
    for chunk in batched(ids, batch_size):
        with engine.connect() as conn:
            batch = thumbnails.pending_for_ids(conn, chunk, versions)
        pdfs = asyncio.run(fetch_pdfs(settings, batch)) if models.tokenizer is not None else {}
        rows = make_thumbnails(models, settings, batch, pdfs)
        with engine.begin() as conn:
            written += thumbnails.upsert(conn, rows)
        pending += len(batch)
        if on_batch:
            on_batch(len(chunk))
    return {
        "fsq": versions.fsq,
        "diffusion": versions.diffusion,
        "pending": pending,
        "written": written,
    }


# --- the lab --------------------------------------------------------------------------------


def fsq_checkpoints(settings: Settings) -> list[Path]:
    """The configured tokenizer and every `fsq*` checkpoint beside it (other codebook
    sizes), configured one first."""
    main = settings.fsq_path_resolved
    found = [main] if checkpoint_present(main) else []
    parent = main.parent
    if parent.is_dir():
        for p in sorted(parent.iterdir()):
            if p != main and p.name.startswith("fsq") and (p / "config.json").is_file():
                found.append(p)
    return found


def summarizer_checkpoints(settings: Settings) -> dict[str, Path]:
    """One summarizer checkpoint per kind of training objective, "ce" and "emo" (EMO mode 1
    or 2), read from each checkpoint's config.json (meta.objective): the configured one
    first, then the folders beside it."""
    main = settings.summarizer_path_resolved
    candidates = [main]
    if main.parent.is_dir():
        candidates += sorted(p for p in main.parent.iterdir() if p.is_dir() and p != main)
    out: dict[str, Path] = {}
    for path in candidates:
        try:
            config = json.loads((path / "config.json").read_text())
        except (OSError, ValueError):
            continue
        meta = config.get("meta") if isinstance(config, dict) else None
        objective = meta.get("objective") if isinstance(meta, dict) else None
        if config.get("format") and isinstance(objective, str):
            kind = "emo" if objective.startswith("emo") else objective
            out.setdefault(kind, path)
    return out


def _cached(models: PictureModels, key: str, load: Callable[[], Any]) -> Any:
    if key not in models.extra:
        models.extra[key] = load()
    return models.extra[key]


def lab_reconstructions(
    models: PictureModels, settings: Settings, images: Sequence[bytes]
) -> dict[str, Any]:
    paths = fsq_checkpoints(settings)
    if not paths:
        return {"missing": fsq_missing(settings.fsq_path_resolved), "rows": []}
    try:
        batch = np.stack([as_input(thumbnails.open_rgb(data)) for data in images])
    except thumbnails.BadImage as exc:
        raise InputError(str(exc)) from None
    rows = []
    for path in paths:
        if path == settings.fsq_path_resolved and models.tokenizer is not None:
            tok = models.tokenizer
        else:
            from ml.fsq.inference import LoadedTokenizer

            tok = _cached(
                models,
                f"fsq:{path}",
                lambda path=path: LoadedTokenizer.load(path, settings.summarizer_device),
            )
        recon = tok.reconstruct(batch)
        mse = pixel_mse(batch, recon)
        rows.append(
            {
                "name": path.name,
                **_tokenizer_fields(tok),
                "mse": mse,
                "psnr": psnr(mse),
                "pngs": [to_png(img) for img in recon],
            }
        )
    rows.sort(key=lambda r: r["codebook_size"])
    return {"originals": [to_png(img) for img in batch], "rows": rows}


def lab_solvers(models: PictureModels, settings: Settings) -> dict[str, Any]:
    diff = models.diffusion
    if diff is None:
        return {
            "missing": models.missing.get("diffusion")
            or diffusion_missing(settings.diffusion_path_resolved),
            "rows": [],
        }
    rows = []
    for solver in ALL_SOLVERS:
        cells = []
        for nfe in LAB_NFES:
            if solver not in diff.solvers_available(nfe):
                cells.append({"nfe": nfe, "error": f"no AMED predictor for NFE {nfe}"})
                continue
            try:
                result = sample(diff, solver, nfe, LAB_SEEDS)
            except InputError as exc:
                cells.append({"nfe": nfe, "error": str(exc)})
                continue
            cells.append(
                {
                    "nfe": nfe,
                    "pngs": result["pngs"],
                    "seconds": result["seconds"],
                    "per_image_s": result["seconds"] / len(LAB_SEEDS),
                }
            )
        rows.append({"solver": solver, "cells": cells})
    return {"model": diff.version, "nfes": list(LAB_NFES), "seeds": list(LAB_SEEDS), "rows": rows}


def lab_summaries(
    models: PictureModels,
    settings: Settings,
    paper: tuple[str, str] | None,
    loaded: Summarizer | None,
) -> dict[str, Any]:
    found = summarizer_checkpoints(settings)
    lacking = [o for o in ("ce", "emo") if o not in found]
    if lacking:
        names = {"ce": "cross-entropy", "emo": "EMO"}
        return {
            "missing": "no summarizer checkpoint trained with "
            f"{' or '.join(names[o] for o in lacking)} "
            f"at or beside {settings.summarizer_path_resolved}: train one with "
            "`papershelf ml train-summarizer --objective "
            f"{'ce' if lacking[0] == 'ce' else 'emo1'}` into a folder beside it"
        }
    if paper is None:
        return {"missing": "no paper in the store to summarise"}
    from ml import summarizer

    out: dict[str, Any] = {}
    for objective in ("ce", "emo"):
        path = found[objective]
        if loaded is not None and path == settings.summarizer_path_resolved:
            model = loaded
        else:
            model = _cached(
                models,
                f"summarizer:{path}",
                lambda path=path: summarizer.load(path, settings.summarizer_device),
            )
        start = time.perf_counter()
        text = model.summarize([paper], beams=settings.summarizer_beams)[0]
        out[objective] = {
            "model": model.version,
            "tldr": " ".join(text.split()),
            "seconds": time.perf_counter() - start,
        }
    return out


def lab(
    models: PictureModels,
    settings: Settings,
    images: Sequence[bytes],
    paper: tuple[str, str] | None,
    loaded_summarizer: Summarizer | None = None,
) -> dict[str, Any]:
    """Everything /lab shows, each part saying what it lacks instead of failing."""
    return {
        "reconstructions": lab_reconstructions(models, settings, images),
        "solvers": lab_solvers(models, settings),
        "summaries": lab_summaries(models, settings, paper, loaded_summarizer),
    }
