"""The autoencoder, training, checkpoints and the loaded tokenizer (tiny runs)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ml.checkpoints import checkpoint_present
from ml.fsq.autoencoder import Tokenizer, TokenizerConfig
from ml.fsq.evaluate import codebook_stats, evaluate, psnr
from ml.fsq.inference import LoadedTokenizer
from ml.fsq.train import (
    FSQTrainConfig,
    fashion_as_plots,
    lr_factor,
    tokenizer_config,
    train_tokenizer,
)


@pytest.mark.parametrize(
    "cfg",
    [
        TokenizerConfig.for_fsq([8, 5, 5, 5], width=8),
        TokenizerConfig.for_fsq([2, 3], width=8),
        TokenizerConfig.for_vq(64, 3, width=8),
        TokenizerConfig.for_vq(64, 3, ema=True, width=8),
    ],
)
def test_autoencoder_shapes(cfg: TokenizerConfig) -> None:
    model = Tokenizer(cfg)
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    recon, q = model(x)
    assert recon.shape == x.shape
    assert cfg.grid == (16, 16)
    assert q.quantized.shape == (2, 16, 16, cfg.dim)
    assert q.indices.shape == (2, 16, 16)
    assert int(q.indices.min()) >= 0 and int(q.indices.max()) < cfg.codebook_size
    model.eval()
    with torch.no_grad():
        # Decoding needs only the indices and gives the forward pass's reconstruction.
        assert torch.equal(model.decode_indices(model.quantize(x).indices), model(x)[0])


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="quantizer"):
        TokenizerConfig(quantizer="rvq")
    with pytest.raises(ValueError, match="Π levels"):
        TokenizerConfig(levels=[8, 5], codebook_size=1000, dim=2)
    assert TokenizerConfig.from_dict(TokenizerConfig().to_dict()) == TokenizerConfig()


def test_tokenizer_config_from_training_options(tmp_path: Path) -> None:
    def cfg(**kw: object) -> TokenizerConfig:
        return tokenizer_config(FSQTrainConfig(tmp_path, **kw))  # type: ignore[arg-type]

    assert cfg().levels == [8, 5, 5, 5]
    assert cfg(codebook_size=2**16).levels == [8, 8, 8, 5, 5, 5]
    assert cfg(levels=[3, 3]).codebook_size == 9
    vq = cfg(quantizer="vq", codebook_size=2**12)
    assert (vq.codebook_size, vq.dim, vq.levels) == (4096, 5, [])  # dim of FSQ's 2^12 levels
    assert cfg(quantizer="vq-ema", codebook_size=300, vq_dim=7).dim == 7
    with pytest.raises(ValueError, match="recommended"):
        cfg(codebook_size=1000)
    with pytest.raises(ValueError, match="quantizer"):
        cfg(quantizer="pq")
    with pytest.raises(ValueError, match="not 100"):
        cfg(levels=[8, 5], codebook_size=100)


def test_learning_rate_schedule_and_fashion_conversion() -> None:
    assert lr_factor(0, 100, 10) == pytest.approx(0.1)
    assert lr_factor(9, 100, 10) == pytest.approx(0.1 + 0.45 * (1 + np.cos(np.pi * 0.09)))
    assert lr_factor(99, 100, 10) < 0.11
    grey = np.zeros((2, 32, 32, 1), np.uint8)
    grey[:, 4, 5] = 200
    rgb = fashion_as_plots(grey)
    assert rgb.shape == (2, 64, 64, 3) and rgb.dtype == np.uint8
    assert rgb[0, 0, 0].tolist() == [255, 255, 255]
    assert rgb[0, 9, 11].tolist() == [55, 55, 55]


def test_psnr_and_stats_are_reexported() -> None:
    assert psnr(0.01) == pytest.approx(20.0)
    assert psnr(0.0) == float("inf")
    assert codebook_stats(np.array([1, 1])).usage == 100.0


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> tuple[Path, Path]:
    images_dir = shared_data / "images"
    out = tmp_path_factory.mktemp("fsq")
    torch.manual_seed(0)
    result = train_tokenizer(
        FSQTrainConfig(images_dir, levels=[5, 4, 3], steps=4, batch=4, width=8, out=out)
    )
    assert result.version is not None and result.version.startswith("fsq-5x4x3-")
    assert np.isfinite(result.final_loss)
    return images_dir, out


def test_train_save_load_encode_decode_round_trip(trained: tuple[Path, Path]) -> None:
    from ml.images import load

    images_dir, out = trained
    assert checkpoint_present(out)
    config = json.loads((out / "config.json").read_text())
    assert config["meta"]["steps"] == 4 and config["model"]["levels"] == [5, 4, 3]
    tok = LoadedTokenizer.load(out, device="cpu")
    assert tok.version == config["version"]
    assert (tok.levels, tok.grid, tok.codebook_size) == ([5, 4, 3], (16, 16), 60)
    images = load("plots", images_dir).held_out[:5]
    tokens = tok.encode(images)
    assert tokens.shape == (5, 16, 16) and tokens.dtype == np.int32
    assert tokens.min() >= 0 and tokens.max() < 60
    assert np.array_equal(tokens, tok.encode(images))  # deterministic
    assert np.array_equal(tokens[2:3], tok.encode(images[2:3]))  # batch-independent
    pictures = tok.decode(tokens)
    assert pictures.shape == (5, 64, 64, 3) and pictures.dtype == np.uint8
    assert np.array_equal(pictures, tok.reconstruct(images))
    # A second load of the same checkpoint decodes stored tokens identically.
    again = LoadedTokenizer.load(out, device="cpu")
    assert np.array_equal(again.decode(tokens.astype(np.int64)), pictures)
    assert tok.encode(images[:0]).shape == (0, 16, 16)


def test_bad_inputs_raise_clear_value_errors(trained: tuple[Path, Path]) -> None:
    _, out = trained
    tok = LoadedTokenizer.load(out, device="cpu")
    good = np.zeros((1, 64, 64, 3), np.uint8)
    with pytest.raises(ValueError, match="uint8"):
        tok.encode(good.astype(np.float32))
    with pytest.raises(ValueError, match="shape"):
        tok.encode(np.zeros((1, 32, 32, 3), np.uint8))
    with pytest.raises(ValueError, match="shape"):
        tok.encode(np.zeros((64, 64, 3), np.uint8))
    with pytest.raises(ValueError, match="numpy"):
        tok.encode(good.tolist())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"\[0, 60\)"):
        tok.decode(np.full((1, 16, 16), 60, np.int32))
    with pytest.raises(ValueError, match=r"\[0, 60\)"):
        tok.decode(np.full((1, 16, 16), -1, np.int64))
    with pytest.raises(ValueError, match="integers"):
        tok.decode(np.zeros((1, 16, 16), np.float32))
    with pytest.raises(ValueError, match="shape"):
        tok.decode(np.zeros((1, 8, 8), np.int32))


def test_checkpoint_missing(tmp_path: Path) -> None:
    assert not checkpoint_present(tmp_path)
    assert not checkpoint_present(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="train-fsq"):
        LoadedTokenizer.load(tmp_path)


def test_evaluate_figures(trained: tuple[Path, Path]) -> None:
    from ml.fsq.checkpoint import load_model
    from ml.images import load

    images_dir, out = trained
    model, _ = load_model(out)
    plots = load("plots", images_dir)
    res = evaluate(model, plots.held_out[:8], plots.train[:16], timing_seconds=0.01)
    assert res.codebook_size == 60 and res.held_out == 8 and res.tokens == 16 * 256
    assert 0 < res.usage <= 100 and 1 <= res.perplexity <= 60
    assert res.usage_cap == 100.0
    assert 0 < res.mse < 1 and res.psnr == pytest.approx(psnr(res.mse))
    assert res.images_per_s > 0


def test_training_with_fashion_mixed_in_and_vq(shared_data: Path) -> None:
    images_dir = shared_data / "images"
    for quantizer, mix in (("vq", 0.5), ("vq-ema", 0.0)):
        result = train_tokenizer(
            FSQTrainConfig(
                images_dir,
                quantizer=quantizer,
                codebook_size=32,
                steps=2,
                batch=4,
                width=8,
                fashion_mix=mix,
            )
        )
        assert result.version is None and result.config.quantizer == quantizer
        assert np.isfinite(result.final_loss)
