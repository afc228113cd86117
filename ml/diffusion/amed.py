"""AMED's step predictor g, its distillation against a finer Heun teacher, and its checkpoint.

g reads the denoiser's bottleneck features at t_cur (all zeros on an analytical first step) and
embeddings of t_cur and t_next, and returns per sample
- r ∈ (0, 1): where the intermediate time lies, t_mid = t_next^r·t_cur^(1−r);
- c = 1 + C·tanh(·): a scale on the step's direction (C = `dir_range`, 0.02 by default);
- a = 1 + A·tanh(·): a scale on the time at which the intermediate point is evaluated
  (A = `time_range`, 0.2).
Its output layer starts at zero, so an untrained g is the plain geometric midpoint (r = 0.5,
c = a = 1): AMED-Solver then is a second-order midpoint method.

Training (`train_amed`): for each batch of noise a Heun teacher integrates a grid with
`teacher_points` extra points between each pair of student grid points (same schedule, so the
student's times are on it). The student then runs its steps from the same noise, and the
`objective` says what it is scored on:
- "final" (default): the whole chain without detaching, scored on the final image only
  (‖x_student − x_teacher‖² at σ_min, mean over pixels); one Adam update per batch, back through
  every step. Best of the three on the Fashion U-Net on held-out noise in 6 of 8 (solver, NFE)
  cases (not AMED-Solver at NFE 3 and 9); AMED-Plugin at NFE 5 then edges past iPNDM and
  DPM-Solver++(2M) in RMSE to the teacher (README, `train-amed`).
- "trajectory": the same chain, scored on the sum over steps of the MSE at each step's end time
  (the final image included). Unweighted, the intermediate points (larger σ, larger errors)
  dominate and the final image barely improves on the untrained midpoint.
- "per_step": the AMED paper's literal recipe: one step at a time from the student's own previous
  output, detached between steps, each step's loss on its own and one Adam update after every
  step. It makes the early steps better and the last one worse (each step is fitted as if the
  later steps were exact), which lost to iPNDM at NFE 5 on the Fashion U-Net.
Only g trains.

A checkpoint is `amed-<solver>-nfe<k>.safetensors` (weights, with the version in its metadata)
plus the same name with `.json` (config and version), both written atomically.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import Tensor, nn

from ml.checkpoints import cpu_state, weights_digest, write_json, write_weights
from ml.diffusion.denoiser import Denoiser
from ml.diffusion.samplers import AMED_SOLVERS, Stepper, grid, heun_path, plan
from ml.diffusion.schedules import SCHEDULES, time_steps
from ml.progress import Reporter

FORMAT = 1
OBJECTIVES = ("trajectory", "final", "per_step")


def predictor_filename(solver: str, nfe: int) -> str:
    return f"amed-{solver}-nfe{nfe}.safetensors"


class TimeEmbedding(nn.Module):
    """Fourier features of EDM's c_noise = log(σ)/4, then a learned layer."""

    freqs: Tensor  # a buffer, registered in __init__

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.register_buffer(
            "freqs", torch.logspace(0.0, 1.5, channels // 2, dtype=torch.float32), persistent=False
        )
        self.proj = nn.Linear(2 * (channels // 2), channels)

    def forward(self, sigma: float, batch: int) -> Tensor:
        u = torch.tensor([math.log(sigma) / 4], device=self.freqs.device) * self.freqs
        emb = torch.cat([u.sin(), u.cos()])
        return nn.functional.silu(self.proj(emb)).expand(batch, -1)


class AMEDPredictor(nn.Module):
    """g(features, t_cur, t_next) → (r, c, a), each of shape (B,). About 10k parameters for a
    64-dim bottleneck. Carries what it was trained for (solver, NFE, AFS, schedule)."""

    def __init__(
        self,
        feature_dim: int,
        *,
        solver: str = "amed",
        nfe: int = 5,
        afs: bool | None = None,
        schedule: str = "polynomial",
        sigma_min: float = 0.002,
        sigma_max: float = 80.0,
        hidden: int = 64,
        feature_out: int = 16,
        time_channels: int = 16,
        dir_range: float = 0.02,
        time_range: float = 0.2,
    ) -> None:
        super().__init__()
        if solver not in AMED_SOLVERS:
            raise ValueError(f"AMED predictors serve {', '.join(AMED_SOLVERS)}, not {solver!r}")
        if schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}")
        p = plan(solver, nfe, afs)  # validates the NFE
        self.feature_dim = feature_dim
        self.solver = solver
        self.nfe = nfe
        self.afs = p.afs
        self.schedule = schedule
        self.sigma_min = sigma_min
        self.sigma_max = sigma_max
        self.hidden = hidden
        self.feature_out = feature_out
        self.time_channels = time_channels
        self.dir_range = dir_range
        self.time_range = time_range
        self.meta: dict[str, Any] = {}

        self.enc = nn.Sequential(
            nn.Linear(feature_dim, hidden), nn.SiLU(), nn.Linear(hidden, feature_out)
        )
        self.time = TimeEmbedding(time_channels)  # shared by t_cur and t_next
        self.trunk = nn.Sequential(nn.Linear(feature_out + 2 * time_channels, hidden), nn.SiLU())
        self.head = nn.Linear(hidden, 3)
        # Zero output layer: an untrained g is the geometric midpoint with no scaling.
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def config(self) -> dict[str, Any]:
        return {
            "feature_dim": self.feature_dim,
            "solver": self.solver,
            "nfe": self.nfe,
            "afs": self.afs,
            "schedule": self.schedule,
            "sigma_min": self.sigma_min,
            "sigma_max": self.sigma_max,
            "hidden": self.hidden,
            "feature_out": self.feature_out,
            "time_channels": self.time_channels,
            "dir_range": self.dir_range,
            "time_range": self.time_range,
        }

    def forward(
        self, features: Tensor, t_cur: float, t_next: float
    ) -> tuple[Tensor, Tensor, Tensor]:
        batch = features.shape[0]
        h = torch.cat(
            [self.enc(features), self.time(t_cur, batch), self.time(t_next, batch)], dim=1
        )
        out = self.head(self.trunk(h))
        r = torch.sigmoid(out[:, 0])
        c = 1 + self.dir_range * torch.tanh(out[:, 1])
        a = 1 + self.time_range * torch.tanh(out[:, 2])
        return r, c, a


# -- checkpoint ------------------------------------------------------------------------------


def _config_path(path: Path) -> Path:
    return path.with_suffix(".json")


def save_predictor(path: Path, predictor: AMEDPredictor) -> str:
    """Write weights (`path`, a .safetensors file) and config (same name, .json) atomically;
    returns the version, which changes whenever the weights do."""
    if path.suffix != ".safetensors":
        raise ValueError(f"a predictor is saved as a .safetensors file, got {path}")
    state = cpu_state(predictor)
    version = f"amed-{predictor.solver}-nfe{predictor.nfe}-{weights_digest(state)}"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_weights(path, state, version)
    config = {
        "format": FORMAT,
        "version": version,
        "predictor": predictor.config(),
        "meta": predictor.meta,
    }
    write_json(_config_path(path), config)
    return version


def load_predictor(path: Path, device: str | torch.device = "cpu") -> AMEDPredictor:
    """Read a predictor written by `save_predictor` (FileNotFoundError when absent)."""
    if not path.is_file() or not _config_path(path).is_file():
        raise FileNotFoundError(
            f"no AMED predictor at {path} (train one with `papershelf ml train-amed`)"
        )
    data = json.loads(_config_path(path).read_text())
    if data.get("format") != FORMAT:
        raise ValueError(
            f"{_config_path(path)}: unsupported predictor format {data.get('format')!r}"
        )
    predictor = AMEDPredictor(**data["predictor"])
    predictor.load_state_dict(load_file(str(path)))
    predictor.meta = dict(data.get("meta", {}))
    predictor.meta["version"] = data["version"]
    return predictor.to(device).eval()


# -- training --------------------------------------------------------------------------------


def _device_of(denoiser: Denoiser) -> torch.device:
    if isinstance(denoiser, nn.Module):
        param = next(denoiser.parameters(), None)
        if param is not None:
            return param.device
    return torch.device("cpu")


@contextlib.contextmanager
def _frozen(denoiser: Denoiser) -> Iterator[None]:
    """The denoiser in eval mode without parameter gradients (only g trains); restored after."""
    if not isinstance(denoiser, nn.Module):
        yield
        return
    was_training = denoiser.training
    flags = [(p, p.requires_grad) for p in denoiser.parameters()]
    denoiser.eval()
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
        denoiser.train(was_training)


def rollout(stepper: Stepper, x: Tensor, *, detach: bool) -> Iterator[Tensor]:
    """The student's point after each step from x at the grid's start. With `detach`, each step
    starts from the previous output cut from the graph (history too), so a step's loss reaches
    only that step's prediction; without it, gradients flow back through every earlier step."""
    for i in range(stepper.plan.steps):
        x = stepper.step(i, x)
        yield x
        if detach:
            x = x.detach()
            stepper.detach_history()


def objective_loss(outputs: list[Tensor], targets: list[Tensor], objective: str) -> Tensor:
    """The loss of a whole chain: "final" scores the last point, "trajectory" sums every step's
    MSE (the last point included). "per_step" has no whole-chain loss (it updates per step)."""
    if objective == "final":
        return (outputs[-1] - targets[-1]).pow(2).mean()
    if objective == "trajectory":
        return torch.stack(
            [(o - t).pow(2).mean() for o, t in zip(outputs, targets, strict=True)]
        ).sum()
    raise ValueError(f"no whole-chain loss for objective {objective!r}")


def _update(optimizer: torch.optim.Optimizer, predictor: AMEDPredictor) -> None:
    torch.nn.utils.clip_grad_norm_(predictor.parameters(), max_norm=1.0)
    optimizer.step()


def _record(rows: list[list[float]], stepper: Stepper) -> None:
    """Append the mean (r, c, a) of the step just taken, if it made a prediction."""
    if stepper.last_prediction is not None:
        rows.append([float(v.mean()) for v in stepper.last_prediction])


def train_amed(
    denoiser: Denoiser,
    *,
    solver: str = "amed",
    nfe: int,
    schedule: str = "polynomial",
    samples: int,
    batch: int,
    lr: float = 5e-3,
    seed: int = 0,
    shape: tuple[int, ...],
    report: Reporter | None = None,
    afs: bool | None = None,
    teacher_points: int = 7,
    hidden: int = 64,
    device: torch.device | None = None,
    objective: str = "final",
) -> AMEDPredictor:
    """Distil g for `solver` at `nfe` on noise of `shape` (one sample's shape): `samples` noise
    draws in batches of `batch`; the teacher is Heun with `teacher_points` extra grid points
    between each pair of student points ((teacher_points + 1)·steps Heun steps, e.g. 24 at NFE 5:
    a coarser teacher was no better than the student on the Gaussian tests). Deterministic for a
    seed. `objective` is "trajectory", "final" or "per_step" (module doc); it is stored in
    `meta`. The denoiser must be differentiable in x and σ (the loss reaches r and a through it);
    its own parameters are frozen meanwhile and restored after. Memory: "trajectory" and "final"
    keep the graph of every step (batch × NFE network activations)."""
    if objective not in OBJECTIVES:
        raise ValueError(
            f"unknown AMED objective {objective!r}; choose one of {', '.join(OBJECTIVES)}"
        )
    if samples < 1 or batch < 1:
        raise ValueError("samples and batch must be positive")
    if teacher_points < 0:
        raise ValueError("teacher_points must be ≥ 0")
    device = device or _device_of(denoiser)
    p = plan(solver, nfe, afs)
    t_student = grid(p, schedule, denoiser.sigma_min, denoiser.sigma_max)
    stride = teacher_points + 1
    t_teacher = time_steps(schedule, stride * p.steps + 1, denoiser.sigma_min, denoiser.sigma_max)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        predictor = AMEDPredictor(
            denoiser.feature_dim,
            solver=solver,
            nfe=nfe,
            afs=p.afs,
            schedule=schedule,
            sigma_min=denoiser.sigma_min,
            sigma_max=denoiser.sigma_max,
            hidden=hidden,
        ).to(device)
    optimizer = torch.optim.Adam(predictor.parameters(), lr=lr)
    noise = torch.Generator().manual_seed(seed)
    batches = math.ceil(samples / batch)
    if report is not None:
        report.phase(f"AMED ({solver}, NFE {nfe}, {p.steps} steps)", batches)
    losses: list[float] = []
    with _frozen(denoiser):
        for b in range(batches):
            size = min(batch, samples - b * batch)
            z = torch.randn(size, *shape, generator=noise).to(device)
            x = z * float(t_student[0])
            with torch.no_grad():
                targets = heun_path(denoiser, x, t_teacher)[stride::stride]
            stepper = Stepper(denoiser, p, t_student, predictor)
            step_outputs: list[list[float]] = []
            if objective == "per_step":
                for i, x_next in enumerate(rollout(stepper, x, detach=True)):
                    optimizer.zero_grad(set_to_none=True)
                    loss = (x_next - targets[i]).pow(2).mean()
                    loss.backward()
                    _update(optimizer, predictor)
                    _record(step_outputs, stepper)
                    last = loss.item()
            else:
                optimizer.zero_grad(set_to_none=True)
                outputs = []
                for x_next in rollout(stepper, x, detach=False):
                    outputs.append(x_next)
                    _record(step_outputs, stepper)
                loss = objective_loss(outputs, targets, objective)
                loss.backward()
                _update(optimizer, predictor)
                last = (outputs[-1] - targets[-1]).pow(2).mean().item()
            losses.append(last)
            if report is not None:
                report.advance(1, loss=last)
    predictor.meta = {
        "samples": samples,
        "batch": batch,
        "lr": lr,
        "seed": seed,
        "objective": objective,
        "teacher_points": teacher_points,
        "shape": list(shape),
        # The final image's MSE to the teacher on the last batch (before its update).
        "final_loss": losses[-1],
        # Mean (r, c, a) per student step on the last batch: where g puts the midpoints.
        "step_outputs": [[round(v, 4) for v in row] for row in step_outputs],
    }
    return predictor.eval()
