"""The ML pool's picture jobs end to end: a real arq worker, a real Redis, and REAL tiny
checkpoints (an FSQ tokenizer at two codebook sizes, a diffusion U-Net with an AMED-Plugin
predictor for NFE 5), trained here for a few steps on the real plots. Thumbnails are made
once and cached, deterministic per paper; a PDF served on loopback becomes FSQ tokens; a new
model makes them stale; the interactive jobs answer bad input with 422, not an exception."""

from __future__ import annotations

import asyncio
import functools
import http.server
import io
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from arq import Worker, create_pool
from arq.connections import ArqRedis
from arq.worker import get_kwargs
from PIL import Image
from sqlalchemy import Engine, delete, select

from app.artifacts import thumbnails
from app.db import store
from app.db.models import Thumbnail
from app.ingest.records import AnnounceKind, Announcement, PaperRecord
from app.jobs import pictures as picture_jobs
from app.jobs.connections import redis_settings
from app.jobs.queueing import JobRequest, submit
from app.settings import Settings
from tests.workers import conftest as worker_fixtures
from tests.workers.test_ml_embeddings import no_embedder
from workers import ml as ml_worker
from workers.ml import lifecycle as ml_lifecycle
from workers.ml import models as ml_models
from workers.ml import pictures as ml_pictures

# The pool and the tiny checkpoints need torch: the ML extra.
pytest.importorskip("torch", reason="the ML extra is not installed")
pytestmark = pytest.mark.anyio
redis_url = worker_fixtures.redis_url
redis_key = worker_fixtures.redis_key
fake_arxiv = worker_fixtures.fake_arxiv
anyio_backend = worker_fixtures.anyio_backend
DAY = date(2026, 7, 1)


# --- real tiny checkpoints, trained once per session ------------------------------------------


@functools.cache
def build_tiny_models(root: Path, images_dir: Path) -> dict[str, Path]:
    """A few training steps each (seconds on a CPU): `fsq` (2^10 codes, the configured
    tokenizer), `fsq-256` beside it (2^8 codes, for /lab), `diffusion` (64×64 plots) with an
    AMED-Plugin predictor for NFE 5, and `diffusion-b` (another seed: another version)."""
    import torch

    from ml.diffusion import checkpoint
    from ml.diffusion.amed import train_amed
    from ml.diffusion.train import DiffusionTrainConfig, train_diffusion
    from ml.fsq.train import FSQTrainConfig, train_tokenizer

    torch.set_num_threads(1)
    root.mkdir(parents=True, exist_ok=True)
    paths = {
        "fsq": root / "fsq",
        "fsq-256": root / "fsq-256",
        "diffusion": root / "diffusion",
        "diffusion-b": root / "diffusion-b",
    }
    for name, levels in (("fsq", [8, 5, 5, 5]), ("fsq-256", [8, 6, 5])):
        train_tokenizer(
            FSQTrainConfig(
                images_dir=images_dir, steps=3, batch=4, width=8, levels=levels, out=paths[name]
            )
        )
    for name, seed in (("diffusion", 0), ("diffusion-b", 1)):
        done = train_diffusion(
            DiffusionTrainConfig(
                images_dir=images_dir,
                dataset="plots",
                out=paths[name],
                steps=3,
                batch=4,
                size="tiny",
                limit=32,
                seed=seed,
                device="cpu",
                tokenizer=paths["fsq"],
            )
        )
        predictor = train_amed(
            done.model,
            solver="amed_plugin",
            nfe=5,
            samples=4,
            batch=4,
            shape=tuple(done.model.cfg.shape),
        )
        checkpoint.save_amed(paths[name], predictor)
    return paths


@pytest.fixture(scope="session")
def tiny_models(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build_tiny_models(
        tmp_path_factory.getbasetemp() / "tiny-picture-models", shared_data / "images"
    )


# --- helpers ----------------------------------------------------------------------------------


def rec(n: int, version: int = 1) -> PaperRecord:
    return PaperRecord(
        arxiv_id=f"2607.{n:05d}",
        title=f"P{n}",
        abstract=f"Abstract {n}.",
        authors=["Ada Lovelace"],
        primary_category="cs.CV",
        categories=["cs.CV"],
        version=version,
        first_submitted_at=datetime(2026, 6, 28, tzinfo=UTC),
        announcements=[Announcement("cs.CV", DAY, AnnounceKind.NEW, n)],
    )


def make_settings(
    engine: Engine, tmp_path: Path, redis: str, models: dict[str, Path], **extra: Any
) -> Settings:
    values: dict[str, Any] = {
        "database_url": engine.url.render_as_string(hide_password=False),
        "data_dir": tmp_path,
        "redis_url": redis,
        "ml_queue": f"papershelf-test:ml:{uuid.uuid4().hex}",
        "ml_batch_size": 2,
        "fsq_path": models.get("fsq", tmp_path / "absent-fsq"),
        "diffusion_path": models.get("diffusion", tmp_path / "absent-diffusion"),
        "summarizer_device": "cpu",
        "arxiv_min_interval": 0.0,
        **extra,
    }
    return Settings(**values)


@pytest.fixture
async def pool(redis_url: str) -> AsyncIterator[ArqRedis]:
    redis = await create_pool(redis_settings(redis_url))
    yield redis
    await redis.aclose()


async def run_burst(settings: Settings, **ctx_extra: Any) -> Worker:
    """Every queued ML job with the real WorkerSettings, start-up and loaders."""

    async def startup(ctx: dict[str, Any]) -> None:
        ctx["settings"] = settings
        ctx["load_embedder"] = no_embedder  # these tests are about pictures
        ctx.update(ctx_extra)
        await ml_lifecycle.startup(ctx)

    worker = Worker(
        **{
            **get_kwargs(ml_worker.WorkerSettings),
            "queue_name": settings.ml_queue,
            "redis_settings": redis_settings(settings.redis_url),
            "health_check_key": f"{settings.ml_queue}:health",
            "on_startup": startup,
            "burst": True,
            "poll_delay": 0.05,
            "handle_signals": False,
        }
    )
    try:
        await worker.main()
    finally:
        await worker.close()
    return worker


def seed(engine: Engine, records: list[PaperRecord]) -> None:
    with engine.begin() as conn:
        store.upsert_papers(conn, records)


def rows(engine: Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        return {r.arxiv_id: r for r in conn.execute(select(Thumbnail.__table__))}


def png_image(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


async def call_job(pool: ArqRedis, settings: Settings, function: str, *args: Any) -> Any:
    """Queue one interactive job, run the worker, return the job's result."""
    job = await pool.enqueue_job(function, *args, _queue_name=settings.ml_queue)
    assert job is not None
    worker = await run_burst(settings)
    assert worker.jobs_failed == 0
    return await job.result(timeout=5)


# --- thumbnails -------------------------------------------------------------------------------


async def test_placeholders_are_made_once_and_deterministic(
    sqlite_engine: Engine, tmp_path: Path, redis_url: str, pool: ArqRedis, tiny_models: Any
) -> None:
    from ml.diffusion.inference import seed_for_paper

    settings = make_settings(sqlite_engine, tmp_path, redis_url, tiny_models)
    seed(sqlite_engine, [rec(1), rec(2), rec(3)])
    request = picture_jobs.listing_request(DAY, "cs.CV", stored=3)
    assert await submit(pool, settings, request)
    worker = await run_burst(settings)
    assert (worker.jobs_complete, worker.jobs_failed) == (1, 0)
    first = rows(sqlite_engine)
    assert set(first) == {"2607.00001", "2607.00002", "2607.00003"}
    row = first["2607.00002"]
    # No PDF source configured: a placeholder, AMED-Plugin at NFE 5, the paper's own seed.
    assert (row.source, row.solver, row.nfe) == ("generated", "amed_plugin", 5)
    assert row.seed == seed_for_paper("2607.00002") and row.tokens is None
    img = png_image(row.png)
    assert (img.format, img.size, img.mode) == ("PNG", (64, 64), "RGB")
    assert len({r.png for r in first.values()}) == 3  # a picture per paper

    # Again: nothing is pending, no row changes (cached).
    assert await submit(pool, settings, picture_jobs.ids_request(list(first)))
    await run_burst(settings)
    again = rows(sqlite_engine)
    assert {k: (r.png, r.created_at) for k, r in again.items()} == {
        k: (r.png, r.created_at) for k, r in first.items()
    }

    # Deterministic per paper id: made afresh, the same picture.
    with sqlite_engine.begin() as conn:
        conn.execute(delete(Thumbnail.__table__))
    assert await submit(pool, settings, picture_jobs.ids_request(["2607.00002"], rank=1))
    await run_burst(settings)
    assert rows(sqlite_engine)["2607.00002"].png == row.png


async def test_another_model_makes_thumbnails_stale(
    sqlite_engine: Engine, tmp_path: Path, redis_url: str, pool: ArqRedis, tiny_models: Any
) -> None:
    settings = make_settings(sqlite_engine, tmp_path, redis_url, tiny_models)
    seed(sqlite_engine, [rec(1), rec(2)])
    assert await submit(pool, settings, picture_jobs.ids_request(["2607.00001", "2607.00002"]))
    await run_burst(settings)
    before = {k: r.model_version for k, r in rows(sqlite_engine).items()}

    other = settings.model_copy(update={"diffusion_path": tiny_models["diffusion-b"]})
    # (An unknown id too: the first job's kept result still holds the same job id.)
    again = ["2607.00001", "2607.00002", "2607.99999"]
    assert await submit(pool, other, picture_jobs.ids_request(again))
    await run_burst(other)
    after = {k: r.model_version for k, r in rows(sqlite_engine).items()}
    assert set(after.values()) != set(before.values()) and len(set(after.values())) == 1


async def test_a_retrained_amed_predictor_makes_placeholders_stale(
    sqlite_engine: Engine, tmp_path: Path, redis_url: str, pool: ArqRedis, tiny_models: Any
) -> None:
    import shutil

    import torch

    from ml.diffusion import checkpoint

    copy = tmp_path / "diffusion-copy"
    shutil.copytree(tiny_models["diffusion"], copy)
    settings = make_settings(sqlite_engine, tmp_path, redis_url, tiny_models).model_copy(
        update={"diffusion_path": copy}
    )
    seed(sqlite_engine, [rec(1)])
    assert await submit(pool, settings, picture_jobs.ids_request(["2607.00001"]))
    await run_burst(settings)
    before = rows(sqlite_engine)["2607.00001"].model_version
    assert "+amed-amed_plugin-nfe5-" in before  # the predictor is part of the version

    # The same U-Net, another predictor (as after `papershelf ml train-amed` again).
    predictor = checkpoint.load_amed(copy, "amed_plugin", 5)
    assert predictor is not None
    with torch.no_grad():
        next(predictor.parameters()).add_(0.05)
    checkpoint.save_amed(copy, predictor)
    assert await submit(pool, settings, picture_jobs.ids_request(["2607.00001", "2607.99998"]))
    await run_burst(settings)
    after = rows(sqlite_engine)["2607.00001"].model_version
    assert after != before and after.split("+")[0] == before.split("+")[0]


class PdfServer:
    """Loopback HTTP: /<id>v<n> answers a one-page PDF for the ids in `pdfs`, else 404."""

    def __init__(self, pdfs: dict[str, bytes]) -> None:
        pages = pdfs

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = pages.get(self.path.strip("/"))
                self.send_response(200 if body else 404)
                self.send_header("Content-Type", "application/pdf")
                self.end_headers()
                self.wfile.write(body or b"no such paper")

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> PdfServer:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def one_page_pdf(colour: tuple[int, int, int]) -> bytes:
    page = Image.new("RGB", (612, 792), "white")
    page.paste(Image.new("RGB", (400, 200), colour), (100, 60))
    buf = io.BytesIO()
    page.save(buf, format="PDF")
    return buf.getvalue()


@pytest.fixture
def pdf_server() -> Iterator[PdfServer]:
    with PdfServer({"2607.00001v1": one_page_pdf((200, 30, 30))}) as server:
        yield server


async def test_a_fetched_pdf_becomes_fsq_tokens(
    sqlite_engine: Engine,
    tmp_path: Path,
    redis_url: str,
    pool: ArqRedis,
    tiny_models: Any,
    pdf_server: PdfServer,
) -> None:
    """The PDF pipeline against a loopback server (no network): first page rendered with
    pypdfium2, tokenized, stored with the decoded PNG; a paper whose PDF is missing gets a
    placeholder instead."""
    from ml.fsq.inference import LoadedTokenizer

    settings = make_settings(
        sqlite_engine, tmp_path, redis_url, tiny_models, thumbnail_pdf_url=pdf_server.url
    )
    seed(sqlite_engine, [rec(1), rec(2)])
    assert await submit(pool, settings, picture_jobs.ids_request(["2607.00001", "2607.00002"]))
    worker = await run_burst(settings)
    assert worker.jobs_failed == 0
    found = rows(sqlite_engine)
    pdf, placeholder = found["2607.00001"], found["2607.00002"]
    assert (pdf.source, pdf.paper_version, pdf.levels) == ("pdf", 1, "8,5,5,5")
    assert (pdf.grid_h, pdf.grid_w) == (16, 16) and len(pdf.tokens) == 2 * 16 * 16
    assert placeholder.source == "generated"

    # The stored PNG is exactly what the tokens decode to.
    import numpy as np

    tok = LoadedTokenizer.load(tiny_models["fsq"], "cpu")
    assert pdf.model_version == tok.version
    grid = thumbnails.unpack_tokens(pdf.tokens, 16, 16)
    assert ml_pictures.to_png(tok.decode(np.asarray([grid]))[0]) == pdf.png

    # A new paper version makes the PDF thumbnail stale; a placeholder never replaces it.
    seed(sqlite_engine, [rec(1, version=2)])
    with sqlite_engine.connect() as conn:
        versions = ml_models.thumbnail_versions(ml_models.load_picture_models(settings), settings)
        assert [p.arxiv_id for p in thumbnails.pending_for_ids(conn, ["2607.00001"], versions)] == [
            "2607.00001"
        ]
    no_pdfs = settings.model_copy(update={"thumbnail_pdf_url": None})
    assert await submit(pool, no_pdfs, picture_jobs.ids_request(["2607.00001"]))
    await run_burst(no_pdfs)
    assert rows(sqlite_engine)["2607.00001"].source == "pdf"


def test_grey_samples_are_scaled_up_for_display() -> None:
    """A Fashion-MNIST model's 32×32 grey samples: shown as 64×64 RGB, pixels kept crisp."""
    import numpy as np

    grey = np.zeros((32, 32, 1), dtype=np.uint8)
    grey[:16] = 200
    img = png_image(ml_pictures.to_png(grey))
    assert (img.size, img.mode) == ((64, 64), "RGB")
    assert img.getpixel((0, 31)) == (200, 200, 200) and img.getpixel((0, 32)) == (0, 0, 0)
    rgb = png_image(ml_pictures.to_png(np.full((64, 64, 3), 7, dtype=np.uint8)))
    assert rgb.size == (64, 64) and rgb.getpixel((5, 5)) == (7, 7, 7)


def test_render_first_page() -> None:
    from ml import pictures

    page = pictures.render_first_page(one_page_pdf((20, 20, 200)))
    assert page.mode == "RGB" and page.height > page.width
    with pytest.raises(ValueError, match="PDF"):
        pictures.render_first_page(b"%PDF-1.4 garbage")


def test_the_contract_lists_the_samplers_solvers() -> None:
    """The web validates solvers with app.jobs.pictures.SOLVERS (torch-free); the pool runs
    ml.diffusion.samplers.SOLVERS: one list, written twice, the same."""
    from ml.diffusion.samplers import SOLVERS

    assert picture_jobs.SOLVERS == SOLVERS


# --- interactive jobs -------------------------------------------------------------------------


def png_bytes(size: tuple[int, int] = (120, 90)) -> bytes:
    img = Image.new("RGB", size, "white")
    img.paste(Image.new("RGB", (60, 30), (30, 90, 200)), (20, 20))
    return thumbnails.encode_png(img)


async def test_tokenize_decode_and_sample_jobs(
    sqlite_engine: Engine, tmp_path: Path, redis_url: str, pool: ArqRedis, tiny_models: Any
) -> None:
    settings = make_settings(sqlite_engine, tmp_path, redis_url, tiny_models)
    job_t = await pool.enqueue_job(
        picture_jobs.TOKENIZE_FUNCTION, [png_bytes()], _queue_name=settings.ml_queue
    )
    job_s = await pool.enqueue_job(
        picture_jobs.SAMPLE_FUNCTION, "amed_plugin", 5, [7, 8], _queue_name=settings.ml_queue
    )
    job_s2 = await pool.enqueue_job(
        picture_jobs.SAMPLE_FUNCTION, "amed_plugin", 5, [8], _queue_name=settings.ml_queue
    )
    job_bad = await pool.enqueue_job(
        picture_jobs.SAMPLE_FUNCTION, "amed", 3, [1], _queue_name=settings.ml_queue
    )
    job_grid = await pool.enqueue_job(
        picture_jobs.DECODE_FUNCTION, [[[0] * 16] * 15], _queue_name=settings.ml_queue
    )
    job_range = await pool.enqueue_job(
        picture_jobs.DECODE_FUNCTION, [[[1000] * 16] * 16], _queue_name=settings.ml_queue
    )
    worker = await run_burst(settings)
    assert (worker.jobs_complete, worker.jobs_failed) == (6, 0)
    assert all(j is not None for j in (job_t, job_s, job_s2, job_bad, job_grid, job_range))

    tokenized = await job_t.result(timeout=5)  # type: ignore[union-attr]
    item = tokenized["items"][0]
    assert tokenized["grid"] == [16, 16] and tokenized["codebook_size"] == 1000
    assert len(item["tokens"]) == 16 and all(0 <= t < 1000 for r in item["tokens"] for t in r)
    assert png_image(item["reconstruction_png"]).size == (64, 64) and item["mse"] >= 0

    sampled = await job_s.result(timeout=5)  # type: ignore[union-attr]
    assert (sampled["solver"], sampled["nfe"], len(sampled["pngs"])) == ("amed_plugin", 5, 2)
    assert sampled["seconds"] > 0
    # The same seed gives the same picture, alone or in a batch.
    assert (await job_s2.result(timeout=5))["pngs"][0] == sampled["pngs"][1]  # type: ignore[union-attr]

    bad = await job_bad.result(timeout=5)  # type: ignore[union-attr]
    assert bad["status"] == 422 and "not available at NFE 3" in bad["error"]
    grid = await job_grid.result(timeout=5)  # type: ignore[union-attr]
    assert grid["status"] == 422 and "16×16" in grid["error"]
    out_of_range = await job_range.result(timeout=5)  # type: ignore[union-attr]
    assert out_of_range["status"] == 422 and "[0, 1000)" in out_of_range["error"]

    # Decoding the tokens gives back the reconstruction the tokenizer showed.
    decoded = await call_job(pool, settings, picture_jobs.DECODE_FUNCTION, [item["tokens"]])
    assert decoded["pngs"][0] == item["reconstruction_png"]


async def test_the_pool_starts_with_any_one_model(
    sqlite_engine: Engine, tmp_path: Path, redis_url: str, pool: ArqRedis, tiny_models: Any
) -> None:
    """Only a diffusion model: the pool starts, announces it, a TL;DR job is skipped with
    the reason and a tokenizer job answers 503; with no model at all it does not start."""
    only = {"diffusion": tiny_models["diffusion"]}
    settings = make_settings(sqlite_engine, tmp_path, redis_url, only)
    job_sum = await pool.enqueue_job("summarize_ids", ["2607.00001"], _queue_name=settings.ml_queue)
    job_tok = await pool.enqueue_job(
        picture_jobs.TOKENIZE_FUNCTION, [png_bytes()], _queue_name=settings.ml_queue
    )
    worker = await run_burst(settings)
    assert (worker.jobs_complete, worker.jobs_failed) == (2, 0)
    assert "train-summarizer" in (await job_sum.result(timeout=5))["skipped"]  # type: ignore[union-attr]
    tok = await job_tok.result(timeout=5)  # type: ignore[union-attr]
    assert tok["status"] == 503 and "train-fsq" in tok["error"]
    announced = await picture_jobs.announced(pool, settings)
    assert announced is not None and announced["fsq"] is None
    assert "amed_plugin" in announced["diffusion"]["solvers"]

    nothing = make_settings(sqlite_engine, tmp_path, redis_url, {})
    with pytest.raises(ml_models.NoModel, match=r"train-summarizer.*train-fsq.*train-diffusion"):
        await ml_lifecycle.startup(
            {"settings": nothing, "redis": pool, "load_embedder": no_embedder}
        )


async def test_lab_job(
    sqlite_engine: Engine, tmp_path: Path, redis_url: str, pool: ArqRedis, tiny_models: Any
) -> None:
    settings = make_settings(sqlite_engine, tmp_path, redis_url, tiny_models)
    result = await call_job(
        pool,
        settings,
        picture_jobs.LAB_FUNCTION,
        [png_bytes(), png_bytes((50, 200))],
        ["A title", "An abstract."],
    )
    rec_rows = result["reconstructions"]["rows"]
    # Both codebook sizes found (fsq and fsq-256 beside it), smallest first.
    assert [r["codebook_size"] for r in rec_rows] == [240, 1000]
    assert all(len(r["pngs"]) == 2 for r in rec_rows)
    grid = {r["solver"]: r["cells"] for r in result["solvers"]["rows"]}
    assert set(grid) == set(picture_jobs.SOLVERS)
    assert [c["nfe"] for c in grid["dpm3m"]] == [3, 5, 9]
    assert all("pngs" in c for c in grid["ipndm"])
    plugin = {c["nfe"]: c for c in grid["amed_plugin"]}
    assert "pngs" in plugin[5] and "no AMED predictor for NFE 3" in plugin[3]["error"]
    # The same noise for every solver: NFE 9 DDIM and NFE 9 iPNDM differ, but both exist.
    assert grid["ddim"][2]["pngs"][0] != grid["ipndm"][2]["pngs"][0]
    assert "train-summarizer" in result["summaries"]["missing"]


def test_turning_pdfs_on_upgrades_placeholders(
    sqlite_engine: Engine, tmp_path: Path, tiny_models: Any, pdf_server: PdfServer
) -> None:
    """Placeholders made while PDFs were off get their PDF picture once PDFs are on; a paper
    whose PDF fails keeps its placeholder (same picture, same URL) and is tried again only
    after `thumbnail_pdf_retry_days`."""
    off = make_settings(sqlite_engine, tmp_path, "redis://unused", tiny_models)
    seed(sqlite_engine, [rec(1), rec(2)])
    assert ml_pictures.thumbnails_inline(off, sqlite_engine)["written"] == 2
    before = rows(sqlite_engine)
    assert {r.source for r in before.values()} == {"generated"}
    assert all(r.pdf_tried_at is None for r in before.values())
    assert ml_pictures.thumbnails_inline(off, sqlite_engine)["pending"] == 0

    on = off.model_copy(update={"thumbnail_pdf_url": pdf_server.url})
    done = ml_pictures.thumbnails_inline(on, sqlite_engine)
    assert done["pending"] == 2
    after = rows(sqlite_engine)
    assert after["2607.00001"].source == "pdf"
    kept = after["2607.00002"]  # its PDF is a 404
    assert kept.source == "generated" and kept.pdf_tried_at is not None
    old = before["2607.00002"]
    assert (kept.png, kept.created_at) == (old.png, old.created_at)
    assert ml_pictures.thumbnails_inline(on, sqlite_engine)["pending"] == 0

    # A week later (the default) the missing PDF is tried again.
    with sqlite_engine.begin() as conn:
        conn.execute(
            Thumbnail.__table__.update().values(pdf_tried_at=datetime.now(UTC) - timedelta(days=8))
        )
    assert ml_pictures.thumbnails_inline(on, sqlite_engine)["pending"] == 1
    announced = ml_models.announcement(ml_models.load_picture_models(on), on)["thumbnails"]
    assert announced["pdf_retry_days"] == 7
    off_models = ml_models.load_picture_models(off)
    assert ml_models.announcement(off_models, off)["thumbnails"]["pdf_retry_days"] is None


def test_inline_back_fill(sqlite_engine: Engine, tmp_path: Path, tiny_models: Any) -> None:
    settings = make_settings(sqlite_engine, tmp_path, "redis://unused", tiny_models)
    seed(sqlite_engine, [rec(1), rec(2), rec(3)])
    done = ml_pictures.thumbnails_inline(settings, sqlite_engine, limit=2, batch_size=2)
    assert (done["pending"], done["written"]) == (2, 2)
    done = ml_pictures.thumbnails_inline(settings, sqlite_engine, batch_size=2)
    assert (done["pending"], done["written"]) == (1, 1)
    assert len(rows(sqlite_engine)) == 3


# --- the fetch pool's hook and `papershelf reindex --thumbnails` -----------------------------


async def test_a_fetched_day_queues_its_thumbnails(
    fake_arxiv: Any,
    sqlite_engine: Engine,
    tmp_path: Path,
    redis_url: str,
    redis_key: str,
    pool: ArqRedis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After storing a day's list the fetch pool asks for its thumbnails, only where a
    picture model can make them (a checkpoint here, or a worker that announced one)."""
    from arq.jobs import Job

    from app.jobs import embeddings as embedding_jobs

    # Only the thumbnails: no embedding jobs beside them (test_embedding_jobs).
    monkeypatch.setattr(embedding_jobs, "embedder_installed", lambda: False)

    from tests.workers.test_fetch import DAY as FEED_DAY
    from tests.workers.test_fetch import paper
    from tests.workers.test_fetch import run_burst as run_fetch

    fake_arxiv.feed_day = FEED_DAY
    fake_arxiv.add_papers([paper(i) for i in range(1, 4)])
    settings = fake_arxiv.settings(
        database_url=sqlite_engine.url.render_as_string(hide_password=False),
        data_dir=tmp_path,
        categories=["cs.CL"],
        fetch_queue=f"papershelf-test:fetch:{uuid.uuid4().hex}",
        ml_queue=redis_key,  # its jobs and keys are deleted after the test
    )

    async def fetch_day(key: str) -> dict[str, Any]:
        request = JobRequest("fetch_listing", ("cs.CL",), f"rss:cs.CL:{key}")
        job = await submit(pool, settings, request)
        assert job is not None
        assert (await run_fetch(settings, redis_url)).jobs_complete == 1
        return await job.result(timeout=5)

    assert (await fetch_day("a"))["thumbnails_queued"] is False  # no picture model anywhere
    await pool.set(
        picture_jobs.pictures_key(settings), '{"fsq": null, "diffusion": {"version": "d1"}}'
    )
    fake_arxiv.add_papers([paper(4)])
    assert (await fetch_day("b"))["thumbnails_queued"] is True
    queued = await pool.zrange(settings.ml_queue, 0, -1)
    infos = [await Job(j.decode(), pool, _queue_name=settings.ml_queue).info() for j in queued]
    assert [(i.function, i.args) for i in infos if i] == [
        (picture_jobs.LISTING_FUNCTION, (FEED_DAY.isoformat(), "cs.CL"))
    ]


def test_reindex_thumbnails(
    site_settings: Any, redis_url: str, redis_key: str, tiny_models: Any
) -> None:
    from typer.testing import CliRunner

    from app.cli import cli
    from app.db.engine import make_engine

    def run(*args: str):  # type: ignore[no-untyped-def]
        return CliRunner().invoke(cli, list(args), catch_exceptions=False)

    settings = site_settings(REDIS_URL=redis_url, ML_QUEUE=redis_key)
    engine = make_engine(settings.database_url_resolved)
    seed(engine, [rec(n) for n in range(1, 6)])

    assert run("reindex", "--inline").exit_code == 1  # --inline needs a back-fill
    assert run("reindex", "--summaries", "--thumbnails").exit_code == 1
    no_model = run("reindex", "--thumbnails", "--inline")
    assert no_model.exit_code == 1 and "no picture model" in no_model.output
    queued = run("reindex", "--thumbnails")
    assert queued.exit_code == 0, queued.output
    assert "5 papers lack a current thumbnail" in queued.output
    assert "queued 1 thumbnails_for_ids job of up to 64 papers" in queued.output
    assert "the jobs wait in the queue" in queued.output

    models = site_settings(
        REDIS_URL=redis_url,
        ML_QUEUE=redis_key,
        FSQ_PATH=str(tiny_models["fsq"]),
        DIFFUSION_PATH=str(tiny_models["diffusion"]),
        SUMMARIZER_DEVICE="cpu",
    )
    some = run("reindex", "--thumbnails", "--inline", "--limit", "2")
    assert some.exit_code == 0, some.output
    assert "2 papers lacked a current thumbnail" in some.output and "2 written" in some.output
    assert len(rows(engine)) == 2
    # The queued job (made before the models existed) fills in the rest on the real pool.
    worker = asyncio.run(run_burst(models))
    assert (worker.jobs_complete, worker.jobs_failed) == (1, 0)
    assert len(rows(engine)) == 5
    # The worker announced what it writes with (AMED predictor included): all are current.
    again = run("reindex", "--thumbnails")
    assert again.exit_code == 0, again.output
    assert "0 papers lack a current thumbnail" in again.output
    assert "queued 0 thumbnails_for_ids jobs" in again.output
    engine.dispose()
