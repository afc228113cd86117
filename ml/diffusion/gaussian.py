"""A closed-form denoiser for tests: data distributed N(mu, diag(s²)) per dimension.

For such data the ideal denoiser is D(x; σ) = mu + s²/(s² + σ²)·(x − mu), and the probability-flow
ODE dx/dσ = (x − D)/σ = σ(x − mu)/(s² + σ²) has the exact solution

    x(σ) = mu + sqrt((s² + σ²)/(s² + σ_max²))·(x_T − mu)

from x_T at σ_max. Samplers can therefore be measured against the true ODE solution with no
trained network. The "features" handed to AMED's predictor are a few per-sample summary
statistics (the stand-in for a U-Net bottleneck).
"""

from __future__ import annotations

import torch
from torch import Tensor

FEATURE_DIM = 4


class GaussianDenoiser:
    """The ideal denoiser for N(mu, diag(s²)) data; mu and s have the shape of one sample.
    `known_mean` exposes mu as `data_mean` for the analytical first step."""

    feature_dim = FEATURE_DIM

    def __init__(
        self,
        mu: Tensor,
        s: Tensor,
        sigma_min: float = 0.002,
        sigma_max: float = 80.0,
        known_mean: bool = False,
    ) -> None:
        if mu.shape != s.shape:
            raise ValueError(f"mu and s must have the same shape, got {mu.shape} and {s.shape}")
        if bool((s <= 0).any()):
            raise ValueError("every s must be positive")
        self.mu = mu
        self.s = s
        self.sigma_min = sigma_min
        self.sigma_max = sigma_max
        # What the analytical first step assumes for the data: its scale, and (only when told,
        # else 0 as in the AMED paper) its mean.
        self.sigma_data = float(s.double().pow(2).mean().sqrt())
        if known_mean:
            self.data_mean = mu

    def _params(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.mu.to(x.device, x.dtype), self.s.to(x.device, x.dtype)

    def __call__(self, x: Tensor, sigma: Tensor) -> Tensor:
        mu, s = self._params(x)
        sig = sigma.to(x.dtype).reshape(-1, *([1] * (x.dim() - 1)))
        return mu + s**2 / (s**2 + sig**2) * (x - mu)

    def with_features(self, x: Tensor, sigma: Tensor) -> tuple[Tensor, Tensor]:
        denoised = self(x, sigma)
        sig = sigma.to(x.dtype).reshape(-1, *([1] * (x.dim() - 1)))
        # Scale-free input like a U-Net's c_in·x, so the features stay O(1) at every σ.
        scaled = (x / (self.sigma_data**2 + sig**2).sqrt()).flatten(1)
        flat = denoised.flatten(1)
        features = torch.stack([scaled.mean(1), scaled.std(1), flat.mean(1), flat.std(1)], dim=1)
        return denoised, features

    def solution(self, x_t: Tensor, sigma: float | Tensor) -> Tensor:
        """The exact ODE solution at σ starting from x_T (= latents·sigma_max) at sigma_max."""
        mu, s = self._params(x_t)
        sig = torch.as_tensor(sigma, dtype=x_t.dtype, device=x_t.device)
        factor = ((s**2 + sig**2) / (s**2 + self.sigma_max**2)).sqrt()
        return mu + factor * (x_t - mu)
