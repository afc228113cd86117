"""Time grids: decreasing, the right endpoints and the shape each kind promises."""

from __future__ import annotations

import pytest
import torch

from ml.diffusion.schedules import SCHEDULES, time_steps


@pytest.mark.parametrize("kind", SCHEDULES)
@pytest.mark.parametrize("n", [2, 3, 6, 50])
def test_decreasing_with_exact_endpoints(kind: str, n: int) -> None:
    t = time_steps(kind, n, 0.002, 80.0)
    assert t.shape == (n,)
    assert t.dtype == torch.float64
    assert float(t[0]) == 80.0
    assert float(t[-1]) == 0.002
    assert bool((t[1:] < t[:-1]).all())


def test_kinds_have_their_shape() -> None:
    n = 9
    uniform = time_steps("uniform", n, 0.002, 80.0)
    steps = uniform[:-1] - uniform[1:]
    torch.testing.assert_close(steps, torch.full_like(steps, steps[0].item()))

    logsnr = time_steps("logsnr", n, 0.002, 80.0)
    ratios = logsnr[:-1] / logsnr[1:]
    torch.testing.assert_close(ratios, torch.full_like(ratios, ratios[0].item()))

    # ρ = 1 turns the polynomial schedule into the uniform one; ρ = 7 crowds the small times
    # (less than logSNR-uniform does).
    torch.testing.assert_close(time_steps("polynomial", n, 0.002, 80.0, rho=1.0), uniform)
    poly = time_steps("polynomial", n, 0.002, 80.0)
    assert float(logsnr[-2]) < float(poly[-2]) < float(uniform[-2])
    root = poly ** (1 / 7)
    gaps = root[:-1] - root[1:]
    torch.testing.assert_close(gaps, torch.full_like(gaps, gaps[0].item()))


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="unknown schedule"):
        time_steps("cosine", 5, 0.002, 80.0)
    with pytest.raises(ValueError, match="at least 2"):
        time_steps("polynomial", 1, 0.002, 80.0)
    with pytest.raises(ValueError, match="sigma_min"):
        time_steps("logsnr", 5, 80.0, 0.002)
