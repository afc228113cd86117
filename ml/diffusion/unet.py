"""A small EDM-preconditioned U-Net: the denoiser D(x; σ) the samplers run.

Karras et al. (2022) preconditioning with σ_data = 0.5 (images in [-1, 1]):
D(x; σ) = c_skip(σ)·x + c_out(σ)·F(c_in(σ)·x; c_noise(σ)), with
c_skip = σ_d²/(σ²+σ_d²), c_out = σ·σ_d/√(σ²+σ_d²), c_in = 1/√(σ²+σ_d²), c_noise = ln(σ)/4.

F is a plain U-Net (residual blocks with a noise embedding added after the first convolution,
average-pool down, nearest up, skip concatenation), sized by `UNetConfig` so that it trains on
a 2-core CPU in minutes: 32×32×1 Fashion-MNIST with widths 16/32/64 (0.47M parameters),
64×64×3 plots with widths 16/32/32/64 (0.53M), and the plots' 16×16×4 FSQ codes
(ml.diffusion.latent) with widths 64/128/128, two blocks a level (3.9M). Attention at the
lowest resolution is optional and off by default (it costs more than it helps at this size).
The channel mean of the bottleneck is the feature vector AMED's predictor reads
(`with_features`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, cast

import torch
from torch import Tensor, nn
from torch.nn import functional as F

SIGMA_DATA = 0.5
SIGMA_MIN = 0.002
SIGMA_MAX = 80.0


@dataclass(frozen=True)
class UNetConfig:
    """The U-Net's shape: input size and channel widths per resolution level."""

    image_channels: int = 1
    image_size: int = 32
    base_channels: int = 32
    #: Width of each level as a multiple of base_channels; every level after the first halves
    #: the resolution, so the bottleneck is image_size / 2**(len(mults) - 1).
    channel_mults: tuple[int, ...] = (1, 2, 2)
    res_blocks: int = 1
    emb_dim: int = 128
    attention: bool = False
    dropout: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["channel_mults"] = list(self.channel_mults)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> UNetConfig:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        if "channel_mults" in known:
            known["channel_mults"] = tuple(known["channel_mults"])
        return cls(**known)

    @property
    def feature_dim(self) -> int:
        return self.base_channels * self.channel_mults[-1]

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.image_channels, self.image_size, self.image_size)


def config_for(
    dataset: str, size: str = "default", latent: tuple[int, int, int] | None = None
) -> UNetConfig:
    """The configuration each data set trains with; `tiny` is for tests and quick benches.
    `latent` (channels, h, w) is the code grid of a model trained in the tokenizer's space
    (ml.diffusion.latent): 16×16 instead of 64×64, so four times the plots' pixel width at
    about the same cost per step, and two blocks a level."""
    if latent is not None:
        channels, side, _ = latent
        if size == "tiny":
            return UNetConfig(channels, side, base_channels=8, channel_mults=(1, 2), emb_dim=32)
        return UNetConfig(channels, side, base_channels=64, channel_mults=(1, 2, 2), res_blocks=2)
    if dataset == "fashion":
        if size == "tiny":
            return UNetConfig(1, 32, base_channels=8, channel_mults=(1, 2), emb_dim=32)
        return UNetConfig(1, 32, base_channels=16, channel_mults=(1, 2, 4))
    if dataset == "plots":
        if size == "tiny":
            return UNetConfig(3, 64, base_channels=8, channel_mults=(1, 2, 2), emb_dim=32)
        return UNetConfig(3, 64, base_channels=16, channel_mults=(1, 2, 2, 4))
    raise ValueError(f"unknown data set {dataset!r} (choose fashion or plots)")


def _groups(channels: int) -> int:
    for g in (8, 4, 2):
        if channels % g == 0:
            return g
    return 1


class NoiseEmbedding(nn.Module):
    """Sinusoidal features of c_noise followed by a 2-layer MLP."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.mlp = nn.Sequential(nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, c_noise: Tensor) -> Tensor:
        half = self.dim // 2
        freqs = torch.exp(
            -math.log(10_000.0) * torch.arange(half, device=c_noise.device) / max(1, half - 1)
        )
        # c_noise spans about [-1.6, 1.1]; scaling by 100 spreads it over the frequencies.
        angles = 100.0 * c_noise[:, None].float() * freqs[None, :]
        return self.mlp(torch.cat([angles.cos(), angles.sin()], dim=1))


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, emb_dim: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(cin), cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.emb = nn.Linear(emb_dim, cout)
        self.norm2 = nn.GroupNorm(_groups(cout), cout)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(emb)[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return (self.skip(x) + h) / math.sqrt(2.0)


class SelfAttention(nn.Module):
    def __init__(self, channels: int, heads: int = 1) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(_groups(channels), channels)
        self.attn = nn.MultiheadAttention(channels, heads, batch_first=True)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        seq = self.norm(x).flatten(2).transpose(1, 2)
        out, _ = self.attn(seq, seq, seq, need_weights=False)
        return x + out.transpose(1, 2).reshape(b, c, h, w)


class UNet(nn.Module):
    """F(x; c_noise) → (output, bottleneck activations)."""

    def __init__(self, cfg: UNetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        widths = [cfg.base_channels * m for m in cfg.channel_mults]
        self.embed = NoiseEmbedding(cfg.emb_dim)
        self.conv_in = nn.Conv2d(cfg.image_channels, widths[0], 3, padding=1)
        self.down = nn.ModuleList()
        ch = widths[0]
        for w in widths:
            blocks = nn.ModuleList()
            for _ in range(cfg.res_blocks):
                blocks.append(ResBlock(ch, w, cfg.emb_dim, cfg.dropout))
                ch = w
            self.down.append(blocks)
        self.mid1 = ResBlock(ch, ch, cfg.emb_dim, cfg.dropout)
        self.attn = SelfAttention(ch) if cfg.attention else None
        self.mid2 = ResBlock(ch, ch, cfg.emb_dim, cfg.dropout)
        self.up = nn.ModuleList()
        for w in reversed(widths):
            blocks = nn.ModuleList()
            for i in range(cfg.res_blocks):
                # The first block of a level takes the skip connection concatenated.
                blocks.append(ResBlock(ch + w if i == 0 else w, w, cfg.emb_dim, cfg.dropout))
                ch = w
            self.up.append(blocks)
        self.norm_out = nn.GroupNorm(_groups(ch), ch)
        self.conv_out = nn.Conv2d(ch, cfg.image_channels, 3, padding=1)
        # Start as F = 0, i.e. D = c_skip·x: a sane denoiser before any training.
        assert self.conv_out.bias is not None  # Conv2d's default bias=True
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, x: Tensor, c_noise: Tensor) -> tuple[Tensor, Tensor]:
        emb = self.embed(c_noise)
        h = self.conv_in(x)
        skips = []
        last = len(self.down) - 1
        # Each level is a ModuleList of ResBlocks (ModuleList items are typed as Module).
        for level, blocks in enumerate(self.down):
            for block in cast(nn.ModuleList, blocks):
                h = block(h, emb)
            skips.append(h)
            if level < last:
                h = F.avg_pool2d(h, 2)
        h = self.mid1(h, emb)
        if self.attn is not None:
            h = self.attn(h)
        h = self.mid2(h, emb)
        bottleneck = h
        for level, blocks in enumerate(self.up):
            h = torch.cat([h, skips.pop()], dim=1)
            for block in cast(nn.ModuleList, blocks):
                h = block(h, emb)
            if level < last:
                h = F.interpolate(h, scale_factor=2.0, mode="nearest")
        return self.conv_out(F.silu(self.norm_out(h))), bottleneck


class EDMDenoiser(nn.Module):
    """D(x; σ) with EDM preconditioning; implements ml.diffusion.denoiser.Denoiser."""

    sigma_min: float = SIGMA_MIN
    sigma_max: float = SIGMA_MAX
    sigma_data: float = SIGMA_DATA

    def __init__(self, cfg: UNetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.net = UNet(cfg)
        self.feature_dim = cfg.feature_dim

    def _run(self, x: Tensor, sigma: Tensor) -> tuple[Tensor, Tensor]:
        dtype = self.net.conv_in.weight.dtype
        xin = x.to(dtype)
        s = torch.as_tensor(sigma, device=x.device).to(dtype).reshape(-1)
        if s.numel() == 1:
            s = s.expand(x.shape[0])
        sd2 = self.sigma_data**2
        c_skip = sd2 / (s**2 + sd2)
        c_out = s * self.sigma_data / (s**2 + sd2).sqrt()
        c_in = 1.0 / (s**2 + sd2).sqrt()
        c_noise = s.log() / 4.0
        f, bottleneck = self.net(c_in[:, None, None, None] * xin, c_noise)
        d = c_skip[:, None, None, None] * xin + c_out[:, None, None, None] * f
        return d.to(x.dtype), bottleneck.mean(dim=(2, 3)).to(x.dtype)

    def forward(self, x: Tensor, sigma: Tensor) -> Tensor:
        return self._run(x, sigma)[0]

    def with_features(self, x: Tensor, sigma: Tensor) -> tuple[Tensor, Tensor]:
        return self._run(x, sigma)

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.cfg.shape


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
