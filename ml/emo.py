"""EMO: earth mover distance optimisation for a one-hot target (arXiv 2310.04691).

With the cost c(i, j) = 1 - cos(e_i, e_j) over a frozen embedding matrix E, the transport
cost from a model distribution q to a one-hot target t has a closed form,

    EMO(q, t) = sum_i q_i (1 - cos(e_i, e_t)) = 1 - <sum_i q_i ê_i, ê_t>,

so one (tokens x V) @ (V x d) product replaces the V x V cost matrix, which is never built.
Everything here runs in fp32 whatever the model's precision: the inner product of a
30k-way distribution with unit rows loses too much in half precision.

Objectives (per token, then a masked mean):
- ``ce``: cross-entropy, the baseline.
- ``emo1`` (the official "mode 1"): ½ [CE + sg(CE / EMO) · EMO]; its value equals CE and
  its gradient is CE's plus EMO's rescaled to CE's size.
- ``emo2`` (EMO-weighted): EMO + sg(EMO / CE) · CE.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor

Objective = Literal["ce", "emo1", "emo2"]
OBJECTIVES: tuple[Objective, ...] = ("ce", "emo1", "emo2")
_EPS = 1e-8


def _at_least_fp32(dtype: torch.dtype) -> torch.dtype:
    return torch.promote_types(dtype, torch.float32)


def unit_rows(embeddings: Tensor, isolate: Sequence[int] = ()) -> Tensor:
    """Row-normalised fp32 copy of an embedding matrix (V x d), without gradient.

    Each token in `isolate` gets an axis of its own (the result is V x (d + len(isolate))):
    its cost is 1 to every other token. For the end token: a pretrained [SEP] lies close to
    "and", "of" and "." (cos 0.5-0.6 in MiniLM), so the plain cost calls stopping
    nearly right wherever a function word is due, and trains truncated sentences.
    """
    e = embeddings.detach().float()
    e = e / e.norm(dim=-1, keepdim=True).clamp_min(_EPS)
    if not isolate:
        return e
    ids = torch.as_tensor(list(isolate), dtype=torch.long)
    extra = torch.zeros(e.shape[0], len(ids))
    extra[ids, torch.arange(len(ids))] = 1.0
    e = torch.cat([e, extra], 1)
    e[ids, : embeddings.shape[1]] = 0.0
    return e


def emo_per_token(probs: Tensor, targets: Tensor, unit: Tensor) -> Tensor:
    """EMO(q, t) for every position: probs (..., V), targets (...), unit (V, d)."""
    dtype = _at_least_fp32(probs.dtype)
    q = probs.to(dtype)
    unit = unit.to(dtype)
    expected = q @ unit  # (..., d): the q-weighted mean of the unit rows
    target_rows = unit[targets.clamp_min(0)]
    return 1.0 - (expected * target_rows).sum(-1)


def ce_per_token(probs: Tensor, targets: Tensor) -> Tensor:
    # Only the target's probability is logged: no full-vocabulary log per position.
    q_t = probs.to(_at_least_fp32(probs.dtype)).gather(-1, targets.clamp_min(0).unsqueeze(-1))
    return -torch.log(q_t.squeeze(-1).clamp_min(1e-12))


def token_losses(
    probs: Tensor, targets: Tensor, unit: Tensor | None, objective: Objective
) -> Tensor:
    """The per-position loss of `objective` (no reduction, padding not yet masked)."""
    ce = ce_per_token(probs, targets)
    if objective == "ce":
        return ce
    if unit is None:
        raise ValueError(f"objective {objective!r} needs the embedding matrix")
    emo = emo_per_token(probs, targets, unit)
    if objective == "emo1":
        return 0.5 * (ce + (ce / emo.clamp_min(_EPS)).detach() * emo)
    if objective == "emo2":
        return emo + (emo / ce.clamp_min(_EPS)).detach() * ce
    raise ValueError(f"unknown objective {objective!r}; expected one of {OBJECTIVES}")


def sequence_loss(
    probs: Tensor,
    targets: Tensor,
    mask: Tensor,
    unit: Tensor | None,
    objective: Objective,
) -> Tensor:
    """Mean loss over the positions where `mask` is true (padding contributes nothing)."""
    per_token = token_losses(probs, targets, unit, objective)
    m = mask.to(per_token.dtype)
    return (per_token * m).sum() / m.sum().clamp_min(1.0)
