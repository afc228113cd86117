"""Vector index benchmark: exact scans against HNSW graphs, for app.vectors' choice.

    python -m bench.vectors             # the 49,866 real vectors and 2.5M synthetic ones
    python -m bench.vectors --quick     # 5k synthetic vectors (no real data, < 1 minute)
    python -m bench.vectors --sizes real --json out.json

For each index: build time, memory (bytes), p50/p99 latency of one top-50 query (2
threads), and recall@50 against an exact float32 scan, over the same query vectors.

  exact f32        numpy matrix-vector product over a float32 matrix, argpartition
  exact f16        usearch's SIMD brute force over the float16 matrix (what a memory-mapped
                   float16 matrix costs to scan)
  usearch i8/f16   usearch HNSW (cosine), int8- or float16-quantised, M=connectivity
  faiss HNSW       faiss-cpu IndexHNSWFlat (inner product, float32)
  delta N          the exact scan app.vectors runs over rows written since a build

Real vectors: the embeddings of the 50k cs papers by the product's embedder (ml.embeddings,
`auto`: bf16 on a CPU that has it, recall@50 0.99 against fp32), cached as
`arxiv50k-minilm.npz` (keys `ids`, `vectors`, `backend`) in $PAPERSHELF_BENCH_CACHE, else
$XDG_CACHE_HOME/papershelf-bench, else ~/.cache/papershelf-bench; computed (slowly) when
missing. Synthetic vectors: a random real vector plus Gaussian noise of norm SIGMA,
re-normalised, so they cluster as real papers do (uniformly random vectors have no near
neighbours and are an unrealistic worst case). A build slower than --max-build-s stops
there: its rate is reported and the full build time extrapolated (marked "~").
"""

from __future__ import annotations

import os

# One query at a time on 2 threads, as a web process serves it.
os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "2")

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

K = 50
SIGMA = 0.35  # noise norm added to a real vector for a synthetic one
CACHE_FILE = "arxiv50k-minilm.npz"
DIM = 384


def cache_dir() -> Path:
    """$PAPERSHELF_BENCH_CACHE, else $XDG_CACHE_HOME/papershelf-bench, else ~/.cache/..."""
    if env := os.environ.get("PAPERSHELF_BENCH_CACHE"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "papershelf-bench"


def real_vectors(limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(ids, float32 unit vectors) of the 50k real papers, computed and cached if missing."""
    path = cache_dir() / CACHE_FILE
    if not path.exists():
        compute_real(path)
    with np.load(path) as data:
        ids, vecs = data["ids"], data["vectors"]
    if limit is not None:
        ids, vecs = ids[:limit], vecs[:limit]
    return ids, unit(vecs.astype(np.float32))


def compute_real(path: Path) -> None:
    """Embed the 50k cs papers with ml.embeddings (the ML extra; slow on a CPU)."""
    import orjson

    from bench.ingest import find_data, read_lines
    from bench.related import FILE
    from ml.embeddings import load_embedder

    print(f"bench: computing {path.name} (slow; cached afterwards)", file=sys.stderr)
    rows = [orjson.loads(line) for line in read_lines(find_data() / FILE, None)]
    embedder = load_embedder("auto")
    out = np.empty((len(rows), DIM), dtype=np.float16)
    step = 512
    start = time.perf_counter()
    for i in range(0, len(rows), step):
        chunk = rows[i : i + step]
        out[i : i + len(chunk)] = embedder.embed(
            [(r.get("title") or "", r.get("abstract") or "") for r in chunk]
        )
        done, secs = i + len(chunk), time.perf_counter() - start
        print(f"bench: {done}/{len(rows)} embedded, {done / secs:.1f}/s", file=sys.stderr)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    ids = np.array([r.get("id") or r.get("arxiv_id") for r in rows])
    np.savez(tmp, ids=ids, vectors=out, backend=np.array(embedder.backend))
    tmp.replace(path)


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def clustered(n: int, seed: int = 0, centres: int = 200) -> np.ndarray:
    """Stand-in for real vectors (--quick): points around random topic centres."""
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centres, DIM)).astype(np.float32)
    x = c[rng.integers(0, centres, n)] + 0.9 * rng.standard_normal((n, DIM)).astype(np.float32)
    return unit(x)


def synthetic(base: np.ndarray, n: int, seed: int = 1) -> np.ndarray:
    """n vectors: a random base vector + Gaussian noise of norm ~SIGMA, re-normalised."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, base.shape[1]), dtype=np.float32)
    step = 250_000
    for i in range(0, n, step):
        m = min(step, n - i)
        noise = rng.standard_normal((m, base.shape[1]), dtype=np.float32)
        noise *= SIGMA / np.sqrt(base.shape[1])
        out[i : i + m] = unit(base[rng.integers(0, len(base), m)] + noise)
    return out


def exact_top(x: np.ndarray, queries: np.ndarray, k: int = K) -> np.ndarray:
    """Ground truth: the k best rows per query, by a float32 scan in chunks."""
    best_s = np.full((len(queries), k), -np.inf, dtype=np.float32)
    best_i = np.zeros((len(queries), k), dtype=np.int64)
    step = 200_000
    for i in range(0, len(x), step):
        s = queries @ x[i : i + step].T
        idx = np.argpartition(-s, k - 1, axis=1)[:, :k]
        cs = np.concatenate([best_s, np.take_along_axis(s, idx, 1)], axis=1)
        ci = np.concatenate([best_i, idx + i], axis=1)
        keep = np.argpartition(-cs, k - 1, axis=1)[:, :k]
        best_s, best_i = np.take_along_axis(cs, keep, 1), np.take_along_axis(ci, keep, 1)
    return best_i


@dataclass
class Row:
    index: str
    n: int
    build_s: float
    built: int  # rows actually built (less than n when the build was cut short)
    memory_bytes: int
    p50_ms: float
    p99_ms: float
    recall: float

    def line(self) -> str:
        full = self.built >= self.n
        build = f"{self.build_s:.1f}" if full else f"~{self.build_s * self.n / self.built:.0f}"
        return (
            f"{self.index:<28}{self.n:>10,}{build:>10}{self.memory_bytes / 2**20:>10.0f}"
            f"{self.p50_ms:>9.2f}{self.p99_ms:>9.2f}{self.recall:>9.3f}"
            + ("" if full else f"  (built {self.built:,} in {self.build_s:.0f}s)")
        )


HEADER = f"{'index':<28}{'n':>10}{'build s':>10}{'MiB':>10}{'p50 ms':>9}{'p99 ms':>9}{'rec@50':>9}"


def timed(
    search: Callable[[np.ndarray], np.ndarray], queries: np.ndarray
) -> tuple[float, float, list[np.ndarray]]:
    lat, found = [], []
    for q in queries:
        t = time.perf_counter()
        found.append(np.asarray(search(q)))
        lat.append(time.perf_counter() - t)
    ms = np.array(lat) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99)), found


def recall(found: list[np.ndarray], truth: np.ndarray) -> float:
    hits = [
        len(set(f[:K].tolist()) & set(t.tolist())) / K for f, t in zip(found, truth, strict=False)
    ]
    return float(np.mean(hits))


def bench_exact(x: np.ndarray, queries: np.ndarray, truth: np.ndarray, n_q: int) -> list[Row]:
    from usearch.index import MetricKind, search

    rows = []

    def f32(q: np.ndarray) -> np.ndarray:
        s = x @ q
        idx = np.argpartition(-s, K - 1)[:K]
        return idx[np.argsort(-s[idx])]

    p50, p99, found = timed(f32, queries[:n_q])
    rows.append(
        Row(
            "exact f32 (numpy)", len(x), 0.0, len(x), x.nbytes, p50, p99, recall(found, truth[:n_q])
        )
    )
    x16 = x.astype(np.float16)

    def f16(q: np.ndarray) -> np.ndarray:
        m = search(x16, q.astype(np.float16), K, MetricKind.IP, exact=True, threads=2)
        return np.asarray(m.keys)

    p50, p99, found = timed(f16, queries[:n_q])
    rows.append(
        Row(
            "exact f16 (usearch SIMD)",
            len(x),
            0.0,
            len(x),
            x16.nbytes,
            p50,
            p99,
            recall(found, truth[:n_q]),
        )
    )
    return rows


def bench_usearch(
    x: np.ndarray,
    queries: np.ndarray,
    truth: np.ndarray,
    *,
    dtype: str,
    connectivity: int,
    expansion_add: int,
    expansion_search: tuple[int, ...],
    max_build_s: float,
) -> list[Row]:
    from usearch.index import Index

    index = Index(
        ndim=x.shape[1],
        metric="cos",
        dtype=dtype,
        connectivity=connectivity,
        expansion_add=expansion_add,
    )
    t = time.perf_counter()
    built = 0
    step = 50_000
    while built < len(x) and time.perf_counter() - t < max_build_s:
        m = min(step, len(x) - built)
        index.add(np.arange(built, built + m, dtype=np.uint64), x[built : built + m], threads=0)
        built += m
    build_s = time.perf_counter() - t
    # A cut-short build is searched as built; recall is then against the rows it holds.
    truth_b = truth if built >= len(x) else exact_top(x[:built], queries)
    rows = []
    for ef in expansion_search:
        index.expansion_search = ef

        def one(q: np.ndarray) -> np.ndarray:
            return np.asarray(index.search(q, K, threads=2).keys)

        p50, p99, found = timed(one, queries)
        name = f"usearch {dtype} M={connectivity} ef={expansion_add}/{ef}"
        rows.append(
            Row(name, len(x), build_s, built, index.memory_usage, p50, p99, recall(found, truth_b))
        )
    return rows


def bench_faiss(
    x: np.ndarray, queries: np.ndarray, truth: np.ndarray, *, max_build_s: float
) -> list[Row]:
    import faiss

    faiss.omp_set_num_threads(2)
    index = faiss.IndexHNSWFlat(x.shape[1], 16, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = 128
    t = time.perf_counter()
    built, step = 0, 50_000
    while built < len(x) and time.perf_counter() - t < max_build_s:
        m = min(step, len(x) - built)
        index.add(x[built : built + m])
        built += m
    build_s = time.perf_counter() - t
    truth_b = truth if built >= len(x) else exact_top(x[:built], queries)
    index.hnsw.efSearch = 128
    faiss.omp_set_num_threads(1)  # one query: OpenMP's start-up costs more than it saves

    def one(q: np.ndarray) -> np.ndarray:
        return index.search(q[None], K)[1][0]

    p50, p99, found = timed(one, queries)
    memory = int(faiss.serialize_index(index).nbytes)
    return [
        Row(
            "faiss HNSWFlat M=16 ef=128/128",
            len(x),
            build_s,
            built,
            memory,
            p50,
            p99,
            recall(found, truth_b),
        )
    ]


def bench_delta(x: np.ndarray, queries: np.ndarray) -> list[Row]:
    """The exact scan over rows written since a build, at a few delta sizes."""
    rows = []
    for n in (1_000, 10_000, 50_000):
        if n > len(x):
            break
        d = x[:n]
        truth = exact_top(d, queries)

        def scan(q: np.ndarray, d: np.ndarray = d) -> np.ndarray:
            s = d @ q
            idx = np.argpartition(-s, K - 1)[:K]
            return idx[np.argsort(-s[idx])]

        p50, p99, found = timed(scan, queries)
        rows.append(
            Row(f"delta {n:,} (exact f32)", n, 0.0, n, d.nbytes, p50, p99, recall(found, truth))
        )
    return rows


def run_size(x: np.ndarray, label: str, queries: np.ndarray, args: argparse.Namespace) -> list[Row]:
    t = time.perf_counter()
    truth = exact_top(x, queries)
    print(
        f"\n{label}: {len(x):,} vectors (ground truth {time.perf_counter() - t:.1f}s)",
        file=sys.stderr,
    )
    n_exact = len(queries) if len(x) <= 100_000 else 20  # an exact scan of 2.5M is slow
    rows = bench_exact(x, queries, truth, n_exact)
    for dtype in ("i8", "f16"):
        rows += bench_usearch(
            x,
            queries,
            truth,
            dtype=dtype,
            connectivity=16,
            expansion_add=128,
            expansion_search=(64, 128, 256) if dtype == "i8" else (128,),
            max_build_s=args.max_build_s,
        )
        print("  " + rows[-1].line(), file=sys.stderr)
    if not args.no_faiss:
        rows += bench_faiss(x, queries, truth, max_build_s=args.max_build_s)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="5k synthetic vectors only")
    ap.add_argument(
        "--sizes",
        default="real,2500000",
        help="vector counts; `real`: every real vector (more than those: synthetic)",
    )
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--max-build-s", type=float, default=900.0)
    ap.add_argument("--no-faiss", action="store_true")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)

    rng = np.random.default_rng(7)
    if args.quick:
        base = clustered(5_000)
        sizes, source = [5_000], "synthetic clustered (--quick)"
        args.queries = min(args.queries, 100)
    else:
        _ids, base = real_vectors()
        sizes = [len(base) if s == "real" else int(s) for s in args.sizes.split(",")]
        source = "real"
    results: list[Row] = []
    for n in sizes:
        if n <= len(base):
            x, label = base[:n], f"{source} vectors"
        else:
            x = synthetic(base, n)
            label = f"synthetic: real vector + Gaussian noise (norm {SIGMA}), re-normalised"
        # Queries: perturbed copies of stored vectors (a new paper near existing ones).
        q = synthetic(x, args.queries, seed=int(rng.integers(1 << 30)))
        rows = run_size(x, label, q, args)
        rows += bench_delta(base, q)
        print(f"\n{label}, {len(q)} queries, top {K}, 2 threads\n{HEADER}")
        for r in rows:
            print(r.line())
        results += rows
        del x
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
