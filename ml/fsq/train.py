"""Training the tokenizer: reconstruction MSE (+ the VQ losses for the baseline), seeded.

Batches are drawn from the plots' train split (the held-out plots are never seen) and
augmented with small shifts; Fashion-MNIST items, turned into dark-on-white 64×64 RGB like
the plots, can make up a share of each batch (`fashion_mix`, off by default).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ml.device import pick_device
from ml.fsq import checkpoint
from ml.fsq.autoencoder import QUANTIZERS, Tokenizer, TokenizerConfig
from ml.fsq.quantizers import RECOMMENDED_LEVELS
from ml.images import augment, load, load_fashion, to_tensor
from ml.progress import Quiet, Reporter

DEFAULT_LEVELS = RECOMMENDED_LEVELS[2**10]


@dataclass
class FSQTrainConfig:
    images_dir: Path
    dataset: str = "plots"
    quantizer: str = "fsq"  # fsq, vq or vq-ema
    #: FSQ levels; default: the recommended ones for `codebook_size`, else [8, 5, 5, 5].
    levels: list[int] | None = None
    #: Codebook size: picks the recommended FSQ levels, or sizes the VQ codebook.
    codebook_size: int | None = None
    #: VQ latent channels; default: as many as FSQ's recommended levels for that size, so the
    #: two quantizers sit in the very same autoencoder.
    vq_dim: int | None = None
    steps: int = 1500
    batch: int = 32
    lr: float = 2e-3
    warmup: int = 50
    seed: int = 0
    width: int = 32
    #: Share of each batch taken from Fashion-MNIST (0 = plots only).
    fashion_mix: float = 0.0
    out: Path | None = None
    device: str = "auto"
    extra_meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainResult:
    model: Tokenizer
    config: TokenizerConfig
    version: str | None  # set when a checkpoint was written
    steps: int
    seconds: float
    final_loss: float  # reconstruction MSE in [-1, 1] space, mean of the last steps


def _nearest_recommended(size: int) -> list[int]:
    best = min(RECOMMENDED_LEVELS, key=lambda k: abs(math.log2(k) - math.log2(size)))
    return RECOMMENDED_LEVELS[best]


def tokenizer_config(cfg: FSQTrainConfig) -> TokenizerConfig:
    """The architecture a training config asks for (ValueError for impossible combinations)."""
    if cfg.quantizer not in QUANTIZERS:
        raise ValueError(f"quantizer must be one of {', '.join(QUANTIZERS)}, got {cfg.quantizer!r}")
    if cfg.quantizer == "fsq":
        if cfg.levels is not None:
            levels = list(cfg.levels)
            if cfg.codebook_size is not None and math.prod(levels) != cfg.codebook_size:
                raise ValueError(
                    f"levels {levels} give {math.prod(levels)} codes, not {cfg.codebook_size}"
                )
        elif cfg.codebook_size is not None:
            if cfg.codebook_size not in RECOMMENDED_LEVELS:
                sizes = ", ".join(str(k) for k in RECOMMENDED_LEVELS)
                raise ValueError(
                    f"no recommended FSQ levels for {cfg.codebook_size} codes (choose one of "
                    f"{sizes}, or give --levels)"
                )
            levels = RECOMMENDED_LEVELS[cfg.codebook_size]
        else:
            levels = DEFAULT_LEVELS
        if any(v < 2 for v in levels):
            raise ValueError(f"every FSQ level must be ≥ 2, got {levels}")
        return TokenizerConfig.for_fsq(levels, width=cfg.width)
    if cfg.codebook_size is not None:
        size = cfg.codebook_size
    elif cfg.levels is not None:
        size = math.prod(cfg.levels)
    else:
        size = 2**10
    if size < 2:
        raise ValueError(f"codebook size must be ≥ 2, got {size}")
    dim = cfg.vq_dim or (len(cfg.levels) if cfg.levels else len(_nearest_recommended(size)))
    return TokenizerConfig.for_vq(size, dim, ema=cfg.quantizer == "vq-ema", width=cfg.width)


def fashion_as_plots(images: np.ndarray) -> np.ndarray:
    """Fashion-MNIST (N, 32, 32, 1) → (N, 64, 64, 3) dark-on-white, like the plots."""
    big = images.repeat(2, axis=1).repeat(2, axis=2)
    return np.ascontiguousarray(255 - np.repeat(big, 3, axis=3))


def lr_factor(step: int, steps: int, warmup: int) -> float:
    """Linear warm-up, then cosine decay to a tenth."""
    ramp = min(1.0, (step + 1) / max(1, warmup))
    return ramp * (0.1 + 0.45 * (1 + math.cos(math.pi * step / max(1, steps))))


def train_tokenizer(cfg: FSQTrainConfig, report: Reporter | None = None) -> TrainResult:
    """Train a tokenizer; saves a checkpoint to `cfg.out` when set."""
    report = report or Quiet()
    if cfg.dataset != "plots":
        raise ValueError(f"the tokenizer trains on 64×64 RGB plots, not {cfg.dataset!r}")
    if cfg.steps < 1 or cfg.batch < 1:
        raise ValueError("steps and batch must be ≥ 1")
    if not 0.0 <= cfg.fashion_mix < 1.0:
        raise ValueError("fashion_mix must be in [0, 1)")
    tcfg = tokenizer_config(cfg)
    device = pick_device(cfg.device)
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    train_x = to_tensor(load(cfg.dataset, cfg.images_dir).train)
    fashion = None
    n_fashion = round(cfg.batch * cfg.fashion_mix)
    if n_fashion:
        # Kept as 32×32 grey uint8 (60 MB) and converted per batch (as float RGB: 3 GB).
        fashion = load_fashion(cfg.images_dir).train

    model = Tokenizer(tcfg).to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(0.9, 0.99))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, cfg.steps, cfg.warmup))
    report.phase(f"training {tcfg.quantizer} ({tcfg.codebook_size} codes)", cfg.steps)
    recent: list[float] = []
    started = time.perf_counter()
    for _ in range(cfg.steps):
        idx = torch.randint(len(train_x), (cfg.batch - n_fashion,), generator=gen)
        x = augment(train_x[idx], gen)
        if fashion is not None:
            fidx = torch.randint(len(fashion), (n_fashion,), generator=gen).numpy()
            x = torch.cat([x, augment(to_tensor(fashion_as_plots(fashion[fidx])), gen, flip=True)])
        x = x.to(device)
        recon, q = model(x)
        rec = F.mse_loss(recon, x)
        loss = rec + q.loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        recent = [*recent[-49:], float(rec.detach())]
        report.advance(1, mse=recent[-1])
    seconds = time.perf_counter() - started
    model.eval()
    final = float(np.mean(recent))
    version = None
    if cfg.out is not None:
        meta = {
            "dataset": cfg.dataset,
            "fashion_mix": cfg.fashion_mix,
            "steps": cfg.steps,
            "batch": cfg.batch,
            "lr": cfg.lr,
            "seed": cfg.seed,
            "train_seconds": round(seconds, 1),
            "final_mse": round(final, 6),
            **cfg.extra_meta,
        }
        version = checkpoint.save(cfg.out, model, meta)
        report.log(f"saved {cfg.out} ({version})")
    return TrainResult(model, tcfg, version, cfg.steps, seconds, final)
