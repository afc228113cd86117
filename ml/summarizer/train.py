"""Training the summarizer: SciTLDR TL;DRs plus arXiv titles as a second task (CATTS).

The encoder is frozen, so every source is encoded once (and cached on disk); each step
then runs only the decoder. The run is seeded and resumable: a training state is written
atomically every `checkpoint_every` steps, and `resume=True` continues from it with the
same data order, so an interrupted run ends where an uninterrupted one would.
"""

from __future__ import annotations

import math
import os
import platform
import random
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from ml.device import autocast, pick_device
from ml.emo import Objective, sequence_loss, unit_rows
from ml.progress import Quiet, Reporter
from ml.summarizer import checkpoint
from ml.summarizer.data import (
    Encoded,
    Example,
    encoded_examples,
    load_arxiv_titles,
    load_scitldr,
    pad,
    title_key,
)
from ml.summarizer.model import Summarizer, config_for, load_encoder, word_embeddings
from ml.summarizer.text import PACKAGED_ENCODER, TASKS, encode_targets, load_tokenizer

STATE = "train_state.pt"


@dataclass
class TrainConfig:
    out: Path
    scitldr_dir: Path
    arxiv_files: list[Path] = field(default_factory=list)
    #: (abstract → title) pairs from `arxiv_files`; 0 trains on SciTLDR alone.
    arxiv_pairs: int = 1500
    #: SciTLDR is small next to the titles: each epoch visits it this many times.
    tldr_repeat: int = 2
    objective: Objective = "emo1"
    seed: int = 0
    epochs: int = 2
    batch_size: int = 32
    lr: float = 1.5e-3
    warmup_steps: int = 50
    weight_decay: float = 0.01
    checkpoint_every: int = 100
    device: str = "auto"
    cache_dir: Path | None = None
    #: Use only the first N SciTLDR pairs (smoke runs).
    limit: int | None = None
    layers: int = 2
    dropout: float = 0.1
    max_steps: int | None = None
    #: The frozen encoder: the packaged MiniLM or a local BERT-style checkpoint directory.
    encoder: str = PACKAGED_ENCODER
    #: Fine-tune: start from this checkpoint's weights (its decoder shape and encoder are
    #: kept) instead of a fresh decoder, as EMO is meant to be used: on a model first
    #: trained with cross-entropy.
    init_from: Path | None = None
    #: EMO's cost treats the end token as unlike every word (ml.emo.unit_rows).
    emo_isolate_end: bool = True

    def describe(self) -> dict[str, Any]:
        d = asdict(self)
        skip = {"arxiv_files", "out", "cache_dir", "scitldr_dir"}
        if self.objective == "ce":
            skip.add("emo_isolate_end")  # no EMO cost: it changes nothing
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in d.items() if k not in skip}


def _starting_point(cfg: TrainConfig) -> tuple[TrainConfig, checkpoint.Checkpoint | None]:
    """The checkpoint a fine-tuning run starts from; it decides the encoder and shape."""
    if cfg.init_from is None:
        return cfg, None
    if Path(cfg.init_from).resolve() == Path(cfg.out).resolve():
        raise ValueError("--init-from must name another checkpoint than --out")
    start = checkpoint.read(Path(cfg.init_from))
    shape = start.config
    return replace(cfg, encoder=shape.encoder, layers=shape.layers, dropout=shape.dropout), start


@dataclass
class Batch:
    src_ids: torch.Tensor
    src_mask: torch.Tensor
    states: torch.Tensor
    dec_in: torch.Tensor
    targets: torch.Tensor
    tgt_mask: torch.Tensor
    task: torch.Tensor


def collate(
    rows: list[int],
    enc: Encoded,
    targets: list[list[int]],
    tasks: list[int],
    cls_id: int,
    device: torch.device,
) -> Batch:
    src_ids, src_mask = pad([enc.src_ids[i].tolist() for i in rows])
    width = src_ids.shape[1]
    states = torch.zeros(len(rows), width, enc.states[rows[0]].shape[-1])
    for r, i in enumerate(rows):
        states[r, : enc.states[i].shape[0]] = enc.states[i].float()
    tgt, tgt_mask = pad([targets[i] for i in rows])
    dec_in = torch.cat([torch.full((len(rows), 1), cls_id), tgt[:, :-1]], 1)
    return Batch(
        src_ids.to(device),
        src_mask.to(device),
        states.to(device),
        dec_in.to(device),
        tgt.to(device),
        tgt_mask.to(device),
        torch.tensor([tasks[i] for i in rows], device=device),
    )


def epoch_batches(
    pool: list[int], target_lens: list[int], batch_size: int, seed: int, epoch: int
) -> list[list[int]]:
    """Shuffled batches of similar target length (less padding over the 30k-way output):
    shuffle, sort runs of 50 batches by length, cut, then shuffle the batches."""
    rng = random.Random(seed * 100_003 + epoch)
    order = list(pool)
    rng.shuffle(order)
    chunk = batch_size * 50
    batches = []
    for start in range(0, len(order), chunk):
        run = sorted(order[start : start + chunk], key=lambda i: target_lens[i])
        batches += [run[i : i + batch_size] for i in range(0, len(run), batch_size)]
    rng.shuffle(batches)
    return batches


def train(
    cfg: TrainConfig, report: Reporter | None = None, encoder: torch.nn.Module | None = None
) -> dict[str, Any]:
    """Train, write the checkpoint to `cfg.out`, return what was done (version, steps, …).
    `encoder`: an already loaded `cfg.encoder` (benchmarks train several models)."""
    report = report or Quiet()
    started = time.perf_counter()
    device = pick_device(cfg.device)
    torch.manual_seed(cfg.seed)
    cfg, start = _starting_point(cfg)
    tokenizer = load_tokenizer(cfg.encoder)
    encoder = (encoder if encoder is not None else load_encoder(cfg.encoder)).to(device)
    model_cfg = (
        start.config  # a fine-tune keeps the whole shape of its starting point
        if start is not None
        else config_for(encoder, tokenizer, cfg.encoder, layers=cfg.layers, dropout=cfg.dropout)
    )

    train_set = load_scitldr(cfg.scitldr_dir / "train.jsonl")[: cfg.limit]
    # The evaluation papers never enter training, not even as title pairs.
    held = {title_key(e.title) for e in load_scitldr(cfg.scitldr_dir / "dev.jsonl")}
    held |= {title_key(e.title) for e in train_set}
    titles = (
        load_arxiv_titles(cfg.arxiv_files, cfg.arxiv_pairs, cfg.seed, held)
        if cfg.arxiv_pairs and cfg.arxiv_files
        else []
    )
    examples: list[Example] = [
        Example(e.id, e.title, e.abstract, e.targets[:1], "tldr") for e in train_set
    ] + titles
    report.phase("encoding sources", len(examples))
    enc = encoded_examples(
        encoder,
        tokenizer,
        model_cfg.encoder,
        examples,
        device,
        cfg.cache_dir,
        progress=report.advance,
    )
    targets = encode_targets(
        tokenizer,
        [e.targets[0] for e in examples],
        model_cfg.max_target_tokens,
    )
    tasks = [TASKS[e.task] for e in examples]
    pool = [i for i, e in enumerate(examples) if e.task == "tldr"] * cfg.tldr_repeat
    pool += [i for i, e in enumerate(examples) if e.task == "title"]

    model = Summarizer(model_cfg, word_embeddings(encoder))
    if start is not None:
        model.load_state_dict(start.state)
    model = model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    optim = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": cfg.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=cfg.lr,
    )
    steps_per_epoch = math.ceil(len(pool) / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    if cfg.max_steps:
        total = min(total, cfg.max_steps)

    def lr_at(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        progress = (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps)
        return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    sched = torch.optim.lr_scheduler.LambdaLR(optim, lr_at)
    unit = (
        unit_rows(model.embed, [model_cfg.sep_id] if cfg.emo_isolate_end else []).to(device)
        if cfg.objective != "ce"
        else None
    )

    step = 0
    state_path = cfg.out / STATE
    if state_path.is_file():
        saved = torch.load(state_path, weights_only=False)
        if saved["config"] != cfg.describe():
            raise ValueError(
                f"{state_path} belongs to a run with other settings; remove it or use them"
            )
        model.load_state_dict(saved["model"])
        optim.load_state_dict(saved["optim"])
        sched.load_state_dict(saved["sched"])
        torch.set_rng_state(saved["rng"])
        step = saved["step"]
        report.log(f"resumed at step {step} of {total}")

    def save_state() -> None:
        cfg.out.mkdir(parents=True, exist_ok=True)
        tmp = state_path.with_suffix(".tmp")
        torch.save(
            {
                "config": cfg.describe(),
                "model": model.state_dict(),
                "optim": optim.state_dict(),
                "sched": sched.state_dict(),
                "rng": torch.get_rng_state(),
                "step": step,
            },
            tmp,
        )
        os.replace(tmp, state_path)

    report.phase(f"training ({cfg.objective}, seed {cfg.seed})", total)
    report.advance(step)
    model.train()
    losses: list[float] = []
    target_lens = [len(t) for t in targets]
    current_epoch, batches = -1, []
    while step < total:
        epoch, offset = divmod(step, steps_per_epoch)
        if epoch != current_epoch:
            batches = epoch_batches(pool, target_lens, cfg.batch_size, cfg.seed, epoch)
            current_epoch = epoch
        rows = batches[offset]
        b = collate(rows, enc, targets, tasks, model_cfg.cls_id, device)
        mem = model.memory(b.states, b.src_ids, b.src_mask)
        with autocast(device):
            probs = model.probs(b.dec_in, b.task, mem)
        loss = sequence_loss(probs, b.targets, b.tgt_mask, unit, cfg.objective)
        optim.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optim.step()
        sched.step()
        step += 1
        losses.append(loss.item())
        report.advance(1, loss=sum(losses[-50:]) / len(losses[-50:]))
        if step % cfg.checkpoint_every == 0 and step < total:
            save_state()

    model.eval()
    meta = {
        "name": "tldr",
        "objective": cfg.objective,
        "seed": cfg.seed,
        "steps": step,
        "train_pairs": {"tldr": len(train_set), "title": len(titles)},
        "train_seconds": round(time.perf_counter() - started, 1),
        "device": str(device),
        "torch": torch.__version__,
        "machine": platform.machine(),
        "recipe": cfg.describe(),
        "init_from": start.version if start is not None else None,
        "final_loss": round(sum(losses[-50:]) / max(1, len(losses[-50:])), 4) if losses else None,
    }
    version = checkpoint.save(cfg.out, model, meta)
    state_path.unlink(missing_ok=True)
    return {"version": version, **meta}
