"""The TL;DR summarizer: a frozen MiniLM encoder and a small copy-attention decoder.

`load(path)` returns a `Summarizer`; everything outside `ml/` reaches it through the ML
worker pool (`workers.ml`), never by importing torch itself.

May import: the standard library, numpy, torch, transformers, and the rest of `ml`; never
`app` or `workers`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol


class Summarizer(Protocol):
    """What the ML pool and the CLI need of a loaded model."""

    #: Identifies the checkpoint; a TL;DR written by another version is stale.
    version: str

    def summarize(
        self, items: Sequence[tuple[str, str]], *, beams: int = 1, batch_size: int = 32
    ) -> list[str]:
        """One TL;DR per (title, abstract), in order; deterministic."""
        ...


def load(path: Path, device: str = "auto") -> Summarizer:
    from ml.summarizer.inference import LoadedSummarizer

    return LoadedSummarizer.from_checkpoint(path, device=device)
