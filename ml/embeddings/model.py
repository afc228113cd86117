"""The embedding model: the packaged MiniLM, mean pooling, unit length, on two backends.

`Embedder` holds what every backend shares (the text, the tokenizer, length-sorted batches,
the pooling); a backend only maps a padded batch of word pieces to hidden states.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import transformers

from ml.device import bf16_supported, pick_device
from ml.summarizer.text import PACKAGED_ENCODER, encoder_dir

#: Word pieces per paper: all-MiniLM-L6-v2's own max_seq_length (its tokenizer config says
#: 128, which would cut most abstracts in half).
MAX_TOKENS = 256
DIM = 384
#: The embedding space: model, pooling and length. Vectors with the same version are
#: comparable whatever backend computed them.
VERSION = f"{PACKAGED_ENCODER}:mean:{MAX_TOKENS}"
BACKENDS = ("auto", "torch", "bf16", "onnx")

_SPACE = re.compile(r"\s+")


def paper_text(title: str, abstract: str) -> str:
    """The text a paper is embedded from: "title. abstract", whitespace normalised."""
    title = _SPACE.sub(" ", title).strip()
    abstract = _SPACE.sub(" ", abstract).strip()
    if title and title[-1] not in ".?!":
        title += "."
    return f"{title} {abstract}".strip()


def load_tokenizer() -> transformers.PreTrainedTokenizerBase:
    return transformers.BertTokenizerFast.from_pretrained(  # type: ignore[attr-defined]  # v5 alias
        str(encoder_dir(PACKAGED_ENCODER)), model_max_length=MAX_TOKENS
    )


def pad(pieces: Sequence[Sequence[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Right-padded int64 ids and attention mask, as long as the longest row."""
    width = max(len(p) for p in pieces)
    ids = np.full((len(pieces), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(pieces), width), dtype=np.int64)
    for row, p in enumerate(pieces):
        ids[row, : len(p)] = p
        mask[row, : len(p)] = 1
    return ids, mask


def mean_pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """all-MiniLM-L6-v2's pooling: the mean over real tokens, then unit length."""
    weights = mask[..., None].astype(np.float32)
    pooled = (hidden * weights).sum(1) / np.maximum(weights.sum(1), 1e-9)
    norms = np.linalg.norm(pooled, axis=1, keepdims=True)
    return (pooled / np.maximum(norms, 1e-12)).astype(np.float32)


class Embedder(ABC):
    """Papers to unit vectors. Batches are sorted by length, so padding costs little;
    subclasses give the hidden states of one padded batch."""

    version = VERSION
    backend = "none"

    def __init__(self) -> None:
        self.tokenizer = load_tokenizer()

    @abstractmethod
    def hidden(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Last hidden states (batch, tokens, DIM), float32."""

    def embed(self, papers: Sequence[tuple[str, str]], batch_size: int = 32) -> np.ndarray:
        """Unit-length float32 vectors (len(papers), DIM), in the order given."""
        out = np.zeros((len(papers), DIM), dtype=np.float32)
        if not papers:
            return out
        texts = [paper_text(t, a) for t, a in papers]
        # Tokenised once; each batch is padded from these ids rather than tokenised again.
        pieces = self.tokenizer(texts, truncation=True, max_length=MAX_TOKENS)["input_ids"]
        order = sorted(range(len(texts)), key=lambda i: len(pieces[i]))
        batches = [order[start : start + batch_size] for start in range(0, len(order), batch_size)]

        def run(rows: list[int]) -> None:
            ids, mask = pad([pieces[i] for i in rows], self.tokenizer.pad_token_id)
            out[rows] = mean_pool(self.hidden(ids, mask), mask)

        self.run_batches(run, batches)
        return out

    def run_batches(self, run: Callable[[list[int]], None], batches: list[list[int]]) -> None:
        """Each batch through `run`; one after the other unless a backend does better."""
        for rows in batches:
            run(rows)


class TorchEmbedder(Embedder):
    """MiniLM in torch: fp32 on a CPU, fp16/bf16 autocast on CUDA (pooling stays fp32).

    `bf16=True` on a CPU holds the weights in bfloat16 outright: with native bf16 (AVX512-BF16
    or AMX) that is about 2x the fp32 pass with recall@50 0.99 against it (`bench.embeddings`);
    autocast re-casts every weight on every call and gains less."""

    def __init__(self, device: str = "auto", bf16: bool = False) -> None:
        super().__init__()
        self.device = pick_device(device)
        precision = "fp32"
        self.autocast: torch.dtype | None = None
        path = encoder_dir(PACKAGED_ENCODER)
        self.model = transformers.AutoModel.from_pretrained(str(path)).to(self.device).eval()
        if self.device.type == "cuda":
            bf16 = torch.cuda.is_bf16_supported()
            self.autocast = torch.bfloat16 if bf16 else torch.float16
            precision = "bf16" if bf16 else "fp16"
        elif bf16:
            self.model = self.model.to(torch.bfloat16)
            precision = "bf16"
        self.backend = f"torch-{precision}-{self.device.type}"

    @torch.inference_mode()
    def hidden(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        ids_t = torch.from_numpy(ids).to(self.device)
        mask_t = torch.from_numpy(mask).to(self.device)
        with torch.autocast(
            self.device.type, dtype=self.autocast or torch.float32, enabled=bool(self.autocast)
        ):
            states = self.model(input_ids=ids_t, attention_mask=mask_t).last_hidden_state
        return states.float().cpu().numpy()


def load_embedder(
    device: str = "auto",
    backend: str = "auto",
    cache_dir: Path | None = None,
    threads: int | None = None,
) -> Embedder:
    """The embedder for `device` and `backend`.

    `auto` is torch on CUDA when a GPU is there. On a CPU it is torch in bf16 where the CPU
    does bf16 natively, else the fused ONNX Runtime backend, which needs `cache_dir` (its
    model is exported there on first use; without one torch fp32 is used). `bf16` asks for
    torch in bf16 whatever the CPU (emulated bf16 is correct but slower than fp32). `threads`:
    batches ONNX Runtime runs at once, a thread each (default: one per core).
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown embeddings backend {backend!r}; one of {', '.join(BACKENDS)}")
    if backend == "onnx" and cache_dir is None:
        raise ValueError("the onnx backend needs a cache_dir for its exported model")
    target = pick_device(device)
    if backend == "auto" and target.type == "cpu":
        backend = "bf16" if bf16_supported(target) else "onnx" if cache_dir else "torch"
    if backend == "bf16":
        return TorchEmbedder(device, bf16=True)
    if backend == "onnx" and cache_dir is not None:
        if device not in ("auto", "cpu"):
            raise ValueError(f"the onnx backend runs on the CPU, not {device!r}")
        from ml.embeddings.onnx_fused import OnnxEmbedder

        return OnnxEmbedder(cache_dir, threads=threads)
    return TorchEmbedder(device)
