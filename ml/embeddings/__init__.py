"""Paper embeddings: all-MiniLM-L6-v2 sentence embeddings of title and abstract.

`load_embedder()` gives an `Embedder`; `Embedder.embed([(title, abstract), ...])` returns
unit-length float32 vectors, one row per paper. The model is the packaged MiniLM (no
download), pooled the way all-MiniLM-L6-v2 defines it (mean over tokens, then L2
normalisation), up to MAX_TOKENS word pieces of "title. abstract".

The backends compute the same space (`VERSION`): torch (fp32 or bf16 weights on a CPU,
fp16/bf16 autocast on CUDA) and, on a CPU, a fused ONNX Runtime model
(`ml.embeddings.onnx_fused`) exported into a cache directory on first use. `auto` on a CPU
takes bf16 where the CPU has it natively, else the ONNX model.
"""

from ml.embeddings.model import (
    BACKENDS,
    DIM,
    MAX_TOKENS,
    VERSION,
    Embedder,
    TorchEmbedder,
    load_embedder,
    paper_text,
)

__all__ = [
    "BACKENDS",
    "DIM",
    "MAX_TOKENS",
    "VERSION",
    "Embedder",
    "TorchEmbedder",
    "load_embedder",
    "paper_text",
]
