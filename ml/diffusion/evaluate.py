"""Evaluating the samplers on a trained U-Net: for every solver × NFE, FD, KID and sliced
Wasserstein distance in a small classifier's features, and RMSE to a high-NFE Heun teacher
from the same noise; wall time per image; and the trajectory PCA check.

Every solver starts from the same latents (seeded), so RMSE-to-teacher compares only the
integration error. FD/KID use `samples` generated images against a fixed real reference set
(Fashion: the first `reference` t10k images; plots: the 450 training plots — the 45 held-out
ones are too few for a 64-d covariance), and the same figures for a real set of the same size
(Fashion: training images; plots: the 45 held-out) give the floor a perfect sampler would reach.
AMED solvers are evaluated where the checkpoint dir holds a predictor for that NFE, and listed
as missing otherwise.
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ml.checkpoints import checkpoint_present, read_version
from ml.device import pick_device
from ml.diffusion import checkpoint, metrics
from ml.diffusion.latent import CodeSpace
from ml.diffusion.samplers import AMED_SOLVERS, SOLVERS, plan, sample, teacher
from ml.diffusion.train import image_set
from ml.diffusion.unet import EDMDenoiser
from ml.progress import Quiet, Reporter

CLASSIFIER_FORMAT = 1
#: Heun on this many steps (NFE 2·steps − 1) draws the trajectories of the PCA check.
PCA_STEPS = 16


@dataclass
class EvalConfig:
    checkpoint: Path
    images_dir: Path
    nfes: list[int] = field(default_factory=lambda: [3, 5, 7, 9])
    solvers: list[str] = field(default_factory=lambda: list(SOLVERS))
    samples: int = 256
    batch: int = 256
    teacher_steps: int = 32
    seed: int = 0
    reference: int = 2000
    classifier_steps: int = 300
    pca_samples: int = 32
    #: >1: also score `groups` disjoint equal chunks of the samples (independent noise), for
    #: the spread of every figure and whether a comparison keeps its sign in each chunk.
    groups: int = 1
    device: str = "auto"

    def describe(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: v for k, v in d.items() if k not in {"checkpoint", "images_dir", "device"}}


def _classifier_files(path: Path, dataset: str) -> tuple[Path, Path]:
    return path / f"classifier-{dataset}.safetensors", path / f"classifier-{dataset}.json"


def metric_classifier(
    path: Path | None, dataset: str, images_dir: Path, steps: int, seed: int, device: torch.device
) -> tuple[metrics.FeatureNet, dict[str, Any]]:
    """The feature classifier for `dataset`: cached in `path` when it was trained with the same
    settings, else trained now (and cached when `path` is given)."""
    want = {"format": CLASSIFIER_FORMAT, "dataset": dataset, "steps": steps, "seed": seed}
    if path is not None:
        weights, info_file = _classifier_files(path, dataset)
        if weights.is_file() and info_file.is_file():
            info = json.loads(info_file.read_text())
            if all(info.get(k) == v for k, v in want.items()):
                net = metrics.FeatureNet(info["channels"], info["classes"])
                net.load_state_dict(load_file(str(weights)))
                return net.to(device).eval(), {**info, "cached": True}
    x, y, classes = metrics.labelled_images(dataset, images_dir)
    net = metrics.train_classifier(
        x, y, classes, steps=steps, seed=seed, augment=dataset == "plots", device=device
    )
    info = {**want, "channels": x.shape[-1], "classes": classes}
    data = image_set(dataset, images_dir)
    if data.held_out_labels is not None:
        info["held_out_accuracy"] = round(
            metrics.accuracy(net, data.held_out[:2000], data.held_out_labels[:2000]), 4
        )
    else:
        info["train_accuracy"] = round(metrics.accuracy(net, x, y), 4)
    if path is not None:
        weights, info_file = _classifier_files(path, dataset)
        tmp = weights.with_name(f".{weights.name}.tmp")
        save_file({k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}, str(tmp))
        os.replace(tmp, weights)
        tmp_info = info_file.with_name(f".{info_file.name}.tmp")
        tmp_info.write_text(json.dumps(info, indent=2))
        os.replace(tmp_info, info_file)
    return net, {**info, "cached": False}


def real_sets(
    dataset: str, images_dir: Path, samples: int, reference: int
) -> tuple[np.ndarray, np.ndarray]:
    """(reference images, a real set of about `samples` images for the floor)."""
    data = image_set(dataset, images_dir)
    if dataset == "fashion":
        return data.held_out[:reference], data.train[:samples]
    return data.train, data.held_out


def latents_for(n: int, shape: tuple[int, ...], seed: int) -> torch.Tensor:
    return torch.randn(n, *shape, generator=torch.Generator().manual_seed(seed))


def _then(
    first: Callable[[torch.Tensor], torch.Tensor], second: Callable[[torch.Tensor], torch.Tensor]
) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda z: second(first(z))


def _batched(
    fn: Callable[[torch.Tensor], torch.Tensor], latents: torch.Tensor, batch: int
) -> torch.Tensor:
    return torch.cat([fn(latents[i : i + batch]) for i in range(0, len(latents), batch)])


def _scores(
    feats: np.ndarray, out: torch.Tensor, ref_feats: metrics.Reference, ref_images: torch.Tensor
) -> dict[str, float]:
    return {**metrics.set_scores(feats, ref_feats), "rmse": metrics.rmse(out, ref_images)}


def _group_scores(
    groups: int,
    feats: np.ndarray,
    out: torch.Tensor,
    ref_feats: metrics.Reference,
    ref_images: torch.Tensor,
) -> dict[str, list[float]]:
    """Every score on each of `groups` disjoint chunks: {metric: [value per chunk]}."""
    size = len(feats) // groups
    chunks = [slice(g * size, (g + 1) * size) for g in range(groups)]
    per = [_scores(feats[c], out[c], ref_feats, ref_images[c]) for c in chunks]
    return {k: [p[k] for p in per] for k in per[0]}


def evaluate(
    cfg: EvalConfig,
    report: Reporter | None = None,
    denoiser: EDMDenoiser | None = None,
    space: CodeSpace | None = None,
) -> dict[str, Any]:
    """Run the whole evaluation; returns the figures as a JSON-ready dict. A latent model's
    samples are decoded (`space`, read from the checkpoint when the denoiser is) and scored as
    images, RMSE to the teacher included."""
    report = report or Quiet()
    device = pick_device(cfg.device)
    unknown = [s for s in cfg.solvers if s not in SOLVERS]
    if cfg.groups > 1 and cfg.samples // cfg.groups < 2:
        raise ValueError("each group needs at least 2 samples")
    if unknown:
        raise ValueError(f"unknown solver {unknown[0]!r}; choose from {', '.join(SOLVERS)}")
    if denoiser is None:
        denoiser, ckpt = checkpoint.load_denoiser(cfg.checkpoint, device)
        version, dataset = ckpt.version, ckpt.meta.get("dataset", "fashion")
        space = checkpoint.load_space(cfg.checkpoint, ckpt, device)
    else:
        version = read_version(cfg.checkpoint) or "unsaved"
        dataset = "fashion" if denoiser.cfg.image_channels == 1 and space is None else "plots"
    denoiser = denoiser.to(device).eval()
    shape = denoiser.cfg.shape
    if space is not None:
        space = space.to(device)
    decode: Callable[[torch.Tensor], torch.Tensor] = (
        space.decode if space is not None else (lambda x: x)
    )

    report.log("metric classifier …")
    net, classifier_info = metric_classifier(
        cfg.checkpoint if checkpoint_present(cfg.checkpoint) else None,
        dataset,
        cfg.images_dir,
        cfg.classifier_steps,
        cfg.seed,
        device,
    )
    reference, real = real_sets(dataset, cfg.images_dir, cfg.samples, cfg.reference)
    ref_feats = metrics.Reference.of(metrics.features(net, reference))
    floor: dict[str, Any] = metrics.set_scores(metrics.features(net, real), ref_feats)
    floor["n"] = len(real)

    latents = latents_for(cfg.samples, shape, cfg.seed).to(device)
    report.log(f"teacher: Heun, {cfg.teacher_steps} steps …")
    started = time.perf_counter()
    ref_images = _batched(
        lambda z: decode(teacher(denoiser, z, steps=cfg.teacher_steps)), latents, cfg.batch
    )
    teacher_seconds = time.perf_counter() - started
    teacher_feats = metrics.features(net, ref_images)
    teacher_row = {
        **metrics.set_scores(teacher_feats, ref_feats),
        "nfe": 2 * cfg.teacher_steps,
        "seconds_per_image": teacher_seconds / cfg.samples,
    }

    rows: list[dict[str, Any]] = []
    missing: list[dict[str, Any]] = []
    jobs = [(s, n) for s in cfg.solvers for n in cfg.nfes]
    report.phase("sampling", len(jobs))
    for solver, nfe in jobs:
        try:
            plan(solver, nfe)
        except ValueError as exc:
            missing.append({"solver": solver, "nfe": nfe, "reason": str(exc)})
            report.advance(1)
            continue
        predictor = None
        if solver in AMED_SOLVERS:
            predictor = checkpoint.load_amed(cfg.checkpoint, solver, nfe)
            if predictor is None:
                missing.append(
                    {
                        "solver": solver,
                        "nfe": nfe,
                        "reason": f"no predictor (run `papershelf ml train-amed --solver "
                        f"{solver} --nfe {nfe}`)",
                    }
                )
                report.advance(1)
                continue
            predictor = predictor.to(device)
        started = time.perf_counter()
        draw = functools.partial(sample, denoiser, solver=solver, nfe=nfe, predictor=predictor)
        out = _batched(_then(draw, decode), latents, cfg.batch)
        seconds = time.perf_counter() - started
        feats = metrics.features(net, out)
        rows.append(
            {
                "solver": solver,
                "nfe": nfe,
                **_scores(feats, out, ref_feats, ref_images),
                "seconds_per_image": seconds / cfg.samples,
            }
        )
        if cfg.groups > 1:
            rows[-1]["groups"] = _group_scores(cfg.groups, feats, out, ref_feats, ref_images)
        report.advance(1)

    pca_latents = latents[: cfg.pca_samples]
    _, trajectory = sample(denoiser, pca_latents, "heun", 2 * PCA_STEPS - 1, return_trajectory=True)
    top = metrics.trajectory_variance_fractions(trajectory, 3)
    pca = {
        "solver": "heun",
        "nfe": 2 * PCA_STEPS - 1,
        "points": len(trajectory),
        "samples": len(pca_latents),
        "top1_variance_fraction": top[0],
        "top2_variance_fraction": top[1],
        "top3_variance_fraction": top[2],
        # 1 − top-2 share: what lies outside the best plane (the share itself rounds to 1).
        "residual_after_2": 1.0 - top[1],
    }
    return {
        "version": version,
        "dataset": dataset,
        "shape": list(shape),
        "space": "pixels" if space is None else f"fsq ({space.version})",
        "device": str(device),
        "threads": torch.get_num_threads(),
        "config": cfg.describe(),
        "classifier": classifier_info,
        "floor": floor,
        "teacher": teacher_row,
        "rows": rows,
        "missing": missing,
        "pca": pca,
    }


def row(result: dict[str, Any], solver: str, nfe: int) -> dict[str, Any] | None:
    """The figures of one solver at one NFE in an `evaluate` result, or None."""
    for r in result["rows"]:
        if r["solver"] == solver and r["nfe"] == nfe:
            return r
    return None
