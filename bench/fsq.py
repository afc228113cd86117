"""FSQ against VQ: the same autoencoder, steps, seed and data, codebooks of 2^8 … 2^16 codes.

    python -m bench.fsq                    # 2^8, 2^10, 2^12, 2^14, 2^16; 300 steps each
    python -m bench.fsq --quick            # 2^8 and 2^10, a few steps (CI smoke, < 60 s)
    python -m bench.fsq --seeds 0,1,2 --json out.json

For each codebook size both tokenizers are trained on the plots' train split (FSQ with the
recommended levels; plain VQ-VAE with a codebook of the same size, as many latent channels
as FSQ has levels, commitment β = 0.25), then measured: codebook usage % and code perplexity
over the tokens of all 495 plots (126,720 tokens: the 45 held-out plots alone give 11,520,
too few to fill the larger codebooks), reconstruction MSE (pixels in [0, 1]) and PSNR on the
held-out plots, and encode images/s (batches of 64, after a warm-up). Ratios are FSQ/VQ at
the same size. The issue's goals are checked against the measured numbers and printed.

A second usage figure ("+Fashion") counts codes over the plots' tokens together with those of
the 10,000 Fashion-MNIST test images drawn dark on white (2.69M tokens): at 2^16 the plots
alone give about two tokens per code, so even a perfectly uniform tokenizer would show only
~85 % there. The tokenizers never train on Fashion-MNIST here; the goal is checked on plots.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import time
from pathlib import Path
from typing import Any

from bench.ingest import find_data

METRICS = ("usage", "usage_wide", "perplexity", "mse", "psnr", "images_per_s", "train_seconds")


def _mean(values: list[float]) -> float:
    return statistics.fmean(values)


def _spread(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def _pct(value: float) -> str:
    """A usage %, with the decimals a collapsed codebook's tiny share needs."""
    return f"{value:.1f}" if value >= 1 or value == 0 else f"{value:.2g}"


def run_one(
    images_dir: Path,
    quantizer: str,
    size: int,
    seed: int,
    steps: int,
    batch: int,
    held_out: Any,
    everything: Any,
    timing_seconds: float,
    wide: Any = None,
) -> dict[str, float]:
    from ml.fsq.evaluate import evaluate, token_histogram
    from ml.fsq.quantizers import codebook_stats
    from ml.fsq.train import FSQTrainConfig, train_tokenizer

    result = train_tokenizer(
        FSQTrainConfig(
            images_dir, quantizer=quantizer, codebook_size=size, steps=steps, batch=batch, seed=seed
        )
    )
    figures = evaluate(result.model, held_out, everything, timing_seconds)
    row = {k: float(v) for k, v in figures.as_dict().items()}
    row["train_seconds"] = result.seconds
    row["final_train_mse"] = result.final_loss
    if wide is not None:  # not measured in quick runs or without Fashion-MNIST
        row["usage_wide"] = float(codebook_stats(token_histogram(result.model, wide)).usage)
    return row


def goals(summary: dict[int, dict[str, dict[str, float]]]) -> list[tuple[str, bool | None, str]]:
    """The issue's three goals, judged on the mean figures: (goal, met, the figures); met is
    None when the run has no codebook size the goal speaks about."""
    sizes = sorted(summary)
    big = [s for s in sizes if s >= 2**10]
    fsq_usage = {s: summary[s]["fsq"]["usage"] for s in big}
    vq_usage = [summary[s]["vq"]["usage"] for s in sizes]
    mse_sizes = [s for s in sizes if s >= 2**12]
    out = [
        (
            "FSQ usage ≥ 95% at every size ≥ 2^10",
            all(u >= 95.0 for u in fsq_usage.values()) if big else None,
            ", ".join(f"2^{s.bit_length() - 1}: {_pct(u)}%" for s, u in fsq_usage.items()),
        ),
        (
            "VQ usage falls as the codebook grows",
            all(b < a for a, b in itertools.pairwise(vq_usage)) if len(vq_usage) > 1 else None,
            " → ".join(f"{_pct(u)}%" for u in vq_usage),
        ),
        (
            "FSQ MSE ≤ VQ MSE at every size ≥ 2^12",
            all(summary[s]["fsq"]["mse"] <= summary[s]["vq"]["mse"] for s in mse_sizes)
            if mse_sizes
            else None,
            ", ".join(
                f"2^{s.bit_length() - 1}: {summary[s]['fsq']['mse']:.5f} vs "
                f"{summary[s]['vq']['mse']:.5f}"
                for s in mse_sizes
            )
            or "no size ≥ 2^12 in this run",
        ),
    ]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="2^8 and 2^10, a few steps")
    ap.add_argument("--sizes", default=None, help="log2 codebook sizes, e.g. 8,10,12,14,16")
    ap.add_argument("--steps", type=int, default=None, help="[default: 300; quick: 20]")
    ap.add_argument("--batch", type=int, default=None, help="[default: 16; quick: 8]")
    ap.add_argument("--seeds", default="0", help="comma-separated seeds, e.g. 0,1,2")
    ap.add_argument(
        "--threads", type=int, default=1, help="torch threads (1: steady on a shared CPU)"
    )
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)

    import numpy as np
    import torch

    from ml.device import pick_device
    from ml.images import load

    torch.set_num_threads(args.threads)
    sizes = [
        2 ** int(k) for k in (args.sizes or ("8,10" if args.quick else "8,10,12,14,16")).split(",")
    ]
    steps = args.steps or (20 if args.quick else 300)
    batch = args.batch or (8 if args.quick else 16)
    seeds = [int(s) for s in args.seeds.split(",")]
    timing = 0.1 if args.quick else 1.0
    images_dir = find_data() / "images"
    plots = load("plots", images_dir)
    everything = np.concatenate([plots.train, plots.held_out])
    wide = None
    if not args.quick:
        from ml.fsq.train import fashion_as_plots
        from ml.images import ImageDataMissing, load_fashion

        try:
            fashion = fashion_as_plots(load_fashion(images_dir).held_out)
            wide = np.concatenate([everything, fashion])
        except ImageDataMissing as exc:
            print(f"usage over plots+Fashion not measured: {exc}")

    print(
        f"FSQ vs VQ on {len(plots.train)} train plots; MSE/PSNR on {len(plots.held_out)} "
        f"held-out, usage/perplexity over all {len(everything)} ({len(everything) * 256} "
        f"tokens); {steps} steps × batch {batch}; seeds {seeds}; device "
        f"{pick_device('auto')}, threads {torch.get_num_threads()}",
        flush=True,
    )
    started = time.perf_counter()
    runs: list[dict[str, Any]] = []
    for size in sizes:
        for quantizer in ("fsq", "vq"):
            for seed in seeds:
                row = run_one(
                    images_dir,
                    quantizer,
                    size,
                    seed,
                    steps,
                    batch,
                    plots.held_out,
                    everything,
                    timing,
                    wide,
                )
                runs.append({"size": size, "quantizer": quantizer, "seed": seed, **row})
                print(
                    f"  2^{size.bit_length() - 1} {quantizer:<3} seed {seed}: usage "
                    f"{_pct(row['usage'])}%  MSE {row['mse']:.5f}  ({row['train_seconds']:.0f} s)",
                    flush=True,
                )

    summary: dict[int, dict[str, dict[str, float]]] = {}
    for size in sizes:
        summary[size] = {}
        for quantizer in ("fsq", "vq"):
            rows = [r for r in runs if r["size"] == size and r["quantizer"] == quantizer]
            summary[size][quantizer] = {
                "codes": rows[0]["codebook_size"],
                **{m: _mean([r[m] for r in rows]) for m in METRICS if m in rows[0]},
                **{f"{m}_sd": _spread([r[m] for r in rows]) for m in METRICS if m in rows[0]},
            }

    print()
    several = len(seeds) > 1

    def cell(s: dict[str, float], metric: str, fmt: str) -> str:
        text = _pct(s[metric]) if metric == "usage" else format(s[metric], fmt)
        return f"{text}±{format(s[metric + '_sd'], fmt)}" if several else text

    def wide_cell(s: dict[str, float]) -> str:
        return _pct(s["usage_wide"]) if "usage_wide" in s else "-"

    print(
        f"{'size':<6}{'tokenizer':<11}{'codes':>7}{'usage %':>13}{'+Fashion':>10}{'perplex.':>10}"
        f"{'MSE':>18}{'PSNR dB':>9}{'enc img/s':>11}{'train s':>9}"
        + ("   (mean±sd over seeds)" if several else "")
    )
    for size in sizes:
        for quantizer in ("fsq", "vq"):
            s = summary[size][quantizer]
            print(
                f"2^{size.bit_length() - 1:<4}{quantizer.upper():<11}{int(s['codes']):>7}"
                f"{cell(s, 'usage', '.1f'):>13}{wide_cell(s):>10}{s['perplexity']:>10.1f}"
                f"{cell(s, 'mse', '.5f'):>18}{s['psnr']:>9.2f}"
                f"{s['images_per_s']:>11.0f}{s['train_seconds']:>9.0f}"
            )
    print()
    print(f"{'size':<6}{'usage FSQ/VQ':>14}{'perplexity':>12}{'MSE':>8}{'encode rate':>13}")
    ratios: dict[int, dict[str, float]] = {}
    for size in sizes:
        f, v = summary[size]["fsq"], summary[size]["vq"]
        ratios[size] = {
            "usage": f["usage"] / v["usage"] if v["usage"] else float("inf"),
            "perplexity": f["perplexity"] / v["perplexity"] if v["perplexity"] else float("inf"),
            "mse": f["mse"] / v["mse"],
            "images_per_s": f["images_per_s"] / v["images_per_s"],
        }
        r = ratios[size]
        print(
            f"2^{size.bit_length() - 1:<4}{r['usage']:>13.2f}x{r['perplexity']:>11.2f}x"
            f"{r['mse']:>7.2f}x{r['images_per_s']:>12.2f}x"
        )
    print()
    checks = goals(summary)
    for goal, met, figures in checks:
        verdict = "n/a    " if met is None else "MET    " if met else "NOT MET"
        print(f"{verdict} {goal}: {figures}")
    print(f"total {time.perf_counter() - started:.0f} s")

    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "steps": steps,
                    "batch": batch,
                    "seeds": seeds,
                    "threads": torch.get_num_threads(),
                    "runs": runs,
                    "summary": {str(k): v for k, v in summary.items()},
                    "ratios_fsq_over_vq": {str(k): v for k, v in ratios.items()},
                    "goals": [{"goal": g, "met": m, "figures": f} for g, m, f in checks],
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
