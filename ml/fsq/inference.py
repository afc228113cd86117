"""A loaded tokenizer for the product: uint8 thumbnails ↔ int32 token grids.

`decode` needs nothing but the stored indices (the FSQ codebook is implicit in the levels),
so a thumbnail is kept as 16×16 tokens and drawn again on demand.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ml.device import pick_device
from ml.fsq.autoencoder import Tokenizer
from ml.fsq.checkpoint import load_model
from ml.images import to_tensor, to_uint8

__all__ = ["LoadedTokenizer"]

BATCH = 64


class LoadedTokenizer:
    def __init__(self, model: Tokenizer, version: str, device: torch.device) -> None:
        self.model = model.to(device).eval()
        self.version = version
        self.device = device
        cfg = model.cfg
        self.levels: list[int] = list(cfg.levels)
        self.grid: tuple[int, int] = cfg.grid
        self.codebook_size: int = cfg.codebook_size
        self.quantizer: str = cfg.quantizer
        self.image_shape: tuple[int, int, int] = (cfg.image_size, cfg.image_size, cfg.channels)

    @classmethod
    def load(cls, path: Path, device: str = "auto") -> LoadedTokenizer:
        """Raises FileNotFoundError when `path` holds no checkpoint."""
        model, ckpt = load_model(Path(path))
        return cls(model, ckpt.version, pick_device(device))

    def _check_images(self, images: np.ndarray) -> None:
        if not isinstance(images, np.ndarray):
            raise ValueError(f"images must be a numpy array, got {type(images).__name__}")
        if images.dtype != np.uint8:
            raise ValueError(f"images must be uint8, got {images.dtype}")
        if images.ndim != 4 or images.shape[1:] != self.image_shape:
            want = "(N, {}, {}, {})".format(*self.image_shape)
            raise ValueError(f"images must have shape {want}, got {images.shape}")

    def _check_tokens(self, tokens: np.ndarray) -> None:
        if not isinstance(tokens, np.ndarray):
            raise ValueError(f"tokens must be a numpy array, got {type(tokens).__name__}")
        if not np.issubdtype(tokens.dtype, np.integer):
            raise ValueError(f"tokens must be integers, got {tokens.dtype}")
        if tokens.ndim != 3 or tokens.shape[1:] != self.grid:
            want = "(N, {}, {})".format(*self.grid)
            raise ValueError(f"tokens must have shape {want}, got {tokens.shape}")
        if tokens.size and (tokens.min() < 0 or tokens.max() >= self.codebook_size):
            raise ValueError(
                f"tokens must lie in [0, {self.codebook_size}), got "
                f"[{tokens.min()}, {tokens.max()}]"
            )

    @torch.no_grad()
    def encode(self, images: np.ndarray) -> np.ndarray:
        """uint8 (N, 64, 64, 3) → int32 token indices (N, 16, 16)."""
        self._check_images(images)
        parts = [np.zeros((0, *self.grid), dtype=np.int32)]
        for i in range(0, len(images), BATCH):
            x = to_tensor(images[i : i + BATCH]).to(self.device)
            parts.append(self.model.quantize(x).indices.cpu().numpy().astype(np.int32))
        return np.concatenate(parts)

    @torch.no_grad()
    def decode(self, tokens: np.ndarray) -> np.ndarray:
        """Token indices (N, 16, 16) → uint8 images (N, 64, 64, 3)."""
        self._check_tokens(tokens)
        parts = [np.zeros((0, *self.image_shape), dtype=np.uint8)]
        for i in range(0, len(tokens), BATCH):
            idx = torch.from_numpy(tokens[i : i + BATCH].astype(np.int64)).to(self.device)
            parts.append(to_uint8(self.model.decode_indices(idx)))
        return np.concatenate(parts)

    def reconstruct(self, images: np.ndarray) -> np.ndarray:
        """Encode then decode, exactly as a stored thumbnail is drawn."""
        return self.decode(self.encode(images))
