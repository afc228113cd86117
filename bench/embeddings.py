"""Embedder speed and agreement: papers/s of each backend against the plain fp32 pass.

    python -m bench.embeddings                 # 1000 real cs papers
    python -m bench.embeddings --papers 2000
    python -m bench.embeddings --quick         # 32 papers (smoke test)
    python -m bench.embeddings --json out.json

Every row embeds the same papers (title and abstract) in the same run, on the device `auto`
picks:
  plain     torch fp32 on the CPU, batches in file order padded to their longest paper,
            tokenised per batch: the pass every other row is timed and scored against
  torch     the product's torch backend (length-sorted batches; fp16/bf16 on CUDA)
  onnx      fused fp32 ONNX Runtime on the CPU, its model exported into
            $PAPERSHELF_BENCH_CACHE/embedder first (the export is timed apart)
  bf16      torch with bfloat16 weights on the CPU (emulated, and slow, where the CPU lacks
            native bf16: the table says which)
The row marked "auto" is the one the product picks on this machine.
Agreement with the plain pass: recall@50 (the share of each paper's 50 nearest neighbours
among these papers that a backend's vectors keep) and the cosine of each paper's two vectors.
"""

from __future__ import annotations

import argparse
import gzip
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from bench.ingest import find_data
from bench.vectors import cache_dir

if TYPE_CHECKING:
    from ml.embeddings import TorchEmbedder

FILE = "arxiv/papers_cs_2025-08-05_2026-07-01.jsonl.gz"
K = 50
Papers = list[tuple[str, str]]


@dataclass
class Row:
    backend: str
    papers_per_s: float
    ratio: float
    recall: float
    cos_mean: float
    cos_min: float


def load_papers(n: int) -> Papers:
    """`n` papers spread evenly over the listing file (it is sorted by date)."""
    with gzip.open(find_data() / FILE, "rt", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    step = max(1, len(rows) // n)
    return [(r["title"], r["abstract"]) for r in rows[::step][:n]]


def top_k(vectors: np.ndarray, k: int) -> np.ndarray:
    sims = vectors @ vectors.T
    np.fill_diagonal(sims, -np.inf)
    return np.argpartition(-sims, k, axis=1)[:, :k]


def recall_at(reference: np.ndarray, vectors: np.ndarray, k: int) -> float:
    """Mean share of each paper's k nearest (by `reference`) that `vectors` also puts there."""
    want, got = top_k(reference, k), top_k(vectors, k)
    hits = [len(set(w) & set(g)) for w, g in zip(want, got, strict=True)]
    return float(np.mean(hits)) / k


def timed(fn: Callable[[], np.ndarray]) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def plain_pass(model: TorchEmbedder, papers: Papers, batch_size: int) -> np.ndarray:
    """The fp32 pass with nothing done for speed: the baseline the issue measured."""
    import torch

    from ml.embeddings import paper_text
    from ml.embeddings.model import MAX_TOKENS, mean_pool

    texts = [paper_text(t, a) for t, a in papers]
    out = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            enc = model.tokenizer(
                texts[start : start + batch_size],
                truncation=True,
                max_length=MAX_TOKENS,
                padding=True,
                return_tensors="pt",
            )
            hidden = model.model(**enc).last_hidden_state
            out.append(mean_pool(hidden.numpy(), enc["attention_mask"].numpy()))
    return np.concatenate(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="32 papers")
    ap.add_argument("--papers", type=int, default=None, help="how many (default 1000)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)

    import torch

    from ml.device import bf16_supported
    from ml.embeddings import TorchEmbedder, load_embedder

    n = args.papers or (32 if args.quick else 1000)
    papers = load_papers(n)
    k = min(K, len(papers) - 1)
    print(f"{len(papers)} papers, batches of {args.batch_size}, recall@{k}")

    cpu = TorchEmbedder("cpu")
    plain_pass(cpu, papers[: args.batch_size], args.batch_size)  # warm-up: first calls allocate
    reference, base_s = timed(partial(plain_pass, cpu, papers, args.batch_size))
    rows = [Row("torch-fp32 plain", len(papers) / base_s, 1.0, 1.0, 1.0, 1.0)]

    start = time.perf_counter()
    onnx = load_embedder("cpu", backend="onnx", cache_dir=cache_dir() / "embedder")
    print(f"{onnx.backend}: ready in {time.perf_counter() - start:.1f} s (export on first use)")
    native = bf16_supported(torch.device("cpu"))
    print(f"native bf16 on this CPU: {'yes' if native else 'no (the bf16 row is emulated)'}")
    auto = "torch-bf16-cpu" if native else onnx.backend
    for embedder in (load_embedder("cpu", backend="torch"), onnx, load_embedder("cpu", "bf16")):
        embedder.embed(papers[: args.batch_size], args.batch_size)
        vectors, secs = timed(partial(embedder.embed, papers, args.batch_size))
        cos = (vectors * reference).sum(1)
        rows.append(
            Row(
                embedder.backend + (" (auto)" if embedder.backend == auto else ""),
                len(papers) / secs,
                base_s / secs,
                recall_at(reference, vectors, k),
                float(cos.mean()),
                float(cos.min()),
            )
        )

    print(f"\n| backend | papers/s | ratio | recall@{k} | cos mean | cos min |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r.backend} | {r.papers_per_s:.1f} | {r.ratio:.2f}x | {r.recall:.3f} "
            f"| {r.cos_mean:.4f} | {r.cos_min:.4f} |"
        )
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
