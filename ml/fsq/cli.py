"""Commands of this package, added to `papershelf ml` by ml.cli (torch loads lazily):
`train-fsq` and `eval-fsq`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ml.console import BarReporter, data_path, fail, out, progress_bars

if TYPE_CHECKING:
    from ml.fsq.evaluate import EvalResult


def parse_levels(text: str | None) -> list[int] | None:
    """`8,5,5,5` → [8, 5, 5, 5]; ValueError for anything else."""
    if text is None:
        return None
    try:
        levels = [int(part) for part in text.replace("x", ",").split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"--levels must be integers separated by commas, got {text!r}") from None
    if not levels or any(v < 2 for v in levels):
        raise ValueError(f"--levels must be integers ≥ 2, got {text!r}")
    return levels


def _print_eval(name: str, result: EvalResult, title: str) -> None:
    from rich.table import Table

    table = Table(
        "tokenizer", "codes", "usage %", "perplexity", "MSE", "PSNR dB", "encode img/s", title=title
    )
    table.add_row(
        name,
        str(result.codebook_size),
        f"{result.usage:.1f}",
        f"{result.perplexity:.1f}",
        f"{result.mse:.5f}",
        f"{result.psnr:.2f}",
        f"{result.images_per_s:.0f}",
    )
    out.print(table)


def _write_json(path: Path | None, data: dict[str, Any]) -> None:
    if path is not None:
        path.write_text(json.dumps(data, indent=2))


def register(cli: typer.Typer, *, images: Path, checkpoint: Path) -> None:
    """Add this package's commands to the `papershelf ml` app; `images` (the shared data's
    images/ folder) and `checkpoint` (the tokenizer's) are where options left out point."""
    default_images, default_checkpoint = images, checkpoint

    @cli.command("train-fsq")
    def train_fsq(
        images: Annotated[
            Path | None,
            typer.Option(help="The shared data's images/ folder (default: data_dir/images)."),
        ] = None,
        levels: Annotated[
            str | None,
            typer.Option(
                help="FSQ levels, e.g. 8,6,5 (default: 8,5,5,5, or the recommended levels "
                "for --codebook-size)."
            ),
        ] = None,
        codebook_size: Annotated[
            int | None,
            typer.Option(help="Codebook size: the recommended FSQ levels, or the VQ codebook."),
        ] = None,
        quantizer: Annotated[str, typer.Option(help="fsq, vq or vq-ema")] = "fsq",
        steps: Annotated[int, typer.Option(min=1)] = 1500,
        batch: Annotated[int, typer.Option(min=1)] = 32,
        lr: float = 2e-3,
        seed: int = 0,
        fashion_mix: Annotated[
            float, typer.Option(help="Share of each batch from Fashion-MNIST (0: plots only).")
        ] = 0.0,
        out_dir: Annotated[
            Path | None,
            typer.Option("--out", help="Checkpoint directory (default: data_dir/models/fsq)."),
        ] = None,
        device: Annotated[str, typer.Option(help="auto, cpu, cuda…")] = "auto",
        json_path: Annotated[
            Path | None, typer.Option("--json", help="Write the figures here.")
        ] = None,
    ) -> None:
        """Train the image tokenizer on the plots, then evaluate it on the held-out ones."""
        try:
            parsed = parse_levels(levels)
        except ValueError as exc:
            raise fail(str(exc)) from None
        images_dir = data_path(images, default_images, "images")
        target = out_dir or default_checkpoint

        from ml.fsq.evaluate import evaluate
        from ml.fsq.train import FSQTrainConfig, tokenizer_config, train_tokenizer
        from ml.images import load

        cfg = FSQTrainConfig(
            images_dir=images_dir,
            quantizer=quantizer,
            levels=parsed,
            codebook_size=codebook_size,
            steps=steps,
            batch=batch,
            lr=lr,
            seed=seed,
            fashion_mix=fashion_mix,
            out=target,
            device=device,
        )
        try:
            tokenizer_config(cfg)  # option errors before any data is read
            held_out = load("plots", images_dir).held_out
            with progress_bars() as progress:
                result = train_tokenizer(cfg, BarReporter(progress))
        except (FileNotFoundError, ValueError) as exc:
            raise fail(str(exc)) from None
        figures = evaluate(result.model, held_out)
        out.print(
            f"wrote {target} (version {result.version}, {result.steps} steps, "
            f"{result.seconds:.0f} s)",
            markup=False,
            highlight=False,
        )
        _print_eval(str(result.version), figures, f"held-out plots ({figures.held_out})")
        _write_json(
            json_path,
            {
                "version": result.version,
                "checkpoint": str(target),
                "steps": result.steps,
                "train_seconds": round(result.seconds, 1),
                "final_train_mse": result.final_loss,
                "held_out": figures.as_dict(),
            },
        )

    @cli.command("eval-fsq")
    def eval_fsq(
        checkpoint_dir: Annotated[
            Path | None,
            typer.Option(
                "--checkpoint", help="Tokenizer checkpoint (default: data_dir/models/fsq)."
            ),
        ] = None,
        images: Annotated[
            Path | None,
            typer.Option(help="The shared data's images/ folder (default: data_dir/images)."),
        ] = None,
        device: Annotated[str, typer.Option(help="auto, cpu, cuda…")] = "auto",
        json_path: Annotated[
            Path | None, typer.Option("--json", help="Write the figures here.")
        ] = None,
    ) -> None:
        """Codebook usage %, code perplexity, MSE and PSNR on the held-out plots; encode rate.

        Usage is also given over all 495 plots: 45 held-out images have 11,520 tokens, too few
        to use every code of the larger codebooks."""
        import numpy as np

        from ml.checkpoints import checkpoint_present

        path = checkpoint_dir or default_checkpoint
        if not checkpoint_present(path):
            raise fail(f"no FSQ tokenizer checkpoint in {path}: run `papershelf ml train-fsq`")
        images_dir = data_path(images, default_images, "images")

        from ml.device import pick_device
        from ml.fsq.checkpoint import load_model
        from ml.fsq.evaluate import evaluate
        from ml.images import load

        try:
            plots = load("plots", images_dir)
            model, ckpt = load_model(path)
        except (FileNotFoundError, ValueError) as exc:
            raise fail(str(exc)) from None
        model.to(pick_device(device))
        held = evaluate(model, plots.held_out)
        everything = evaluate(
            model, plots.held_out, np.concatenate([plots.train, plots.held_out]), 0.2
        )
        _print_eval(ckpt.version, held, f"held-out plots ({held.held_out})")
        out.print(
            f"over all {len(plots.train) + len(plots.held_out)} plots ({everything.tokens} "
            f"tokens): usage {everything.usage:.1f}%, perplexity {everything.perplexity:.1f}",
            markup=False,
            highlight=False,
        )
        _write_json(
            json_path,
            {
                "version": ckpt.version,
                "checkpoint": str(path),
                "held_out": held.as_dict(),
                "all_plots": {
                    "usage": everything.usage,
                    "perplexity": everything.perplexity,
                    "tokens": everything.tokens,
                    "usage_cap": everything.usage_cap,
                },
            },
        )
