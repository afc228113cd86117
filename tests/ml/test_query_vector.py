"""The web's query vectors against the paper embedder: the same text, word pieces and
vectors; the model file the ML pool exports is the one the web finds, also when it appears
after the site started; and no torch in the web process."""

from __future__ import annotations

import fnmatch
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.search import query_vector
from app.search.query_vector import (
    MAX_QUERY_TOKENS,
    MODEL_GLOB,
    QueryEncoder,
    encoder_unavailable_reason,
    find_model,
    query_encoder_for,
    query_text,
)
from app.settings import Settings
from ml import embeddings
from ml.embeddings import DIM, TorchEmbedder, load_embedder, onnx_fused, paper_text
from ml.embeddings import model as embedding_model
from ml.summarizer.text import PACKAGED_ENCODER
from workers.ml import models as ml_models

LONG = (
    "contrastive pretraining of sentence encoders on scientific abstracts with hard negatives "
    "mined from citation graphs, evaluated on retrieval, clustering and classification "
    "benchmarks across physics, biology, computer science and mathematics, with ablations "
    "over batch size, temperature and the number of negatives per query, and a comparison "
    "with masked language modelling, instruction tuning and distillation from larger models"
)
QUERIES = [
    "graph neural networks",
    "Why do transformers generalise?",
    "  diffusion\n models   for protein design ",
    "Schrödinger équation — numerical methods für Quantenchemie, 深度学习 and x² ≤ 1",
    "LLM",
    LONG,
]


def data_dir_settings(data_dir: Path) -> Settings:
    return Settings(data_dir=data_dir)


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A deployment whose model cache holds the file the ML pool exports at start-up."""
    settings = data_dir_settings(tmp_path_factory.mktemp("data"))
    ml_models.export_query_model(settings)
    assert find_model(settings.embedder_cache_dir) is not None
    return settings


@pytest.fixture(autouse=True)
def fresh_cache() -> Iterator[None]:
    query_vector.reset()
    yield
    query_vector.reset()


@pytest.fixture(scope="module")
def reference() -> TorchEmbedder:
    return TorchEmbedder("cpu")


@pytest.fixture
def encoder(settings: Settings) -> QueryEncoder:
    found = query_encoder_for(settings)
    assert found is not None, encoder_unavailable_reason(settings)
    assert encoder_unavailable_reason(settings) is None
    return found


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_the_pattern_follows_the_pools_file_name() -> None:
    assert fnmatch.fnmatchcase(onnx_fused.model_name(), MODEL_GLOB)
    assert onnx_fused.RECIPE.startswith(query_vector.RECIPE_PREFIX)
    assert query_vector.ENCODER == PACKAGED_ENCODER
    assert query_vector.DIM == DIM


def test_a_query_is_embedded_as_a_paper_with_no_abstract() -> None:
    for q in [*QUERIES, "", "  ", "Ends with a stop.", "Done!", "a\tb"]:
        assert query_text(q) == paper_text(q, "")


def test_word_pieces_are_the_embedders_cut_at_the_query_length(encoder: QueryEncoder) -> None:
    tokenizer = embedding_model.load_tokenizer()
    for q in QUERIES:
        expected = tokenizer(query_text(q), truncation=True, max_length=MAX_QUERY_TOKENS)
        assert encoder.word_pieces(q) == expected["input_ids"], q
    assert len(tokenizer(query_text(LONG))["input_ids"]) > MAX_QUERY_TOKENS  # it is cut
    assert len(encoder.word_pieces(LONG)) == MAX_QUERY_TOKENS


@pytest.mark.slow
def test_vectors_match_the_paper_embedder(
    encoder: QueryEncoder, reference: TorchEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The paper embedder cut where queries are cut: a long query is its first 64 pieces.
    monkeypatch.setattr(embedding_model, "MAX_TOKENS", MAX_QUERY_TOKENS)
    expected = reference.embed([(q, "") for q in QUERIES])
    for q, want in zip(QUERIES, expected, strict=True):
        got = encoder.encode(q)
        assert got.shape == (DIM,) and got.dtype == np.float32
        assert np.linalg.norm(got) == pytest.approx(1.0, abs=1e-5)
        assert cosine(got, want) >= 0.999, q


@pytest.mark.slow
def test_a_short_query_matches_the_pools_own_vector(
    encoder: QueryEncoder, settings: Settings
) -> None:
    """Uncut, the query's vector is the one the ML pool's CPU backend stores for a paper
    with that title and no abstract."""
    pool = load_embedder("cpu", backend="onnx", cache_dir=settings.embedder_cache_dir, threads=1)
    short = [q for q in QUERIES if q is not LONG]
    stored = pool.embed([(q, "") for q in short])
    for q, want in zip(short, stored, strict=True):
        assert cosine(encoder.encode(q), want) >= 0.99999, q


def test_an_empty_query_has_no_vector(encoder: QueryEncoder) -> None:
    for q in ["", "   ", "\n\t"]:
        with pytest.raises(ValueError, match="empty query"):
            encoder.encode(q)


def test_threads_share_one_encoder(encoder: QueryEncoder) -> None:
    alone = [encoder.encode(q) for q in QUERIES]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(encoder.encode, QUERIES * 4))
    for i, vector in enumerate(together):
        np.testing.assert_allclose(vector, alone[i % len(QUERIES)], atol=1e-6)


def test_one_encoder_per_process(settings: Settings) -> None:
    assert query_encoder_for(settings) is query_encoder_for(settings)


def test_no_model_yet_gives_no_encoder_and_says_why(tmp_path: Path) -> None:
    empty = data_dir_settings(tmp_path)
    assert query_encoder_for(empty) is None
    reason = encoder_unavailable_reason(empty)
    assert reason is not None
    assert "no query vectors yet" in reason and str(empty.embedder_cache_dir) in reason


def test_a_model_exported_later_is_picked_up(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = data_dir_settings(tmp_path)  # the site starts before the ML pool
    assert query_encoder_for(site) is None
    model = find_model(settings.embedder_cache_dir)
    assert model is not None
    site.embedder_cache_dir.mkdir(parents=True)
    shutil.copyfile(model, site.embedder_cache_dir / model.name)
    # Within the re-check interval the directory is not looked at again...
    assert query_encoder_for(site) is None
    # ...after it, the file is found.
    monkeypatch.setattr(query_vector, "RECHECK_S", 0.0)
    encoder = query_encoder_for(site)
    assert encoder is not None and encoder_unavailable_reason(site) is None
    assert encoder.path == site.embedder_cache_dir / model.name
    assert encoder.encode("graph neural networks").shape == (DIM,)


def test_a_model_file_that_does_not_load_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    site = data_dir_settings(tmp_path)
    site.embedder_cache_dir.mkdir(parents=True)
    (site.embedder_cache_dir / f"{PACKAGED_ENCODER}-fused-fp32-v1-000000000000.onnx").write_bytes(
        b"not a model"
    )
    monkeypatch.setattr(query_vector, "RECHECK_S", 0.0)
    with caplog.at_level(logging.WARNING, logger=query_vector.__name__):
        assert query_encoder_for(site) is None
        assert query_encoder_for(site) is None
    reason = encoder_unavailable_reason(site)
    assert reason is not None and "did not load" in reason
    assert len(caplog.records) == 1  # logged once, not at every re-check


def test_a_missing_package_is_the_reason(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = query_vector.importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        return None if name == "onnxruntime" else real(name, *args)

    monkeypatch.setattr(query_vector.importlib.util, "find_spec", find_spec)
    assert query_encoder_for(settings) is None
    assert "onnxruntime is not installed" in (encoder_unavailable_reason(settings) or "")


def test_the_newest_matching_file_is_the_model(tmp_path: Path) -> None:
    names = {
        f"{PACKAGED_ENCODER}-fused-fp32-v1-aaaaaaaaaaaa.onnx": 100,
        f"{PACKAGED_ENCODER}-fused-fp32-v2-bbbbbbbbbbbb.onnx": 300,
        f"{PACKAGED_ENCODER}-fused-fp32-v1-cccccccccccc.onnx": 200,
        # Not the query model: another recipe, a build in progress.
        f"{PACKAGED_ENCODER}-int8-v1-dddddddddddd.onnx": 900,
        f".{PACKAGED_ENCODER}-fused-fp32-v3-eeeeeeeeeeee.onnx.x1y2.tmp": 900,
    }
    for name, mtime in names.items():
        (tmp_path / name).write_bytes(b"")
        os.utime(tmp_path / name, (mtime, mtime))
    assert find_model(tmp_path) == tmp_path / f"{PACKAGED_ENCODER}-fused-fp32-v2-bbbbbbbbbbbb.onnx"
    assert find_model(tmp_path / "absent") is None


def test_query_vectors_need_no_torch(settings: Settings) -> None:
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from app.settings import Settings\n"
        "from app.search.query_vector import query_encoder_for\n"
        f"encoder = query_encoder_for(Settings(data_dir=Path({str(settings.data_dir)!r})))\n"
        "assert encoder is not None\n"
        "encoder.encode('graph neural networks')\n"
        "print(sorted({'torch', 'transformers', 'ml'} & set(sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"


# --- the ML pool exports the model whatever its embedder's backend --------------------------


class FakeEmbedder:
    def __init__(self, backend: str) -> None:
        self.backend = backend


@pytest.mark.parametrize(
    ("backend", "exports"),
    [("torch-bf16-cuda", True), ("torch-bf16-cpu", True), ("onnx-fp32-cpu", False)],
)
def test_the_pool_exports_the_query_model_beside_a_torch_embedder(
    backend: str, exports: bool, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The ONNX backend builds the file as it loads; torch (on a GPU, or in bf16 on a CPU)
    does not, so the pool's loader exports it then."""
    exported: list[Settings] = []
    monkeypatch.setattr(embeddings, "load_embedder", lambda **_: FakeEmbedder(backend))
    monkeypatch.setattr(ml_models, "export_query_model", exported.append)
    site = data_dir_settings(tmp_path)
    assert ml_models.load_embedder(site).backend == backend
    assert exported == ([site] if exports else [])


def test_a_failed_export_leaves_the_pool_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(_cache_dir: Path) -> Path:
        raise OSError("read-only file system")

    monkeypatch.setattr(onnx_fused, "cached_model", broken)
    with caplog.at_level(logging.WARNING, logger=ml_models.__name__):
        ml_models.export_query_model(data_dir_settings(tmp_path))
    assert "not exported" in caplog.text and "read-only file system" in caplog.text


def test_the_tokenizer_travels_with_the_model(settings: Settings, tmp_path: Path) -> None:
    """A web process without the ML extra has no packaged MiniLM: the pool's cache dir alone
    (model + tokenizer copy) must be enough to embed queries, identically."""
    cache = settings.embedder_cache_dir
    assert query_vector.TOKENIZER_FILE == onnx_fused.TOKENIZER_FILE
    assert (cache / onnx_fused.TOKENIZER_FILE).is_file()
    copied = data_dir_settings(tmp_path)
    target = copied.embedder_cache_dir
    target.mkdir(parents=True)
    model = query_vector.find_model(cache)
    assert model is not None
    shutil.copy(model, target / model.name)
    shutil.copy(cache / onnx_fused.TOKENIZER_FILE, target / onnx_fused.TOKENIZER_FILE)
    assert query_vector._tokenizer_file(target) == target / onnx_fused.TOKENIZER_FILE
    alone = query_encoder_for(copied)
    packaged = query_encoder_for(settings)
    assert alone is not None and packaged is not None
    text = "graph neural networks for molecules"
    assert cosine(alone.encode(text), packaged.encode(text)) > 0.9999
