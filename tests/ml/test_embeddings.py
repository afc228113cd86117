"""Paper embeddings: the text embedded, the vectors' shape and order, the torch, bf16 and
ONNX backends agreeing, and the exported model's cache."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from ml.embeddings import (
    DIM,
    VERSION,
    Embedder,
    TorchEmbedder,
    load_embedder,
    model,
    onnx_fused,
    paper_text,
)

PAPERS = [
    (
        "Attention Is All You Need",
        "We propose the Transformer, a network architecture based solely on attention "
        "mechanisms, dispensing with recurrence and convolutions entirely.",
    ),
    (
        "Graph neural networks for molecules",
        "Message passing over atoms and bonds predicts quantum chemical properties of small "
        "molecules at a fraction of the cost of density functional theory.",
    ),
    (
        "A survey of\n  protein   structure prediction",
        "From homology modelling to AlphaFold: we review how deep learning changed the "
        "prediction of three-dimensional protein structure from sequence. " * 6,
    ),
    ("Short", ""),
]


@pytest.fixture(scope="module")
def torch_fp32() -> Embedder:
    return TorchEmbedder("cpu")


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("embedder")


@pytest.fixture(scope="module")
def fast(cache: Path) -> Embedder:
    return load_embedder("cpu", backend="onnx", cache_dir=cache)


@pytest.fixture(scope="module")
def bf16() -> Embedder:
    # bf16 works on every CPU (emulated where the CPU lacks it); `auto` picks it only where
    # the CPU has it natively.
    return load_embedder("cpu", backend="bf16")


def test_paper_text_joins_title_and_abstract() -> None:
    assert paper_text("A  title\n here", " An\nabstract. ") == "A title here. An abstract."
    assert paper_text("Why?", "Because.") == "Why? Because."
    assert paper_text("", "Only an abstract.") == "Only an abstract."
    assert paper_text("Only a title", "") == "Only a title."


@pytest.mark.slow
def test_vectors_are_unit_rows_in_the_order_given(torch_fp32: Embedder) -> None:
    vectors = torch_fp32.embed(PAPERS)
    assert vectors.shape == (len(PAPERS), DIM) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # Batches are sorted by length inside; rows still come back in the caller's order.
    reversed_ = torch_fp32.embed(PAPERS[::-1], batch_size=2)
    np.testing.assert_allclose(reversed_[::-1], vectors, atol=1e-5)
    alone = torch_fp32.embed(PAPERS[:1])
    np.testing.assert_allclose(alone[0], vectors[0], atol=1e-5)


@pytest.mark.slow
def test_empty_input_gives_no_rows(torch_fp32: Embedder, fast: Embedder, bf16: Embedder) -> None:
    for embedder in (torch_fp32, fast, bf16):
        assert embedder.embed([]).shape == (0, DIM)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("which", "backend"), [("fast", "onnx-fp32-cpu"), ("bf16", "torch-bf16-cpu")]
)
def test_fast_backends_agree_with_fp32(
    torch_fp32: Embedder, which: str, backend: str, request: pytest.FixtureRequest
) -> None:
    embedder: Embedder = request.getfixturevalue(which)
    assert embedder.backend == backend
    reference = torch_fp32.embed(PAPERS)
    vectors = embedder.embed(PAPERS, batch_size=2)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert ((vectors * reference).sum(1) > 0.999).all()
    # Each paper's nearest other paper is the same in both spaces.
    itself = 2 * np.eye(len(PAPERS))
    near_ref = (reference @ reference.T - itself).argmax(1)
    near_fast = (vectors @ vectors.T - itself).argmax(1)
    assert (near_ref == near_fast).all()


@pytest.mark.slow
def test_every_backend_shares_one_version(
    torch_fp32: Embedder, fast: Embedder, bf16: Embedder
) -> None:
    assert torch_fp32.version == fast.version == bf16.version == VERSION


@pytest.mark.slow
def test_export_is_cached_and_reused(
    fast: Embedder, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The model and the tokenizer beside it (for the web's query encoder): no temporary or
    # intermediate file left.
    files = sorted(cache.iterdir(), key=lambda p: p.suffix)
    assert files[0].name == onnx_fused.TOKENIZER_FILE
    model = files[1]
    assert len(files) == 2
    assert model.suffix == ".onnx" and model.stat().st_mode & 0o044
    built = model.stat().st_mtime_ns

    def no_build(dest: Path) -> None:
        raise AssertionError("the cached model is exported again")

    monkeypatch.setattr(onnx_fused, "build", no_build)
    again = load_embedder("cpu", backend="onnx", cache_dir=cache)
    assert again.backend == fast.backend
    assert model.stat().st_mtime_ns == built
    np.testing.assert_allclose(again.embed(PAPERS[:2]), fast.embed(PAPERS[:2]), atol=1e-6)


def test_a_failed_export_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def half_written(dest: Path) -> None:
        dest.write_bytes(b"half a model")
        raise RuntimeError("export interrupted")

    monkeypatch.setattr(onnx_fused, "build", half_written)
    with pytest.raises(RuntimeError, match="interrupted"):
        onnx_fused.cached_model(tmp_path / "cache")
    assert os.listdir(tmp_path / "cache") == []


def test_backend_choice() -> None:
    with pytest.raises(ValueError, match="unknown embeddings backend"):
        load_embedder("cpu", backend="tensorrt")
    with pytest.raises(ValueError, match="needs a cache_dir"):
        load_embedder("cpu", backend="onnx")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("native_bf16", "with_cache", "backend"),
    [
        (True, True, "torch-bf16-cpu"),
        (False, True, "onnx-fp32-cpu"),
        (False, False, "torch-fp32-cpu"),
    ],
)
def test_auto_picks_the_fastest_cpu_backend_this_cpu_runs_well(
    native_bf16: bool,
    with_cache: bool,
    backend: str,
    cache: Path,
    fast: Embedder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # `fast` first: the ONNX file is exported once for the module.
    monkeypatch.setattr(model, "bf16_supported", lambda device: native_bf16)
    chosen = load_embedder("cpu", backend="auto", cache_dir=cache if with_cache else None)
    assert chosen.backend == backend
