"""Tokenizer checkpoints (the layout of ml.checkpoints): the weights and the architecture,
with a version naming the quantizer and its codebook."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeAlias

import torch

from ml import checkpoints
from ml.checkpoints import cpu_state, weights_digest
from ml.fsq.autoencoder import Tokenizer, TokenizerConfig

Checkpoint: TypeAlias = checkpoints.Checkpoint[TokenizerConfig]


def version_for(cfg: TokenizerConfig, state: dict[str, torch.Tensor]) -> str:
    """e.g. `fsq-8x5x5x5-<digest10>` or `vq-1024-<digest10>`."""
    shape = "x".join(map(str, cfg.levels)) if cfg.quantizer == "fsq" else str(cfg.codebook_size)
    return f"{cfg.quantizer}-{shape}-{weights_digest(state)}"


def save(path: Path, model: Tokenizer, meta: dict[str, Any] | None = None) -> str:
    """Write the checkpoint; returns its version string."""
    state = cpu_state(model)
    version = version_for(model.cfg, state)
    checkpoints.write(path, state, version, model.cfg.to_dict(), meta or {})
    return version


def read(path: Path) -> Checkpoint:
    return checkpoints.read(
        path,
        TokenizerConfig.from_dict,
        f"no FSQ tokenizer checkpoint in {path} (train one with `papershelf ml train-fsq`)",
    )


def load_model(path: Path) -> tuple[Tokenizer, Checkpoint]:
    """The tokenizer with its weights (on the CPU, in eval mode) and the checkpoint it came from."""
    ckpt = read(path)
    model = Tokenizer(ckpt.config)
    model.load_state_dict(ckpt.state)
    return model.eval(), ckpt
