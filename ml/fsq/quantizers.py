"""Quantizers behind one interface: finite scalar quantization (FSQ) and its VQ-VAE baseline.

- `FSQ(levels)`: each of the d = len(levels) latent channels is bounded to L_i values and
  rounded with a straight-through gradient; codes lie in [-1, 1]; the codebook is the implicit
  product grid of Π L_i points, an index is the mixed-radix number of the per-channel levels
  (first channel least significant). No auxiliary loss.
- `VQ(codebook_size, dim)`: nearest-neighbour lookup in a learned codebook with the VQ-VAE
  codebook and commitment losses (β = 0.25), straight-through; `ema=True` updates the codebook
  by exponential moving averages of the assigned latents instead (only the commitment loss).

Both map latents (..., d) to `QuantizerOutput(quantized, indices, loss)` and convert between
codes and indices. `codebook_stats` turns an index histogram into usage % and perplexity.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: Levels per codebook size, from the FSQ paper (Mentzer et al. 2023, table 1).
RECOMMENDED_LEVELS: dict[int, list[int]] = {
    2**8: [8, 6, 5],
    2**10: [8, 5, 5, 5],
    2**12: [7, 5, 5, 5, 5],
    2**14: [8, 8, 8, 6, 5],
    2**16: [8, 8, 8, 5, 5, 5],
}

#: Latents × codes per distance block in VQ's nearest-neighbour search (bounds the memory of
#: a 2^16 codebook to 16 MB of float32).
_VQ_BLOCK = 1 << 22


class QuantizerOutput(NamedTuple):
    quantized: Tensor  # (..., d), the codes, with straight-through gradients to the latents
    indices: Tensor  # (...,) int64
    loss: Tensor  # scalar auxiliary loss (0 for FSQ)


def round_ste(x: Tensor) -> Tensor:
    """Round in the forward pass, identity in the backward pass."""
    return _straight_through(x, x.round())


def _straight_through(x: Tensor, value: Tensor) -> Tensor:
    """`value` forward, the gradient of `x` backward. Without a graph, exactly `value`
    (x + (value − x) can be off by one ulp), so decoding stored indices gives bit-identical
    codes."""
    if torch.is_grad_enabled() and x.requires_grad:
        return x + (value - x).detach()
    return value


def _check_indices(indices: Tensor, codebook_size: int) -> None:
    if indices.dtype.is_floating_point or indices.dtype == torch.bool:
        raise ValueError(f"indices must be integers, got {indices.dtype}")
    if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= codebook_size):
        raise ValueError(
            f"indices must lie in [0, {codebook_size}), got "
            f"[{int(indices.min())}, {int(indices.max())}]"
        )


class FSQ(nn.Module):
    """Finite scalar quantization over the given levels (any L_i ≥ 2, odd or even)."""

    # Registered as buffers in __init__; declared so the type checker knows them.
    _levels: Tensor
    _half_width: Tensor
    _basis: Tensor
    _levels_int: Tensor

    def __init__(self, levels: Sequence[int], eps: float = 1e-3) -> None:
        super().__init__()
        levels = [int(v) for v in levels]
        if not levels or any(v < 2 for v in levels):
            raise ValueError(f"FSQ levels must be a non-empty list of integers ≥ 2, got {levels}")
        self.levels = levels
        self.eps = eps
        self.dim = len(levels)
        self.codebook_size = math.prod(levels)
        lv = torch.tensor(levels, dtype=torch.float32)
        # Buffers follow .to(device) but stay out of the state dict: they are the config.
        self.register_buffer("_levels", lv, persistent=False)
        self.register_buffer("_half_width", torch.floor(lv / 2), persistent=False)
        basis = torch.cumprod(torch.tensor([1, *levels[:-1]], dtype=torch.int64), dim=0)
        self.register_buffer("_basis", basis, persistent=False)
        self.register_buffer(
            "_levels_int", torch.tensor(levels, dtype=torch.int64), persistent=False
        )

    def bound(self, z: Tensor) -> Tensor:
        """Squash each channel so that rounding gives exactly L_i integers: {-L/2 … L/2-1}
        for even L (the half-step shift), {-(L-1)/2 … (L-1)/2} for odd L."""
        half_l = (self._levels - 1) * (1 + self.eps) / 2
        offset = torch.where(self._levels % 2 == 0, 0.5, 0.0)
        shift = torch.atanh(offset / half_l)
        return torch.tanh(z + shift) * half_l - offset

    def forward(self, z: Tensor) -> QuantizerOutput:
        if z.shape[-1] != self.dim:
            raise ValueError(f"FSQ expects latents (..., {self.dim}), got {tuple(z.shape)}")
        codes = round_ste(self.bound(z.float())) / self._half_width
        return QuantizerOutput(codes, self.codes_to_indices(codes.detach()), z.new_zeros(()))

    def codes_to_indices(self, codes: Tensor) -> Tensor:
        """Codes (..., d) in [-1, 1] → mixed-radix indices (...), first channel lowest."""
        levels = (codes * self._half_width + self._half_width).round().long()
        return (levels * self._basis).sum(dim=-1)

    def indices_to_codes(self, indices: Tensor) -> Tensor:
        """Indices (...) → codes (..., d); raises ValueError for indices outside the codebook."""
        _check_indices(indices, self.codebook_size)
        levels = (indices.long().unsqueeze(-1) // self._basis) % self._levels_int
        return (levels.float() - self._half_width) / self._half_width

    def implicit_codebook(self) -> Tensor:
        """All Π L_i codes, (K, d), row k being the code of index k."""
        return self.indices_to_codes(torch.arange(self.codebook_size, device=self._basis.device))

    def extra_repr(self) -> str:
        return f"levels={self.levels}, codebook_size={self.codebook_size}"


class VQ(nn.Module):
    """VQ-VAE quantizer: nearest code in a learned codebook, straight-through gradients.

    Loss (plain): ||sg[z] − e||² + β·||z − sg[e]||². With `ema=True` the codebook is not a
    parameter: it follows the moving average of the latents assigned to each code (Laplace
    smoothed counts), and only the commitment term is returned.
    """

    # A parameter, or with `ema=True` a buffer like the two running sums below.
    codebook: Tensor
    cluster_size: Tensor
    embed_sum: Tensor

    def __init__(
        self,
        codebook_size: int,
        dim: int,
        beta: float = 0.25,
        ema: bool = False,
        decay: float = 0.99,
        eps: float = 1e-5,
    ) -> None:
        super().__init__()
        if codebook_size < 1 or dim < 1:
            raise ValueError(f"VQ needs codebook_size ≥ 1 and dim ≥ 1, got {codebook_size}, {dim}")
        self.codebook_size, self.dim = int(codebook_size), int(dim)
        self.beta, self.ema, self.decay, self.eps = beta, ema, decay, eps
        # The VQ-VAE reference initialisation: uniform in ±1/K.
        init = torch.empty(codebook_size, dim).uniform_(-1 / codebook_size, 1 / codebook_size)
        if ema:
            self.register_buffer("codebook", init)
            self.register_buffer("cluster_size", torch.zeros(codebook_size))
            self.register_buffer("embed_sum", init.clone())
        else:
            self.codebook = nn.Parameter(init)

    def nearest(self, flat: Tensor) -> Tensor:
        """Index of the nearest code for each row of `flat` (N, d), in blocks."""
        book = self.codebook.detach().float()
        # ||z − e||² − ||z||² = [z, 1]·[−2e, ||e||²]: one matmul per block, no broadcasting.
        book_aug = torch.cat([-2 * book, (book * book).sum(dim=1, keepdim=True)], dim=1)
        flat_aug = torch.cat([flat.float(), flat.new_ones(flat.shape[0], 1)], dim=1)
        rows = max(1, _VQ_BLOCK // self.codebook_size)
        out = [
            (flat_aug[start : start + rows] @ book_aug.t()).min(dim=1).indices
            for start in range(0, flat.shape[0], rows)
        ]
        return torch.cat(out) if out else flat.new_zeros(0, dtype=torch.long)

    def forward(self, z: Tensor) -> QuantizerOutput:
        if z.shape[-1] != self.dim:
            raise ValueError(f"VQ expects latents (..., {self.dim}), got {tuple(z.shape)}")
        z = z.float()
        flat = z.reshape(-1, self.dim)
        idx = self.nearest(flat.detach())
        if self.ema and self.training:
            self._ema_update(flat.detach(), idx)
        e = F.embedding(idx, self.codebook).view_as(z)
        commitment = F.mse_loss(z, e.detach())
        if self.ema:
            loss = self.beta * commitment
        else:
            loss = F.mse_loss(e, z.detach()) + self.beta * commitment
        quantized = _straight_through(z, e)
        return QuantizerOutput(quantized, idx.view(z.shape[:-1]), loss)

    @torch.no_grad()
    def _ema_update(self, flat: Tensor, idx: Tensor) -> None:
        onehot_counts = torch.bincount(idx, minlength=self.codebook_size).to(flat.dtype)
        sums = torch.zeros_like(self.embed_sum).index_add_(0, idx, flat)
        self.cluster_size.mul_(self.decay).add_(onehot_counts, alpha=1 - self.decay)
        self.embed_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        n = self.cluster_size.sum()
        # Laplace smoothing keeps never-chosen codes from dividing by zero.
        smoothed = (self.cluster_size + self.eps) / (n + self.codebook_size * self.eps) * n
        self.codebook.copy_(self.embed_sum / smoothed.unsqueeze(1))

    def codes_to_indices(self, codes: Tensor) -> Tensor:
        """Codes (..., d) → index of the nearest codebook entry (...)."""
        flat = codes.float().reshape(-1, self.dim)
        return self.nearest(flat).view(codes.shape[:-1])

    def indices_to_codes(self, indices: Tensor) -> Tensor:
        _check_indices(indices, self.codebook_size)
        return F.embedding(indices.long(), self.codebook.detach())

    def implicit_codebook(self) -> Tensor:
        return self.codebook.detach().clone()

    def extra_repr(self) -> str:
        return f"codebook_size={self.codebook_size}, dim={self.dim}, ema={self.ema}"


Quantizer = FSQ | VQ


class CodebookStats(NamedTuple):
    usage: float  # % of the codebook's entries used at least once
    perplexity: float  # exp(entropy) of the index distribution, in codes
    tokens: int  # how many indices were counted


def codebook_stats(counts: np.ndarray) -> CodebookStats:
    """Usage % and code perplexity from a histogram with one bin per codebook entry."""
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 1 or counts.size == 0 or (counts < 0).any():
        raise ValueError("counts must be a non-empty 1-D histogram of non-negative counts")
    total = counts.sum()
    if total == 0:
        return CodebookStats(0.0, 0.0, 0)
    p = counts[counts > 0] / total
    entropy = float(-(p * np.log(p)).sum())
    return CodebookStats(100.0 * p.size / counts.size, math.exp(entropy), int(total))


def index_histogram(indices: np.ndarray | Tensor, codebook_size: int) -> np.ndarray:
    """Counts per codebook entry of the given indices (any shape)."""
    flat = np.asarray(indices.cpu() if isinstance(indices, Tensor) else indices).reshape(-1)
    return np.bincount(flat.astype(np.int64), minlength=codebook_size)
