"""Every ODE sampler over the `Denoiser` interface, with exact network-evaluation (NFE) accounting.

EDM notation: x_t = x_0 + t·ε with t = σ; the probability-flow ODE is dx/dt = ε̂(x, t) with
ε̂ = (x − D(x; t))/t. Sampling starts at x_T = latents·sigma_max and integrates on a decreasing
grid t_0 = sigma_max > … > t_S = sigma_min (`ml.diffusion.schedules`) of S steps (S + 1 points).

Solvers (`SOLVERS`):
- ``ddim``: Euler on the ODE above, which in this parameterisation *is* DDIM. 1 NFE a step.
- ``heun``: EDM's second-order Heun; the last step is a plain Euler step as in EDM. 2 NFE a step.
- ``dpm2m`` / ``dpm3m``: multistep DPM-Solver++ (data prediction) in λ = −log σ, orders 2 and 3,
  warming up with lower orders; the final steps drop order again ("lower order final": the last
  step is first order, the one before at most second), which keeps the large final λ steps
  stable on every schedule. 1 NFE a step.
- ``ipndm``: improved PNDM: Adams–Bashforth with fixed coefficients (orders 1…4, lower order while
  the history fills) on ε̂. 1 NFE a step.
- ``amed``: AMED-Solver. Each step asks the predictor g(features, t_cur, t_next) for r and the scale
  factors c, a; t_mid = t_next^r·t_cur^(1−r), x_mid = x + (t_mid − t_cur)·ε̂(x, t_cur),
  d_mid = (x_mid − D(x_mid; a·t_mid))/t_mid, x_next = x + c·(t_next − t_cur)·d_mid. 2 NFE a step.
- ``amed_plugin``: AMED-Plugin on iPNDM: the predicted intermediate point is inserted into each
  iPNDM step (iPNDM to t_mid, then iPNDM with direction scale c to t_next). 2 NFE a step.

Analytical first step (AFS): at t_0 = sigma_max the noise dominates, so the first ε̂ is taken in
closed form instead of from the network. For data with mean m and per-pixel scale sigma_data the
ideal denoiser at large σ is D ≈ m + sigma_data²/(sigma_data² + σ²)·(x − m) (exact for Gaussian
data), so ε̂ = (x − D)/σ ≈ σ·(x − m)/(sigma_data² + σ²). The AMED paper writes x/√(1 + σ²)
(m = 0, sigma_data = 1); at σ = 80 that differs from σ·x/(0.25 + σ²) by under 1e-4 relative.
sigma_data and m come from the denoiser's optional `sigma_data` / `data_mean` attributes (default
0.5, EDM's, and 0, the paper's assumption). With m = 0 assumed for data whose mean is far from 0
(e.g. mostly-white images) the first step is off by about that mean; later steps damp it by
roughly sigma_data/t_1, but a denoiser that knows its data mean should expose it. AFS saves one
NFE and feeds AMED's predictor all-zero features on that step.

NFE ↔ steps (S = grid points − 1); ``afs=None`` picks the variant that reaches the NFE:

=====================  ==========================  ================  ==============================
solver                 NFE                         afs=None →        NFE 3 / 5 / 7 / 9 → steps S
=====================  ==========================  ================  ==============================
ddim, dpm2m, dpm3m,    S (AFS: S − 1)              no AFS            3 / 5 / 7 / 9
ipndm                                                                (AFS: 4 / 6 / 8 / 10)
heun                   2S − 1 (AFS: 2S − 2)        AFS iff NFE even  2 / 3 / 4 / 5
amed, amed_plugin      2S (AFS: 2S − 1)            AFS iff NFE odd   2 / 3 / 4 / 5 (with AFS)
=====================  ==========================  ================  ==============================

An NFE the chosen variant cannot reach (e.g. an even NFE for Heun with ``afs=False``, NFE < 1, or
NFE 2 for AMED with ``afs=True``) raises ValueError. Everything is deterministic given the latents.
Computation follows the latents' dtype (float64 latents give float64 sampling, which the tests use
to measure convergence orders cleanly); grids are computed in float64.

Observed global orders on Gaussian data (tests/ml/diffusion/test_samplers.py, NFE 33…257,
polynomial grid): DDIM ≈ 1.0; Heun, DPM-Solver++(2M), iPNDM, AMED at r = 0.5 ≈ 2.0;
DPM-Solver++(3M) ≈ 3.0 (see `dpm_update` on the reference code's variant). iPNDM's
equal-step Adams–Bashforth coefficients on an unequal grid cap it near 2 as steps grow; its
advantage is in the error constant at small NFE.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, overload

import torch
from torch import Tensor

from ml.diffusion.denoiser import Denoiser, data_mean_of, sigma_data_of
from ml.diffusion.schedules import SCHEDULES, time_steps

if TYPE_CHECKING:
    from ml.diffusion.amed import AMEDPredictor

SOLVERS = ("ddim", "heun", "dpm2m", "dpm3m", "ipndm", "amed", "amed_plugin")
AMED_SOLVERS = ("amed", "amed_plugin")
_ONE_EVAL_SOLVERS = ("ddim", "dpm2m", "dpm3m", "ipndm")
_DPM_ORDER = {"dpm2m": 2, "dpm3m": 3}
IPNDM_MAX_ORDER = 4

# Adams–Bashforth coefficients for equal steps, newest direction first (iPNDM uses them as is).
_AB = {
    1: (1.0,),
    2: (3 / 2, -1 / 2),
    3: (23 / 12, -16 / 12, 5 / 12),
    4: (55 / 24, -59 / 24, 37 / 24, -9 / 24),
}


@dataclass(frozen=True)
class Plan:
    """How a solver reaches its NFE: whether it uses AFS and how many steps it takes."""

    solver: str
    nfe: int
    afs: bool
    steps: int

    @property
    def points(self) -> int:
        return self.steps + 1


def nfe_of(solver: str, steps: int, afs: bool) -> int:
    """Network evaluations `solver` spends on `steps` steps."""
    _check_solver(solver)
    if solver in _ONE_EVAL_SOLVERS:
        return steps - int(afs)
    if solver == "heun":
        return 2 * steps - 1 - int(afs)
    return 2 * steps - int(afs)


def plan(solver: str, nfe: int, afs: bool | None = None) -> Plan:
    """The step count (and AFS choice) giving exactly `nfe` evaluations; ValueError if none does."""
    _check_solver(solver)
    if isinstance(nfe, bool) or not isinstance(nfe, int) or nfe < 1:
        raise ValueError(f"nfe must be a positive integer, got {nfe!r}")
    if afs is None:
        if solver == "heun":
            afs = nfe % 2 == 0
        elif solver in AMED_SOLVERS:
            afs = nfe % 2 == 1
        else:
            afs = False
    if solver in _ONE_EVAL_SOLVERS:
        steps = nfe + int(afs)
    elif solver == "heun":
        if (nfe + int(afs)) % 2 == 0:
            raise ValueError(
                f"heun {'with' if afs else 'without'} AFS uses "
                f"{'an even' if afs else 'an odd'} NFE (2·steps − {2 if afs else 1}); "
                f"{nfe} is unreachable"
            )
        steps = (nfe + 1 + int(afs)) // 2
    else:
        if (nfe + int(afs)) % 2 == 1:
            raise ValueError(
                f"{solver} {'with' if afs else 'without'} AFS uses "
                f"{'an odd' if afs else 'an even'} NFE (2·steps{' − 1' if afs else ''}); "
                f"{nfe} is unreachable"
            )
        steps = (nfe + int(afs)) // 2
    if steps < 1 or nfe_of(solver, steps, afs) != nfe:  # pragma: no cover - guards the algebra
        raise ValueError(f"{solver} cannot use exactly {nfe} evaluations")
    return Plan(solver, nfe, afs, steps)


def grid(p: Plan, schedule: str, sigma_min: float, sigma_max: float) -> Tensor:
    """The float64 time grid (p.points values, sigma_max … sigma_min) for a plan."""
    return time_steps(schedule, p.points, sigma_min, sigma_max)


def afs_direction(x: Tensor, sigma: float, sigma_data: float, mean: float | Tensor = 0.0) -> Tensor:
    """ε̂ at a very large σ without the network (the analytical first step; see module doc)."""
    if isinstance(mean, Tensor):
        mean = mean.to(device=x.device, dtype=x.dtype)
    return (x - mean) * (sigma / (sigma_data**2 + sigma**2))


def _check_solver(solver: str) -> None:
    if solver not in SOLVERS:
        raise ValueError(f"unknown solver {solver!r}; choose one of {', '.join(SOLVERS)}")


def _per_sample(v: Tensor, x: Tensor) -> Tensor:
    """(B,) → (B, 1, …) to broadcast against x."""
    return v.reshape(-1, *([1] * (x.dim() - 1)))


class Stepper:
    """Runs one solver step by step on a fixed grid, holding the multistep history.

    `sample` drives it over the whole grid; AMED training drives it one step at a time from the
    student's own previous output (and calls `detach_history` between optimiser steps).
    """

    def __init__(
        self,
        denoiser: Denoiser,
        p: Plan,
        t: Tensor,
        predictor: AMEDPredictor | None = None,
    ) -> None:
        if len(t) != p.points:
            raise ValueError(f"grid has {len(t)} points, the plan needs {p.points}")
        if p.solver in AMED_SOLVERS and predictor is None:
            raise ValueError(f"{p.solver} needs an AMED predictor (train one with train-amed)")
        self.denoiser = denoiser
        self.plan = p
        self.t = [float(v) for v in t]
        self.predictor = predictor
        self.sigma_data = sigma_data_of(denoiser)
        self.data_mean = data_mean_of(denoiser)
        self.history: list[Tensor] = []  # ε̂ (iPNDM, AMED-Plugin) or D (DPM-Solver++), newest last
        self.history_t: list[float] = []  # their times (DPM-Solver++)
        self.last_prediction: tuple[Tensor, Tensor, Tensor] | None = None  # (r, c, a)

    # -- evaluations -------------------------------------------------------------------------

    def _sigma(self, x: Tensor, value: float) -> Tensor:
        return torch.full((x.shape[0],), value, dtype=x.dtype, device=x.device)

    def _afs(self, x: Tensor, t: float) -> Tensor:
        return afs_direction(x, t, self.sigma_data, self.data_mean)

    def _uses_afs(self, i: int) -> bool:
        return self.plan.afs and i == 0

    def _eps(self, x: Tensor, sigma: float) -> Tensor:
        return (x - self.denoiser(x, self._sigma(x, sigma))) / sigma

    def _eps_first(self, i: int, x: Tensor) -> Tensor:
        """ε̂ at the start of step i (analytical on the first step under AFS)."""
        if self._uses_afs(i):
            return self._afs(x, self.t[i])
        return self._eps(x, self.t[i])

    def _eps_features(self, i: int, x: Tensor) -> tuple[Tensor, Tensor]:
        t = self.t[i]
        if self._uses_afs(i):
            zeros = torch.zeros(x.shape[0], self.denoiser.feature_dim, device=x.device)
            return self._afs(x, t), zeros
        denoised, features = self.denoiser.with_features(x, self._sigma(x, t))
        return (x - denoised) / t, features

    def _predict(self, i: int, features: Tensor, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        assert self.predictor is not None
        param = next(self.predictor.parameters())
        r, c, a = self.predictor(features.to(param.device, param.dtype), self.t[i], self.t[i + 1])
        self.last_prediction = (r.detach(), c.detach(), a.detach())

        def cast(v: Tensor) -> Tensor:
            return v.to(device=x.device, dtype=x.dtype)

        return cast(r), cast(c), cast(a)

    # -- history -----------------------------------------------------------------------------

    def _push(self, value: Tensor, t: float, keep: int) -> None:
        self.history.append(value)
        self.history_t.append(t)
        del self.history[:-keep], self.history_t[:-keep]

    def detach_history(self) -> None:
        self.history = [h.detach() for h in self.history]

    def _adams_bashforth(self, d: Tensor) -> Tensor:
        """iPNDM's combined direction from d (newest) and the stored history."""
        order = min(IPNDM_MAX_ORDER, len(self.history) + 1)
        coeffs = _AB[order]
        out = coeffs[0] * d
        for k in range(1, order):
            out = out + coeffs[k] * self.history[-k]
        return out

    # -- steps -------------------------------------------------------------------------------

    def step(self, i: int, x: Tensor) -> Tensor:
        """x at t[i] → x at t[i+1]."""
        return getattr(self, f"_step_{self.plan.solver}")(i, x)

    def _step_ddim(self, i: int, x: Tensor) -> Tensor:
        return x + (self.t[i + 1] - self.t[i]) * self._eps_first(i, x)

    def _step_heun(self, i: int, x: Tensor) -> Tensor:
        t0, t1 = self.t[i], self.t[i + 1]
        d0 = self._eps_first(i, x)
        x1 = x + (t1 - t0) * d0
        if i == self.plan.steps - 1:  # EDM's final Euler step
            return x1
        return x + (t1 - t0) * 0.5 * (d0 + self._eps(x1, t1))

    def _step_dpm(self, i: int, x: Tensor) -> Tensor:
        t0, t1 = self.t[i], self.t[i + 1]
        if self._uses_afs(i):
            denoised = x - t0 * self._afs(x, t0)
        else:
            denoised = self.denoiser(x, self._sigma(x, t0))
        max_order = _DPM_ORDER[self.plan.solver]
        self._push(denoised, t0, max_order)
        order = min(max_order, len(self.history))
        # "Lower order final" (as in diff-sampler, at every step count): the last steps reach
        # back over a huge λ range relative to their own size; extrapolating there is unstable.
        order = min(order, self.plan.steps - i)
        return dpm_update(x, self.history[-order:], self.history_t[-order:], t1)

    _step_dpm2m = _step_dpm
    _step_dpm3m = _step_dpm

    def _step_ipndm(self, i: int, x: Tensor) -> Tensor:
        d = self._eps_first(i, x)
        out = x + (self.t[i + 1] - self.t[i]) * self._adams_bashforth(d)
        self._push(d, self.t[i], IPNDM_MAX_ORDER - 1)
        return out

    def _mid(self, i: int, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """(ε̂ at t_cur, t_mid, c, a·t_mid, r) per sample for the AMED solvers."""
        d0, features = self._eps_features(i, x)
        r, c, a = self._predict(i, features, x)
        t0 = torch.tensor(self.t[i], dtype=x.dtype, device=x.device)
        t1 = torch.tensor(self.t[i + 1], dtype=x.dtype, device=x.device)
        t_mid = t1**r * t0 ** (1 - r)
        return d0, t_mid, c, a * t_mid, r

    def _step_amed(self, i: int, x: Tensor) -> Tensor:
        t0, t1 = self.t[i], self.t[i + 1]
        d0, t_mid, c, sigma_mid, _ = self._mid(i, x)
        x_mid = x + _per_sample(t_mid - t0, x) * d0
        d_mid = (x_mid - self.denoiser(x_mid, sigma_mid)) / _per_sample(t_mid, x)
        return x + _per_sample(c * (t1 - t0), x) * d_mid

    def _step_amed_plugin(self, i: int, x: Tensor) -> Tensor:
        t0, t1 = self.t[i], self.t[i + 1]
        d0, t_mid, c, sigma_mid, _ = self._mid(i, x)
        x_mid = x + _per_sample(t_mid - t0, x) * self._adams_bashforth(d0)
        self._push(d0, t0, IPNDM_MAX_ORDER - 1)
        d_mid = (x_mid - self.denoiser(x_mid, sigma_mid)) / _per_sample(t_mid, x)
        out = x_mid + _per_sample(c * (t1 - t_mid), x) * self._adams_bashforth(d_mid)
        self._push(d_mid, float("nan"), IPNDM_MAX_ORDER - 1)  # per-sample time; unused by iPNDM
        return out


def dpm_update(x: Tensor, denoised: list[Tensor], times: list[float], t: float) -> Tensor:
    """One multistep DPM-Solver++ (data prediction) update from times[-1] to t, of order
    len(denoised) ∈ {1, 2, 3}, in EDM's parameterisation (α = 1, λ = −log σ).

    x_t = (σ_t/σ_s)·x_s + σ_t·∫ e^λ D(λ) dλ over [λ_s, λ_t]; with D's Taylor expansion at λ_s the
    integral is −φ1·D + h·φ2·D' − h²·φ3·D'' (φ1 = e^(−h) − 1, φ2 = φ1/h + 1, φ3 = φ2/h − 1/2).
    The third-order update estimates h·D' (d1) and h²·D'' (d2) from divided differences. The
    DPM-Solver reference code (and diff-sampler's copy) uses half that d2, which leaves its 3M
    second order (not exact for D quadratic in λ; observed order ≈ 2 on Gaussian data); this one
    is exact for quadratic D and converges at order ≈ 3 there.
    """
    s = times[-1]
    h = math.log(s / t)
    phi_1 = math.expm1(-h)
    m0 = denoised[-1]
    out = (t / s) * x - phi_1 * m0  # first order: exactly DDIM
    if len(denoised) == 1:
        return out
    r0 = math.log(times[-2] / s) / h
    d1_0 = (m0 - denoised[-2]) / r0
    if len(denoised) == 2:
        return out - 0.5 * phi_1 * d1_0
    r1 = math.log(times[-3] / times[-2]) / h
    d1_1 = (denoised[-2] - denoised[-3]) / r1
    d1 = d1_0 + (r0 / (r0 + r1)) * (d1_0 - d1_1)
    d2 = 2.0 * (d1_0 - d1_1) / (r0 + r1)
    phi_2 = phi_1 / h + 1.0
    phi_3 = phi_2 / h - 0.5
    return out + phi_2 * d1 - phi_3 * d2


def _resolve_schedule(schedule: str | None, predictor: AMEDPredictor | None) -> str:
    if predictor is not None and schedule is not None and schedule != predictor.schedule:
        raise ValueError(
            f"the predictor was trained on the {predictor.schedule!r} schedule, not {schedule!r}"
        )
    chosen = schedule or (predictor.schedule if predictor is not None else "polynomial")
    if chosen not in SCHEDULES:
        raise ValueError(f"unknown schedule {chosen!r}; choose one of {', '.join(SCHEDULES)}")
    return chosen


def _check_predictor(p: Plan, predictor: AMEDPredictor | None) -> None:
    if p.solver not in AMED_SOLVERS:
        return
    if predictor is None:
        raise ValueError(f"{p.solver} needs an AMED predictor (train one with train-amed)")
    if predictor.solver != p.solver or predictor.nfe != p.nfe or predictor.afs != p.afs:
        raise ValueError(
            f"the predictor was trained for {predictor.solver} at NFE {predictor.nfe} "
            f"(AFS {predictor.afs}), not {p.solver} at NFE {p.nfe} (AFS {p.afs})"
        )


@overload
def sample(
    denoiser: Denoiser,
    latents: Tensor,
    solver: str,
    nfe: int,
    *,
    schedule: str | None = None,
    predictor: AMEDPredictor | None = None,
    afs: bool | None = None,
    return_trajectory: Literal[False] = False,
) -> Tensor: ...


@overload
def sample(
    denoiser: Denoiser,
    latents: Tensor,
    solver: str,
    nfe: int,
    *,
    schedule: str | None = None,
    predictor: AMEDPredictor | None = None,
    afs: bool | None = None,
    return_trajectory: Literal[True],
) -> tuple[Tensor, list[Tensor]]: ...


def sample(
    denoiser: Denoiser,
    latents: Tensor,
    solver: str,
    nfe: int,
    *,
    schedule: str | None = None,
    predictor: AMEDPredictor | None = None,
    afs: bool | None = None,
    return_trajectory: bool = False,
) -> Tensor | tuple[Tensor, list[Tensor]]:
    """Integrate the ODE from x_T = latents·sigma_max to sigma_min with exactly `nfe` denoiser
    calls. `schedule` defaults to the predictor's schedule for AMED, else "polynomial";
    `afs=None` picks the variant that reaches `nfe` (or the predictor's). The trajectory, when
    asked for, holds x at every grid point (x_T first, the result last)."""
    _check_solver(solver)
    if afs is None and predictor is not None and solver in AMED_SOLVERS:
        afs = predictor.afs
    p = plan(solver, nfe, afs)
    _check_predictor(p, predictor)
    t = grid(p, _resolve_schedule(schedule, predictor), denoiser.sigma_min, denoiser.sigma_max)
    stepper = Stepper(denoiser, p, t, predictor)
    with torch.no_grad():
        x = latents * float(t[0])
        trajectory = [x]
        for i in range(p.steps):
            x = stepper.step(i, x)
            if return_trajectory:
                trajectory.append(x)
    return (x, trajectory) if return_trajectory else x


def heun_path(denoiser: Denoiser, x: Tensor, t: Tensor) -> list[Tensor]:
    """Heun on every step of grid t (no final Euler step: the grid ends above 0) from x at t[0];
    returns x at every grid point. 2·(len(t) − 1) evaluations."""
    times = [float(v) for v in t]
    sigma = lambda v: torch.full((x.shape[0],), v, dtype=x.dtype, device=x.device)  # noqa: E731
    path = [x]
    for t0, t1 in itertools.pairwise(times):
        d0 = (x - denoiser(x, sigma(t0))) / t0
        x1 = x + (t1 - t0) * d0
        d1 = (x1 - denoiser(x1, sigma(t1))) / t1
        x = x + (t1 - t0) * 0.5 * (d0 + d1)
        path.append(x)
    return path


def teacher(
    denoiser: Denoiser, latents: Tensor, steps: int = 64, schedule: str = "polynomial"
) -> Tensor:
    """The high-NFE reference from the same latents: Heun with `steps` steps (2·steps NFE)."""
    if steps < 1:
        raise ValueError(f"the teacher needs at least one step, got {steps}")
    t = time_steps(schedule, steps + 1, denoiser.sigma_min, denoiser.sigma_max)
    with torch.no_grad():
        return heun_path(denoiser, latents * float(t[0]), t)[-1]
