"""Checkpoints: a directory with the trained weights (safetensors), a config and a version.

Only the decoder side is stored; the frozen encoder is named in the config and loaded from
its own checkpoint (by default the packaged MiniLM), so a checkpoint is about 20 MB.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from ml.checkpoints import cpu_state, weights_digest, write_json, write_weights
from ml.summarizer.model import ModelConfig, Summarizer

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
FORMAT = 1


@dataclass
class Checkpoint:
    config: ModelConfig
    version: str
    meta: dict[str, Any]
    state: dict[str, torch.Tensor]


def save(path: Path, model: Summarizer, meta: dict[str, Any]) -> str:
    """Write the checkpoint atomically (a killed run keeps the previous one); returns the
    version string, which changes whenever the weights do."""
    state = cpu_state(model)
    version = f"{meta.get('name', 'tldr')}-{meta.get('objective', 'ce')}-{weights_digest(state)}"
    path.mkdir(parents=True, exist_ok=True)
    write_weights(path / WEIGHTS, state, version)
    write_json(
        path / CONFIG,
        {"format": FORMAT, "version": version, "model": model.cfg.to_dict(), "meta": meta},
    )
    return version


def exists(path: Path) -> bool:
    return (path / WEIGHTS).is_file() and (path / CONFIG).is_file()


def read(path: Path) -> Checkpoint:
    if not exists(path):
        raise FileNotFoundError(
            f"no summarizer checkpoint in {path} (train one with `papershelf ml train-summarizer`)"
        )
    data = json.loads((path / CONFIG).read_text())
    if data.get("format") != FORMAT:
        raise ValueError(f"{path / CONFIG}: unsupported checkpoint format {data.get('format')!r}")
    return Checkpoint(
        ModelConfig.from_dict(data["model"]),
        data["version"],
        data.get("meta", {}),
        load_file(str(path / WEIGHTS)),
    )
