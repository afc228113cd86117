"""Sampling images from a saved diffusion checkpoint, as the ML worker and the /lab page do.

`LoadedDiffusion.load(path)` reads the U-Net and every AMED predictor saved beside it;
`.sample(seeds, solver, nfe)` turns one seeded latent per seed into a uint8 image, so the same
seed always gives the same picture (`seed_for_paper` maps a paper id to its seed).
torch loads lazily: importing this module is cheap.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ml.diffusion.checkpoint import predictors_present

if TYPE_CHECKING:
    import torch

    from ml.diffusion.amed import AMEDPredictor
    from ml.diffusion.latent import CodeSpace
    from ml.diffusion.unet import EDMDenoiser

__all__ = ["LoadedDiffusion", "seed_for_paper"]


def seed_for_paper(paper_id: str) -> int:
    """A stable 63-bit seed for a paper id (sha256; the same on every machine and run)."""
    return int.from_bytes(hashlib.sha256(paper_id.encode("utf-8")).digest()[:8], "big") >> 1


class LoadedDiffusion:
    """A U-Net ready to sample, with the AMED predictors saved for it."""

    def __init__(
        self,
        denoiser: EDMDenoiser,
        version: str,
        predictors: dict[tuple[str, int], AMEDPredictor] | None = None,
        dataset: str | None = None,
        space: CodeSpace | None = None,
    ) -> None:
        self.denoiser = denoiser.eval()
        # A latent model's samples are codes that this decodes (None: the samples are pixels).
        self.space = space
        self.version = version
        self.predictors = dict(predictors or {})
        # What it learned to draw ("fashion", "plots"; None: unknown), which decides whether
        # it may make paper thumbnails (ml.pictures.PictureModels.placeholder).
        self.dataset = dataset

    @classmethod
    def load(cls, path: Path, device: str = "auto") -> LoadedDiffusion:
        """FileNotFoundError when `path` holds no checkpoint."""
        from ml.device import pick_device
        from ml.diffusion import checkpoint

        dev = pick_device(device)
        denoiser, ckpt = checkpoint.load_denoiser(path, dev)
        predictors = {}
        for solver, nfe in predictors_present(path):
            found = checkpoint.load_amed(path, solver, nfe, dev)
            if found is not None:
                predictors[(solver, nfe)] = found
        dataset = checkpoint.dataset_from(ckpt.meta, ckpt.version)
        space = checkpoint.load_space(path, ckpt, dev)
        return cls(denoiser, ckpt.version, predictors, dataset, space)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the images this model makes."""
        return self.space.image_shape if self.space is not None else self.denoiser.cfg.shape

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of what the U-Net denoises: the image, or a latent model's code grid."""
        return self.denoiser.cfg.shape

    @property
    def device(self) -> torch.device:
        return next(self.denoiser.parameters()).device

    def solvers_available(self, nfe: int | None = None) -> list[str]:
        """Every plain solver, plus an AMED solver when a predictor exists (for `nfe`, or for
        any NFE when `nfe` is None)."""
        from ml.diffusion.samplers import AMED_SOLVERS, SOLVERS

        amed = {s for s, k in self.predictors if nfe is None or k == nfe}
        return [s for s in SOLVERS if s not in AMED_SOLVERS or s in amed]

    def predictor_nfes(self) -> dict[str, list[int]]:
        """{AMED solver: NFEs with a saved predictor}."""
        out: dict[str, list[int]] = {}
        for solver, nfe in sorted(self.predictors):
            out.setdefault(solver, []).append(nfe)
        return out

    def latents(self, seeds: Sequence[int]) -> torch.Tensor:
        """One N(0, I) latent per seed, each from its own generator (batch-independent)."""
        import torch

        return torch.stack(
            [
                torch.randn(self.latent_shape, generator=torch.Generator().manual_seed(int(s)))
                for s in seeds
            ]
        )

    def sampler_version(self, solver: str, nfe: int) -> str:
        """What a stored sample depends on besides solver and NFE: the U-Net's version, plus
        the AMED predictor's for an AMED solver (a retrained predictor draws other images)."""
        predictor = self.predictors.get((solver, nfe))
        if predictor is None or "version" not in predictor.meta:
            return self.version
        return f"{self.version}+{predictor.meta['version']}"

    def sample(self, seeds: Sequence[int], solver: str, nfe: int) -> np.ndarray:
        """uint8 images (N, H, W, C) (C = 1 for grey models); deterministic per seed.
        ValueError for an unknown solver, an unreachable NFE, or an AMED solver without a
        predictor for this NFE."""
        from ml import images as image_sets
        from ml.diffusion.samplers import AMED_SOLVERS, sample

        if not seeds:
            c, h, w = self.shape
            return np.zeros((0, h, w, c), dtype=np.uint8)
        predictor = None
        if solver in AMED_SOLVERS:
            predictor = self.predictors.get((solver, nfe))
            if predictor is None:
                have = self.predictor_nfes().get(solver, [])
                raise ValueError(
                    f"no {solver} predictor for NFE {nfe} in this checkpoint "
                    f"(have: {have or 'none'}; run `papershelf ml train-amed`)"
                )
        x = sample(
            self.denoiser, self.latents(seeds).to(self.device), solver, nfe, predictor=predictor
        )
        if self.space is not None:
            x = self.space.decode(x)
        return image_sets.to_uint8(x)

    def sample_timed(self, seeds: Sequence[int], solver: str, nfe: int) -> tuple[np.ndarray, float]:
        """(images, wall seconds)."""
        started = time.perf_counter()
        images = self.sample(seeds, solver, nfe)
        return images, time.perf_counter() - started
