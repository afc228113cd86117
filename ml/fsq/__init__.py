"""FSQ image tokens: finite scalar quantization (and a VQ-VAE baseline behind the same
interface) in a convolutional autoencoder for 64×64 figure thumbnails.

This module stays torch-free so that the web app can ask whether a checkpoint exists.
"""

from __future__ import annotations

from pathlib import Path

WEIGHTS = "model.safetensors"
CONFIG = "config.json"


def checkpoint_present(path: Path) -> bool:
    """Whether `path` holds a tokenizer checkpoint (weights and config); imports no torch."""
    path = Path(path)
    return (path / WEIGHTS).is_file() and (path / CONFIG).is_file()
