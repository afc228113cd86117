"""The quantizers: FSQ's levels, codebook and gradients; VQ's losses and EMA updates."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ml.fsq.quantizers import (
    FSQ,
    RECOMMENDED_LEVELS,
    VQ,
    codebook_stats,
    index_histogram,
    round_ste,
)

LEVEL_LISTS = [[8, 6, 5], [8, 5, 5, 5], [7, 5, 5, 5, 5], [2, 3, 4], [3], [2, 2, 2, 2], [16, 9]]


@pytest.mark.parametrize("levels", LEVEL_LISTS)
def test_exactly_l_values_per_channel_within_minus_one_one(levels: list[int]) -> None:
    fsq = FSQ(levels)
    torch.manual_seed(0)
    # Wide latents reach every level, including both ends.
    codes = fsq(torch.randn(20000, len(levels)) * 3).quantized
    for i, level in enumerate(levels):
        values = codes[:, i].unique()
        assert len(values) == level, (level, values)
        assert values.min() == -1.0
        assert values.max() <= 1.0
        # Evenly spaced: every value is an integer multiple of 1/⌊L/2⌋.
        steps = values * (level // 2)
        assert torch.allclose(steps, steps.round())
        if level % 2:
            assert values.max() == 1.0  # odd L is symmetric


def test_even_levels_stay_l_even_for_huge_latents() -> None:
    fsq = FSQ([4, 2])
    z = torch.tensor([[-1e6, -1e6], [1e6, 1e6], [0.0, 0.0]])
    codes = fsq(z).quantized
    assert codes.tolist() == [[-1.0, -1.0], [0.5, 0.0], [0.0, 0.0]]


@pytest.mark.parametrize("levels", [*RECOMMENDED_LEVELS.values(), [2, 3, 4], [5]])
def test_index_code_bijection_over_the_whole_codebook(levels: list[int]) -> None:
    fsq = FSQ(levels)
    book = fsq.implicit_codebook()
    assert book.shape == (math.prod(levels), len(levels))
    assert fsq.codebook_size == math.prod(levels) and fsq.dim == len(levels)
    indices = torch.arange(fsq.codebook_size)
    assert torch.equal(fsq.codes_to_indices(book), indices)
    assert torch.equal(fsq.indices_to_codes(indices), book)
    assert len(torch.unique(book, dim=0)) == fsq.codebook_size


def test_mixed_radix_first_channel_least_significant() -> None:
    fsq = FSQ([3, 4])
    # Index 1 moves channel 0 one level up; index 3 moves channel 1 one level up.
    base = fsq.indices_to_codes(torch.tensor(0))
    assert torch.equal(fsq.indices_to_codes(torch.tensor(1)) - base, torch.tensor([1.0, 0.0]))
    assert torch.allclose(fsq.indices_to_codes(torch.tensor(3)) - base, torch.tensor([0.0, 0.5]))
    assert fsq.indices_to_codes(torch.tensor(11)).tolist() == [1.0, 0.5]


def test_forward_indices_match_codes_and_shapes() -> None:
    fsq = FSQ([8, 5, 5, 5])
    z = torch.randn(2, 16, 16, 4)
    out = fsq(z)
    assert out.quantized.shape == z.shape
    assert out.indices.shape == (2, 16, 16) and out.indices.dtype == torch.int64
    assert float(out.loss) == 0.0
    assert torch.equal(fsq.indices_to_codes(out.indices), out.quantized)


def test_gradients_pass_through_rounding() -> None:
    x = torch.tensor([0.2, 1.7, -2.4], requires_grad=True)
    round_ste(x).sum().backward()
    assert x.grad is not None and torch.equal(x.grad, torch.ones(3))

    fsq = FSQ([8, 5, 5])
    z = torch.randn(64, 3, requires_grad=True)
    weights = torch.randn(64, 3)
    (fsq(z).quantized * weights).sum().backward()
    # d/dz of tanh-bounded codes with rounding treated as identity: nonzero and the
    # same as the unrounded bound's gradient.
    z2 = z.detach().clone().requires_grad_(True)
    (fsq.bound(z2) / fsq._half_width * weights).sum().backward()
    assert z.grad is not None and z2.grad is not None
    assert (z.grad.abs() > 0).all()
    assert torch.allclose(z.grad, z2.grad)


def test_usage_on_random_latents_is_near_full() -> None:
    torch.manual_seed(0)
    for size in (2**8, 2**10, 2**12):
        fsq = FSQ(RECOMMENDED_LEVELS[size])
        idx = fsq(torch.randn(40 * size, fsq.dim)).indices
        stats = codebook_stats(index_histogram(idx, fsq.codebook_size))
        assert stats.usage >= 99.0, (size, stats)
        assert stats.tokens == 40 * size


def test_codebook_stats() -> None:
    assert codebook_stats(np.array([5, 5, 5, 5])) == (100.0, pytest.approx(4.0), 20)
    usage, perplexity, tokens = codebook_stats(np.array([10, 0, 0, 0]))
    assert usage == 25.0 and perplexity == pytest.approx(1.0) and tokens == 10
    assert codebook_stats(np.zeros(3)).usage == 0.0
    with pytest.raises(ValueError):
        codebook_stats(np.array([[1, 2]]))
    with pytest.raises(ValueError):
        codebook_stats(np.array([-1, 2]))
    assert index_histogram(torch.tensor([[0, 2], [2, 2]]), 4).tolist() == [1, 0, 3, 0]


def test_bad_levels_and_inputs_raise_value_errors() -> None:
    for levels in ([], [1, 5], [0]):
        with pytest.raises(ValueError, match="levels"):
            FSQ(levels)
    fsq = FSQ([4, 4])
    with pytest.raises(ValueError, match="latents"):
        fsq(torch.randn(3, 5))
    with pytest.raises(ValueError, match=r"\[0, 16\)"):
        fsq.indices_to_codes(torch.tensor([16]))
    with pytest.raises(ValueError, match=r"\[0, 16\)"):
        fsq.indices_to_codes(torch.tensor([-1]))
    with pytest.raises(ValueError, match="integers"):
        fsq.indices_to_codes(torch.tensor([1.0]))
    with pytest.raises(ValueError, match="latents"):
        VQ(8, 3)(torch.randn(2, 4))
    with pytest.raises(ValueError, match=r"\[0, 8\)"):
        VQ(8, 3).indices_to_codes(torch.tensor([8]))


def test_vq_picks_the_nearest_code_and_losses_behave() -> None:
    torch.manual_seed(0)
    vq = VQ(16, 3)
    with torch.no_grad():
        vq.codebook.copy_(torch.randn(16, 3))
    z = torch.randn(10, 7, 3, requires_grad=True)
    out = vq(z)
    expected = torch.cdist(z.detach().reshape(-1, 3), vq.codebook.detach()).argmin(1)
    assert torch.equal(out.indices.reshape(-1), expected)
    # Straight-through codes equal the looked-up ones up to an ulp; exactly without a graph.
    assert torch.allclose(out.quantized.detach(), vq.indices_to_codes(out.indices))
    with torch.no_grad():
        assert torch.equal(vq(z).quantized, vq.indices_to_codes(out.indices))
    assert torch.equal(vq.codes_to_indices(out.quantized.detach()), out.indices)
    e = vq.codebook.detach()[out.indices]
    mse = ((z.detach() - e) ** 2).mean()
    # Codebook term + β · commitment term, both equal to the MSE in the forward pass.
    assert float(out.loss.detach()) == pytest.approx(1.25 * float(mse), rel=1e-5)
    # Straight-through to the latents, the codebook loss to the chosen codes only.
    (out.quantized.sum() + out.loss).backward()
    assert z.grad is not None and vq.codebook.grad is not None
    used = torch.zeros(16, dtype=torch.bool)
    used[out.indices.reshape(-1)] = True
    assert (vq.codebook.grad[~used] == 0).all()
    assert (vq.codebook.grad[used].abs().sum(1) > 0).all()


def test_vq_training_pulls_codes_to_the_data() -> None:
    torch.manual_seed(0)
    vq = VQ(4, 2)
    data = torch.tensor([[1.0, 1.0], [-1.0, 1.0], [1.0, -1.0], [-1.0, -1.0]]).repeat(8, 1)
    opt = torch.optim.SGD(vq.parameters(), lr=0.5)
    with torch.no_grad():
        first = float(vq(data).loss)
    for _ in range(300):
        loss = vq(data).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        out = vq(data)
    assert float(out.loss) < 0.7 * first
    # The codebook loss's fixed point: each used code sits at the mean of its latents.
    for k in out.indices.unique():
        assert torch.allclose(vq.codebook[k], data[out.indices == k].mean(0), atol=1e-3)


def test_vq_ema_moves_codes_to_assigned_means_without_gradients() -> None:
    torch.manual_seed(0)
    vq = VQ(2, 2, ema=True, decay=0.5)
    assert not list(vq.parameters())
    with torch.no_grad():
        vq.codebook.copy_(torch.tensor([[1.0, 0.0], [-1.0, 0.0]]))
        vq.embed_sum.copy_(vq.codebook)
    data = torch.tensor([[3.0, 1.0], [3.0, -1.0], [-2.0, 0.0]])
    vq.train()
    for _ in range(30):
        out = vq(data)
    assert torch.allclose(vq.codebook, torch.tensor([[3.0, 0.0], [-2.0, 0.0]]), atol=1e-3)
    assert out.indices.tolist() == [0, 0, 1]
    commitment = float(((data - vq.codebook[out.indices]) ** 2).mean())
    assert float(out.loss) == pytest.approx(0.25 * commitment, rel=1e-4, abs=1e-6)
    # In eval mode the codebook stays put.
    before = vq.codebook.clone()
    vq.eval()
    vq(data + 5)
    assert torch.equal(vq.codebook, before)


def test_vq_large_codebook_nearest_in_blocks_matches_brute_force() -> None:
    torch.manual_seed(1)
    vq = VQ(2**16, 3)
    with torch.no_grad():
        vq.codebook.copy_(torch.randn(2**16, 3))
    z = torch.randn(300, 3)
    expected = torch.cdist(z, vq.codebook.detach()).argmin(1)
    got = vq.nearest(z)
    # Ties aside, the same code; compare distances to stay robust to float ties.
    d_got = ((z - vq.codebook.detach()[got]) ** 2).sum(1)
    d_exp = ((z - vq.codebook.detach()[expected]) ** 2).sum(1)
    assert torch.allclose(d_got, d_exp, atol=1e-5)
