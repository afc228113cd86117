"""Diffusion samplers: FD, KID and RMSE to a Heun teacher for every solver × NFE (3, 5, 7, 9).

    python -m bench.diffusion                          # train a Fashion-MNIST model, then all
    python -m bench.diffusion --checkpoint DIR         # reuse a model (and its predictors)
    python -m bench.diffusion --out DIR                # keep the model trained here
    python -m bench.diffusion --quick                  # tiny model, NFE 5 only (< 60 s)
    python -m bench.diffusion --json out.json

Trains (or reuses) the EDM U-Net on Fashion-MNIST 32×32, distils AMED predictors (AMED-Solver
and AMED-Plugin on iPNDM) for each NFE, then scores every solver from the same noise:
FD/KID/sliced Wasserstein in the features of a classifier trained here (no Inception offline),
RMSE to Heun with `--teacher-steps` steps, wall time per image. The samples are scored as a
whole and in 3 disjoint chunks (independent noise) so each comparison says in how many chunks
it holds. Goals (the AMED paper's shape), checked from the measured numbers: at NFE 5,
AMED-Plugin and AMED-Solver ahead of DPM-Solver++(3M), iPNDM and DDIM on FD and RMSE; DDIM
ahead of Heun at NFE ≤ 5.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.ingest import find_data

GROUPS = 3


def _compare(result: dict[str, Any], a: str, b: str, nfe: int, metric: str) -> dict[str, Any]:
    from ml.diffusion.evaluate import row

    ra, rb = row(result, a, nfe), row(result, b, nfe)
    if ra is None or rb is None:
        return {"goal": f"{a} < {b} on {metric} at NFE {nfe}", "met": None, "reason": "missing"}
    groups = sum(x < y for x, y in zip(ra["groups"][metric], rb["groups"][metric], strict=True))
    return {
        "goal": f"{a} < {b} on {metric} at NFE {nfe}",
        "a": ra[metric],
        "b": rb[metric],
        "ratio": ra[metric] / rb[metric] if rb[metric] else float("inf"),
        "met": ra[metric] < rb[metric],
        "chunks": f"{groups}/{len(ra['groups'][metric])}",
    }


def goals(result: dict[str, Any], nfes: list[int]) -> list[dict[str, Any]]:
    checks = []
    if 5 in nfes:
        for amed in ("amed_plugin", "amed"):
            for base in ("dpm3m", "ipndm", "ddim"):
                for metric in ("fd", "rmse"):
                    checks.append(_compare(result, amed, base, 5, metric))
    for nfe in (n for n in nfes if n <= 5):
        for metric in ("fd", "rmse"):
            checks.append(_compare(result, "ddim", "heun", nfe, metric))
    return checks


def _spread(values: list[float]) -> str:
    import numpy as np

    return f"±{np.std(values):.3g}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny model, NFE 5 only, few samples")
    ap.add_argument("--checkpoint", type=Path, default=None, help="reuse this trained model")
    ap.add_argument("--out", type=Path, default=None, help="where to keep the trained model")
    ap.add_argument("--steps", type=int, default=None, help="U-Net training steps [1000]")
    ap.add_argument("--nfe", default=None, help="comma-separated NFEs [3,5,7,9]")
    ap.add_argument("--samples", type=int, default=None, help="images per solver × NFE [384]")
    ap.add_argument("--amed-samples", type=int, default=None, help="AMED distillation [1024]")
    ap.add_argument(
        "--amed-objective",
        choices=["trajectory", "final", "per_step"],
        default="final",
        help="AMED distillation loss (see ml/diffusion/amed.py) [final]",
    )
    ap.add_argument("--teacher-steps", type=int, default=None, help="Heun teacher steps [32]")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--threads", type=int, default=None, help="torch threads [quick: 1, else torch's default]"
    )
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)

    import torch

    from ml.checkpoints import checkpoint_present
    from ml.diffusion import checkpoint
    from ml.diffusion.amed import train_amed
    from ml.diffusion.evaluate import EvalConfig, evaluate
    from ml.diffusion.train import DiffusionTrainConfig, train_diffusion

    quick = args.quick
    # One thread for the smoke run: on a busy 2-core machine two threads fight for the cores.
    if args.threads or quick:
        torch.set_num_threads(args.threads or 1)
    nfes = [int(v) for v in args.nfe.split(",")] if args.nfe else ([5] if quick else [3, 5, 7, 9])
    samples = args.samples or (48 if quick else 384)
    amed_samples = args.amed_samples or (16 if quick else 1024)
    teacher_steps = args.teacher_steps or (8 if quick else 32)
    images_dir = find_data() / "images"
    tmp = None
    timings: dict[str, float] = {}
    if args.checkpoint is not None:
        if not checkpoint_present(args.checkpoint):
            raise SystemExit(f"bench: no diffusion checkpoint in {args.checkpoint}")
        path = args.checkpoint
        trained: dict[str, Any] = {"reused": True}
    else:
        if args.out is None:
            tmp = tempfile.TemporaryDirectory(prefix="bench-diffusion-")
        path = args.out or Path(tmp.name)  # type: ignore[union-attr]
        cfg = DiffusionTrainConfig(
            images_dir=images_dir,
            dataset="fashion",
            out=path,
            steps=args.steps or (60 if quick else 1000),
            batch=32 if quick else 64,
            size="tiny" if quick else "default",
            seed=args.seed,
            resume=False,
        )
        result = train_diffusion(cfg)
        trained = {"reused": False, **result.as_dict()}
        timings["train_unet"] = result.seconds
        print(
            f"trained {result.params} parameters, {result.steps} steps, "
            f"loss {result.final_loss:.4f}, {result.seconds:.0f} s"
        )
    denoiser, ckpt = checkpoint.load_denoiser(path)
    started = time.perf_counter()
    have = checkpoint.predictors_present(path)
    amed_trained = []
    for solver in ("amed", "amed_plugin"):
        for nfe in nfes:
            if (solver, nfe) in have:
                continue
            predictor = train_amed(
                denoiser,
                solver=solver,
                nfe=nfe,
                samples=amed_samples,
                batch=8 if quick else 16,
                # Not the evaluation's noise (seed args.seed): distilled on other draws.
                seed=args.seed + 1,
                shape=denoiser.cfg.shape,
                objective=args.amed_objective,
            )
            checkpoint.save_amed(path, predictor)
            amed_trained.append(
                {
                    "solver": solver,
                    "nfe": nfe,
                    "objective": args.amed_objective,
                    "final_loss": predictor.meta.get("final_loss"),
                }
            )
    timings["train_amed"] = time.perf_counter() - started
    started = time.perf_counter()
    result = evaluate(
        EvalConfig(
            checkpoint=path,
            images_dir=images_dir,
            nfes=nfes,
            samples=samples,
            batch=min(samples, 256),
            teacher_steps=teacher_steps,
            seed=args.seed,
            classifier_steps=40 if quick else 300,
            reference=500 if quick else 2000,
            pca_samples=16 if quick else 32,
            groups=GROUPS,
        )
    )
    timings["evaluate"] = time.perf_counter() - started

    print(
        f"Fashion-MNIST 32×32, model {ckpt.version} ({ckpt.meta.get('params')} parameters, "
        f"{ckpt.meta.get('steps')} steps), {samples} samples from the same noise per row, "
        f"teacher Heun {2 * teacher_steps} NFE, threads {torch.get_num_threads()}, "
        f"classifier {result['classifier'].get('held_out_accuracy')} held-out accuracy"
    )
    print(
        f"{'solver':<13}{'NFE':>4}{'FD':>9}{'(3 chunks)':>11}{'KID':>9}{'RMSE':>9}"
        f"{'(3 chunks)':>11}{'ms/img':>9}"
    )
    for r in result["rows"]:
        g = r["groups"]
        print(
            f"{r['solver']:<13}{r['nfe']:>4}{r['fd']:>9.3f}{_spread(g['fd']):>11}"
            f"{r['kid']:>9.3f}{r['rmse']:>9.4f}{_spread(g['rmse']):>11}"
            f"{1000 * r['seconds_per_image']:>9.2f}"
        )
    t, f = result["teacher"], result["floor"]
    print(
        f"{'teacher':<13}{t['nfe']:>4}{t['fd']:>9.3f}{'':>11}{t['kid']:>9.3f}{0:>9.4f}"
        f"{'':>11}{1000 * t['seconds_per_image']:>9.2f}"
    )
    print(f"{'real data':<13}{'':>4}{f['fd']:>9.3f}{'':>11}{f['kid']:>9.3f}")
    for m in result["missing"]:
        print(f"missing {m['solver']} NFE {m['nfe']}: {m['reason']}")
    p = result["pca"]
    print(
        f"trajectory PCA over {p['samples']} Heun trajectories ({p['points']} points each): "
        f"top-1/2/3 components explain {p['top1_variance_fraction']:.4f} / "
        f"{p['top2_variance_fraction']:.6f} / {p['top3_variance_fraction']:.6f} of the "
        f"variance (outside the best plane: {p['residual_after_2']:.2e})"
    )
    checks = goals(result, nfes)
    print("goals:")
    for c in checks:
        if c["met"] is None:
            print(f"  {c['goal']}: not measured ({c['reason']})")
            continue
        print(
            f"  {c['goal']}: {'met' if c['met'] else 'NOT met'} "
            f"({c['a']:.4g} vs {c['b']:.4g}, ratio {c['ratio']:.3f}; holds in {c['chunks']} chunks)"
        )
    print("seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()))
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "quick": quick,
                    "checkpoint": str(args.checkpoint or args.out or "temporary"),
                    "trained": trained,
                    "amed_trained": amed_trained,
                    "amed_samples": amed_samples,
                    "timings": timings,
                    "evaluation": result,
                    "goals": checks,
                },
                indent=2,
            )
        )
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
