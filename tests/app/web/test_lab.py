"""`/lab`: without an ML pool (or Redis) it renders and says what is missing; with a real ML
worker and REAL tiny checkpoints it shows reconstructions at both codebook sizes, the solver ×
NFE grid with timings, and the CE and EMO summarizers' TL;DRs of the chosen paper."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.app.web import test_ml_api as ml_api_tests
from tests.app.web.test_ml_api import ID, PoolThread

# The API tests' fixtures: settings with a real Redis (or none), the paper, a client.
configure = ml_api_tests.configure
client_for = ml_api_tests.client_for


def test_lab_without_redis_says_so(client_for: Callable[..., TestClient]) -> None:
    client = client_for(with_redis=False)
    page = client.get("/lab")
    assert page.status_code == 200
    html = page.text
    assert 'id="lab-problem"' in html and "PAPERSHELF_REDIS_URL" in html
    # The originals are drawn in the web process: shown even so.
    assert len(re.findall(r'<img src="data:image/png;base64,[^"]+" alt="original', html)) == 4
    assert 'class="lab-grid solver-grid"' not in html
    assert "Quokka figures" in html  # the newest paper, for the summaries


def test_lab_without_a_worker_says_so(client_for: Callable[..., TestClient]) -> None:
    client = client_for()
    html = client.get("/lab", params={"id": ID}).text
    assert "no ML worker is running" in html and "papershelf worker --pool ml" in html


def test_lab_refuses_bad_and_unknown_ids(client_for: Callable[..., TestClient]) -> None:
    client = client_for(with_redis=False)
    assert client.get("/lab", params={"id": "nonsense"}).status_code == 400
    assert client.get("/lab", params={"id": "2601.99999"}).status_code == 404


def untrained_summarizers(root: Path) -> tuple[Path, Path]:
    """Two summarizer checkpoints in the real format, one recorded as trained with CE and one
    with EMO: untrained weights (training even a tiny one takes ~20 s), since what is tested
    is that the lab finds one of each beside the configured one and runs both."""
    import torch

    from ml.summarizer import checkpoint
    from ml.summarizer.model import Summarizer, config_for, load_encoder
    from ml.summarizer.text import PACKAGED_ENCODER, load_tokenizer

    encoder, tokenizer = load_encoder(PACKAGED_ENCODER), load_tokenizer(PACKAGED_ENCODER)
    paths = (root / "summarizer", root / "summarizer-emo")
    for path, objective, seed in ((paths[0], "ce", 0), (paths[1], "emo1", 1)):
        torch.manual_seed(seed)
        cfg = config_for(encoder, tokenizer, PACKAGED_ENCODER, layers=1, dropout=0.0)
        model = Summarizer(cfg, encoder.get_input_embeddings().weight)
        checkpoint.save(path, model, {"name": "tldr", "objective": objective})
    return paths


@pytest.fixture
def lab_client(
    client_for: Callable[..., TestClient],
    shared_data: Path,
    tmp_path_factory: Any,
    tmp_path: Path,
) -> Iterator[TestClient]:
    pytest.importorskip("torch")
    from app.settings import get_settings
    from tests.workers.test_ml_pictures import build_tiny_models

    models = build_tiny_models(
        tmp_path_factory.getbasetemp() / "tiny-picture-models", shared_data / "images"
    )
    ce, _emo = untrained_summarizers(tmp_path / "summarizers")
    client = client_for(
        FSQ_PATH=str(models["fsq"]),
        DIFFUSION_PATH=str(models["diffusion"]),
        SUMMARIZER_PATH=str(ce),
        SUMMARIZER_DEVICE="cpu",
    )
    with PoolThread(get_settings()):
        yield client


def test_lab_with_models(lab_client: TestClient) -> None:
    page = lab_client.get("/lab", params={"id": ID})
    assert page.status_code == 200
    html = page.text
    assert 'id="lab-problem"' not in html
    # Reconstructions at both codebook sizes (fsq and fsq-256 beside it), smallest first.
    assert re.findall(r'data-codebook="(\d+)"', html) == ["240", "1000"]
    assert len(re.findall(r'alt="fsq(?:-256)? reconstruction \d"', html)) == 8
    # Every solver at NFE 3, 5 and 9, two samples a cell, with a time per image.
    solvers = re.findall(r'<tr data-solver="([a-z_0-9]+)"', html)
    assert solvers == ["ddim", "heun", "dpm2m", "dpm3m", "ipndm", "amed", "amed_plugin"]
    assert len(re.findall(r'alt="ipndm NFE \d sample \d"', html)) == 6
    assert len(re.findall(r"s/image", html)) >= 5 * 3
    # AMED-Plugin has a predictor for NFE 5 only; AMED-Solver none.
    assert 'alt="amed_plugin NFE 5 sample 1"' in html
    assert "no AMED predictor for NFE 3" in html
    # The two summarizers on the same paper.
    assert re.search(r'<dd data-objective="ce">[^<]*</dd>', html)
    assert re.search(r'<dd data-objective="emo">[^<]*</dd>', html)
    assert "tldr-ce-" in html and "tldr-emo1-" in html
