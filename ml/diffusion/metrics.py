"""Sample-quality metrics that need no download: a small classifier trained here, the Fréchet
distance, KID and sliced Wasserstein distance in its features, RMSE to a teacher, and the PCA
check that sampling trajectories lie near a plane.

There is no Inception network offline, so FD and KID are computed in the 64-d penultimate
features of `FeatureNet`, a 3-block CNN trained on the same image set: figures are comparable
only between runs that use the same classifier (evaluate.py caches it in the checkpoint dir).
Classes: Fashion-MNIST's ten labels; the plots have none, so a plot's class is the plotnine test
module it came from (`names` in the npz, `test_<module>/…`) when that module has at least
`MIN_PLOTS_PER_CLASS` plots, and "other" otherwise (14 modules + other) — a weak but real
signal of the plot's kind (polar, facets, layouts, violins, …).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ml import images as image_sets

FEATURE_DIM = 64
MIN_PLOTS_PER_CLASS = 10


class FeatureNet(nn.Module):
    """conv-pool ×3 → 64-d features → class logits. Works for 32×32 and 64×64 inputs."""

    def __init__(self, channels: int, classes: int, width: int = 32) -> None:
        super().__init__()
        self.channels = channels
        self.classes = classes
        self.width = width
        self.body = nn.Sequential(
            nn.Conv2d(channels, width, 3, padding=1),
            nn.GroupNorm(8, width),
            nn.SiLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.GroupNorm(8, 2 * width),
            nn.SiLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(2 * width, 2 * width, 3, padding=1),
            nn.GroupNorm(8, 2 * width),
            nn.SiLU(),
            nn.AdaptiveAvgPool2d(4),
            nn.Flatten(),
            nn.Linear(2 * width * 16, FEATURE_DIM),
            nn.SiLU(),
        )
        self.head = nn.Linear(FEATURE_DIM, classes)

    def features(self, x: Tensor) -> Tensor:
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.body(x))


def plot_labels(images_dir: Path, held_out: int = 45) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(train labels, held-out labels, class names) for the plots, aligned with
    ml.images.load_plots' seeded split."""
    path = images_dir / image_sets.PLOTS_FILE
    if not path.exists():
        raise image_sets.ImageDataMissing(f"{path} not found")
    with np.load(path) as data:
        names = [str(n) for n in data["names"]]
    modules = [n.split("/")[0] for n in names]
    counts = Counter(modules)
    classes = [*sorted(m for m, c in counts.items() if c >= MIN_PLOTS_PER_CLASS), "other"]
    index = {c: i for i, c in enumerate(classes)}
    labels = np.array([index.get(m, len(classes) - 1) for m in modules], dtype=np.int64)
    order = np.random.default_rng(image_sets.SPLIT_SEED).permutation(len(names))
    return labels[order[held_out:]], labels[order[:held_out]], classes


def labelled_images(dataset: str, images_dir: Path) -> tuple[np.ndarray, np.ndarray, int]:
    """All labelled images of a data set for the classifier: (uint8 images, labels, classes)."""
    from ml.diffusion.train import image_set

    data = image_set(dataset, images_dir)
    if dataset == "fashion":
        assert data.train_labels is not None
        return data.train, data.train_labels, 10
    train_labels, held_labels, classes = plot_labels(images_dir)
    return (
        np.concatenate([data.train, data.held_out]),
        np.concatenate([train_labels, held_labels]),
        len(classes),
    )


def train_classifier(
    images: np.ndarray,
    labels: np.ndarray,
    classes: int,
    *,
    steps: int = 300,
    batch: int = 64,
    lr: float = 2e-3,
    seed: int = 0,
    augment: bool = False,
    device: torch.device | str = "cpu",
) -> FeatureNet:
    """Train the feature network (Adam, cross-entropy) on uint8 images (N, H, W, C)."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = FeatureNet(images.shape[-1], classes).to(device)
    optim = torch.optim.Adam(net.parameters(), lr=lr)
    y_all = torch.from_numpy(labels)
    net.train()
    for _ in range(steps):
        idx = torch.randint(0, len(images), (batch,), generator=gen)
        x = image_sets.to_tensor(images[idx.numpy()])
        if augment:
            x = image_sets.augment(x, gen)
        loss = F.cross_entropy(net(x.to(device)), y_all[idx].to(device))
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()
    return net.eval()


@torch.no_grad()
def accuracy(net: FeatureNet, images: np.ndarray, labels: np.ndarray, batch: int = 500) -> float:
    device = next(net.parameters()).device
    right = 0
    for i in range(0, len(images), batch):
        x = image_sets.to_tensor(images[i : i + batch]).to(device)
        right += int((net(x).argmax(1).cpu() == torch.from_numpy(labels[i : i + batch])).sum())
    return right / max(1, len(images))


@torch.no_grad()
def features(net: FeatureNet, x: Tensor | np.ndarray, batch: int = 500) -> np.ndarray:
    """float64 features (N, 64) of images given as uint8 (N, H, W, C) or float (N, C, H, W)
    in [-1, 1] (clipped to that range, as a saved image would be)."""
    device = next(net.parameters()).device
    out = []
    for i in range(0, len(x), batch):
        chunk = x[i : i + batch]
        t = image_sets.to_tensor(chunk) if isinstance(chunk, np.ndarray) else chunk.float()
        out.append(net.features(t.clamp(-1, 1).to(device)).double().cpu().numpy())
    return np.concatenate(out)


def _sqrt_psd(m: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((m + m.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def _poly_kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a @ b.T / a.shape[1] + 1) ** 3


@dataclass(frozen=True)
class Reference:
    """A feature set's statistics, computed once and compared against many sets."""

    feats: np.ndarray
    mean: np.ndarray
    cov: np.ndarray
    sqrt_cov: np.ndarray
    #: The reference's own KID term: mean of k(x, x') over distinct pairs.
    kernel_self: float
    #: Quantiles of the reference's random 1-D projections (sliced Wasserstein).
    projections: np.ndarray
    projected: np.ndarray

    @classmethod
    def of(cls, feats: np.ndarray) -> Reference:
        f = np.asarray(feats, np.float64)
        if len(f) < 2:
            raise ValueError("a reference needs at least 2 samples")
        cov = np.cov(f, rowvar=False)
        k = _poly_kernel(f, f)
        n = len(f)
        dirs = _directions(f.shape[1])
        return cls(
            f,
            f.mean(0),
            cov,
            _sqrt_psd(cov),
            float((k.sum() - np.trace(k)) / (n * (n - 1))),
            dirs,
            np.quantile(f @ dirs, _QUANTILES, axis=0),
        )

    def frechet(self, other: np.ndarray) -> float:
        """‖μ_a − μ_b‖² + tr(Σ_a + Σ_b − 2(Σ_a Σ_b)^½); tr((Σ_a Σ_b)^½) is computed as
        tr((Σ_a^½ Σ_b Σ_a^½)^½), a symmetric PSD matrix, so only eigh is needed."""
        o = np.asarray(other, np.float64)
        mu = o.mean(0) - self.mean
        cov = np.cov(o, rowvar=False)
        inner = self.sqrt_cov @ cov @ self.sqrt_cov
        cross = np.sqrt(np.clip(np.linalg.eigvalsh((inner + inner.T) / 2), 0, None)).sum()
        value = mu @ mu + np.trace(self.cov) + np.trace(cov) - 2 * cross
        return float(max(value, 0.0))

    def kid(self, other: np.ndarray) -> float:
        """Unbiased MMD² with the cubic polynomial kernel k(x, y) = (x·y/d + 1)³."""
        o = np.asarray(other, np.float64)
        m = len(o)
        if m < 2:
            raise ValueError("KID needs at least 2 samples on each side")
        k = _poly_kernel(o, o)
        own = (k.sum() - np.trace(k)) / (m * (m - 1))
        return float(own + self.kernel_self - 2 * _poly_kernel(o, self.feats).mean())

    def sliced_wasserstein(self, other: np.ndarray) -> float:
        o = np.asarray(other, np.float64)
        return float(
            np.abs(np.quantile(o @ self.projections, _QUANTILES, axis=0) - self.projected).mean()
        )


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between two feature sets (N, d) (Gaussian fits)."""
    return Reference.of(b).frechet(a)


def kid(a: np.ndarray, b: np.ndarray) -> float:
    """Kernel Inception Distance: the unbiased MMD² estimate with the cubic polynomial kernel
    k(x, y) = (x·y/d + 1)³ (Bińkowski et al. 2018), over all pairs (sizes may differ)."""
    if len(a) < 2 or len(b) < 2:
        raise ValueError("KID needs at least 2 samples on each side")
    return Reference.of(b).kid(a)


_QUANTILES = (np.arange(200) + 0.5) / 200


def _directions(dim: int, projections: int = 128, seed: int = 0) -> np.ndarray:
    dirs = np.random.default_rng(seed).standard_normal((dim, projections))
    return dirs / np.linalg.norm(dirs, axis=0, keepdims=True)


def sliced_wasserstein(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over 128 random unit directions (fixed seed) of the 1-D Wasserstein-1 distance of
    the projections (quantile functions compared on a common grid, so sizes may differ)."""
    return Reference.of(b).sliced_wasserstein(a)


def rmse(x: Tensor, reference: Tensor) -> float:
    """Root mean squared error per image (in [-1, 1] units), averaged over images."""
    diff = (x.detach().double() - reference.detach().double()).flatten(1)
    return float(diff.pow(2).mean(1).sqrt().mean())


def trajectory_variance_fractions(
    trajectory: list[Tensor] | Tensor, components: int = 3
) -> list[float]:
    """Cumulative share of the variance of each sample's trajectory points (T points in D
    dimensions) explained by its top 1, 2, … `components` principal components, averaged over
    samples. `trajectory`: T tensors (B, …) or one tensor (T, B, …)."""
    pts = torch.stack(list(trajectory)) if isinstance(trajectory, list) else trajectory
    pts = pts.double().flatten(2).transpose(0, 1)  # (B, T, D)
    if pts.shape[1] < 3:
        raise ValueError("a trajectory needs at least 3 points")
    centred = pts - pts.mean(dim=1, keepdim=True)
    s2 = torch.linalg.svdvals(centred).pow(2)
    share = s2.cumsum(dim=1) / s2.sum(dim=1, keepdim=True).clamp_min(1e-300)
    return [float(v) for v in share[:, :components].mean(dim=0)]


def trajectory_plane_fraction(trajectory: list[Tensor] | Tensor) -> float:
    """Share of the variance of each sample's trajectory explained by its top 2 principal
    components, averaged over samples: 1.0 = in a plane. Needs T ≥ 4 points to say anything
    (3 points always lie in a plane)."""
    return trajectory_variance_fractions(trajectory, 2)[1]


def set_scores(feats: np.ndarray, reference: Reference) -> dict[str, float]:
    """FD, KID and sliced Wasserstein distance of a feature set to the reference."""
    return {
        "fd": reference.frechet(feats),
        "kid": reference.kid(feats),
        "sw": reference.sliced_wasserstein(feats),
    }
