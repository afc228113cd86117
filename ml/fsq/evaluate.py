"""Evaluating a tokenizer: reconstruction MSE (pixels in [0, 1]) and PSNR on held-out images,
codebook usage % and code perplexity over a set of images, and encode throughput.

Usage can only reach 100% when the images yield at least as many tokens as there are codes,
so the result also says how many tokens were counted and the usage that count allows at most.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from ml.fsq.autoencoder import Tokenizer, encode_indices
from ml.fsq.quantizers import codebook_stats, index_histogram
from ml.images import to_tensor


@dataclass(frozen=True)
class EvalResult:
    codebook_size: int
    mse: float  # mean squared error, pixels in [0, 1]
    psnr: float  # dB, from `mse`
    usage: float  # % of codes used by the tokens of the usage images
    perplexity: float  # exp(entropy) of those tokens' code distribution
    tokens: int  # tokens counted for usage
    usage_cap: float  # highest usage % that many tokens allow
    images_per_s: float  # encode throughput (image → indices)
    held_out: int  # images behind mse/psnr

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def psnr(mse: float) -> float:
    """Peak signal-to-noise ratio in dB for pixels in [0, 1]."""
    return math.inf if mse <= 0 else 10.0 * math.log10(1.0 / mse)


@torch.no_grad()
def token_histogram(model: Tokenizer, images: np.ndarray, batch: int = 256) -> np.ndarray:
    """How often each code occurs in the tokens of uint8 `images` (converted in chunks)."""
    device = next(model.parameters()).device
    size = model.quantizer.codebook_size
    counts = np.zeros(size, dtype=np.int64)
    for i in range(0, len(images), batch):
        indices = encode_indices(model, to_tensor(images[i : i + batch]).to(device))
        counts += index_histogram(indices, size)
    return counts


@torch.no_grad()
def reconstruction_mse(model: Tokenizer, images: np.ndarray, batch: int = 64) -> float:
    device = next(model.parameters()).device
    total, count = 0.0, 0
    for i in range(0, len(images), batch):
        x = to_tensor(images[i : i + batch]).to(device)
        recon, _ = model(x)
        # [-1, 1] → [0, 1]: squared errors shrink by 4.
        total += float(((recon.clamp(-1, 1) - x) ** 2).sum()) / 4.0
        count += x.numel()
    return total / count


@torch.no_grad()
def encode_rate(model: Tokenizer, images: np.ndarray, min_seconds: float = 0.5) -> float:
    """Images per second from uint8 images to token indices (batches of 64), after a warm-up."""
    device = next(model.parameters()).device
    x = to_tensor(images).to(device)
    encode_indices(model, x[:64])
    done, started = 0, time.perf_counter()
    while True:
        encode_indices(model, x)
        if device.type == "cuda":
            torch.cuda.synchronize()
        done += len(x)
        elapsed = time.perf_counter() - started
        if elapsed >= min_seconds:
            return done / elapsed


@torch.no_grad()
def evaluate(
    model: Tokenizer,
    held_out: np.ndarray,
    usage_images: np.ndarray | None = None,
    timing_seconds: float = 0.5,
) -> EvalResult:
    """Figures for `model` (put in eval mode): MSE/PSNR on `held_out`, usage and perplexity
    on `usage_images` (default: `held_out`)."""
    model.eval()
    usage_set = held_out if usage_images is None else usage_images
    size = model.quantizer.codebook_size
    stats = codebook_stats(token_histogram(model, usage_set))
    mse = reconstruction_mse(model, held_out)
    return EvalResult(
        codebook_size=size,
        mse=mse,
        psnr=psnr(mse),
        usage=stats.usage,
        perplexity=stats.perplexity,
        tokens=stats.tokens,
        usage_cap=min(100.0, 100.0 * stats.tokens / size),
        images_per_s=encode_rate(model, held_out, timing_seconds),
        held_out=len(held_out),
    )
