"""Training and evaluation data: SciTLDR, arXiv (abstract → title) pairs, and the encoder's
outputs for them, computed once and cached on disk (the encoder is frozen)."""

from __future__ import annotations

import gzip
import hashlib
import json
import random
import re
from collections.abc import Callable, Iterator, Set
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from ml.device import autocast
from ml.summarizer.text import Task, clean, encode_sources

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

Progress = Callable[[int], None]


@dataclass
class Example:
    id: str
    title: str
    abstract: str
    #: Reference texts; SciTLDR's first is the author's TL;DR, the rest come from reviews.
    targets: list[str]
    task: Task = "tldr"
    #: The abstract's first sentence (the "lead" baseline), where the source has sentences.
    lead: str = ""


def load_scitldr(path: Path) -> list[Example]:
    examples = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            examples.append(
                Example(
                    row["paper_id"],
                    clean(row["title"]),
                    clean(" ".join(row["source"])),
                    [clean(t) for t in row["target"]],
                    "tldr",
                    clean(row["source"][0]) if row["source"] else "",
                )
            )
    return examples


_NORM = re.compile(r"[^a-z0-9]+")


def title_key(title: str) -> str:
    return _NORM.sub(" ", title.lower()).strip()


def load_arxiv_titles(
    files: list[Path],
    limit: int,
    seed: int,
    exclude_titles: Set[str] = frozenset(),
) -> list[Example]:
    """A seeded sample of (abstract → title) pairs from the project's JSON Lines exports.
    Papers whose title matches an excluded one (the evaluation set) are left out."""
    rows = []
    for path in files:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as fh:
            for line in fh:
                row = json.loads(line)
                title, abstract = clean(row.get("title") or ""), clean(row.get("abstract") or "")
                if title and abstract and title_key(title) not in exclude_titles:
                    rows.append((row["id"], title, abstract))
    rows.sort()
    random.Random(seed).shuffle(rows)
    return [Example(i, t, a, [t], "title") for i, t, a in rows[:limit]]


def read_records(path: Path) -> Iterator[tuple[str, str, str]]:
    """(id, title, abstract) from JSON Lines with `id`/`title`/`abstract` or SciTLDR's
    `paper_id`/`title`/`source`; a bad line raises ValueError naming it."""
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                rid = row.get("id", row.get("paper_id"))
                abstract = row.get("abstract")
                if abstract is None and isinstance(row.get("source"), list):
                    abstract = " ".join(row["source"])
                if rid is None or not isinstance(abstract, str) or not abstract.strip():
                    raise ValueError("needs `id` (or `paper_id`) and `abstract` (or `source`)")
                yield str(rid), clean(str(row.get("title") or "")), clean(abstract)
            except (ValueError, AttributeError) as exc:
                raise ValueError(f"{path}:{n}: {exc}") from None


# -- encoder outputs -----------------------------------------------------------------------


@dataclass
class Encoded:
    src_ids: list[Tensor]  # int32 (S_i,)
    states: list[Tensor]  # half precision (S_i, d)


def encode(
    encoder: nn.Module,
    sources: list[list[int]],
    device: torch.device,
    batch_size: int = 32,
    progress: Progress | None = None,
) -> list[Tensor]:
    """Encoder states per source, batched by length so little is padding."""
    order = sorted(range(len(sources)), key=lambda i: len(sources[i]))
    out: dict[int, Tensor] = {}
    with torch.inference_mode(), autocast(device):
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            ids, mask = pad([sources[i] for i in idx])
            states = encoder(input_ids=ids.to(device), attention_mask=mask.to(device))[0]
            for row, i in enumerate(idx):
                out[i] = states[row, : len(sources[i])].to("cpu", torch.float16).clone()
            if progress:
                progress(len(idx))
    return [out[i] for i in range(len(sources))]


def pad(seqs: list[list[int]], value: int = 0) -> tuple[Tensor, Tensor]:
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), value, dtype=torch.long)
    for row, s in enumerate(seqs):
        ids[row, : len(s)] = torch.as_tensor(s, dtype=torch.long)
    mask = torch.arange(width)[None, :] < torch.tensor([len(s) for s in seqs])[:, None]
    return ids, mask


def encoded_examples(
    encoder: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    encoder_name: str,
    examples: list[Example],
    device: torch.device,
    cache_dir: Path | None,
    progress: Progress | None = None,
) -> Encoded:
    """Source ids and encoder states for `examples`, from the disk cache when it has them."""
    by_task: dict[Task, list[int]] = {}
    for i, ex in enumerate(examples):
        by_task.setdefault(ex.task, []).append(i)
    sources: list[list[int]] = [[] for _ in examples]
    for task, idx in by_task.items():
        ids = encode_sources(
            tokenizer,
            [examples[i].title for i in idx],
            [examples[i].abstract for i in idx],
            task,
        )
        for i, s in zip(idx, ids, strict=True):
            sources[i] = s
    key = hashlib.sha256(json.dumps([encoder_name, sources]).encode()).hexdigest()[:16]
    path = cache_dir / f"encoded-{key}.pt" if cache_dir else None
    if path and path.is_file():
        states = torch.load(path, weights_only=True)
        if progress:
            progress(len(examples))
    else:
        states = encode(encoder, sources, device, progress=progress)
        if path:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            torch.save(states, tmp)
            tmp.replace(path)  # a killed run never leaves a half-written cache
    return Encoded([torch.as_tensor(s, dtype=torch.int32) for s in sources], states)
