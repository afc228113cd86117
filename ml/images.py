"""The image sets the FSQ tokenizer and the diffusion model train on, as uint8 arrays.

- plots: the 495 real plotnine figures, 64×64 RGB (`images/plotnine-plots/plots_rgb64.npz`);
- fashion: Fashion-MNIST's IDX files, grey 28×28, padded to 32×32 (`images/fashion-mnist/`).

Both are read from an images directory (the shared data's `images/`), never downloaded.
Held-out splits are fixed by a seeded permutation so every command agrees on them.
Only numpy here: torch tensors are made by the callers (`to_tensor`).
"""

from __future__ import annotations

import gzip
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

PLOTS_FILE = Path("plotnine-plots") / "plots_rgb64.npz"
FASHION_DIR = Path("fashion-mnist")
SPLIT_SEED = 20231128


class ImageDataMissing(FileNotFoundError):
    """The image files are not where the caller pointed."""


@dataclass(frozen=True)
class ImageSet:
    """uint8 images, shape (N, H, W, C), with names (or labels) and a train/held-out split."""

    name: str
    train: np.ndarray
    held_out: np.ndarray
    train_labels: np.ndarray | None = None
    held_out_labels: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.train.shape[1:])


def load_plots(images_dir: Path, held_out: int = 45) -> ImageSet:
    """The 495 plots, 64×64×3; `held_out` of them (seeded choice) kept for evaluation."""
    path = images_dir / PLOTS_FILE
    if not path.exists():
        raise ImageDataMissing(f"{path} not found")
    with np.load(path) as data:
        images = np.ascontiguousarray(data["images"], dtype=np.uint8)
    order = np.random.default_rng(SPLIT_SEED).permutation(len(images))
    return ImageSet("plots", train=images[order[held_out:]], held_out=images[order[:held_out]])


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        raw = f.read()
    zero, dtype, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    dims = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_fashion(images_dir: Path, limit: int | None = None) -> ImageSet:
    """Fashion-MNIST, 32×32×1 (zero-padded by 2), train and t10k as train/held-out."""
    folder = images_dir / FASHION_DIR
    files = {
        "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
        "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
    }
    parts: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for split, (images_name, labels_name) in files.items():
        if not (folder / images_name).exists():
            raise ImageDataMissing(f"{folder / images_name} not found")
        images = _read_idx(folder / images_name)
        labels = _read_idx(folder / labels_name)
        if limit is not None:
            images, labels = images[:limit], labels[:limit]
        padded = np.pad(images, ((0, 0), (2, 2), (2, 2)))[..., None]
        parts[split] = (np.ascontiguousarray(padded), labels.astype(np.int64))
    return ImageSet(
        "fashion",
        train=parts["train"][0],
        held_out=parts["test"][0],
        train_labels=parts["train"][1],
        held_out_labels=parts["test"][1],
    )


def load(name: str, images_dir: Path, limit: int | None = None) -> ImageSet:
    """An image set by name: `plots` or `fashion`."""
    if name == "plots":
        return load_plots(images_dir)
    if name == "fashion":
        return load_fashion(images_dir, limit=limit)
    raise ValueError(f"unknown image set {name!r} (choose plots or fashion)")


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, C) → float32 (N, C, H, W) in [-1, 1]."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()
    return x / 127.5 - 1.0


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """float (N, C, H, W) in [-1, 1] → uint8 (N, H, W, C), clipped."""
    x = ((x.detach().float().clamp(-1, 1) + 1.0) * 127.5).round()
    return x.to("cpu").permute(0, 2, 3, 1).numpy().astype(np.uint8)


def augment(x: torch.Tensor, generator: torch.Generator, flip: bool = False) -> torch.Tensor:
    """Cheap label-free augmentation: small translations (edge-padded shifts of up to 1/16 of
    the side) and, when `flip`, horizontal flips (off for plots, whose axes sit on the left),
    in [-1, 1] float space."""
    import torch

    n, _, h, w = x.shape
    if flip:
        flipped = torch.rand(n, generator=generator) < 0.5
        x = torch.where(flipped[:, None, None, None], x.flip(-1), x)
    pad = max(1, h // 16)
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad), mode="replicate")
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    out = torch.empty_like(x)
    for i in range(n):
        out[i] = padded[i, :, dy[i] : dy[i] + h, dx[i] : dx[i] + w]
    return out
