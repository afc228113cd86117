"""Summarizer checkpoints (the layout of ml.checkpoints): the decoder's weights and its
config.

Only the decoder side is stored; the frozen encoder is named in the config and loaded from
its own checkpoint (by default the packaged MiniLM), so a checkpoint is about 20 MB.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeAlias

from ml import checkpoints
from ml.checkpoints import cpu_state, weights_digest
from ml.summarizer.model import ModelConfig, Summarizer

Checkpoint: TypeAlias = checkpoints.Checkpoint[ModelConfig]


def save(path: Path, model: Summarizer, meta: dict[str, Any]) -> str:
    """Write the checkpoint atomically (a killed run keeps the previous one); returns the
    version string, which changes whenever the weights do."""
    state = cpu_state(model)
    version = f"{meta.get('name', 'tldr')}-{meta.get('objective', 'ce')}-{weights_digest(state)}"
    checkpoints.write(path, state, version, model.cfg.to_dict(), meta)
    return version


def read(path: Path) -> Checkpoint:
    return checkpoints.read(
        path,
        ModelConfig.from_dict,
        f"no summarizer checkpoint in {path} (train one with `papershelf ml train-summarizer`)",
    )
