"""The FSQ tokenizer's code grid as the space the plots' diffusion model works in.

Latent diffusion (Rombach et al. 2022) with the tokenizer the PDF thumbnails already use: a
64×64×3 plot becomes a 16×16×4 grid of FSQ codes, 12× fewer numbers, so a U-Net of the same
cost per step can be several times wider and learns the plots' shapes (bars, panels, pies)
in far fewer steps than one drawing pixels. Sampling integrates the ODE over the codes; the
result is snapped to the nearest code per channel and decoded by the tokenizer's decoder.

The codes are scaled by `scale` (σ_data / their standard deviation, measured on the training
set) so that the EDM preconditioning sees data of the spread it assumes. A diffusion
checkpoint made this way keeps its own copy of the tokenizer (`tokenizer/`, about 1 MB) and
the scale in its meta: sampling needs nothing else, and a retrained tokenizer elsewhere can
never silently change what an old U-Net draws.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ml import images as image_sets
from ml.fsq.autoencoder import Tokenizer
from ml.fsq.quantizers import FSQ

#: The tokenizer's folder inside a diffusion checkpoint.
TOKENIZER_DIR = "tokenizer"
SPACE = "fsq"


class CodeSpace:
    """Images ↔ scaled FSQ codes (N, dim, h, w) for one tokenizer."""

    def __init__(self, tokenizer: Tokenizer, scale: float, version: str) -> None:
        if not isinstance(tokenizer.quantizer, FSQ):
            raise ValueError(
                "latent diffusion needs an FSQ tokenizer (its codes lie on a fixed grid); "
                f"this one is {tokenizer.cfg.quantizer}"
            )
        if not scale > 0:
            raise ValueError(f"the latent scale must be positive, got {scale}")
        self.tokenizer = tokenizer.eval()
        for p in self.tokenizer.parameters():
            p.requires_grad_(False)
        self.scale = float(scale)
        self.version = version

    @property
    def shape(self) -> tuple[int, int, int]:
        """(dim, h, w): what the U-Net denoises."""
        h, w = self.tokenizer.cfg.grid
        return (self.tokenizer.cfg.dim, h, w)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the decoded images."""
        cfg = self.tokenizer.cfg
        return (cfg.channels, cfg.image_size, cfg.image_size)

    def to(self, device: torch.device | str) -> CodeSpace:
        self.tokenizer = self.tokenizer.to(device)
        return self

    @torch.no_grad()
    def encode(self, images: Tensor, batch: int = 256) -> Tensor:
        """Images (N, C, H, W) in [-1, 1] → scaled codes (N, dim, h, w)."""
        parts = [
            self.tokenizer.quantize(images[i : i + batch]).quantized
            for i in range(0, len(images), batch)
        ]
        return torch.cat(parts).permute(0, 3, 1, 2).contiguous() * self.scale

    def snap(self, latents: Tensor) -> Tensor:
        """Scaled latents → the nearest FSQ codes, channels last (N, h, w, dim)."""
        fsq = self.tokenizer.quantizer
        assert isinstance(fsq, FSQ)
        half, levels = fsq._half_width, fsq._levels
        z = (latents.float() / self.scale).permute(0, 2, 3, 1)
        # The code values of a channel with L levels are {-⌊L/2⌋ … ⌈L/2⌉-1} / ⌊L/2⌋.
        steps = (z * half).round().clamp(-(levels // 2), (levels - 1) // 2)
        return steps / half

    @torch.no_grad()
    def decode(self, latents: Tensor, batch: int = 1) -> Tensor:
        """Scaled latents (N, dim, h, w) → images (N, C, H, W), about [-1, 1]. One image at a
        time by default: convolution kernels round differently for other batch sizes, and a
        paper's placeholder must not change with the batch it was drawn in."""
        codes = self.snap(latents)
        parts = [
            self.tokenizer.decode_codes(codes[i : i + batch]) for i in range(0, len(codes), batch)
        ]
        return torch.cat(parts)

    def indices(self, latents: Tensor) -> Tensor:
        """The token indices (N, h, w) a sample snaps to (what a stored token grid holds)."""
        fsq = self.tokenizer.quantizer
        assert isinstance(fsq, FSQ)
        return fsq.codes_to_indices(self.snap(latents))


def measure_scale(codes: Tensor, sigma_data: float) -> float:
    """σ_data / the codes' standard deviation (unscaled codes in, over every element)."""
    std = float(codes.float().std())
    if not std > 0:
        raise ValueError("the training codes do not vary: cannot scale them")
    return sigma_data / std


def training_latents(images: np.ndarray, tokenizer: Tokenizer, *, copies: int, seed: int) -> Tensor:
    """Unscaled codes (N·copies, dim, h, w) of the training images: the images themselves and
    `copies − 1` shifted versions (ml.images.augment, a generator seeded by `seed`), encoded
    once, because the tokenizer is frozen and encoding every step would cost more than the
    U-Net's step."""
    x = image_sets.to_tensor(images)
    gen = torch.Generator().manual_seed(seed)
    plain = CodeSpace(tokenizer, 1.0, "")
    parts = [plain.encode(x)]
    for _ in range(copies - 1):
        parts.append(plain.encode(image_sets.augment(x, gen)))
    return torch.cat(parts)


def save(path: Path, space: CodeSpace) -> None:
    """Copy the tokenizer into a diffusion checkpoint (`path/tokenizer`)."""
    from ml.fsq import checkpoint as fsq_checkpoint

    fsq_checkpoint.save(path / TOKENIZER_DIR, space.tokenizer.cpu(), {"copied_for": "diffusion"})


def meta_of(space: CodeSpace) -> dict[str, Any]:
    """What a diffusion checkpoint's meta records of its space."""
    return {"space": SPACE, "scale": space.scale, "tokenizer": space.version}


def load(path: Path, meta: dict[str, Any]) -> CodeSpace | None:
    """The code space a diffusion checkpoint in `path` was trained in, or None for a model
    of pixels (no `latent` in its meta). FileNotFoundError when the meta names a space whose
    tokenizer copy is missing."""
    latent = meta.get("latent")
    if not isinstance(latent, dict):
        return None
    if latent.get("space") != SPACE:
        raise ValueError(f"unknown latent space {latent.get('space')!r} in {path}")
    from ml.checkpoints import checkpoint_present
    from ml.fsq import checkpoint as fsq_checkpoint

    folder = path / TOKENIZER_DIR
    if not checkpoint_present(folder):
        raise FileNotFoundError(
            f"{path} holds a latent diffusion model but not its tokenizer ({folder}); "
            "train it again with `papershelf ml train-diffusion`"
        )
    tokenizer, ckpt = fsq_checkpoint.load_model(folder)
    return CodeSpace(tokenizer, float(latent["scale"]), ckpt.version)
