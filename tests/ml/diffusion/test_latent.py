"""The plots' diffusion model in the FSQ tokenizer's code space: encoding, snapping, decoding,
training, checkpoints and sampling (tiny models on the real plots)."""

from __future__ import annotations

import functools
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from ml import images as image_sets
from ml.diffusion import checkpoint, latent
from ml.diffusion.unet import SIGMA_DATA


@functools.cache
def _tokenizer(root: Path, images_dir: Path) -> Path:
    from ml.fsq.train import FSQTrainConfig, train_tokenizer

    torch.set_num_threads(1)
    out = root / "fsq"
    train_tokenizer(FSQTrainConfig(images_dir=images_dir, steps=3, batch=4, width=8, out=out))
    return out


@pytest.fixture(scope="module")
def tokenizer_dir(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _tokenizer(tmp_path_factory.getbasetemp() / "latent-tokenizers", shared_data / "images")


@pytest.fixture(scope="module")
def plots(shared_data: Path) -> np.ndarray:
    return image_sets.load_plots(shared_data / "images").held_out[:8]


def _space(tokenizer_dir: Path, scale: float = 1.0) -> latent.CodeSpace:
    from ml.fsq.checkpoint import load_model

    tokenizer, ckpt = load_model(tokenizer_dir)
    return latent.CodeSpace(tokenizer, scale, ckpt.version)


def test_decoding_the_codes_of_a_plot_is_the_tokenizers_reconstruction(
    tokenizer_dir: Path, plots: np.ndarray
) -> None:
    space = _space(tokenizer_dir, scale=0.9)
    x = image_sets.to_tensor(plots)
    codes = space.encode(x)
    assert codes.shape == (len(plots), *space.shape) == (len(plots), 4, 16, 16)
    assert space.image_shape == (3, 64, 64)
    with torch.no_grad():
        reconstruction, q = space.tokenizer(x)
    # Codes snap to themselves, so a sample that lands on a plot's codes draws that plot.
    assert torch.equal(space.snap(codes), q.quantized)
    assert torch.equal(space.indices(codes), q.indices)
    assert torch.allclose(space.decode(codes), reconstruction, atol=1e-6)


def test_snapping_picks_the_nearest_code_of_each_channel(tokenizer_dir: Path) -> None:
    space = _space(tokenizer_dir, scale=2.0)
    fsq = space.tokenizer.quantizer
    codebook = fsq.implicit_codebook()  # (1000, 4), every code
    noisy = torch.randn(5, 4, 16, 16) * 3.0  # far outside the grid too
    snapped = space.snap(noisy).reshape(-1, 4)
    z = (noisy / 2.0).permute(0, 2, 3, 1).reshape(-1, 4)
    nearest = codebook[torch.cdist(z, codebook).argmin(dim=1)]
    assert torch.allclose(snapped, nearest)


def test_the_scale_makes_the_codes_spread_like_sigma_data(
    tokenizer_dir: Path, plots: np.ndarray
) -> None:
    from ml.fsq.checkpoint import load_model

    tokenizer, _ = load_model(tokenizer_dir)
    codes = latent.training_latents(plots, tokenizer, copies=3, seed=0)
    assert codes.shape == (3 * len(plots), 4, 16, 16)
    # The first copy is the plots themselves; the others are shifted, so they differ.
    plain = _space(tokenizer_dir).encode(image_sets.to_tensor(plots))
    assert torch.equal(codes[: len(plots)], plain)
    assert not torch.equal(codes[len(plots) :][: len(plots)], plain)
    scale = latent.measure_scale(codes, SIGMA_DATA)
    assert float((codes * scale).std()) == pytest.approx(SIGMA_DATA, rel=1e-4)
    with pytest.raises(ValueError, match="do not vary"):
        latent.measure_scale(torch.zeros(2, 4, 16, 16), SIGMA_DATA)


def test_a_vq_tokenizer_is_refused(shared_data: Path, tmp_path: Path) -> None:
    from ml.fsq.autoencoder import Tokenizer, TokenizerConfig

    vq = Tokenizer(TokenizerConfig.for_vq(64, 4, width=8))
    with pytest.raises(ValueError, match="FSQ"):
        latent.CodeSpace(vq, 1.0, "vq-64-x")


def _train(
    images_dir: Path, out: Path, tokenizer: Path | None, seed: int = 0
) -> tuple[str | None, float]:
    from ml.diffusion.train import DiffusionTrainConfig, train_diffusion

    torch.set_num_threads(1)
    result = train_diffusion(
        DiffusionTrainConfig(
            images_dir=images_dir, dataset="plots", out=out, steps=3, batch=4, size="tiny",
            limit=16, seed=seed, device="cpu", tokenizer=tokenizer, latent_copies=2,
        )
    )  # fmt: skip
    assert result.space is not None
    return result.version, result.space.scale


def test_a_latent_model_trains_saves_and_draws_plots(
    shared_data: Path, tokenizer_dir: Path, tmp_path: Path
) -> None:
    from ml.diffusion.inference import LoadedDiffusion

    out = tmp_path / "diffusion"
    version, scale = _train(shared_data / "images", out, tokenizer_dir)
    assert version is not None and version.startswith("diffusion-plots-")
    meta = json.loads((out / "config.json").read_text())["meta"]
    assert meta["dataset"] == "plots"
    assert meta["latent"]["space"] == "fsq" and meta["latent"]["scale"] == pytest.approx(scale)
    # The checkpoint carries its own tokenizer: the original can go.
    copied = json.loads((out / "tokenizer" / "config.json").read_text())["version"]
    assert meta["latent"]["tokenizer"] == copied
    moved = tmp_path / "moved"
    shutil.copytree(out, moved)
    loaded = LoadedDiffusion.load(moved, device="cpu")
    assert loaded.space is not None and loaded.space.version == copied
    assert loaded.shape == (3, 64, 64) and loaded.latent_shape == (4, 16, 16)
    assert loaded.dataset == "plots"
    a = loaded.sample([11, 12], "ipndm", 5)
    b = loaded.sample([12], "ipndm", 5)
    assert a.dtype == np.uint8 and a.shape == (2, 64, 64, 3)
    assert (a[1] == b[0]).all() and not (a[0] == a[1]).all()


def test_the_version_covers_the_tokenizer(
    shared_data: Path, tokenizer_dir: Path, tmp_path: Path
) -> None:
    """The same U-Net weights over another tokenizer draw other pictures: another version."""
    from ml.diffusion.unet import EDMDenoiser, UNetConfig
    from ml.fsq.checkpoint import load_model
    from ml.fsq.train import FSQTrainConfig, train_tokenizer

    other_dir = tmp_path / "other"
    train_tokenizer(
        FSQTrainConfig(
            images_dir=shared_data / "images", steps=3, batch=4, width=8, seed=1, out=other_dir
        )
    )
    torch.manual_seed(0)
    model = EDMDenoiser(UNetConfig(4, 16, base_channels=8, channel_mults=(1, 2), emb_dim=32))
    versions = set()
    for folder in (tokenizer_dir, other_dir):
        tokenizer, ckpt = load_model(folder)
        space = latent.CodeSpace(tokenizer, 1.0, ckpt.version)
        meta = {"dataset": "plots", "latent": latent.meta_of(space)}
        versions.add(checkpoint.save(tmp_path / "unet", model, meta, space))
    assert len(versions) == 2
    # Saved again as a pixel model, the folder loses the stale tokenizer copy.
    pixel = EDMDenoiser(UNetConfig(3, 64, base_channels=8, channel_mults=(1, 2), emb_dim=32))
    checkpoint.save(tmp_path / "unet", pixel, {"dataset": "plots"})
    assert not (tmp_path / "unet" / "tokenizer").exists()


def test_clear_errors_without_the_tokenizer(
    shared_data: Path, tokenizer_dir: Path, tmp_path: Path
) -> None:
    from ml.diffusion.inference import LoadedDiffusion
    from ml.diffusion.train import DiffusionTrainConfig, train_diffusion

    with pytest.raises(ValueError, match="train-fsq"):
        train_diffusion(
            DiffusionTrainConfig(
                images_dir=shared_data / "images", dataset="plots", steps=1, size="tiny"
            )
        )
    with pytest.raises(ValueError, match="only the plots"):
        DiffusionTrainConfig(images_dir=shared_data / "images", dataset="fashion", space="fsq")
    out = tmp_path / "diffusion"
    _train(shared_data / "images", out, tokenizer_dir)
    shutil.rmtree(out / "tokenizer")
    with pytest.raises(FileNotFoundError, match="tokenizer"):
        LoadedDiffusion.load(out, device="cpu")


def test_pixel_plots_still_train_when_asked(shared_data: Path, tmp_path: Path) -> None:
    from ml.diffusion.inference import LoadedDiffusion
    from ml.diffusion.train import DiffusionTrainConfig, train_diffusion

    train_diffusion(
        DiffusionTrainConfig(
            images_dir=shared_data / "images", dataset="plots", space="pixels", out=tmp_path,
            steps=2, batch=2, size="tiny", limit=8, device="cpu",
        )
    )  # fmt: skip
    loaded = LoadedDiffusion.load(tmp_path, device="cpu")
    assert loaded.space is None and loaded.shape == loaded.latent_shape == (3, 64, 64)
    assert "latent" not in json.loads((tmp_path / "config.json").read_text())["meta"]
