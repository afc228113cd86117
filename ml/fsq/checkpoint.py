"""Tokenizer checkpoints: a directory with the weights (safetensors) and `config.json` (the
architecture, a version string that changes whenever the weights do, training metadata).

Written atomically (temporary files + os.replace), so a killed run keeps the previous one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from ml.checkpoints import cpu_state, weights_digest, write_json, write_weights
from ml.fsq import CONFIG, WEIGHTS, checkpoint_present
from ml.fsq.autoencoder import Tokenizer, TokenizerConfig

FORMAT = 1


@dataclass
class Checkpoint:
    config: TokenizerConfig
    version: str
    meta: dict[str, Any]
    state: dict[str, torch.Tensor]


def version_for(cfg: TokenizerConfig, state: dict[str, torch.Tensor]) -> str:
    """e.g. `fsq-8x5x5x5-<digest10>` or `vq-1024-<digest10>`."""
    shape = "x".join(map(str, cfg.levels)) if cfg.quantizer == "fsq" else str(cfg.codebook_size)
    return f"{cfg.quantizer}-{shape}-{weights_digest(state)}"


def save(path: Path, model: Tokenizer, meta: dict[str, Any] | None = None) -> str:
    """Write the checkpoint; returns its version string."""
    state = cpu_state(model)
    version = version_for(model.cfg, state)
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    write_weights(path / WEIGHTS, state, version)
    write_json(
        path / CONFIG,
        {"format": FORMAT, "version": version, "model": model.cfg.to_dict(), "meta": meta or {}},
    )
    return version


def read(path: Path) -> Checkpoint:
    path = Path(path)
    if not checkpoint_present(path):
        raise FileNotFoundError(
            f"no FSQ tokenizer checkpoint in {path} (train one with `papershelf ml train-fsq`)"
        )
    data = json.loads((path / CONFIG).read_text())
    if data.get("format") != FORMAT:
        raise ValueError(f"{path / CONFIG}: unsupported checkpoint format {data.get('format')!r}")
    return Checkpoint(
        TokenizerConfig.from_dict(data["model"]),
        data["version"],
        data.get("meta", {}),
        load_file(str(path / WEIGHTS)),
    )


def load_model(path: Path) -> tuple[Tokenizer, Checkpoint]:
    """The tokenizer with its weights (on the CPU, in eval mode) and the checkpoint it came from."""
    ckpt = read(path)
    model = Tokenizer(ckpt.config)
    model.load_state_dict(ckpt.state)
    return model.eval(), ckpt
