"""Time (σ) grids for the diffusion ODE samplers: polynomial (EDM, ρ = 7), logSNR-uniform and
time-uniform. Every grid is strictly decreasing from sigma_max to sigma_min.

In EDM's parameterisation the log signal-to-noise ratio is λ = −log σ, so a logSNR-uniform grid
is geometric in σ.
"""

from __future__ import annotations

import torch
from torch import Tensor

SCHEDULES = ("polynomial", "logsnr", "uniform")


def time_steps(kind: str, n: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> Tensor:
    """n grid points (float64), t[0] = sigma_max > … > t[n-1] = sigma_min."""
    if kind not in SCHEDULES:
        raise ValueError(f"unknown schedule {kind!r}; choose one of {', '.join(SCHEDULES)}")
    if n < 2:
        raise ValueError(f"a time grid needs at least 2 points, got {n}")
    if not 0 < sigma_min < sigma_max:
        raise ValueError(f"need 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
    u = torch.linspace(0.0, 1.0, n, dtype=torch.float64)
    if kind == "polynomial":
        hi, lo = sigma_max ** (1.0 / rho), sigma_min ** (1.0 / rho)
        t = (hi + u * (lo - hi)) ** rho
    elif kind == "logsnr":
        t = torch.exp(
            torch.tensor(sigma_max, dtype=torch.float64).log() * (1 - u)
            + torch.tensor(sigma_min, dtype=torch.float64).log() * u
        )
    else:
        t = sigma_max + u * (sigma_min - sigma_max)
    # Pin the endpoints exactly (pow/exp round-off would otherwise move them by an ulp or two).
    t[0], t[-1] = sigma_max, sigma_min
    return t
