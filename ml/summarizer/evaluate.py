"""Scoring TL;DRs: ROUGE the SciTLDR way, a MAUVE-like score, diversity and length.

- ROUGE-1/2/L F1 with the `rouge-score` package (stemmed). "Multi-max" as in SciTLDR: each
  prediction is scored against every reference and the reference with the best ROUGE-1
  supplies all three numbers. "Author" scores against the author's TL;DR alone.
- MAUVE-like: MiniLM sentence embeddings of the predictions and of the human TL;DRs,
  k-means on their union, and the area under the divergence frontier of the two cluster
  histograms (as MAUVE does, with our own small encoder instead of GPT-2). Comparable only
  between runs of this code; 1.0 means indistinguishable from the human texts.
- distinct-n: distinct n-grams over all n-grams of all predictions; repetition: the share of
  a prediction's word bigrams that already occurred earlier in it; mean length in words.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

_TOKENS = re.compile(r"\w+")


@dataclass
class Scores:
    rouge1: float
    rouge2: float
    rougeL: float
    author_rouge1: float
    author_rouge2: float
    author_rougeL: float
    mauve: float
    distinct1: float
    distinct2: float
    repetition: float
    length: float

    def as_dict(self) -> dict[str, float]:
        return {k: round(v, 4) for k, v in self.__dict__.items()}


def rouge(predictions: list[str], references: list[list[str]]) -> dict[str, float]:
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    best = np.zeros(3)
    author = np.zeros(3)
    for pred, refs in zip(predictions, references, strict=True):
        scored = [scorer.score(ref, pred) for ref in refs]
        f = [(s["rouge1"].fmeasure, s["rouge2"].fmeasure, s["rougeL"].fmeasure) for s in scored]
        best += max(f, key=lambda t: t[0])
        author += f[0]
    n = max(1, len(predictions))
    b, a = 100 * best / n, 100 * author / n
    return {
        "rouge1": b[0],
        "rouge2": b[1],
        "rougeL": b[2],
        "author_rouge1": a[0],
        "author_rouge2": a[1],
        "author_rougeL": a[2],
    }


def words(text: str) -> list[str]:
    return _TOKENS.findall(text.lower())


def distinct_n(texts: list[str], n: int) -> float:
    grams = [tuple(w[i : i + n]) for w in map(words, texts) for i in range(len(w) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def repetition(texts: list[str]) -> float:
    rates = []
    for w in map(words, texts):
        grams = [tuple(w[i : i + 2]) for i in range(len(w) - 1)]
        if grams:
            rates.append(1 - len(set(grams)) / len(grams))
    return float(np.mean(rates)) if rates else 0.0


# -- MAUVE-like ----------------------------------------------------------------------------


def kmeans(x: np.ndarray, k: int, seed: int, iters: int = 40) -> np.ndarray:
    """Cluster labels for the rows of x (k-means++ start, Lloyd iterations)."""
    rng = np.random.default_rng(seed)
    centers = [x[rng.integers(len(x))]]
    d2 = ((x - centers[0]) ** 2).sum(1)
    for _ in range(1, k):
        centers.append(
            x[rng.choice(len(x), p=d2 / d2.sum()) if d2.sum() > 0 else rng.integers(len(x))]
        )
        d2 = np.minimum(d2, ((x - centers[-1]) ** 2).sum(1))
    c = np.stack(centers)
    labels = np.zeros(len(x), dtype=int)
    for _ in range(iters):
        dist = (x**2).sum(1)[:, None] - 2 * x @ c.T + (c**2).sum(1)[None]
        new = dist.argmin(1)
        if (new == labels).all() and _ > 0:
            break
        labels = new
        for j in range(k):
            members = x[labels == j]
            if len(members):
                c[j] = members.mean(0)
    return labels


def divergence_frontier_area(p: np.ndarray, q: np.ndarray, scale: float = 5.0) -> float:
    """MAUVE's summary: area under {(exp(-c KL(q‖r)), exp(-c KL(p‖r))) : r = λp + (1-λ)q}."""

    def kl(a: np.ndarray, b: np.ndarray) -> float:
        m = a > 0
        return float((a[m] * np.log(a[m] / b[m])).sum())

    points = [(0.0, 1.0), (1.0, 0.0)]
    for lam in np.linspace(1e-6, 1 - 1e-6, 50):
        r = lam * p + (1 - lam) * q
        points.append((np.exp(-scale * kl(q, r)), np.exp(-scale * kl(p, r))))
    points.sort()
    xs, ys = np.array([a for a, _ in points]), np.array([b for _, b in points])
    return float(np.sum((xs[1:] - xs[:-1]) * (ys[1:] + ys[:-1]) / 2))


def mauve_like(p_feats: np.ndarray, q_feats: np.ndarray, seeds: int = 5) -> float:
    union = np.concatenate([p_feats, q_feats])
    k = max(2, min(len(p_feats), len(q_feats)) // 10)
    areas = []
    for seed in range(seeds):
        labels = kmeans(union, k, seed)
        p = np.bincount(labels[: len(p_feats)], minlength=k) / len(p_feats)
        q = np.bincount(labels[len(p_feats) :], minlength=k) / len(q_feats)
        areas.append(divergence_frontier_area(p, q))
    return float(np.mean(areas))


def sentence_embedder(
    encoder: nn.Module, tokenizer: PreTrainedTokenizerBase, device: torch.device
) -> Callable[[list[str]], np.ndarray]:
    """MiniLM sentence embeddings the way all-MiniLM-L6-v2 defines them (mean pooling, unit
    length), in fp32 so the score does not depend on the CPU's bf16 support."""

    @torch.inference_mode()
    def embed(texts: list[str]) -> np.ndarray:
        out = []
        for start in range(0, len(texts), 64):
            enc = tokenizer(
                texts[start : start + 64],
                padding=True,
                truncation=True,
                max_length=128,
                return_tensors="pt",
            ).to(device)
            h = encoder(**enc)[0].float()
            m = enc["attention_mask"][..., None].float()
            v = (h * m).sum(1) / m.sum(1).clamp_min(1e-9)
            out.append(torch.nn.functional.normalize(v, dim=-1).cpu().numpy())
        return np.concatenate(out)

    return embed


def score(
    predictions: list[str],
    references: list[list[str]],
    embed: Callable[[list[str]], np.ndarray],
    human_feats: np.ndarray | None = None,
) -> Scores:
    r = rouge(predictions, references)
    human = human_feats if human_feats is not None else embed([refs[0] for refs in references])
    return Scores(
        **r,
        mauve=mauve_like(embed(predictions), human),
        distinct1=distinct_n(predictions, 1),
        distinct2=distinct_n(predictions, 2),
        repetition=repetition(predictions),
        length=float(np.mean([len(words(p)) for p in predictions])) if predictions else 0.0,
    )
