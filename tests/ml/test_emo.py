"""The EMO loss against its definition: exact transport cost, gradient, modes, masking."""

from __future__ import annotations

import numpy as np
import ot
import pytest
import torch
import torch.nn.functional as F

from ml.emo import emo_per_token, sequence_loss, token_losses, unit_rows


@pytest.fixture
def vocab() -> torch.Tensor:
    torch.manual_seed(0)
    return torch.randn(12, 5)


def test_zero_at_a_one_hot_prediction_on_the_target(vocab: torch.Tensor) -> None:
    unit = unit_rows(vocab)
    targets = torch.tensor([0, 3, 11])
    probs = torch.zeros(3, 12)
    probs[torch.arange(3), targets] = 1.0
    assert torch.allclose(emo_per_token(probs, targets, unit), torch.zeros(3), atol=1e-6)


def test_a_wrong_one_hot_costs_one_minus_the_cosine(vocab: torch.Tensor) -> None:
    unit = unit_rows(vocab)
    probs = torch.zeros(1, 12)
    probs[0, 2] = 1.0
    cost = emo_per_token(probs, torch.tensor([7]), unit)
    expected = 1 - F.cosine_similarity(vocab[2], vocab[7], dim=0)
    assert cost.item() == pytest.approx(expected.item(), abs=1e-6)


def test_equals_the_exact_optimal_transport_cost(vocab: torch.Tensor) -> None:
    unit = unit_rows(vocab).double().numpy()
    cost_matrix = 1.0 - unit @ unit.T
    rng = np.random.default_rng(1)
    for target in (0, 5, 9):
        q = rng.dirichlet(np.ones(12))
        one_hot = np.zeros(12)
        one_hot[target] = 1.0
        exact = ot.emd2(q, one_hot, cost_matrix)
        ours = emo_per_token(torch.tensor(q).unsqueeze(0), torch.tensor([target]), unit_rows(vocab))
        assert ours.item() == pytest.approx(exact, abs=1e-5)


def test_an_isolated_token_costs_one_against_every_other(vocab: torch.Tensor) -> None:
    # Token 3 close to token 4 in the embeddings, as [SEP] is to "and".
    vocab = vocab.clone()
    vocab[3] = vocab[4] + 0.1 * vocab[3]
    plain, isolated = unit_rows(vocab), unit_rows(vocab, isolate=[3])
    assert isolated.shape == (12, 6)
    one_hot_3 = F.one_hot(torch.tensor([3]), 12).float()
    assert emo_per_token(one_hot_3, torch.tensor([4]), plain).item() < 0.1
    assert emo_per_token(one_hot_3, torch.tensor([4]), isolated).item() == pytest.approx(1.0)
    assert emo_per_token(one_hot_3, torch.tensor([3]), isolated).item() == pytest.approx(0.0)
    # Between the other tokens nothing changes, and it is still the exact transport cost.
    others = [i for i in range(12) if i != 3]
    sim = isolated @ isolated.T
    assert torch.allclose(sim[others][:, others], (plain @ plain.T)[others][:, others])
    unit = isolated.double().numpy()
    q = np.random.default_rng(2).dirichlet(np.ones(12))
    exact = ot.emd2(q, np.eye(12)[4], 1.0 - unit @ unit.T)
    ours = emo_per_token(torch.tensor(q).unsqueeze(0), torch.tensor([4]), isolated)
    assert ours.item() == pytest.approx(exact, abs=1e-5)


def test_gradient_is_q_times_mean_similarity_minus_similarity(vocab: torch.Tensor) -> None:
    unit = unit_rows(vocab)
    logits = torch.randn(1, 12, dtype=torch.float64, requires_grad=True)
    target = torch.tensor([4])
    emo_per_token(F.softmax(logits, -1), target, unit.double()).sum().backward()
    q = F.softmax(logits.detach(), -1)[0]
    s = unit.double() @ unit.double()[4]  # cos(e_k, e_t)
    s_bar = (q * s).sum()
    assert torch.allclose(logits.grad[0], q * (s_bar - s), atol=1e-10)


def test_mode_1_has_the_value_of_cross_entropy(vocab: torch.Tensor) -> None:
    unit = unit_rows(vocab)
    probs = F.softmax(torch.randn(4, 12), -1)
    targets = torch.tensor([1, 2, 3, 4])
    ce = token_losses(probs, targets, unit, "ce")
    mode1 = token_losses(probs, targets, unit, "emo1")
    assert torch.allclose(mode1, ce, atol=1e-6)
    assert torch.allclose(ce, F.nll_loss(torch.log(probs), targets, reduction="none"), atol=1e-6)


def test_mode_1_gradient_adds_rescaled_emo_to_cross_entropy(vocab: torch.Tensor) -> None:
    unit = unit_rows(vocab).double()
    logits = torch.randn(1, 12, dtype=torch.float64, requires_grad=True)
    target = torch.tensor([6])

    def grad(objective: str) -> torch.Tensor:
        logits.grad = None
        token_losses(F.softmax(logits, -1), target, unit, objective).sum().backward()  # type: ignore[arg-type]
        return logits.grad.clone()

    lp = F.softmax(logits.detach(), -1)
    ce = -torch.log(lp[0, 6])
    emo = emo_per_token(lp, target, unit)[0]
    logits.grad = None
    emo_per_token(F.softmax(logits, -1), target, unit).sum().backward()
    g_emo = logits.grad.clone()
    g_ce = F.softmax(logits.detach(), -1) - F.one_hot(target, 12)
    assert torch.allclose(grad("emo1"), 0.5 * (g_ce + (ce / emo) * g_emo), atol=1e-10)
    # Mode 2: EMO's gradient plus cross-entropy's rescaled to EMO's size.
    assert torch.allclose(grad("emo2"), g_emo + (emo / ce) * g_ce, atol=1e-10)


def test_padding_positions_do_not_count(vocab: torch.Tensor) -> None:
    unit = unit_rows(vocab)
    torch.manual_seed(3)
    probs = F.softmax(torch.randn(2, 5, 12), -1)
    targets = torch.randint(0, 12, (2, 5))
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    garbage = probs.clone()
    garbage[0, 3:] = F.softmax(torch.randn(2, 12) * 50, -1)
    padded_targets = targets.clone()
    padded_targets[0, 3:] = -100  # an ignore index must not break the gather
    for objective in ("ce", "emo1", "emo2"):
        a = sequence_loss(probs, targets, mask, unit, objective)  # type: ignore[arg-type]
        b = sequence_loss(garbage, padded_targets, mask, unit, objective)  # type: ignore[arg-type]
        flat = token_losses(probs, targets, unit, objective)[mask]  # type: ignore[arg-type]
        assert a.item() == pytest.approx(b.item(), abs=1e-6)
        assert a.item() == pytest.approx(flat.mean().item(), abs=1e-6)


def test_near_synonyms_cost_less_than_unrelated_tokens() -> None:
    e = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])  # 0 and 1 are near, 2 is far
    unit = unit_rows(e)
    near = torch.tensor([[0.01, 0.98, 0.01]])
    far = torch.tensor([[0.01, 0.01, 0.98]])
    target = torch.tensor([0])
    assert emo_per_token(near, target, unit) < emo_per_token(far, target, unit)
    # Cross-entropy cannot tell them apart.
    assert token_losses(near, target, None, "ce") == pytest.approx(
        token_losses(far, target, None, "ce").item()
    )


def test_computed_in_fp32_from_half_precision_inputs(vocab: torch.Tensor) -> None:
    unit = unit_rows(vocab.half())
    assert unit.dtype == torch.float32
    probs = F.softmax(torch.randn(3, 12), -1).bfloat16()
    assert emo_per_token(probs, torch.tensor([0, 1, 2]), unit).dtype == torch.float32
