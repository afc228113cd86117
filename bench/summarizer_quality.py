"""Summarizer quality on SciTLDR dev: cheap baselines against CE- and EMO-trained models.

    python -m bench.summarizer_quality               # 3 seeds: CE, then CE/EMO fine-tunes of it
    python -m bench.summarizer_quality --scratch     # also emo1 / emo2 trained from scratch
    python -m bench.summarizer_quality --quick       # smoke run: tiny data, a few steps, 1 seed
    python -m bench.summarizer_quality --json out.json

EMO is a fine-tuning objective (arXiv 2310.04691 continues training models first trained
with cross-entropy), so per seed the benchmark trains one CE model with the default recipe
(`papershelf ml train-summarizer --objective ce`), then fine-tunes copies of it with the
fine-tuning recipe (`--init-from`, `FINETUNE` below), once per objective. "CE → CE", the
same extra steps with cross-entropy, is the control that the EMO rows are compared with:
any gain is EMO's, not the extra training's. The frozen encoder's outputs are cached, so
the runs encode the sources once. Each model is scored on the whole dev split with greedy
decoding by `ml.summarizer.evaluate` (ROUGE multi-max, MAUVE-like, distinct-2). The table
gives mean ± sd over seeds; "> CE" counts the seeds on which the EMO model beats the
control of the same seed.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.ingest import find_data

if TYPE_CHECKING:
    from ml.summarizer.train import TrainConfig

METRICS = ("rouge1", "rouge2", "rougeL", "author_rouge1", "mauve", "distinct2", "length")
#: The second stage: SciTLDR alone, a lower learning rate, a short warm-up.
FINETUNE = {"arxiv_pairs": 0, "tldr_repeat": 1, "epochs": 2, "lr": 3e-4, "warmup_steps": 10}
CONTROL = "CE → CE"


def run(args: argparse.Namespace) -> dict[str, object]:
    from ml.device import pick_device
    from ml.summarizer import checkpoint
    from ml.summarizer.data import load_scitldr
    from ml.summarizer.evaluate import score, sentence_embedder
    from ml.summarizer.inference import LoadedSummarizer
    from ml.summarizer.model import load_encoder
    from ml.summarizer.text import load_tokenizer
    from ml.summarizer.train import TrainConfig, train

    data = find_data()
    scitldr = data / "scitldr"
    arxiv = sorted((data / "arxiv").glob("papers_*.jsonl.gz"))
    dev = load_scitldr(scitldr / "dev.jsonl")[: args.dev_limit]
    refs = [e.targets for e in dev]
    device = pick_device("auto")
    encoder = load_encoder("all-MiniLM-L6-v2").to(device)
    embed = sentence_embedder(encoder, load_tokenizer(), device)
    human = embed([r[0] for r in refs])

    results: dict[str, list[dict[str, float]]] = {
        "title": [score([e.title for e in dev], refs, embed, human).as_dict()],
        "first sentence": [score([e.lead for e in dev], refs, embed, human).as_dict()],
    }
    runs = []
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="ps-bench-"))

    def trained(name: str, objective: str, seed: int, recipe: dict[str, object]) -> Path:
        out = work / f"{re.sub(r'[^A-Za-z0-9]+', '-', name).strip('-')}-s{seed}"
        cfg = TrainConfig(
            out=out,
            scitldr_dir=scitldr,
            arxiv_files=arxiv,
            objective=objective,  # type: ignore[arg-type]
            seed=seed,
            cache_dir=work / "cache",
            **recipe,  # type: ignore[arg-type]
        )
        t = time.perf_counter()
        meta = reused(out, cfg) or train(cfg, encoder=encoder)
        t_train = meta["train_seconds"] if meta.get("reused") else time.perf_counter() - t
        saved = checkpoint.read(out)
        model = LoadedSummarizer.build(
            saved.config, saved.state, saved.version, device="auto", encoder=encoder
        )
        t = time.perf_counter()
        preds = model.summarize([(e.title, e.abstract) for e in dev])
        t_eval = time.perf_counter() - t
        s = score(preds, refs, embed, human).as_dict()
        results.setdefault(name, []).append(s)
        runs.append(
            {
                "system": name,
                "objective": objective,
                "seed": seed,
                "version": meta["version"],
                "init_from": meta["init_from"],
                "steps": meta["steps"],
                "train_s": round(t_train, 1),
                "summarize_s": round(t_eval, 1),
                "scores": s,
                "sample": preds[:3],
            }
        )
        print(
            f"  {name} seed {seed}: R1 {s['rouge1']:.1f} R2 {s['rouge2']:.1f} "
            f"RL {s['rougeL']:.1f} MAUVE {s['mauve']:.3f} d2 {s['distinct2']:.3f} "
            f"len {s['length']:.1f} (train {t_train:.0f}s)",
            flush=True,
        )
        return out

    for seed in args.seeds:
        base = trained("CE", "ce", seed, args.recipe)
        for objective in args.objectives:
            name = f"CE → {objective.upper()}"
            trained(name, objective, seed, {**args.recipe, **args.finetune, "init_from": base})
        if args.scratch:
            for objective in ("emo1", "emo2"):
                trained(f"{objective.upper()} (scratch)", objective, seed, args.recipe)
    return {
        "dev_papers": len(dev),
        "recipe": args.recipe,
        "finetune": args.finetune,
        "seeds": args.seeds,
        "results": results,
        "runs": runs,
    }


def reused(out: Path, cfg: TrainConfig) -> dict[str, Any] | None:
    """The finished model at `out` when it was trained with exactly this recipe (a rerun
    with the same --work skips it); its starting point must be the same weights too."""
    from ml.checkpoints import checkpoint_present
    from ml.summarizer import checkpoint

    if not checkpoint_present(out):
        return None
    saved = checkpoint.read(out)
    want, have = cfg.describe(), dict(saved.meta.get("recipe", {}))
    if cfg.init_from is not None:
        if saved.meta.get("init_from") != checkpoint.read(cfg.init_from).version:
            return None
        want.pop("init_from")
        have.pop("init_from", None)
    if have != want:
        return None
    return {**saved.meta, "version": saved.version, "reused": True}


def wins(results: dict[str, list[dict[str, float]]], system: str, metric: str) -> str:
    """ "k/n": on k of the n seeds an EMO model beat the CE control of the same seed (the
    scratch rows: the CE model, trained as long as they were)."""
    if "EMO" not in system:
        return ""
    ce = results.get(CONTROL if "→" in system else "CE", [])
    other = results.get(system, [])
    if not ce or not other:
        return ""
    n = sum(o[metric] > c[metric] for o, c in zip(other, ce, strict=False))
    return f"{n}/{min(len(ce), len(other))}"


def table(report: dict[str, object]) -> str:
    results: dict[str, list[dict[str, float]]] = report["results"]  # type: ignore[assignment]
    head = (
        f"{'system':<16}"
        + "".join(f"{m:>15}" for m in METRICS)
        + f"{'R1 > CE':>9}{'MAUVE > CE':>12}"
    )
    lines = [head, "-" * len(head)]
    for name, rows in results.items():
        cells = []
        for m in METRICS:
            vals = [r[m] for r in rows]
            mean = statistics.fmean(vals)
            sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
            fmt = ".3f" if m in ("mauve", "distinct2") else ".2f"
            cells.append(f"{mean:{fmt}} ± {sd:{fmt}}" if len(vals) > 1 else f"{mean:{fmt}}")
        lines.append(
            f"{name:<16}"
            + "".join(f"{c:>15}" for c in cells)
            + f"{wins(results, name, 'rouge1'):>9}{wins(results, name, 'mauve'):>12}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny data and steps, one seed")
    ap.add_argument("--seeds", type=int, nargs="+", default=None)
    ap.add_argument(
        "--objectives", nargs="+", default=["ce", "emo1", "emo2"], help="fine-tuning objectives"
    )
    ap.add_argument("--scratch", action="store_true", help="also EMO from a fresh decoder")
    ap.add_argument("--work", default=None, help="keep checkpoints and the encoder cache here")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    if args.quick:
        args.seeds = args.seeds or [0]
        args.recipe = {"limit": 24, "arxiv_pairs": 8, "max_steps": 3, "batch_size": 16}
        args.finetune = {**FINETUNE, "max_steps": 2}
        args.dev_limit = 16
    else:
        args.seeds = args.seeds or [0, 1, 2]
        args.recipe = {}
        args.finetune = FINETUNE
        args.dev_limit = None
    started = time.perf_counter()
    report = run(args)
    report["seconds"] = round(time.perf_counter() - started, 1)
    print(
        f"\nSciTLDR dev ({report['dev_papers']} papers), greedy; mean ± sd over seeds "
        f"{args.seeds}; ROUGE F1 x100 multi-max"
    )
    print(table(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
