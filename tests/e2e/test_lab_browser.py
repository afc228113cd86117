"""/lab in a real browser: `papershelf serve` and `papershelf worker --pool ml` as processes
with REAL tiny picture checkpoints, Redis, Chromium. The solver grid's images load (data:
URIs under the site's CSP), each cell with its time, and a card shows its thumbnail once
`papershelf reindex --thumbnails` has queued the back-fill for the ML worker."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.db.migrate import upgrade
from tests.app.web.test_ml_api import ID, seed_paper
from tests.e2e.conftest import (
    REDIS_URL,
    ROOT,
    _free_port,
    answers,
    page_errors,
    redis_queue,
    running,
)

pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="module")
def site(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    pytest.importorskip("torch")
    from tests.workers.test_ml_pictures import build_tiny_models

    models = build_tiny_models(
        tmp_path_factory.getbasetemp() / "tiny-picture-models", shared_data / "images"
    )
    data_dir = tmp_path_factory.mktemp("lab-site")
    url = f"sqlite:///{data_dir / 'papershelf.db'}"
    upgrade(url)
    seed_paper(url)
    with redis_queue("ml") as queue:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PAPERSHELF_")}
        env.update(
            PAPERSHELF_DATA_DIR=str(data_dir),
            PAPERSHELF_REDIS_URL=REDIS_URL,
            PAPERSHELF_ML_QUEUE=queue,
            PAPERSHELF_FSQ_PATH=str(models["fsq"]),
            PAPERSHELF_DIFFUSION_PATH=str(models["diffusion"]),
            PAPERSHELF_SUMMARIZER_DEVICE="cpu",
            OMP_NUM_THREADS="1",
        )
        subprocess.run(
            [sys.executable, "-m", "app.cli", "reindex", "--thumbnails"],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
        )
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        with running(
            [["serve", "--port", str(port), "--no-migrate"], ["worker", "--pool", "ml"]],
            env,
            data_dir / "processes.log",
            answers(base + "/api/v1/ml/models", b'"pool":true'),
            what="the site or the ML worker",
            timeout=90,
        ):
            yield base


def test_lab_shows_the_solver_grid(browser: Any, site: str, artifacts: Path) -> None:
    from playwright.sync_api import expect

    ctx = browser.new_context(viewport={"width": 1200, "height": 1000}, locale="en-GB")
    try:
        page = ctx.new_page()
        errors = page_errors(page)
        page.goto(f"{site}/lab", timeout=120_000)
        grid = page.locator("table.solver-grid")
        expect(grid.locator("tr[data-solver]")).to_have_count(7)
        images = grid.locator("img")
        assert images.count() >= 5 * 3 * 2  # the plain solvers at NFE 3, 5, 9, two samples
        # Every image decoded: the browser drew it (a blocked or broken one is 0 wide).
        widths = images.evaluate_all("els => els.map(e => e.complete ? e.naturalWidth : -1)")
        assert widths and all(w == 64 for w in widths), widths
        cell = grid.locator('tr[data-solver="amed_plugin"] td[data-nfe="5"]')
        expect(cell.locator("img")).to_have_count(2)
        expect(cell).to_contain_text("s/image")
        expect(page.locator('#lab-fsq tr[data-codebook="240"] img')).to_have_count(4)
        page.screenshot(path=str(artifacts / "lab.png"), full_page=True)

        # The back-fill queued before the worker started has drawn the paper's thumbnail.
        page.goto(f"{site}/arxiv/{ID}")
        thumb = page.locator(f'article.paper[id="{ID}"] img.thumb')
        expect(thumb).to_have_attribute("loading", "lazy")
        thumb.scroll_into_view_if_needed()
        page.wait_for_function(
            "el => el.complete && el.naturalWidth === 64", arg=thumb.element_handle()
        )
        assert not errors, errors
    finally:
        ctx.close()
