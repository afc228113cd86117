"""Samplers on Gaussian data, where the ideal denoiser and the exact ODE solution are known:
errors fall with NFE, the higher-order solvers converge faster than DDIM, and every solver spends
exactly the network evaluations it claims."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from ml.diffusion.amed import AMEDPredictor
from ml.diffusion.denoiser import CountingDenoiser, Denoiser
from ml.diffusion.gaussian import GaussianDenoiser
from ml.diffusion.samplers import (
    AMED_SOLVERS,
    SOLVERS,
    Plan,
    dpm_update,
    plan,
    sample,
    teacher,
)

DIM = 16


def gaussian(mean: float = 0.3, known_mean: bool = False) -> GaussianDenoiser:
    # Per-dimension scales from 0.03 to 1: the small ones make the ODE stiff near σ = 0.
    s = torch.logspace(-1.5, 0.0, DIM, dtype=torch.float64)
    mu = torch.linspace(0.0, 2 * mean, DIM, dtype=torch.float64)
    return GaussianDenoiser(mu, s, known_mean=known_mean)


def latents(n: int = 32) -> torch.Tensor:
    return torch.randn(n, DIM, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


def midpoint_predictor(
    solver: str, nfe: int, afs: bool | None = None, schedule: str = "polynomial"
) -> AMEDPredictor:
    """An untrained predictor: r = 0.5, c = a = 1 exactly."""
    return AMEDPredictor(
        GaussianDenoiser.feature_dim, solver=solver, nfe=nfe, afs=afs, schedule=schedule
    )


def run(
    den: Denoiser,
    z: torch.Tensor,
    solver: str,
    nfe: int,
    afs: bool | None = None,
    schedule: str = "polynomial",
) -> torch.Tensor:
    predictor = midpoint_predictor(solver, nfe, afs, schedule) if solver in AMED_SOLVERS else None
    out = sample(den, z, solver, nfe, schedule=schedule, predictor=predictor, afs=afs)
    assert isinstance(out, torch.Tensor)
    return out


def rmse(den: GaussianDenoiser, z: torch.Tensor, x: torch.Tensor) -> float:
    exact = den.solution(z * den.sigma_max, den.sigma_min)
    return float((x - exact).pow(2).mean().sqrt())


def slope(nfes: list[int], errors: list[float]) -> float:
    """Least-squares slope of −log(error) against log(NFE): the observed order."""
    xs = [math.log(n) for n in nfes]
    ys = [-math.log(e) for e in errors]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum(
        (x - mx) ** 2 for x in xs
    )


# -- the Gaussian itself ---------------------------------------------------------------------


def test_gaussian_solution_solves_the_ode() -> None:
    den = gaussian()
    x_t = latents() * den.sigma_max
    sigma, h = 1.3, 1e-5
    x = den.solution(x_t, sigma)
    derivative = (den.solution(x_t, sigma + h) - den.solution(x_t, sigma - h)) / (2 * h)
    ode = (x - den(x, torch.full((x.shape[0],), sigma, dtype=x.dtype))) / sigma
    torch.testing.assert_close(derivative, ode, rtol=1e-6, atol=1e-8)
    torch.testing.assert_close(den.solution(x_t, den.sigma_max), x_t)
    d, features = den.with_features(x, torch.full((x.shape[0],), sigma, dtype=x.dtype))
    assert features.shape == (x.shape[0], den.feature_dim)
    torch.testing.assert_close(d, den(x, torch.full((x.shape[0],), sigma, dtype=x.dtype)))


# -- NFE accounting --------------------------------------------------------------------------


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("nfe", [1, 2, 3, 4, 5, 7, 9, 10, 16])
def test_uses_exactly_the_claimed_nfe(solver: str, nfe: int) -> None:
    den = CountingDenoiser(gaussian())
    z = latents(4)
    x, trajectory = sample(
        den,
        z,
        solver,
        nfe,
        predictor=midpoint_predictor(solver, nfe) if solver in AMED_SOLVERS else None,
        return_trajectory=True,
    )
    assert den.calls == nfe
    p = plan(solver, nfe)
    assert len(trajectory) == p.points
    torch.testing.assert_close(trajectory[0], z * den.sigma_max)
    assert trajectory[-1] is x
    assert bool(torch.isfinite(x).all())


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("afs", [True, False])
def test_explicit_afs_counts_and_skips_the_first_evaluation(solver: str, afs: bool) -> None:
    for nfe in range(1, 12):
        try:
            p = plan(solver, nfe, afs)
        except ValueError:
            continue
        den = CountingDenoiser(gaussian())
        run(den, latents(4), solver, nfe, afs=afs)
        assert den.calls == nfe == p.nfe
        assert p.afs is afs
        # Under AFS nothing is evaluated at σ_max; without it the first call is there.
        assert (den.sigmas[0] == den.sigma_max) is (not afs)
        assert den.sigmas.count(den.sigma_max) == (0 if afs else 1)


def test_nfe_mapping_table() -> None:
    # (solver, NFE) → (steps, AFS) with afs=None, for the NFEs the issue measures.
    table = {
        "ddim": [(3, False), (5, False), (7, False), (9, False)],
        "dpm3m": [(3, False), (5, False), (7, False), (9, False)],
        "ipndm": [(3, False), (5, False), (7, False), (9, False)],
        "heun": [(2, False), (3, False), (4, False), (5, False)],
        "amed": [(2, True), (3, True), (4, True), (5, True)],
        "amed_plugin": [(2, True), (3, True), (4, True), (5, True)],
    }
    for solver, rows in table.items():
        for nfe, (steps, afs) in zip([3, 5, 7, 9], rows, strict=True):
            assert plan(solver, nfe) == Plan(solver, nfe, afs, steps)
    assert plan("ipndm", 5, afs=True).steps == 6
    assert plan("heun", 4) == Plan("heun", 4, True, 3)
    assert plan("amed", 4) == Plan("amed", 4, False, 2)


def test_unreachable_nfe_and_bad_names_raise() -> None:
    den = gaussian()
    z = latents(2)
    with pytest.raises(ValueError, match="unknown solver"):
        sample(den, z, "euler_a", 5)
    with pytest.raises(ValueError, match="unknown schedule"):
        sample(den, z, "ddim", 5, schedule="cosine")
    for bad in (0, -3, True, 2.5):
        with pytest.raises(ValueError, match="positive integer"):
            sample(den, z, "ddim", bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unreachable"):
        sample(den, z, "heun", 4, afs=False)
    with pytest.raises(ValueError, match="unreachable"):
        sample(den, z, "heun", 5, afs=True)
    with pytest.raises(ValueError, match="unreachable"):
        plan("amed", 5, afs=False)
    with pytest.raises(ValueError, match="unreachable"):
        plan("amed_plugin", 4, afs=True)
    with pytest.raises(ValueError, match="needs an AMED predictor"):
        sample(den, z, "amed", 5)
    five = midpoint_predictor("amed", 5)
    with pytest.raises(ValueError, match="trained for amed at NFE 5"):
        sample(den, z, "amed", 7, predictor=five)
    with pytest.raises(ValueError, match="trained for amed at NFE 5"):
        sample(den, z, "amed_plugin", 5, predictor=five)
    with pytest.raises(ValueError, match="polynomial"):
        sample(den, z, "amed", 5, predictor=five, schedule="logsnr")
    with pytest.raises(ValueError, match="AMED predictors serve"):
        AMEDPredictor(4, solver="ipndm", nfe=5)


# -- accuracy --------------------------------------------------------------------------------


@pytest.mark.parametrize("schedule", ["polynomial", "logsnr"])
@pytest.mark.parametrize("solver", SOLVERS)
def test_error_falls_as_nfe_grows(solver: str, schedule: str) -> None:
    den, z = gaussian(), latents()
    nfes = [9, 17, 33, 65, 129]
    errors = [rmse(den, z, run(den, z, solver, n, schedule=schedule)) for n in nfes]
    assert all(b < a for a, b in itertools.pairwise(errors)), errors
    assert errors[-1] < errors[0] / 8, errors


def test_time_uniform_schedule_converges_too() -> None:
    # Far slower (the steps near σ = 0 are huge for this stiff data), but it gets there.
    den, z = gaussian(), latents()
    errors = [rmse(den, z, run(den, z, "ipndm", n, schedule="uniform")) for n in (64, 512)]
    assert errors[1] < errors[0] / 3, errors


def test_higher_order_solvers_converge_faster_than_ddim() -> None:
    den, z = gaussian(), latents()
    nfes = [33, 65, 129, 257]

    def order(solver: str, afs: bool | None = None, shift: int = 0) -> float:
        used = [n + shift for n in nfes]
        return slope(used, [rmse(den, z, run(den, z, solver, n, afs=afs)) for n in used])

    ddim = order("ddim")
    assert 0.8 < ddim < 1.2
    for solver in ("heun", "dpm2m", "ipndm"):
        assert order(solver) > ddim + 0.5, solver
    assert order("dpm3m") > 2.5
    # AMED with r = 0.5 and no scaling is a (geometric-)midpoint method: second order.
    assert 1.7 < order("amed", afs=False, shift=-1) < 2.4
    assert order("amed_plugin", afs=False, shift=-1) > ddim + 0.5


def test_amed_midpoint_step_by_hand() -> None:
    den, z = gaussian(), latents()
    x = run(den, z, "amed", 2, afs=False)  # one step sigma_max → sigma_min, two evaluations
    t0, t1 = den.sigma_max, den.sigma_min
    x0 = z * t0

    def eps(x: torch.Tensor, t: float) -> torch.Tensor:
        return (x - den(x, torch.full((x.shape[0],), t, dtype=x.dtype))) / t

    t_mid = math.sqrt(t0 * t1)
    x_mid = x0 + (t_mid - t0) * eps(x0, t0)
    torch.testing.assert_close(x, x0 + (t1 - t0) * eps(x_mid, t_mid))


def test_first_order_steps_agree() -> None:
    # One step of DPM-Solver++ (first order) is exactly DDIM in EDM's parameterisation.
    den, z = gaussian(), latents()
    for solver in ("dpm2m", "dpm3m", "ipndm", "heun"):
        torch.testing.assert_close(run(den, z, solver, 1), run(den, z, "ddim", 1))
    x = latents(3) * 2.0
    d = torch.randn(3, DIM, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    torch.testing.assert_close(dpm_update(x, [d], [2.0], 0.5), x + (0.5 - 2.0) * (x - d) / 2.0)


def test_dpm_updates_are_exact_for_polynomial_data_predictions() -> None:
    # With D a polynomial of degree k − 1 in λ = −log σ (whatever x), the order-k update from
    # the exact history reproduces the exact solution x_t = σ_t·(x_s/σ_s + ∫ e^λ D dλ).
    coeffs = (0.3, 0.7, -0.2)

    def denoised(sigma: float, k: int) -> torch.Tensor:
        lam = -math.log(sigma)
        return torch.tensor(
            [sum(c * lam**j for j, c in enumerate(coeffs[:k]))], dtype=torch.float64
        )

    def antiderivative(lam: float, k: int) -> float:
        a, b, c = (*coeffs[:k], 0.0, 0.0)[:3]
        return math.exp(lam) * (a + b * (lam - 1) + c * (lam**2 - 2 * lam + 2))

    times, t, x = [5.0, 3.0, 2.0], 1.2, torch.tensor([0.7], dtype=torch.float64)
    for k in (1, 3):
        history = [denoised(v, k) for v in times[-k:]]
        integral = antiderivative(-math.log(t), k) - antiderivative(-math.log(times[-1]), k)
        exact = t * (0.7 / times[-1] + integral)
        assert dpm_update(x, history, times[-k:], t).item() == pytest.approx(exact, rel=1e-12)


def test_afs_is_as_good_as_an_evaluation_when_the_mean_is_right() -> None:
    # With the data mean right (0 for zero-mean data, or exposed as `data_mean`) the analytical
    # first step is as good as spending an evaluation there; a wrong mean costs accuracy.
    z = latents()
    for den in (gaussian(mean=0.0), gaussian(known_mean=True)):
        with_afs = rmse(den, z, run(den, z, "ipndm", 9, afs=True))
        spent_on_first_step = rmse(den, z, run(den, z, "ipndm", 10, afs=False))
        assert with_afs < 1.05 * spent_on_first_step
    den = gaussian()
    wrong_mean = rmse(den, z, run(den, z, "ipndm", 9, afs=True))
    assert wrong_mean > 1.05 * rmse(den, z, run(den, z, "ipndm", 10, afs=False))
    counting = CountingDenoiser(gaussian(known_mean=True))
    assert counting.data_mean is counting.inner.data_mean  # type: ignore[attr-defined]


def test_deterministic_and_follows_latent_dtype() -> None:
    den = gaussian()
    for solver in SOLVERS:
        a = run(den, latents(8).float(), solver, 5)
        b = run(den, latents(8).float(), solver, 5)
        assert a.dtype == torch.float32
        assert torch.equal(a, b), solver
        precise = run(den, latents(8), solver, 5)
        torch.testing.assert_close(a, precise.float(), rtol=1e-4, atol=1e-4)


def test_teacher_is_accurate_and_costs_two_evaluations_a_step() -> None:
    den, z = gaussian(), latents()
    counting = CountingDenoiser(den)
    ref = teacher(counting, z, steps=64)
    assert counting.calls == 128
    assert rmse(den, z, ref) < rmse(den, z, run(den, z, "ddim", 128)) / 5
    assert rmse(den, z, ref) < 0.005
    with pytest.raises(ValueError):
        teacher(den, z, steps=0)
