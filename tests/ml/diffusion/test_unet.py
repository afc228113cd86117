"""The EDM U-Net, its training loss and its checkpoints (tiny models, no data needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ml import checkpoints
from ml.diffusion import checkpoint
from ml.diffusion.denoiser import Denoiser
from ml.diffusion.train import edm_loss
from ml.diffusion.unet import EDMDenoiser, UNetConfig, config_for

TINY_GREY = UNetConfig(1, 32, base_channels=8, channel_mults=(1, 2), emb_dim=32)
TINY_RGB = UNetConfig(3, 64, base_channels=8, channel_mults=(1, 2, 2), emb_dim=32)


def _trained_a_little(cfg: UNetConfig) -> EDMDenoiser:
    """A model whose output layer is no longer zero (fresh models output D = c_skip·x)."""
    torch.manual_seed(0)
    model = EDMDenoiser(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.eval()


@pytest.mark.parametrize("cfg", [TINY_GREY, TINY_RGB], ids=["32x32x1", "64x64x3"])
def test_shapes_and_features(cfg: UNetConfig) -> None:
    model = _trained_a_little(cfg)
    x = torch.randn(3, *cfg.shape)
    sigma = torch.tensor([0.01, 1.0, 80.0])
    with torch.no_grad():
        d = model(x, sigma)
        d2, feats = model.with_features(x, sigma)
    assert d.shape == x.shape
    assert feats.shape == (3, model.feature_dim) == (3, cfg.base_channels * cfg.channel_mults[-1])
    assert torch.allclose(d, d2)
    assert isinstance(model, Denoiser)
    assert (model.sigma_min, model.sigma_max, model.sigma_data) == (0.002, 80.0, 0.5)


def test_default_configs_are_small() -> None:
    for dataset in ("fashion", "plots"):
        cfg = config_for(dataset)
        params = sum(p.numel() for p in EDMDenoiser(cfg).parameters())
        assert 200_000 < params < 1_500_000, (dataset, params)
    with pytest.raises(ValueError, match="unknown data set"):
        config_for("cifar")


def test_preconditioning_limits() -> None:
    model = _trained_a_little(TINY_GREY)
    x = torch.randn(4, *TINY_GREY.shape)
    with torch.no_grad():
        # σ → 0: c_skip → 1 and c_out → 0, so D(x) ≈ x whatever the network says.
        tiny = model(x, torch.full((4,), 1e-4))
        # σ large: c_skip → 0, so D no longer follows x (it is the network's own estimate).
        big = model(x, torch.full((4,), 80.0))
    assert (tiny - x).abs().max() < 1e-3
    assert (big - x).abs().mean() > 0.5
    # A scalar σ broadcasts over the batch; float64 σ (the samplers' grids) is accepted.
    with torch.no_grad():
        a = model(x, torch.tensor(1.0, dtype=torch.float64))
        b = model(x, torch.full((4,), 1.0))
    assert torch.allclose(a, b, atol=1e-6)


def test_training_steps_lower_the_loss_on_a_fixed_batch() -> None:
    torch.manual_seed(0)
    model = EDMDenoiser(TINY_GREY)
    y = torch.rand(8, *TINY_GREY.shape) * 2 - 1
    optim = torch.optim.Adam(model.parameters(), lr=3e-3)

    def loss_on_fixed_noise() -> float:
        with torch.no_grad():
            return float(edm_loss(model, y, torch.Generator().manual_seed(123)))

    before = loss_on_fixed_noise()
    for _ in range(20):
        loss = edm_loss(model, y, torch.Generator().manual_seed(123))
        optim.zero_grad()
        loss.backward()
        optim.step()
    after = loss_on_fixed_noise()
    assert after < 0.7 * before, (before, after)


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    model = _trained_a_little(TINY_GREY)
    assert not checkpoints.checkpoint_present(tmp_path)
    v1 = checkpoint.save(tmp_path, model, {"dataset": "fashion", "steps": 1})
    assert v1.startswith("diffusion-fashion-") and checkpoints.checkpoint_present(tmp_path)
    assert checkpoints.read_version(tmp_path) == v1
    loaded, ckpt = checkpoint.load_denoiser(tmp_path)
    assert ckpt.version == v1 and ckpt.config == TINY_GREY and ckpt.meta["steps"] == 1
    x, sigma = torch.randn(2, *TINY_GREY.shape), torch.tensor([0.5, 5.0])
    with torch.no_grad():
        assert torch.equal(model(x, sigma), loaded(x, sigma))
    # Same weights, same version; new weights, new version.
    assert checkpoint.save(tmp_path, model, {"dataset": "fashion"}) == v1
    with torch.no_grad():
        next(model.parameters()).add_(0.01)
    assert checkpoint.save(tmp_path, model, {"dataset": "fashion"}) != v1
    assert not list(tmp_path.glob(".*.tmp"))


def test_predictors_live_beside_the_unet_and_go_stale(tmp_path: Path) -> None:
    from ml.diffusion.amed import AMEDPredictor

    model = _trained_a_little(TINY_GREY)
    predictor = AMEDPredictor(model.feature_dim, solver="amed_plugin", nfe=5)
    with pytest.raises(FileNotFoundError):
        checkpoint.save_amed(tmp_path, predictor)
    checkpoint.save(tmp_path, model, {"dataset": "fashion"})
    file = checkpoint.save_amed(tmp_path, predictor)
    assert file.name == "amed-amed_plugin-nfe5.safetensors"
    assert checkpoint.predictors_present(tmp_path) == {("amed_plugin", 5): file}
    loaded = checkpoint.load_amed(tmp_path, "amed_plugin", 5)
    assert loaded is not None and loaded.nfe == 5 and loaded.solver == "amed_plugin"
    assert checkpoint.load_amed(tmp_path, "amed", 5) is None
    from ml.diffusion.inference import LoadedDiffusion

    served = LoadedDiffusion.load(tmp_path, device="cpu")
    assert "amed_plugin" in served.solvers_available(5)
    assert "amed_plugin" not in served.solvers_available(3)
    assert served.sample([7], "amed_plugin", 5).shape == (1, 32, 32, 1)
    # New U-Net weights: the predictor distilled for the old ones is dropped.
    with torch.no_grad():
        next(model.parameters()).add_(0.01)
    checkpoint.save(tmp_path, model, {"dataset": "fashion"})
    assert checkpoint.predictors_present(tmp_path) == {}


def test_loaded_diffusion_is_deterministic_per_seed(tmp_path: Path) -> None:
    from ml.diffusion.inference import LoadedDiffusion, seed_for_paper

    model = _trained_a_little(TINY_GREY)
    checkpoint.save(tmp_path, model, {"dataset": "fashion"})
    loaded = LoadedDiffusion.load(tmp_path, device="cpu")
    assert loaded.shape == (1, 32, 32)
    assert loaded.version == checkpoints.read_version(tmp_path)
    a = loaded.sample([1, 2, 3], "ddim", 3)
    b = loaded.sample([3, 1], "ddim", 3)
    assert a.dtype == "uint8" and a.shape == (3, 32, 32, 1)
    assert (a[0] == b[1]).all() and (a[2] == b[0]).all()
    assert not (a[0] == a[1]).all()
    assert "amed" not in loaded.solvers_available()
    with pytest.raises(ValueError, match="predictor"):
        loaded.sample([1], "amed", 5)
    with pytest.raises(ValueError):
        loaded.sample([1], "euler-maruyama", 5)
    assert seed_for_paper("2401.00001") == seed_for_paper("2401.00001")
    assert seed_for_paper("2401.00001") != seed_for_paper("2401.00002")
    assert 0 <= seed_for_paper("x") < 2**63


def test_an_interrupted_run_resumes_where_it_stopped(shared_data: Path, tmp_path: Path) -> None:
    from ml.diffusion.train import STATE, DiffusionTrainConfig, train_diffusion
    from ml.progress import Quiet

    class StopAt(Quiet):
        def __init__(self, step: int) -> None:
            self.step, self.done = step, 0

        def advance(self, n: int = 1, **info: float) -> None:
            self.done += n
            if self.done == self.step:
                raise KeyboardInterrupt

    def cfg(out: Path) -> DiffusionTrainConfig:
        return DiffusionTrainConfig(
            shared_data / "images", out=out, steps=6, batch=4, size="tiny", limit=64,
            checkpoint_every=3, device="cpu",
        )  # fmt: skip

    straight = train_diffusion(cfg(tmp_path / "a"))
    with pytest.raises(KeyboardInterrupt):
        train_diffusion(cfg(tmp_path / "b"), StopAt(5))
    assert (tmp_path / "b" / STATE).is_file()
    resumed = train_diffusion(cfg(tmp_path / "b"))
    assert resumed.resumed_from == 3 and resumed.version == straight.version
    assert not (tmp_path / "b" / STATE).exists()
