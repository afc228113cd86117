"""AMED's predictor: its start state, distillation on Gaussian data, and its checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from ml.diffusion.amed import (
    OBJECTIVES,
    AMEDPredictor,
    load_predictor,
    objective_loss,
    predictor_filename,
    rollout,
    save_predictor,
    train_amed,
)
from ml.diffusion.denoiser import CountingDenoiser
from ml.diffusion.gaussian import GaussianDenoiser
from ml.diffusion.samplers import Stepper, grid, plan, sample

DIM = 16


def gaussian() -> GaussianDenoiser:
    return GaussianDenoiser(torch.zeros(DIM), torch.logspace(-1.5, 0.0, DIM))


def noise(n: int = 256) -> Tensor:
    return torch.randn(n, DIM, generator=torch.Generator().manual_seed(123))


def rmse(den: GaussianDenoiser, z: Tensor, x: Tensor) -> float:
    return float((x - den.solution(z * den.sigma_max, den.sigma_min)).pow(2).mean().sqrt())


def sampled(den: object, z: Tensor, predictor: AMEDPredictor) -> Tensor:
    out = sample(den, z, predictor.solver, predictor.nfe, predictor=predictor)  # type: ignore[arg-type]
    assert isinstance(out, Tensor)
    return out


def test_size_and_untrained_outputs() -> None:
    params = sum(p.numel() for p in AMEDPredictor(64).parameters())
    assert 5_000 < params < 15_000
    g = AMEDPredictor(8, solver="amed_plugin", nfe=7)
    assert (g.solver, g.nfe, g.afs, g.schedule) == ("amed_plugin", 7, True, "polynomial")
    r, c, a = g(torch.randn(5, 8), 80.0, 3.0)
    assert r.shape == c.shape == a.shape == (5,)
    assert torch.equal(r, torch.full((5,), 0.5))
    assert torch.equal(c, torch.ones(5))
    assert torch.equal(a, torch.ones(5))


@pytest.mark.parametrize("solver", ["amed", "amed_plugin"])
def test_training_beats_the_untrained_midpoint(solver: str) -> None:
    den, z = gaussian(), noise()
    start = AMEDPredictor(den.feature_dim, solver=solver, nfe=5)
    trained = train_amed(
        den, solver=solver, nfe=5, samples=512, batch=64, shape=(DIM,), teacher_points=7
    )
    before, after = rmse(den, z, sampled(den, z, start)), rmse(den, z, sampled(den, z, trained))
    if solver == "amed":
        # The midpoint start is far off at NFE 5 on this stiff data; distillation fixes most.
        assert after < 0.5 * before, (before, after)
    else:
        # iPNDM's history already makes the plug-in start good; training must not spoil it.
        assert after < 1.1 * before, (before, after)
    counting = CountingDenoiser(den)
    sampled(counting, z, trained)
    assert counting.calls == 5
    assert trained.meta["samples"] == 512
    assert trained.meta["objective"] == "final"  # the default
    outputs = trained.meta["step_outputs"]
    assert len(outputs) == 3  # NFE 5 with AFS: three steps
    assert all(0 < r < 1 and abs(c - 1) <= 0.02 and abs(a - 1) <= 0.2 for r, c, a in outputs)
    assert not trained.training


def test_training_is_deterministic_per_seed() -> None:
    den = gaussian()
    kwargs = {"solver": "amed", "nfe": 3, "samples": 64, "batch": 32, "shape": (DIM,)}
    one, two = train_amed(den, seed=1, **kwargs), train_amed(den, seed=1, **kwargs)  # type: ignore[arg-type]
    other = train_amed(den, seed=2, **kwargs)  # type: ignore[arg-type]
    for (name, p), q in zip(one.state_dict().items(), two.state_dict().values(), strict=True):
        assert torch.equal(p, q), name
    assert any(
        not torch.equal(p, o) for p, o in zip(one.parameters(), other.parameters(), strict=True)
    )


def test_save_load_round_trip(tmp_path: Path) -> None:
    den, z = gaussian(), noise(16)
    trained = train_amed(den, solver="amed", nfe=5, samples=64, batch=32, shape=(DIM,))
    path = tmp_path / "ckpt" / predictor_filename("amed", 5)
    version = save_predictor(path, trained)
    assert path.name == "amed-amed-nfe5.safetensors"
    assert version.startswith("amed-amed-nfe5-")
    config = json.loads(path.with_suffix(".json").read_text())
    assert config["version"] == version
    assert not list(path.parent.glob(".*.tmp"))

    loaded = load_predictor(path)
    assert loaded.config() == trained.config()
    assert loaded.meta["version"] == version
    for (name, p), q in zip(
        trained.state_dict().items(), loaded.state_dict().values(), strict=True
    ):
        assert torch.equal(p, q), name
    assert torch.equal(sampled(den, z, loaded), sampled(den, z, trained))
    counting = CountingDenoiser(den)
    sampled(counting, z, loaded)
    assert counting.calls == 5

    # The version follows the weights.
    with torch.no_grad():
        loaded.head.bias.add_(0.1)
    assert save_predictor(path, loaded) != version

    with pytest.raises(FileNotFoundError, match="train-amed"):
        load_predictor(tmp_path / "missing.safetensors")
    with pytest.raises(ValueError, match="safetensors"):
        save_predictor(tmp_path / "model.pt", trained)


class ModuleGaussian(nn.Module):
    """The Gaussian denoiser as a torch module with a parameter, like the U-Net."""

    feature_dim = GaussianDenoiser.feature_dim

    def __init__(self) -> None:
        super().__init__()
        self.inner = gaussian()
        self.sigma_min, self.sigma_max = self.inner.sigma_min, self.inner.sigma_max
        self.sigma_data = self.inner.sigma_data
        self.gain = nn.Parameter(torch.ones(()))

    def forward(self, x: Tensor, sigma: Tensor) -> Tensor:
        return self.inner(x, sigma) * self.gain

    def with_features(self, x: Tensor, sigma: Tensor) -> tuple[Tensor, Tensor]:
        d, f = self.inner.with_features(x, sigma)
        return d * self.gain, f


def test_only_the_predictor_trains_and_the_denoiser_is_restored() -> None:
    den = ModuleGaussian().train()
    g = train_amed(den, solver="amed_plugin", nfe=4, samples=32, batch=16, shape=(DIM,))
    assert den.training and den.gain.requires_grad
    assert den.gain.grad is None
    assert float(den.gain.detach()) == 1.0
    assert g.afs is False
    assert all(p.grad is not None for p in g.parameters())


@pytest.mark.parametrize("objective", ["trajectory", "per_step"])
def test_other_objectives_train_and_are_recorded(objective: str, tmp_path: Path) -> None:
    den, z = gaussian(), noise()
    start = AMEDPredictor(den.feature_dim, solver="amed", nfe=5)
    trained = train_amed(
        den, solver="amed", nfe=5, samples=512, batch=64, shape=(DIM,), objective=objective
    )
    before, after = rmse(den, z, sampled(den, z, start)), rmse(den, z, sampled(den, z, trained))
    assert after < 0.7 * before, (before, after)
    path = tmp_path / predictor_filename("amed", 5)
    save_predictor(path, trained)
    assert json.loads(path.with_suffix(".json").read_text())["meta"]["objective"] == objective
    assert load_predictor(path).meta["objective"] == objective


def test_objectives_differ_as_documented() -> None:
    den = gaussian()
    g = AMEDPredictor(den.feature_dim, solver="amed_plugin", nfe=6)  # three steps, no AFS
    p = plan("amed_plugin", 6)
    t = grid(p, "polynomial", den.sigma_min, den.sigma_max)
    x0 = (torch.randn(4, DIM, generator=torch.Generator().manual_seed(0)) * 80).requires_grad_()

    # per_step cuts the chain: the last point does not depend on the start (or on any earlier
    # step's prediction); the whole-chain objectives keep it.
    detached = list(rollout(Stepper(den, p, t, g), x0, detach=True))
    assert len(detached) == p.steps == 3
    (grad,) = torch.autograd.grad(detached[-1].sum(), x0, allow_unused=True)
    assert grad is None
    chained = list(rollout(Stepper(den, p, t, g), x0, detach=False))
    (grad,) = torch.autograd.grad(chained[-1].sum(), x0)
    assert grad is not None and grad.abs().sum() > 0
    for a, b in zip(detached, chained, strict=True):  # same values, only the graph differs
        assert torch.allclose(a, b)

    # "final" scores only the last point; "trajectory" every step's, the last included.
    outputs = [v.detach() for v in chained]
    targets = [v + 0.1 for v in outputs]
    moved = [targets[0] + 1.0, *targets[1:]]
    assert objective_loss(outputs, moved, "final") == objective_loss(outputs, targets, "final")
    assert torch.isclose(objective_loss(outputs, targets, "final"), torch.tensor(0.01))
    assert torch.isclose(objective_loss(outputs, targets, "trajectory"), torch.tensor(0.03))
    assert objective_loss(outputs, moved, "trajectory") > objective_loss(
        outputs, targets, "trajectory"
    )
    with pytest.raises(ValueError, match="per_step"):
        objective_loss(outputs, targets, "per_step")


def test_unknown_objective_raises() -> None:
    assert OBJECTIVES == ("trajectory", "final", "per_step")
    with pytest.raises(ValueError, match="unknown AMED objective 'fast'"):
        train_amed(gaussian(), nfe=5, samples=8, batch=8, shape=(DIM,), objective="fast")
