"""What the ML pool loads and what the deployment's settings ask of the models: the
summarizer, the embedder (and the web's query model beside it), the picture models, the
thumbnails' solver and versions, and what the pool announces. `ml` (and with it torch) is
imported inside the loaders only."""

from __future__ import annotations

import importlib.util
import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from app.artifacts import summaries, thumbnails
from app.jobs.embeddings import embedder_installed
from app.jobs.pictures import SOLVERS
from app.settings import Settings

if TYPE_CHECKING:
    from ml.embeddings import Embedder
    from ml.pictures import PictureModels
    from ml.summarizer import Summarizer

log = logging.getLogger(__name__)


class SummarizerMissing(RuntimeError):
    """No checkpoint where the settings point."""


class EmbedderMissing(RuntimeError):
    """The embedder cannot run here (the ML extra, with the packaged MiniLM, is missing)."""


class NoModel(RuntimeError):
    """No model at all: no summarizer, no embedder, no picture model."""


def load_summarizer(settings: Settings) -> Summarizer:
    """The real model (torch is imported in here). Tests put their own loader in the
    worker's ctx as `load_summarizer` instead."""
    if not summaries.checkpoint_present(settings.summarizer_path_resolved):
        raise SummarizerMissing(summaries.missing_checkpoint(settings.summarizer_path_resolved))
    from ml import summarizer

    return summarizer.load(settings.summarizer_path_resolved, settings.summarizer_device)


def load_embedder(settings: Settings) -> Embedder:
    """The packaged MiniLM on the embeddings' device (torch is imported in here). Tests put
    their own loader in the worker's ctx as `load_embedder` instead."""
    if not embedder_installed():
        raise EmbedderMissing("no embedder: it needs the ML extra (pip install -e '.[ml]')")
    from ml import embeddings

    embedder = embeddings.load_embedder(
        device=settings.embeddings_device_resolved,
        backend="auto",
        cache_dir=settings.embedder_cache_dir,
    )
    # The ONNX backend has just made the file the web embeds queries with
    # (app.search.query_vector); torch (on a GPU, or bf16 on a CPU) has not.
    if not embedder.backend.startswith("onnx"):
        export_query_model(settings)
    return embedder


def export_query_model(settings: Settings) -> None:
    """The fused ONNX MiniLM in the embedder's cache, built there when missing, for the
    web's query vectors. Without it the web searches by words only, so a failure here is
    logged and the pool goes on."""
    if importlib.util.find_spec("onnxruntime") is None:
        log.info("no query model for the web: onnxruntime is not installed")
        return
    try:
        from ml.embeddings import onnx_fused

        path = onnx_fused.cached_model(settings.embedder_cache_dir)
    except Exception:
        log.warning("the query model for the web was not exported", exc_info=True)
        return
    log.info("query model for the web: %s", path)


def load_picture_models(settings: Settings) -> PictureModels:
    """The picture checkpoints the settings name, onto the pool's one device: the
    tokenizer, the thumbnails' diffusion model and /lab's."""
    from ml import pictures

    return pictures.load_models(
        settings.fsq_path_resolved,
        settings.diffusion_path_resolved,
        settings.summarizer_device,
        settings.lab_diffusion_path_resolved,
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
            models.placeholder.sampler_version(solver, settings.thumbnail_nfe)
            if models.placeholder
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
    if models.placeholder is None:
        # The one line an admin needs: why cards get no placeholder, what to train instead.
        log.warning("no placeholder thumbnails: %s", models.missing["placeholder"])
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
