"""The convolutional autoencoder tokenizer: 64×64 RGB → a 16×16 grid of quantized tokens → 64×64.

Two stride-2 convolutions take the image to a 16×16 feature map, a 1×1 projection brings it
to the quantizer's `dim` channels, and the decoder mirrors the encoder from the codes. Small
on purpose (≈0.25 M parameters at width 32) so that it trains on a laptop CPU in minutes.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from ml.fsq.quantizers import FSQ, RECOMMENDED_LEVELS, VQ, QuantizerOutput

QUANTIZERS = ("fsq", "vq", "vq-ema")
#: Two stride-2 stages: each token covers a 4×4 patch.
DOWNSAMPLE = 4


@dataclass(frozen=True)
class TokenizerConfig:
    quantizer: str = "fsq"  # fsq, vq or vq-ema
    levels: list[int] = field(default_factory=lambda: list(RECOMMENDED_LEVELS[2**10]))
    codebook_size: int = 1000  # Π levels for FSQ
    dim: int = 4  # latent channels the quantizer sees (len(levels) for FSQ)
    width: int = 32  # channels at 32×32; twice that at 16×16
    image_size: int = 64
    channels: int = 3
    beta: float = 0.25  # VQ commitment weight

    def __post_init__(self) -> None:
        if self.quantizer not in QUANTIZERS:
            raise ValueError(f"quantizer must be one of {', '.join(QUANTIZERS)}")
        if self.image_size % DOWNSAMPLE:
            raise ValueError(f"image_size must be a multiple of {DOWNSAMPLE}")
        if self.quantizer == "fsq" and (
            math.prod(self.levels) != self.codebook_size or len(self.levels) != self.dim
        ):
            raise ValueError("for FSQ, codebook_size must be Π levels and dim len(levels)")

    @property
    def grid(self) -> tuple[int, int]:
        side = self.image_size // DOWNSAMPLE
        return (side, side)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TokenizerConfig:
        return cls(**data)

    @classmethod
    def for_fsq(cls, levels: list[int], **kw: Any) -> TokenizerConfig:
        return cls("fsq", list(levels), math.prod(levels), len(levels), **kw)

    @classmethod
    def for_vq(cls, codebook_size: int, dim: int, ema: bool = False, **kw: Any) -> TokenizerConfig:
        return cls("vq-ema" if ema else "vq", [], codebook_size, dim, **kw)


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, channels), channels)


class ResBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _norm(channels),
            nn.SiLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
            _norm(channels),
            nn.SiLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


def build_quantizer(cfg: TokenizerConfig) -> FSQ | VQ:
    if cfg.quantizer == "fsq":
        return FSQ(cfg.levels)
    return VQ(cfg.codebook_size, cfg.dim, beta=cfg.beta, ema=cfg.quantizer == "vq-ema")


class Tokenizer(nn.Module):
    """Encoder → quantizer → decoder. Images are float (N, C, H, W) in [-1, 1]."""

    def __init__(self, cfg: TokenizerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        w, c = cfg.width, cfg.channels
        self.encoder = nn.Sequential(
            nn.Conv2d(c, w, 4, stride=2, padding=1),  # → H/2
            ResBlock(w),
            nn.Conv2d(w, 2 * w, 4, stride=2, padding=1),  # → H/4
            ResBlock(2 * w),
            _norm(2 * w),
            nn.SiLU(),
            nn.Conv2d(2 * w, cfg.dim, 1),  # the projection to the quantizer's channels
        )
        self.quantizer = build_quantizer(cfg)
        self.decoder = nn.Sequential(
            nn.Conv2d(cfg.dim, 2 * w, 1),  # back from the codes
            ResBlock(2 * w),
            nn.ConvTranspose2d(2 * w, w, 4, stride=2, padding=1),  # → H/2
            ResBlock(w),
            _norm(w),
            nn.SiLU(),
            nn.ConvTranspose2d(w, c, 4, stride=2, padding=1),  # → H
        )

    def quantize(self, x: Tensor) -> QuantizerOutput:
        """Images → quantizer output with codes (N, h, w, dim) and indices (N, h, w)."""
        z = self.encoder(x).permute(0, 2, 3, 1)  # channels last: the quantizer's layout
        return self.quantizer(z)

    def decode_codes(self, codes: Tensor) -> Tensor:
        # One memory layout whatever produced the codes: convolutions pick their kernels by
        # layout, and decoding stored indices must match the forward pass bit for bit.
        return self.decoder(codes.permute(0, 3, 1, 2).contiguous())

    def decode_indices(self, indices: Tensor) -> Tensor:
        """Token indices (N, h, w) → images; needs nothing but the indices."""
        return self.decode_codes(self.quantizer.indices_to_codes(indices))

    def forward(self, x: Tensor) -> tuple[Tensor, QuantizerOutput]:
        q = self.quantize(x)
        return self.decode_codes(q.quantized), q


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def encode_indices(model: Tokenizer, x: Tensor, batch: int = 64) -> Tensor:
    """Indices (N, h, w) for images (N, C, H, W) in [-1, 1], batched."""
    parts = [model.quantize(x[i : i + batch]).indices for i in range(0, len(x), batch)]
    return torch.cat(parts)
