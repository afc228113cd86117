"""The one checkpoint layout every model here shares, and its reader and writer.

A checkpoint is a directory holding `model.safetensors` (the weights, with the version in
their metadata) and `config.json` ({format, version, model: the architecture, meta: how it
was trained}). The version ends in a digest of the weights, so it changes whenever they do.
Writes are atomic (temporary file + os.replace): a killed run keeps the previous checkpoint.

The summarizer, the FSQ tokenizer and the diffusion U-Net name their own versions and
architecture configs (their `checkpoint` modules); the AMED predictors keep their own files
beside the U-Net. torch loads lazily: `checkpoint_present` and `read_version` cost no torch
import.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    import torch

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
FORMAT = 1

ConfigT = TypeVar("ConfigT")


@dataclass
class Checkpoint(Generic[ConfigT]):
    """A checkpoint as read: the architecture config, the version, the training metadata
    and the weights (CPU tensors)."""

    config: ConfigT
    version: str
    meta: dict[str, Any]
    state: dict[str, torch.Tensor]


def checkpoint_present(path: Path) -> bool:
    """Whether `path` holds a checkpoint (weights and config); imports no torch."""
    path = Path(path)
    return (path / WEIGHTS).is_file() and (path / CONFIG).is_file()


def read_version(path: Path) -> str | None:
    """The version of the checkpoint in `path`, or None (no torch import)."""
    if not checkpoint_present(path):
        return None
    try:
        return str(json.loads((Path(path) / CONFIG).read_text())["version"])
    except (ValueError, KeyError):
        return None


def read(
    path: Path, config_from: Callable[[dict[str, Any]], ConfigT], missing: str
) -> Checkpoint[ConfigT]:
    """Read the checkpoint in `path`; FileNotFoundError(`missing`) when there is none,
    ValueError for a format this code does not know."""
    from safetensors.torch import load_file

    path = Path(path)
    if not checkpoint_present(path):
        raise FileNotFoundError(missing)
    data = json.loads((path / CONFIG).read_text())
    if data.get("format") != FORMAT:
        raise ValueError(f"{path / CONFIG}: unsupported checkpoint format {data.get('format')!r}")
    return Checkpoint(
        config_from(data["model"]),
        data["version"],
        data.get("meta", {}),
        load_file(str(path / WEIGHTS)),
    )


def write(
    path: Path,
    state: dict[str, torch.Tensor],
    version: str,
    model: dict[str, Any],
    meta: dict[str, Any],
) -> None:
    """Write a checkpoint (weights first, then the config that makes it present)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    write_weights(path / WEIGHTS, state, version)
    write_json(path / CONFIG, {"format": FORMAT, "version": version, "model": model, "meta": meta})


def cpu_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The module's weights as contiguous CPU tensors (what safetensors stores)."""
    return {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}


def weights_digest(state: dict[str, torch.Tensor]) -> str:
    """Ten hex digits of a SHA-256 over the names and float32 values, in name order."""
    h = hashlib.sha256()
    for name in sorted(state):
        h.update(name.encode())
        h.update(state[name].detach().cpu().contiguous().float().numpy().tobytes())
    return h.hexdigest()[:10]


def write_weights(path: Path, state: dict[str, torch.Tensor], version: str) -> None:
    """Write a safetensors file atomically, with the version in its metadata."""
    from safetensors.torch import save_file

    tmp = path.with_name(f".{path.name}.tmp")
    save_file(state, str(tmp), metadata={"version": version})
    os.replace(tmp, path)


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write a JSON file atomically."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)
