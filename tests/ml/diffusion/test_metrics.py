"""Metrics: Fréchet distance, KID, sliced Wasserstein, RMSE, the trajectory plane check and the
classifier whose features they use."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ml.diffusion import metrics


def _gaussian(n: int, d: int, seed: int, shift: float = 0.0, scale: float = 1.0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, d)) * scale + shift


def test_frechet_distance() -> None:
    a = _gaussian(2000, 8, 0)
    assert metrics.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    same = metrics.frechet_distance(a, _gaussian(2000, 8, 1))
    shifted = metrics.frechet_distance(a, _gaussian(2000, 8, 1, shift=1.0))
    wider = metrics.frechet_distance(a, _gaussian(2000, 8, 1, scale=2.0))
    assert same < 0.1
    # Closed form for Gaussians: shift μ per dim → d·μ²; scale s → d·(1 − s)².
    assert shifted == pytest.approx(8.0, rel=0.1)
    assert wider == pytest.approx(8.0, rel=0.15)


def test_kid_is_unbiased() -> None:
    # Same distribution: the unbiased MMD² averages to 0 (can be slightly negative).
    values = [
        metrics.kid(_gaussian(200, 8, 2 * i), _gaussian(300, 8, 2 * i + 1)) for i in range(10)
    ]
    spread = np.std(values)
    assert abs(np.mean(values)) < 2 * spread / np.sqrt(len(values)) + 1e-3
    assert min(values) < 0 < max(values) or abs(np.mean(values)) < 1e-3
    shifted = metrics.kid(_gaussian(200, 8, 0), _gaussian(300, 8, 1, shift=0.5))
    assert shifted > 10 * max(abs(v) for v in values)
    with pytest.raises(ValueError):
        metrics.kid(_gaussian(1, 8, 0), _gaussian(5, 8, 1))


def test_sliced_wasserstein_and_rmse() -> None:
    a = _gaussian(500, 8, 0)
    assert metrics.sliced_wasserstein(a, a) == pytest.approx(0.0, abs=1e-12)
    assert metrics.sliced_wasserstein(a, _gaussian(400, 8, 1, shift=1.0)) > 5 * (
        metrics.sliced_wasserstein(a, _gaussian(400, 8, 1))
    )
    x = torch.zeros(3, 1, 4, 4)
    assert metrics.rmse(x, x) == 0.0
    assert metrics.rmse(x + 0.5, x) == pytest.approx(0.5)


def test_trajectory_plane_fraction() -> None:
    gen = torch.Generator().manual_seed(0)
    b, d, t = 5, 50, 12
    # Points on a curve inside a random 2-D plane per sample (plus an offset): exactly planar.
    u, v, origin = (torch.randn(b, d, generator=gen) for _ in range(3))
    s = torch.linspace(0, 1, t)
    planar = [origin + (si**2) * u + torch.sin(3 * si) * v for si in s]
    assert metrics.trajectory_plane_fraction(planar) == pytest.approx(1.0, abs=1e-9)
    top1, top2, top3 = metrics.trajectory_variance_fractions(planar, 3)
    assert top1 < 0.999 and top2 == pytest.approx(1.0, abs=1e-9) and top3 >= top2
    # A random walk in 50-D is far from a plane.
    walk = torch.randn(t, b, d, generator=gen).cumsum(0)
    assert metrics.trajectory_plane_fraction(walk) < 0.95
    # Images (B, C, H, W) are flattened.
    images = [p.reshape(b, 2, 5, 5) for p in planar]
    assert metrics.trajectory_plane_fraction(images) == pytest.approx(1.0, abs=1e-9)


def test_classifier_features_learn_a_separable_task() -> None:
    # Two classes of 32×32 grey images: bright top half vs bright bottom half.
    rng = np.random.default_rng(0)
    n = 128
    images = rng.integers(0, 60, (n, 32, 32, 1), dtype=np.uint8)
    labels = np.arange(n) % 2
    images[labels == 0, :16] += 150
    images[labels == 1, 16:] += 150
    net = metrics.train_classifier(images, labels, 2, steps=30, batch=32, seed=0)
    assert metrics.accuracy(net, images, labels) > 0.9
    feats = metrics.features(net, images)
    assert feats.shape == (n, metrics.FEATURE_DIM) and feats.dtype == np.float64
    # The same images as float tensors in [-1, 1] give the same features.
    from ml import images as image_sets

    assert np.allclose(metrics.features(net, image_sets.to_tensor(images)), feats, atol=1e-5)
    # Two halves of one class are close; the two classes are far apart.
    top, bottom = feats[labels == 0], feats[labels == 1]
    assert metrics.frechet_distance(top[:32], top[32:]) < metrics.frechet_distance(top, bottom)
