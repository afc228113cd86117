"""The fast CPU backend: the packaged MiniLM exported to ONNX with its attention fused.

The model file is made here from the packaged weights on first use (no download): a torch
export, then ONNX Runtime's BERT fusions (one Attention, SkipLayerNormalization and BiasGelu
node per layer instead of dozens of small ops). It stays fp32: dynamic int8 (per-tensor
activations, the only kind ONNX Runtime's CPU kernels take) moved too many neighbours,
even with only the first FFN projection quantised (recall@50 0.963 over 1000 papers, the
bar being 0.98). The file lands in the caller's cache directory under a name that carries every
version it depends on, written atomically: processes that race both build it, the last
`os.replace` wins, and no reader ever opens half a file.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnxruntime as ort  # type: ignore[import-untyped]
import torch
import transformers
from onnxruntime.transformers import optimizer  # type: ignore[import-untyped]

from ml.embeddings.model import DIM, Embedder
from ml.summarizer.text import PACKAGED_ENCODER, encoder_dir

HEADS = 12
#: Bumped whenever the recipe changes, so an old cached file is not reused.
RECIPE = "fused-fp32-v1"
_INPUTS = ("input_ids", "attention_mask")


class _LastHidden(torch.nn.Module):
    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        out = self.model(input_ids=input_ids, attention_mask=attention_mask)
        return out.last_hidden_state


def model_name() -> str:
    """The cached file's name: recipe, weights and the versions that shape the graph."""
    weights = encoder_dir(PACKAGED_ENCODER) / "model.safetensors"
    stamp = f"{RECIPE}:{weights.stat().st_size}:{torch.__version__}:{ort.__version__}"
    digest = hashlib.sha256(stamp.encode()).hexdigest()[:12]
    return f"{PACKAGED_ENCODER}-{RECIPE}-{digest}.onnx"


def export(dest: Path) -> None:
    """The fp32 graph (dynamic batch and length) from the packaged weights."""
    path = encoder_dir(PACKAGED_ENCODER)
    # Eager attention exports the plain softmax(QK^T)V pattern ONNX Runtime's fusion knows.
    model = transformers.AutoModel.from_pretrained(str(path), attn_implementation="eager")
    axes = {0: "batch", 1: "tokens"}
    # The tracer warns about shapes it fixes (the mask's padding length, always 0 here: the
    # mask is as long as the ids); the fused graph is checked against torch in the tests.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _export(model, dest, axes)


def _export(model: torch.nn.Module, dest: Path, axes: dict[int, str]) -> None:
    sample = torch.ones((2, 8), dtype=torch.int64)
    torch.onnx.export(
        _LastHidden(model.eval()),
        (sample, sample),
        str(dest),
        input_names=list(_INPUTS),
        output_names=["hidden"],
        dynamic_axes={name: axes for name in (*_INPUTS, "hidden")},
        opset_version=17,
        dynamo=False,
    )


def build(dest: Path) -> None:
    """Export and fuse into `dest` (the unfused export beside it, then removed)."""
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".build-") as tmp:
        raw = Path(tmp) / "raw.onnx"
        export(raw)
        graph = optimizer.optimize_model(
            str(raw), model_type="bert", num_heads=HEADS, hidden_size=DIM
        )
        graph.save_model_to_file(str(dest))


#: The tokenizer beside the model: a web process without the ML extra (no packaged model)
#: embeds queries with these two files alone (app.search.query_vector).
TOKENIZER_FILE = f"{PACKAGED_ENCODER}-tokenizer.json"


def _copy_tokenizer(cache_dir: Path) -> None:
    final = cache_dir / TOKENIZER_FILE
    source = encoder_dir(PACKAGED_ENCODER) / "tokenizer.json"
    if final.is_file() and final.stat().st_size == source.stat().st_size:
        return
    fd, tmp_name = tempfile.mkstemp(dir=cache_dir, prefix=f".{final.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        tmp.write_bytes(source.read_bytes())
        tmp.chmod(0o644)
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


def cached_model(cache_dir: Path) -> Path:
    """The fused model in `cache_dir`, built there first when missing."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    final = cache_dir / model_name()
    if final.is_file():
        _copy_tokenizer(cache_dir)
        return final
    fd, tmp_name = tempfile.mkstemp(dir=cache_dir, prefix=f".{final.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        build(tmp)
        tmp.chmod(0o644)  # mkstemp makes it private; other processes read it too
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    _copy_tokenizer(cache_dir)  # after the model: a failed export leaves nothing
    return final


class OnnxEmbedder(Embedder):
    """MiniLM (fp32, fused) in ONNX Runtime, on the CPU.

    One session, one thread per run, and `threads` batches at a time: whole batches in
    parallel keep every core busy, where one batch split over cores waits on its slowest
    part at every op."""

    backend = "onnx-fp32-cpu"

    def __init__(self, cache_dir: Path, threads: int | None = None) -> None:
        super().__init__()
        self.path = cached_model(cache_dir)
        self.threads = threads or os.cpu_count() or 1
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            str(self.path), options, providers=["CPUExecutionProvider"]
        )

    def hidden(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        (states,) = self.session.run(["hidden"], {"input_ids": ids, "attention_mask": mask})
        return np.asarray(states, dtype=np.float32)

    def run_batches(self, run: Callable[[list[int]], None], batches: list[list[int]]) -> None:
        if self.threads == 1 or len(batches) == 1:
            super().run_batches(run, batches)
            return
        # ONNX Runtime releases the GIL in run(), and a session may be run from many threads.
        with ThreadPoolExecutor(self.threads) as pool:
            for _ in pool.map(run, batches):
                pass
