"""What every model checkpoint here shares: a digest of the weights (the suffix of each
version string, so the version changes whenever the weights do) and atomic writes
(temporary file + os.replace), so a killed run keeps the previous checkpoint whole.

The summarizer, the FSQ tokenizer, the diffusion U-Net and the AMED predictors each keep
their own file layout and config in their package; they write through these helpers.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file


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
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(state, str(tmp), metadata={"version": version})
    os.replace(tmp, path)


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write a JSON file atomically."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)
