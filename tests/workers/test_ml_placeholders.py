"""Placeholders come only from a diffusion model trained on the plots: with a Fashion-MNIST
model where the thumbnails' model belongs, the ML pool says once, at start-up, which command
trains the right one, draws no card picture (the picture API still samples it), and thumbnail
jobs are not queued for it; /lab samples its own Fashion model, found at its own path, while
the placeholders come from the plots model. REAL tiny checkpoints, a real worker and Redis."""

from __future__ import annotations

import functools
import json
import logging
import shutil
from pathlib import Path
from typing import Any

import pytest
from arq.connections import ArqRedis
from sqlalchemy import Engine

from app.jobs import pictures as picture_jobs
from app.jobs.queueing import submit
from tests.workers import test_ml_pictures as pictures_tests
from tests.workers.test_ml_pictures import (
    call_job,
    make_settings,
    png_bytes,
    png_image,
    rec,
    rows,
    run_burst,
    seed,
)
from workers.ml import pictures as ml_pictures

pytest.importorskip("torch", reason="the ML extra is not installed")
pytestmark = pytest.mark.anyio
redis_url = pictures_tests.redis_url
redis_key = pictures_tests.redis_key
anyio_backend = pictures_tests.anyio_backend
pool = pictures_tests.pool
tiny_models = pictures_tests.tiny_models
REFUSAL = "no placeholder thumbnails"
TRAIN_PLOTS = "papershelf ml train-diffusion --dataset plots"


@functools.cache
def build_tiny_fashion(root: Path, images_dir: Path) -> Path:
    """A Fashion-MNIST U-Net of a few steps (32×32 grey), as `train-diffusion --dataset
    fashion` writes it."""
    import torch

    from ml.diffusion.train import DiffusionTrainConfig, train_diffusion

    torch.set_num_threads(1)
    out = root / "diffusion-fashion"
    train_diffusion(
        DiffusionTrainConfig(
            images_dir=images_dir,
            dataset="fashion",
            out=out,
            steps=2,
            batch=4,
            size="tiny",
            limit=32,
            device="cpu",
        )
    )
    return out


@pytest.fixture(scope="session")
def tiny_fashion(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_fashion(
        tmp_path_factory.getbasetemp() / "tiny-fashion-model", shared_data / "images"
    )


def refusals(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if REFUSAL in r.getMessage()]


async def test_a_fashion_model_draws_no_card_pictures(
    sqlite_engine: Engine,
    tmp_path: Path,
    redis_url: str,
    pool: ArqRedis,
    tiny_fashion: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = make_settings(sqlite_engine, tmp_path, redis_url, {"diffusion": tiny_fashion})
    seed(sqlite_engine, [rec(1), rec(2)])
    # Not even queued: nothing here or in the pool can make a thumbnail.
    assert not picture_jobs.thumbnail_models_present(settings)
    thumbs = await submit(pool, settings, picture_jobs.ids_request(["2607.00001", "2607.00002"]))
    sample = await pool.enqueue_job(
        picture_jobs.SAMPLE_FUNCTION, "ipndm", 3, [1], _queue_name=settings.ml_queue
    )
    assert thumbs is not None and sample is not None
    with caplog.at_level(logging.INFO):
        worker = await run_burst(settings)
    assert (worker.jobs_complete, worker.jobs_failed) == (2, 0)

    # One line at start-up says why and which command trains the thumbnails' model.
    said = refusals(caplog)
    assert len(said) == 1, said
    assert "Fashion-MNIST" in said[0] and TRAIN_PLOTS in said[0] and str(tiny_fashion) in said[0]
    # The job skips with the same reason; no garment reaches a card.
    skipped = await thumbs.result(timeout=5)
    assert TRAIN_PLOTS in skipped["skipped"]
    assert rows(sqlite_engine) == {}
    # The picture API still samples the configured model (32×32 grey, shown at 64×64).
    sampled = await sample.result(timeout=5)
    assert sampled["model"].startswith("diffusion-fashion-") and sampled["shape"] == [1, 32, 32]
    assert png_image(sampled["pngs"][0]).size == (64, 64)

    announced = await picture_jobs.announced(pool, settings)
    assert announced is not None
    assert announced["diffusion"]["dataset"] == "fashion"
    assert announced["diffusion"]["placeholders"] is False
    assert announced["thumbnails"]["diffusion"] is None
    assert not await picture_jobs.thumbnails_enabled(pool, settings)


async def test_placeholders_from_plots_and_the_lab_from_fashion(
    sqlite_engine: Engine,
    tmp_path: Path,
    redis_url: str,
    pool: ArqRedis,
    tiny_models: Any,
    tiny_fashion: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = make_settings(
        sqlite_engine, tmp_path, redis_url, tiny_models, lab_diffusion_path=tiny_fashion
    )
    seed(sqlite_engine, [rec(1), rec(2)])
    assert picture_jobs.thumbnail_models_present(settings)
    assert await submit(pool, settings, picture_jobs.ids_request(["2607.00001", "2607.00002"]))
    with caplog.at_level(logging.INFO):
        await run_burst(settings)
    assert refusals(caplog) == []
    made = rows(sqlite_engine)
    assert {r.source for r in made.values()} == {"generated"}
    assert all(r.model_version.startswith("diffusion-plots-") for r in made.values())

    lab = await call_job(pool, settings, picture_jobs.LAB_FUNCTION, [png_bytes()], None)
    solvers = lab["solvers"]
    assert solvers["model"].startswith("diffusion-fashion-") and solvers["dataset"] == "fashion"
    ipndm = next(r for r in solvers["rows"] if r["solver"] == "ipndm")
    assert all(png_image(p).mode == "RGB" for c in ipndm["cells"] for p in c["pngs"])
    announced = await picture_jobs.announced(pool, settings)
    assert announced is not None
    assert announced["lab_diffusion"]["dataset"] == "fashion"
    assert announced["diffusion"]["placeholders"] is True
    # Placeholders are drawn in the tokenizer's codes and decoded to 64×64 RGB.
    assert announced["diffusion"]["space"].startswith("fsq fsq-8x5x5x5-")
    assert announced["diffusion"]["shape"] == [3, 64, 64]
    assert await picture_jobs.thumbnails_enabled(pool, settings)


def test_older_checkpoints_without_a_recorded_data_set(
    sqlite_engine: Engine, tmp_path: Path, tiny_models: Any
) -> None:
    """A checkpoint whose metadata lacks the data set is read from its version
    (`diffusion-plots-…` draws placeholders); a version that names none is refused."""
    old = tmp_path / "old-plots"
    shutil.copytree(tiny_models["diffusion"], old)
    config = json.loads((old / "config.json").read_text())
    del config["meta"]["dataset"]
    (old / "config.json").write_text(json.dumps(config))
    settings = make_settings(sqlite_engine, tmp_path, "redis://unused", {"diffusion": old})
    seed(sqlite_engine, [rec(1)])
    assert picture_jobs.thumbnail_models_present(settings)
    assert ml_pictures.thumbnails_inline(settings, sqlite_engine)["written"] == 1

    config["version"] = "diffusion-custom-0123456789"
    (old / "config.json").write_text(json.dumps(config))
    assert not picture_jobs.thumbnail_models_present(settings)
    seed(sqlite_engine, [rec(2)])
    with pytest.raises(RuntimeError, match="unrecorded data set") as refused:
        ml_pictures.thumbnails_inline(settings, sqlite_engine)
    assert TRAIN_PLOTS in str(refused.value)


def test_reindex_inline_names_the_command(site_settings: Any, tiny_fashion: Path) -> None:
    from typer.testing import CliRunner

    from app.cli import cli
    from app.db.engine import make_engine

    settings = site_settings(DIFFUSION_PATH=str(tiny_fashion), SUMMARIZER_DEVICE="cpu")
    engine = make_engine(settings.database_url_resolved)
    seed(engine, [rec(1)])
    engine.dispose()
    result = CliRunner().invoke(cli, ["reindex", "--thumbnails", "--inline"])
    assert result.exit_code == 1
    assert TRAIN_PLOTS in " ".join(result.output.split()) and "Traceback" not in result.output
