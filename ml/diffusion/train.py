"""Training the EDM U-Net on Fashion-MNIST (32×32×1) or the plots (64×64×3).

The plots are learned in the FSQ tokenizer's code space by default (`space="fsq"`,
ml.diffusion.latent): their 16×16×4 codes, encoded once with shifted copies, instead of
their pixels (`space="pixels"`, Fashion's only space).

The EDM loss (Karras et al. 2022): σ is log-normal (ln σ ~ N(P_mean = −1.2, P_std = 1.2)),
y + σ·n is denoised, and the squared error is weighted by λ(σ) = (σ² + σ_d²)/(σ·σ_d)², which
makes the effective target of the preconditioned network unit-variance at every σ.
Adam with a short warm-up; the checkpoint keeps an exponential moving average of the weights
(what gets sampled). Every step's batch and noise come from a generator seeded by
(seed, step), so a run resumed from its saved state (`train_state.pt`, written every
`checkpoint_every` steps when `out` is set) continues exactly as an uninterrupted one.
"""

from __future__ import annotations

import copy
import functools
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ml import images as image_sets
from ml.device import autocast, pick_device
from ml.diffusion import checkpoint
from ml.diffusion import latent as latents
from ml.diffusion.unet import SIGMA_DATA, EDMDenoiser, UNetConfig, config_for, parameter_count
from ml.progress import Quiet, Reporter

STATE = "train_state.pt"
P_MEAN = -1.2
P_STD = 1.2


@dataclass
class DiffusionTrainConfig:
    images_dir: Path
    dataset: str = "fashion"
    out: Path | None = None
    steps: int = 1500
    batch: int = 64
    #: None: 1e-3 for a latent model (wider, and its codes are harder targets), else 2e-3.
    lr: float | None = None
    warmup: int = 100
    #: None: 0.999 for a latent model (its recipe runs 2,500 steps), else 0.995.
    ema_decay: float | None = None
    seed: int = 0
    #: "default" or "tiny" (tests, --quick benches); see unet.config_for.
    size: str = "default"
    #: Use only the first N training images (smoke runs).
    limit: int | None = None
    device: str = "auto"
    checkpoint_every: int = 250
    resume: bool = True
    #: "fsq" (the plots' default: the tokenizer's code grid) or "pixels" (Fashion's only).
    space: str | None = None
    #: The FSQ tokenizer checkpoint whose codes a latent model learns (copied into `out`).
    tokenizer: Path | None = None
    #: Shifted copies of each plot encoded for a latent model (the first is the plot itself).
    latent_copies: int = 16
    #: "auto" (bf16 autocast where the hardware has native bf16: about 2× on such a CPU)
    #: or "fp32".
    precision: str = "auto"

    def __post_init__(self) -> None:
        if self.space is None:
            self.space = latents.SPACE if self.dataset == "plots" else "pixels"
        if self.space not in ("pixels", latents.SPACE):
            raise ValueError(f"space must be pixels or {latents.SPACE}, got {self.space!r}")
        if self.space == latents.SPACE and self.dataset != "plots":
            raise ValueError("only the plots are learned in the tokenizer's space")
        latent = self.space == latents.SPACE
        if self.lr is None:
            self.lr = 1e-3 if latent else 2e-3
        if self.ema_decay is None:
            self.ema_decay = 0.999 if latent else 0.995
        if self.precision not in ("auto", "fp32"):
            raise ValueError(f"precision must be auto or fp32, got {self.precision!r}")

    def describe(self) -> dict[str, Any]:
        d = asdict(self)
        skip = {"images_dir", "out", "device", "resume", "tokenizer"}
        return {k: v for k, v in d.items() if k not in skip}


@dataclass
class TrainResult:
    model: EDMDenoiser  # the EMA weights, eval mode
    space: latents.CodeSpace | None  # what the model's samples decode through (None: pixels)
    version: str | None
    steps: int
    final_loss: float
    seconds: float
    params: int
    resumed_from: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "steps": self.steps,
            "final_loss": round(self.final_loss, 5),
            "train_seconds": round(self.seconds, 1),
            "params": self.params,
            "resumed_from": self.resumed_from,
        }


def edm_loss(model: EDMDenoiser, y: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """The EDM training loss on clean images y (B, C, H, W) in [-1, 1], averaged."""
    b = y.shape[0]
    ln_sigma = P_MEAN + P_STD * torch.randn(b, generator=generator)
    sigma = ln_sigma.exp().to(y.device)
    noise = torch.randn(y.shape, generator=generator).to(y.device)
    weight = (sigma**2 + SIGMA_DATA**2) / (sigma * SIGMA_DATA) ** 2
    denoised = model(y + sigma[:, None, None, None] * noise, sigma)
    return (weight[:, None, None, None] * (denoised - y) ** 2).mean()


def step_generator(seed: int, step: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + step)


@torch.no_grad()
def ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    for e, p in zip(ema.parameters(), model.parameters(), strict=True):
        e.lerp_(p, 1.0 - decay)
    for mine, theirs in zip(ema.buffers(), model.buffers(), strict=True):
        mine.copy_(theirs)


@functools.lru_cache(maxsize=4)
def image_set(dataset: str, images_dir: Path, limit: int | None = None) -> image_sets.ImageSet:
    """ml.images.load, kept for the process: training, the metric classifier and the evaluation
    each need the set, and decoding Fashion-MNIST's IDX files takes a second or two."""
    return image_sets.load(dataset, images_dir, limit=limit)


def training_images(cfg: DiffusionTrainConfig) -> np.ndarray:
    data = image_set(cfg.dataset, cfg.images_dir, cfg.limit)
    return data.train if cfg.limit is None else data.train[: cfg.limit]


def train_diffusion(
    cfg: DiffusionTrainConfig,
    report: Reporter | None = None,
    model_cfg: UNetConfig | None = None,
) -> TrainResult:
    """Train (or resume) and, when `cfg.out` is set, write the checkpoint there."""
    report = report or Quiet()
    started = time.perf_counter()
    device = pick_device(cfg.device)
    images = training_images(cfg)
    space, codes = None, None
    if cfg.space == latents.SPACE:
        space, codes = _code_space(cfg, images)
        report.log(f"training in the code space of {space.version} (scale {space.scale:.3f})")
    model_cfg = model_cfg or config_for(
        cfg.dataset, cfg.size, latent=space.shape if space is not None else None
    )
    if space is not None:
        if space.shape != model_cfg.shape:
            raise ValueError(f"codes of shape {space.shape} do not fit the model {model_cfg}")
    elif images.shape[1:] != (
        model_cfg.image_size,
        model_cfg.image_size,
        model_cfg.image_channels,
    ):
        raise ValueError(f"images of shape {images.shape[1:]} do not fit the model {model_cfg}")
    torch.manual_seed(cfg.seed)
    model = EDMDenoiser(model_cfg).to(device)
    ema = copy.deepcopy(model).eval()
    for p in ema.parameters():
        p.requires_grad_(False)
    assert cfg.lr is not None and cfg.ema_decay is not None  # set by __post_init__
    optim = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    start = 0
    state_file = cfg.out / STATE if cfg.out is not None else None
    if cfg.resume and state_file is not None and state_file.is_file():
        state = torch.load(state_file, map_location=device, weights_only=False)
        same = (
            state.get("config") == cfg.describe()
            and state.get("model_cfg") == model_cfg.to_dict()
            and state.get("tokenizer") == (space.version if space is not None else None)
        )
        if same:
            model.load_state_dict(state["model"])
            ema.load_state_dict(state["ema"])
            optim.load_state_dict(state["optim"])
            start = int(state["step"])
            report.log(f"resuming from step {start}")
        else:
            report.log("saved training state is for other settings: starting afresh")
    # Plots are few (450): small shifts make them go further (a latent model's shifted
    # copies are encoded up front). Fashion has 60k, no need.
    augment = cfg.dataset == "plots" and codes is None
    loss_value = float("nan")
    report.phase(f"training diffusion ({cfg.dataset})", cfg.steps)
    if start:
        report.advance(start)
    model.train()
    for step in range(start, cfg.steps):
        gen = step_generator(cfg.seed, step)
        if codes is not None:
            y = codes[torch.randint(0, len(codes), (cfg.batch,), generator=gen)]
        else:
            idx = torch.randint(0, len(images), (cfg.batch,), generator=gen).numpy()
            y = image_sets.to_tensor(images[idx])
            if augment:
                y = image_sets.augment(y, gen)
        lr = cfg.lr * min(1.0, (step + 1) / max(1, cfg.warmup))
        for group in optim.param_groups:
            group["lr"] = lr
        with autocast(device, enabled=cfg.precision == "auto"):
            loss = edm_loss(model, y.to(device), gen)
        optim.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optim.step()
        # EMA warm-up: early on the average follows the weights closely.
        ema_update(ema, model, min(cfg.ema_decay, (1 + step) / (10 + step)))
        loss_value = float(loss.detach())
        report.advance(1, loss=loss_value)
        done = step + 1
        if state_file is not None and done % cfg.checkpoint_every == 0 and done < cfg.steps:
            _save_state(state_file, cfg, model_cfg, model, ema, optim, done, space)
    seconds = time.perf_counter() - started
    version = None
    if cfg.out is not None:
        meta = {
            "dataset": cfg.dataset,
            "steps": cfg.steps,
            "train": cfg.describe(),
            "final_loss": loss_value,
            "params": parameter_count(ema),
        }
        if space is not None:
            meta["latent"] = latents.meta_of(space)
        version = checkpoint.save(cfg.out, ema, meta, space)
        if state_file is not None:
            state_file.unlink(missing_ok=True)
    return TrainResult(
        model=ema.eval(),
        space=space,
        version=version,
        steps=cfg.steps,
        final_loss=loss_value,
        seconds=seconds,
        params=parameter_count(ema),
        resumed_from=start,
    )


def _save_state(
    path: Path,
    cfg: DiffusionTrainConfig,
    model_cfg: UNetConfig,
    model: torch.nn.Module,
    ema: torch.nn.Module,
    optim: torch.optim.Optimizer,
    step: int,
    space: latents.CodeSpace | None,
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(
        {
            "config": cfg.describe(),
            "model_cfg": model_cfg.to_dict(),
            "model": model.state_dict(),
            "ema": ema.state_dict(),
            "optim": optim.state_dict(),
            "step": step,
            "tokenizer": space.version if space is not None else None,
        },
        tmp,
    )
    tmp.replace(path)


def _code_space(
    cfg: DiffusionTrainConfig, images: np.ndarray
) -> tuple[latents.CodeSpace, torch.Tensor]:
    """The tokenizer's code space and the scaled codes of the training plots."""
    from ml.fsq import checkpoint as fsq_checkpoint

    if cfg.tokenizer is None:
        raise ValueError(
            "a plots model is learned in the FSQ tokenizer's space: give the tokenizer "
            "(train one with `papershelf ml train-fsq`), or use the pixel space"
        )
    tokenizer, ckpt = fsq_checkpoint.load_model(cfg.tokenizer)
    codes = latents.training_latents(images, tokenizer, copies=cfg.latent_copies, seed=cfg.seed)
    space = latents.CodeSpace(tokenizer, latents.measure_scale(codes, SIGMA_DATA), ckpt.version)
    return space, codes * space.scale
