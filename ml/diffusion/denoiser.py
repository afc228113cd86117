"""The denoiser interface every sampler is written against, and a wrapper counting its calls.

EDM notation throughout: x_t = x_0 + t·ε with t = σ, and the probability-flow ODE
dx/dt = (x − D(x; t)) / t, where D is the denoiser (the network's estimate of E[x_0 | x_t]).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from torch import Tensor

# The data standard deviation EDM's preconditioning assumes (images scaled to [-1, 1]); the
# analytical first step uses it when a denoiser does not say otherwise.
DEFAULT_SIGMA_DATA = 0.5


@runtime_checkable
class Denoiser(Protocol):
    """D(x; σ) plus the bottleneck features AMED's predictor reads.

    A denoiser may also carry `sigma_data: float` (the data's standard deviation) and
    `data_mean: float | Tensor` (the data mean, a scalar or one sample's shape); only the
    analytical first step uses them, read with `sigma_data_of` / `data_mean_of` (defaults 0.5
    and 0).
    """

    sigma_min: float
    sigma_max: float
    feature_dim: int

    def __call__(self, x: Tensor, sigma: Tensor) -> Tensor:
        """D(x; σ) for x (B, …) and σ of shape (B,)."""
        ...

    def with_features(self, x: Tensor, sigma: Tensor) -> tuple[Tensor, Tensor]:
        """(D(x; σ), features (B, feature_dim)) from one network evaluation."""
        ...


def sigma_data_of(denoiser: Denoiser) -> float:
    return float(getattr(denoiser, "sigma_data", DEFAULT_SIGMA_DATA))


def data_mean_of(denoiser: Denoiser) -> float | Tensor:
    return getattr(denoiser, "data_mean", 0.0)


class CountingDenoiser:
    """Wraps a denoiser and counts network evaluations: one call is one NFE, whatever the batch.

    Both `__call__` and `with_features` count (each is a single forward pass of the network).
    """

    def __init__(self, inner: Denoiser) -> None:
        self.inner = inner
        self.calls = 0
        self.sigmas: list[float] = []  # first σ of each call, to check where a sampler evaluates

    @property
    def sigma_min(self) -> float:
        return self.inner.sigma_min

    @property
    def sigma_max(self) -> float:
        return self.inner.sigma_max

    @property
    def feature_dim(self) -> int:
        return self.inner.feature_dim

    @property
    def sigma_data(self) -> float:
        return sigma_data_of(self.inner)

    @property
    def data_mean(self) -> float | Tensor:
        return data_mean_of(self.inner)

    def reset(self) -> None:
        self.calls = 0
        self.sigmas.clear()

    def _count(self, sigma: Tensor) -> None:
        self.calls += 1
        self.sigmas.append(float(sigma.reshape(-1)[0]))

    def __call__(self, x: Tensor, sigma: Tensor) -> Tensor:
        self._count(sigma)
        return self.inner(x, sigma)

    def with_features(self, x: Tensor, sigma: Tensor) -> tuple[Tensor, Tensor]:
        self._count(sigma)
        return self.inner.with_features(x, sigma)
