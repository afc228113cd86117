"""Diffusion checkpoints: one directory holding the U-Net (the layout of ml.checkpoints) and
the AMED predictors made for it.

    model.safetensors            EMA weights of the U-Net
    config.json                  {format, version, model: UNetConfig, meta: {dataset, steps, …}}
    amed-<solver>-nfe<k>.*       predictors from `papershelf ml train-amed` (ml.diffusion.amed)
    classifier-<dataset>.*       the metric classifier, cached by `eval-diffusion`
    tokenizer/                   a latent model's copy of its FSQ tokenizer (meta.latent
                                 names the space and the codes' scale; ml.diffusion.latent)

The version (`diffusion-<dataset>-<digest10>`) changes whenever the weights do (a latent
model's digest covers its tokenizer's weights too). Saving a
new U-Net removes the old predictors: they were distilled against the old weights.
The data set a U-Net learned (`meta.dataset`: "fashion" or "plots") decides what it may
draw: only a plots model makes paper thumbnails. Checkpoints that lack the field are read
from their version's middle part; anything else is None (unknown: never a thumbnail).

torch loads lazily: finding what is saved here costs no torch import.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

from ml import checkpoints
from ml.checkpoints import checkpoint_present, read_version

if TYPE_CHECKING:
    import torch

    from ml.diffusion.amed import AMEDPredictor
    from ml.diffusion.latent import CodeSpace
    from ml.diffusion.unet import EDMDenoiser, UNetConfig

PREDICTOR_PREFIX = "amed-"
_PREDICTOR_RE = re.compile(r"^amed-(amed|amed_plugin)-nfe(\d+)\.safetensors$")
_VERSION_RE = re.compile(r"^diffusion-([a-z0-9_]+)-[0-9a-f]+$")
DATASETS = ("fashion", "plots")

Checkpoint: TypeAlias = "checkpoints.Checkpoint[UNetConfig]"


def save(
    path: Path, model: EDMDenoiser, meta: dict[str, Any], space: CodeSpace | None = None
) -> str:
    """Write the U-Net (atomically; a latent model's tokenizer first) and return its version;
    stale predictors are removed."""
    import shutil

    from ml.checkpoints import cpu_state, weights_digest
    from ml.diffusion import latent

    state = cpu_state(model)
    digested = dict(state)
    if space is not None:
        latent.save(path, space)
        digested.update({f"tokenizer.{k}": v for k, v in cpu_state(space.tokenizer).items()})
    else:
        shutil.rmtree(path / latent.TOKENIZER_DIR, ignore_errors=True)
    version = f"diffusion-{meta.get('dataset', 'custom')}-{weights_digest(digested)}"
    previous = read_version(path)
    checkpoints.write(path, state, version, model.cfg.to_dict(), meta)
    if previous != version:
        for stale in path.glob(f"{PREDICTOR_PREFIX}*"):
            stale.unlink(missing_ok=True)
    return version


def dataset_from(meta: dict[str, Any], version: str | None) -> str | None:
    """The data set a U-Net was trained on: `meta["dataset"]`, else the one its version
    names (`diffusion-<dataset>-<digest>`), else None. Only a known name counts."""
    named = meta.get("dataset")
    if not isinstance(named, str):
        m = _VERSION_RE.match(version or "")
        named = m.group(1) if m else None
    return named if named in DATASETS else None


def dataset_of(path: Path) -> str | None:
    """`dataset_from` for the checkpoint in `path` (None when there is none; no torch)."""
    if not checkpoint_present(path):
        return None
    try:
        data = json.loads((Path(path) / checkpoints.CONFIG).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    meta = data.get("meta")
    version = data.get("version")
    return dataset_from(
        meta if isinstance(meta, dict) else {}, version if isinstance(version, str) else None
    )


def read(path: Path) -> Checkpoint:
    from ml.diffusion.unet import UNetConfig

    return checkpoints.read(
        path,
        UNetConfig.from_dict,
        f"no diffusion checkpoint in {path} (train one with `papershelf ml train-diffusion`)",
    )


def load_denoiser(path: Path, device: str | torch.device = "cpu") -> tuple[EDMDenoiser, Checkpoint]:
    """The U-Net in eval mode on `device`, and its checkpoint record."""
    from ml.diffusion.unet import EDMDenoiser

    ckpt = read(path)
    model = EDMDenoiser(ckpt.config)
    model.load_state_dict(ckpt.state)
    return model.to(device).eval(), ckpt


def load_space(
    path: Path, ckpt: Checkpoint, device: str | torch.device = "cpu"
) -> CodeSpace | None:
    """The code space a checkpoint's U-Net works in (None: pixels)."""
    from ml.diffusion import latent

    space = latent.load(path, ckpt.meta)
    return space.to(device) if space is not None else None


# --- AMED predictors -------------------------------------------------------------------


def predictor_stem(path: Path, solver: str, nfe: int) -> Path:
    """`<dir>/amed-<solver>-nfe<k>` (the predictor's files add .safetensors / .json)."""
    return path / f"{PREDICTOR_PREFIX}{solver}-nfe{nfe}"


def predictors_present(path: Path) -> dict[tuple[str, int], Path]:
    """{(solver, nfe): weights file} for the predictors in `path` distilled for the U-Net
    that is there now (no torch import)."""
    found: dict[tuple[str, int], Path] = {}
    version = read_version(path)
    if version is None:
        return found
    for file in sorted(path.iterdir()):
        m = _PREDICTOR_RE.match(file.name)
        if not m:
            continue
        try:
            meta = json.loads(file.with_suffix(".json").read_text()).get("meta", {})
        except (OSError, ValueError):
            continue
        if meta.get("denoiser") in (None, version):
            found[(m.group(1), int(m.group(2)))] = file
    return found


def save_amed(path: Path, predictor: AMEDPredictor) -> Path:
    """Store a predictor beside the U-Net it was distilled for; returns its weights file."""
    from ml.diffusion.amed import save_predictor

    if not checkpoint_present(path):
        raise FileNotFoundError(f"no diffusion checkpoint in {path} to attach a predictor to")
    target = predictor_stem(path, predictor.solver, predictor.nfe).with_suffix(".safetensors")
    predictor.meta = {**getattr(predictor, "meta", {}), "denoiser": read_version(path)}
    save_predictor(target, predictor)
    return target


def load_amed(
    path: Path, solver: str, nfe: int, device: str | torch.device = "cpu"
) -> AMEDPredictor | None:
    """The predictor for (solver, nfe) stored in `path`, or None."""
    from ml.diffusion.amed import load_predictor

    file = predictors_present(path).get((solver, nfe))
    return load_predictor(file, device) if file is not None else None
