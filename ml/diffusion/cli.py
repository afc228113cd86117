"""Commands of this package, added to `papershelf ml` by ml.cli (torch loads lazily):
`train-diffusion`, `train-amed` and `eval-diffusion`.

Two models live apart: the plots model (the default) is the thumbnails' (`checkpoint`,
PAPERSHELF_DIFFUSION_PATH), and a Fashion-MNIST one goes to /lab's folder
(`lab_checkpoint`, PAPERSHELF_LAB_DIFFUSION_PATH) unless `--out` says otherwise, so a
Fashion model never lands where paper thumbnails are drawn from by accident."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from ml.checkpoints import checkpoint_present
from ml.console import BarReporter, fail, out, progress_bars


def _int_list(text: str, what: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise fail(f"{what} must be comma-separated integers, got {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise fail(f"{what} must be positive integers, got {text!r}")
    return values


def _images_dir(option: Path | None, default: Path) -> Path:
    path = option or default
    if not path.is_dir():
        raise fail(
            f"{path} not found (pass --images DIR: the folder holding fashion-mnist/ "
            "and plotnine-plots/)"
        )
    return path


def _checkpoint_dir(option: Path | None, default: Path) -> Path:
    path = option or default
    if not checkpoint_present(path):
        raise fail(f"no diffusion checkpoint in {path}: run `papershelf ml train-diffusion`")
    return path


def _write_json(path: Path | None, data: dict[str, Any]) -> None:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=2))


def _fmt(value: float | None, digits: int = 4) -> str:
    return "—" if value is None else f"{value:.{digits}g}"


def print_eval_table(result: dict[str, Any], title: str | None = None) -> None:
    """The solver × NFE table of an evaluation (FD, KID, RMSE to teacher, ms/image)."""
    from rich.table import Table

    table = Table(
        "solver",
        "NFE",
        "FD",
        "KID",
        "SW",
        "RMSE→teacher",
        "ms/image",
        title=title
        or (
            f"{result['dataset']} · {result['version']} · {result['config']['samples']} samples "
            f"· teacher Heun {result['teacher']['nfe']} NFE"
        ),
    )
    for r in result["rows"]:
        table.add_row(
            r["solver"],
            str(r["nfe"]),
            _fmt(r["fd"]),
            _fmt(r["kid"], 3),
            _fmt(r["sw"], 3),
            _fmt(r["rmse"]),
            f"{1000 * r['seconds_per_image']:.1f}",
        )
    t, f = result["teacher"], result["floor"]
    table.add_row(
        "teacher (Heun)",
        str(t["nfe"]),
        _fmt(t["fd"]),
        _fmt(t["kid"], 3),
        _fmt(t["sw"], 3),
        "0",
        f"{1000 * t['seconds_per_image']:.1f}",
    )
    table.add_row(
        f"real data ({f['n']})", "—", _fmt(f["fd"]), _fmt(f["kid"], 3), _fmt(f["sw"], 3), "—", "—"
    )
    out.print(table)
    for m in result["missing"]:
        out.print(
            f"missing {m['solver']} NFE {m['nfe']}: {m['reason']}", markup=False, highlight=False
        )
    p = result["pca"]
    out.print(
        f"trajectory PCA ({p['solver']}, {p['points']} points, {p['samples']} samples): "
        f"top-1/2/3 components explain {p['top1_variance_fraction']:.4f} / "
        f"{p['top2_variance_fraction']:.6f} / {p['top3_variance_fraction']:.6f} of the variance "
        f"(outside the best plane: {p['residual_after_2']:.2e})",
        markup=False,
        highlight=False,
    )


#: The plots' latent recipe (6,000 steps scored no better: see the README): about 0.55 s a step on
#: one thread of a 2-core CPU with bf16.
LATENT_STEPS = 2500


def default_space(dataset: str) -> str:
    return "fsq" if dataset == "plots" else "pixels"


def train_out(dataset: str, out: Path | None, thumbnails: Path, lab: Path | None) -> Path:
    """Where `train-diffusion` writes: `--out`, else the thumbnails' folder for the plots
    and /lab's (by default `diffusion-fashion` beside the thumbnails') for Fashion-MNIST."""
    if out is not None:
        return out
    if dataset == "plots":
        return thumbnails
    return lab or thumbnails.parent / f"{thumbnails.name}-{dataset}"


def trained_note(dataset: str, target: Path, thumbnails: Path) -> str:
    """What the model just written will be used for."""
    from ml.pictures import TRAIN_PLACEHOLDER_MODEL

    same = target.resolve() == thumbnails.resolve()
    if dataset == "plots":
        where = "" if same else f" once PAPERSHELF_DIFFUSION_PATH={target}"
        return (
            f"placeholder thumbnails come from this model{where}: distil its AMED predictors "
            f"with `papershelf ml train-amed --checkpoint {target}`, then restart the ML worker"
        )
    if same:
        return (
            f"warning: a {dataset} model in the thumbnails' folder draws no paper thumbnails "
            f"(the ML pool refuses it); run {TRAIN_PLACEHOLDER_MODEL} for them"
        )
    return f"a {dataset} model for /lab and the solver benchmarks; it never draws paper thumbnails"


def register(
    cli: typer.Typer,
    *,
    images: Path,
    checkpoint: Path,
    lab_checkpoint: Path | None = None,
    tokenizer: Path | None = None,
) -> None:
    """Add this package's commands to the `papershelf ml` app; `images` (the shared data's
    images/ folder), `checkpoint` (the thumbnails' U-Net, trained on the plots),
    `lab_checkpoint` (/lab's, trained on Fashion-MNIST) and `tokenizer` (the FSQ tokenizer
    whose codes the plots' model learns) are where options left out point."""
    default_images, default_checkpoint, default_tokenizer = images, checkpoint, tokenizer

    @cli.command("train-diffusion")
    def train_diffusion_cmd(
        dataset: Annotated[
            str,
            typer.Option(
                help="plots (64×64 RGB figures: the thumbnails' model) or fashion (32×32 grey: "
                "/lab's and the benchmarks')"
            ),
        ] = "plots",
        steps: Annotated[
            int | None,
            typer.Option(min=1, help="Default: 2500 for the plots' latent model, else 1500."),
        ] = None,
        images: Annotated[
            Path | None, typer.Option(help="Images folder (default: data_dir/images).")
        ] = None,
        out_dir: Annotated[
            Path | None,
            typer.Option(
                "--out",
                help="Checkpoint directory (default: for plots PAPERSHELF_DIFFUSION_PATH or "
                "data_dir/models/diffusion; for fashion PAPERSHELF_LAB_DIFFUSION_PATH or "
                "data_dir/models/diffusion-fashion).",
            ),
        ] = None,
        seed: int = 0,
        batch: Annotated[int, typer.Option(min=1)] = 64,
        lr: Annotated[
            float | None, typer.Option(help="Default: 1e-3 for a latent model, else 2e-3.")
        ] = None,
        size: Annotated[str, typer.Option(help="default or tiny (smoke runs)")] = "default",
        space: Annotated[
            str | None,
            typer.Option(
                help="fsq (the plots' default: learn the FSQ tokenizer's codes) or pixels "
                "(Fashion's only space)"
            ),
        ] = None,
        tokenizer: Annotated[
            Path | None,
            typer.Option(
                help="The FSQ tokenizer for --space fsq (default: PAPERSHELF_FSQ_PATH or "
                "data_dir/models/fsq; copied into the checkpoint)."
            ),
        ] = None,
        precision: Annotated[
            str, typer.Option(help="auto (bf16 where the hardware has it natively) or fp32")
        ] = "auto",
        limit: Annotated[int | None, typer.Option(min=1, help="Only the first N images.")] = None,
        device: Annotated[str, typer.Option(help="auto, cpu, cuda…")] = "auto",
        restart: Annotated[bool, typer.Option(help="Discard a saved training state.")] = False,
        json_path: Annotated[
            Path | None, typer.Option("--json", help="Write the figures here.")
        ] = (None),
    ) -> None:
        """Train the EDM U-Net (resumes an interrupted run with the same settings)."""
        from ml.diffusion.train import STATE, DiffusionTrainConfig, train_diffusion

        if dataset not in ("fashion", "plots"):
            raise fail("--dataset must be fashion or plots")
        if size not in ("default", "tiny"):
            raise fail("--size must be default or tiny")
        if space not in (None, "fsq", "pixels"):
            raise fail("--space must be fsq or pixels")
        if space == "fsq" and dataset != "plots":
            raise fail("--space fsq is for the plots; Fashion-MNIST is learned in pixels")
        if precision not in ("auto", "fp32"):
            raise fail("--precision must be auto or fp32")
        target = train_out(dataset, out_dir, default_checkpoint, lab_checkpoint)
        if restart:
            (target / STATE).unlink(missing_ok=True)
        cfg = DiffusionTrainConfig(
            images_dir=_images_dir(images, default_images),
            dataset=dataset,
            out=target,
            steps=steps or (LATENT_STEPS if (space or default_space(dataset)) == "fsq" else 1500),
            batch=batch,
            lr=lr,
            seed=seed,
            size=size,
            limit=limit,
            device=device,
            space=space,
            tokenizer=tokenizer or default_tokenizer,
            precision=precision,
        )
        if cfg.space == "fsq" and (cfg.tokenizer is None or not checkpoint_present(cfg.tokenizer)):
            raise fail(
                f"no FSQ tokenizer in {cfg.tokenizer}: the plots' model learns its codes; "
                "train it first with `papershelf ml train-fsq` (or pass --tokenizer DIR, or "
                "--space pixels)"
            )
        try:
            with progress_bars() as progress:
                result = train_diffusion(cfg, BarReporter(progress))
        except (FileNotFoundError, ValueError) as exc:
            raise fail(str(exc)) from None
        out.print(
            f"wrote {target} (version {result.version}, {result.params} parameters, "
            f"{result.steps} steps, final loss {result.final_loss:.4f}, {result.seconds:.0f} s)",
            markup=False,
            highlight=False,
        )
        out.print(trained_note(dataset, target, default_checkpoint), markup=False, highlight=False)
        _write_json(json_path, {"dataset": dataset, "out": str(target), **result.as_dict()})

    @cli.command("train-amed")
    def train_amed_cmd(
        checkpoint_dir: Annotated[Path | None, typer.Option("--checkpoint")] = None,
        solver: Annotated[
            str, typer.Option(help="amed, amed_plugin, or both comma-separated")
        ] = "amed,amed_plugin",
        nfe: Annotated[str, typer.Option(help="Comma-separated NFEs")] = "3,5,7,9",
        samples: Annotated[int, typer.Option(min=1, help="Noise draws to distil on")] = 1024,
        batch: Annotated[int, typer.Option(min=1)] = 16,
        lr: float = 5e-3,
        seed: Annotated[int, typer.Option(help="Noise seed (eval-diffusion draws with 0)")] = 1,
        schedule: Annotated[str, typer.Option(help="polynomial, logsnr or uniform")] = (
            "polynomial"
        ),
        objective: Annotated[
            str, typer.Option(help="Distillation loss: final, trajectory or per_step")
        ] = "final",
        device: Annotated[str, typer.Option(help="auto, cpu, cuda…")] = "auto",
        json_path: Annotated[
            Path | None, typer.Option("--json", help="Write the figures here.")
        ] = (None),
    ) -> None:
        """Distil AMED predictors for a trained U-Net and save them beside it."""
        import time

        from rich.table import Table

        from ml.device import pick_device
        from ml.diffusion import checkpoint
        from ml.diffusion.amed import train_amed
        from ml.diffusion.samplers import AMED_SOLVERS

        solvers = [s.strip() for s in solver.split(",") if s.strip()]
        bad = [s for s in solvers if s not in AMED_SOLVERS]
        if bad or not solvers:
            raise fail("--solver must be amed, amed_plugin or both (comma-separated)")
        if objective not in ("final", "trajectory", "per_step"):
            raise fail("--objective must be final, trajectory or per_step")
        nfes = _int_list(nfe, "--nfe")
        path = _checkpoint_dir(checkpoint_dir, default_checkpoint)
        denoiser, ckpt = checkpoint.load_denoiser(path, pick_device(device))
        rows: list[dict[str, Any]] = []
        try:
            with progress_bars() as progress:
                bar = BarReporter(progress)
                for s in solvers:
                    for k in nfes:
                        started = time.perf_counter()
                        predictor = train_amed(
                            denoiser,
                            solver=s,
                            nfe=k,
                            schedule=schedule,
                            samples=samples,
                            batch=batch,
                            lr=lr,
                            seed=seed,
                            shape=denoiser.cfg.shape,
                            report=bar,
                            objective=objective,
                        )
                        file = checkpoint.save_amed(path, predictor)
                        rows.append(
                            {
                                "solver": s,
                                "nfe": k,
                                "objective": objective,
                                "file": str(file),
                                "final_loss": predictor.meta.get("final_loss"),
                                "seconds": round(time.perf_counter() - started, 1),
                            }
                        )
        except ValueError as exc:
            raise fail(str(exc)) from None
        table = Table("solver", "NFE", "final loss", "seconds", title=f"AMED for {ckpt.version}")
        for r in rows:
            table.add_row(r["solver"], str(r["nfe"]), _fmt(r["final_loss"]), str(r["seconds"]))
        out.print(table)
        _write_json(
            json_path, {"checkpoint": str(path), "version": ckpt.version, "predictors": rows}
        )

    @cli.command("eval-diffusion")
    def eval_diffusion_cmd(
        checkpoint_dir: Annotated[Path | None, typer.Option("--checkpoint")] = None,
        images: Annotated[
            Path | None, typer.Option(help="Images folder (default: data_dir/images).")
        ] = None,
        nfe: Annotated[str, typer.Option(help="Comma-separated NFEs")] = "3,5,7,9",
        solvers: Annotated[
            str | None, typer.Option(help="Comma-separated solvers (default: all)")
        ] = None,
        samples: Annotated[int, typer.Option(min=2)] = 256,
        teacher_steps: Annotated[int, typer.Option(min=1, help="Heun steps of the teacher")] = 32,
        classifier_steps: Annotated[
            int, typer.Option(min=1, help="Training steps of the metric classifier")
        ] = 300,
        seed: int = 0,
        device: Annotated[str, typer.Option(help="auto, cpu, cuda…")] = "auto",
        json_path: Annotated[
            Path | None, typer.Option("--json", help="Write the figures here.")
        ] = (None),
    ) -> None:
        """FD, KID and RMSE to a Heun teacher for every solver × NFE, and the PCA check."""
        from ml.diffusion.evaluate import EvalConfig, evaluate
        from ml.diffusion.samplers import SOLVERS

        nfes = _int_list(nfe, "--nfe")
        chosen = [s.strip() for s in solvers.split(",")] if solvers else list(SOLVERS)
        unknown = [s for s in chosen if s not in SOLVERS]
        if unknown:
            raise fail(f"unknown solver {unknown[0]!r}; choose from {', '.join(SOLVERS)}")
        path = _checkpoint_dir(checkpoint_dir, default_checkpoint)
        cfg = EvalConfig(
            checkpoint=path,
            images_dir=_images_dir(images, default_images),
            nfes=nfes,
            solvers=chosen,
            samples=samples,
            batch=min(samples, 256),
            teacher_steps=teacher_steps,
            classifier_steps=classifier_steps,
            seed=seed,
            device=device,
        )
        try:
            with progress_bars() as progress:
                result = evaluate(cfg, BarReporter(progress))
        except (FileNotFoundError, ValueError) as exc:
            raise fail(str(exc)) from None
        print_eval_table(result)
        _write_json(json_path, result)
